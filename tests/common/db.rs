//! Databases the tests make on the shared servers (PostgreSQL, MariaDB), dropped when the
//! test is done with them.

use crate::mysql::mysql_base;
use crate::postgres::pg_url;

/// A database a test made, with a connection to it: dropped when the test is done with
/// it, also when the test fails (the drop runs while a panic unwinds). Hold it for as long
/// as the database is used, even where the connection is not.
pub struct TestDb<C> {
    pub(crate) conn: C,
    /// Never read: held for its `Drop`, which drops the database.
    #[allow(dead_code)]
    pub(crate) drop: DropDatabase,
}

impl<C> std::ops::Deref for TestDb<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.conn
    }
}

impl<C> std::ops::DerefMut for TestDb<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.conn
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Server {
    Postgres,
    Mysql,
}

pub(crate) struct DropDatabase {
    pub(crate) server: Server,
    pub(crate) name: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be the one unwinding: the DROP runs
        // on a thread and runtime of its own. It must not panic (a panic while unwinding
        // aborts the test binary): a failure is reported and the next run drops it first.
        let (server, name) = (self.server, self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(drop_database(server, &name))
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test database {}: {e}", self.name),
            Err(_) => eprintln!(
                "could not drop test database {}: the thread failed",
                self.name
            ),
        }
    }
}

async fn drop_database(server: Server, name: &str) -> Result<(), String> {
    match server {
        Server::Postgres => {
            let (admin, conn) = tokio_postgres::connect(&pg_url("postgres"), tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            // FORCE ends the sessions still on it (the test's own, a service left running).
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .map_err(|e| e.to_string())
        }
        Server::Mysql => {
            use mysql_async::prelude::Queryable;
            let opts = mysql_async::Opts::from_url(&mysql_base()).map_err(|e| e.to_string())?;
            let mut admin = mysql_async::Conn::new(
                mysql_async::OptsBuilder::from_opts(opts).prefer_socket(false),
            )
            .await
            .map_err(|e| e.to_string())?;
            // A session still inside a statement on it holds a lock: wait for it a little,
            // not for MariaDB's default of a year.
            let dropped = admin
                .query_drop(format!(
                    "SET SESSION lock_wait_timeout = 10; DROP DATABASE IF EXISTS `{name}`"
                ))
                .await
                .map_err(|e| e.to_string());
            let _ = admin.disconnect().await;
            dropped
        }
    }
}
