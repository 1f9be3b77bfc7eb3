//! SQLite (rusqlite, bundled): the embedded default, and edge replicas.
//!
//! SQLite runs in-process, so its "pushdown" digest is computed next to the data on a
//! blocking thread, with the same canonical row hash the streamed strategy uses: the
//! rows never leave that thread. Connections are opened read-only (`SQLITE_OPEN_READ_ONLY`
//! and `PRAGMA query_only`), so a missing file is an error, never a new empty database.
//!
//! A connection reads the file it opened, even after another file is renamed over its
//! path (the way edge copies are refreshed): each connection remembers which file that
//! was, and one whose path now names another file is dropped for a fresh one.
//!
//! Values are decoded by the column's declared type (SQLite's type affinity), and a
//! stored value that does not fit its declared type is kept as stored, so that it
//! compares unequal instead of being guessed.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{Connection, InterruptHandle, OpenFlags};

mod decode;
mod dialect;

use super::pool::Pool;
use super::{
    DigestAccumulator, DigestSpec, Digests, Engine, EngineError, Result, RowSender, ROW_BATCH,
};
use crate::config::DatabaseConfig;
use crate::table::{Column, Family, KeyRange, TableQuery, TableRef, TableSchema};
use crate::value::Key;
use decode::{each_row, logical_type};
pub use dialect::bind_value;
use dialect::quote_ident;
pub(crate) use dialect::SqliteScript;
use dialect::{select, table_sql};

pub(crate) struct Sqlite {
    name: String,
    path: PathBuf,
    /// Idle connections, and the interrupt handles of those in use (shutdown).
    pool: Pool<Opened, Arc<InterruptHandle>>,
}

/// A connection and the file it was opened on.
struct Opened {
    conn: Connection,
    file: Option<FileId>,
}

/// Which file a path names: a file renamed over the path is another file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    device: u64,
    inode: u64,
}

#[cfg(unix)]
fn file_id(path: &std::path::Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| FileId {
        device: m.dev(),
        inode: m.ino(),
    })
}

/// Elsewhere there is no inode to compare: every connection is taken as current (a file
/// that is open cannot be renamed over on Windows anyway).
#[cfg(not(unix))]
fn file_id(_path: &std::path::Path) -> Option<FileId> {
    None
}

impl Sqlite {
    pub fn new(name: &str, db: &DatabaseConfig) -> Result<Sqlite> {
        let path = db
            .url
            .strip_prefix("sqlite://")
            .or_else(|| db.url.strip_prefix("sqlite:"))
            .unwrap_or_default();
        if path.is_empty() {
            return Err(EngineError::Config {
                database: name.to_string(),
                message: format!(
                    "{:?} names no file (expected sqlite:///absolute/path.db)",
                    db.url
                ),
            });
        }
        Ok(Sqlite {
            name: name.to_string(),
            path: PathBuf::from(path),
            pool: Pool::new(),
        })
    }

    /// A connection on the file the path names now. The path is looked at before the file
    /// is opened: a rename in between then costs one needless reopen, never a stale read.
    fn open(&self) -> Result<Opened> {
        let file = file_id(&self.path);
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .and_then(|c| {
            c.pragma_update(None, "query_only", true)?;
            c.busy_timeout(std::time::Duration::from_secs(10))?;
            Ok(c)
        })
        .map_err(|e| EngineError::Connect {
            database: self.name.clone(),
            message: format!("{}: {e}", self.path.display()),
        })?;
        Ok(Opened { conn, file })
    }

    /// An idle connection still on the file the path names, else a new one.
    fn connection(&self) -> Result<Opened> {
        let current = file_id(&self.path);
        while let Some((c, _)) = self.pool.idle() {
            if c.file == current {
                return Ok(c);
            }
            // Its file was replaced or removed: dropped.
        }
        self.open()
    }

    /// Runs `f` on a pooled connection on a blocking thread.
    async fn run<T: Send + 'static>(
        &self,
        table: &TableRef,
        f: impl FnOnce(&Connection) -> std::result::Result<T, Failure> + Send + 'static,
    ) -> Result<T> {
        let opened = self.connection()?;
        let interrupt = Arc::new(opened.conn.get_interrupt_handle());
        let mut lease = self.pool.lease(opened, interrupt);
        let opened = lease.take();
        let joined = tokio::task::spawn_blocking(move || {
            let r = f(&opened.conn);
            (opened, r)
        })
        .await;
        let (opened, r) = joined.map_err(|e| EngineError::Query {
            database: self.name.clone(),
            table: table.to_string(),
            message: format!("query thread failed: {e}"),
        })?;
        lease.put(opened);
        lease.release();
        r.map_err(|f| match f {
            Failure::Sql(e) => match &e {
                rusqlite::Error::SqliteFailure(code, _)
                    if matches!(
                        code.code,
                        rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::NotADatabase
                    ) =>
                {
                    EngineError::Connect {
                        database: self.name.clone(),
                        message: e.to_string(),
                    }
                }
                _ => EngineError::Query {
                    database: self.name.clone(),
                    table: table.to_string(),
                    message: e.to_string(),
                },
            },
            Failure::NotFound => EngineError::TableNotFound {
                database: self.name.clone(),
                table: table.to_string(),
            },
        })
    }
}

enum Failure {
    Sql(rusqlite::Error),
    NotFound,
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Sql(e)
    }
}

// ---- Engine ----------------------------------------------------------------------------

#[async_trait]
impl Engine for Sqlite {
    fn family(&self) -> Family {
        Family::Sqlite
    }

    async fn introspect(&self, table: &TableRef) -> Result<TableSchema> {
        let t = table.clone();
        self.run(table, move |conn| {
            let schema = quote_ident(t.schema.as_deref().unwrap_or("main"));
            let mut stmt = conn.prepare(&format!(
                "PRAGMA {schema}.table_xinfo({})",
                quote_ident(&t.name)
            ))?;
            let mut columns = Vec::new();
            let mut pk: Vec<(i64, String)> = Vec::new();
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let name: String = r.get(1)?;
                let decl: String = r.get::<_, Option<String>>(2)?.unwrap_or_default();
                let not_null: i64 = r.get(3)?;
                let pk_pos: i64 = r.get(5)?;
                let hidden: i64 = r.get(6)?;
                if hidden == 1 {
                    continue; // virtual-table hidden columns are not data
                }
                if pk_pos > 0 {
                    pk.push((pk_pos, name.clone()));
                }
                columns.push(Column {
                    logical: logical_type(&decl),
                    name,
                    db_type: decl,
                    collation: None,
                    identity: false,
                    // Timestamps are text (or numbers) of any precision: none is declared.
                    fraction_digits: None,
                    nullable: not_null == 0,
                });
            }
            if columns.is_empty() {
                return Err(Failure::NotFound);
            }
            pk.sort();
            Ok(TableSchema {
                columns,
                primary_key: pk.into_iter().map(|(_, n)| n).collect(),
                pushdown_unavailable: None,
            })
        })
        .await
    }

    async fn lead_bounds(&self, q: &TableQuery) -> Result<Option<(i64, i64)>> {
        let q2 = q.clone();
        self.run(&q.table, move |conn| {
            let k1 = quote_ident(&q2.columns[q2.key[0]].name);
            let filter = q2
                .filter
                .as_ref()
                .map(|f| format!(" WHERE ({f})"))
                .unwrap_or_default();
            // Only integer-stored keys count: a stray text key sorts above every integer.
            let sql = format!(
                "SELECT min({k1}), max({k1}) FROM {}{filter}{} typeof({k1}) = 'integer'",
                table_sql(&q2.table),
                if filter.is_empty() { " WHERE" } else { " AND" }
            );
            let r: (Option<i64>, Option<i64>) =
                conn.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(match r {
                (Some(lo), Some(hi)) => Some((lo, hi)),
                _ => None,
            })
        })
        .await
    }

    async fn key_at(&self, q: &TableQuery, range: &KeyRange, offset: u64) -> Result<Option<Key>> {
        let (q2, range) = (q.clone(), range.clone());
        self.run(&q.table, move |conn| {
            let (sql, params) = select(&q2, &q2.key, &range, &format!(" LIMIT 1 OFFSET {offset}"));
            let mut key = None;
            each_row(conn, &q2, &q2.key, &sql, &params, |row| {
                key = Some(row);
                false
            })?;
            Ok(key)
        })
        .await
    }

    async fn pushdown_digest(&self, q: &TableQuery, spec: &DigestSpec) -> Result<Digests> {
        let (q2, spec) = (q.clone(), spec.clone());
        self.run(&q.table, move |conn| {
            let all: Vec<usize> = (0..q2.columns.len()).collect();
            let (sql, params) = select(&q2, &all, &spec.range, "");
            let mut acc = DigestAccumulator::new(q2.key[0], spec.bucket_width);
            each_row(conn, &q2, &all, &sql, &params, |row| {
                acc.add(&row);
                true
            })?;
            Ok(acc.digests)
        })
        .await
    }

    async fn scan(&self, q: &TableQuery, range: &KeyRange, tx: RowSender) -> Result<u64> {
        let (q2, range) = (q.clone(), range.clone());
        self.run(&q.table, move |conn| {
            let all: Vec<usize> = (0..q2.columns.len()).collect();
            let (sql, params) = select(&q2, &all, &range, "");
            let mut batch = Vec::with_capacity(ROW_BATCH);
            let mut open = true;
            let n = each_row(conn, &q2, &all, &sql, &params, |row| {
                batch.push(row);
                if batch.len() >= ROW_BATCH {
                    open = tx.blocking_send(std::mem::take(&mut batch)).is_ok();
                }
                open
            })?;
            if open && !batch.is_empty() {
                let _ = tx.blocking_send(batch);
            }
            Ok(n)
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        let t = TableRef {
            schema: None,
            name: "-".into(),
        };
        self.run(&t, |conn| {
            Ok(
                conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                    r.get::<_, i64>(0)
                })?,
            )
        })
        .await
        .map(|_| ())
    }

    async fn cancel_all(&self) {
        for handle in self.pool.in_use() {
            handle.interrupt();
        }
    }
}
