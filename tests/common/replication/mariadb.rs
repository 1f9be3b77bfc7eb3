//! mariadbd instances the test starts, and GTID replication between two of them.

use super::*;

// ---- MariaDB instances ---------------------------------------------------------------------

const MARIADBD: &str = "/usr/sbin/mariadbd";

/// A throwaway mariadbd: its own data directory (mariadb-install-db), a free loopback
/// port, its socket, pid file and error log in its directory; root without a password over
/// TCP from 127.0.0.1 (the install's `root@127.0.0.1`, ensured by an init file). Drop kills
/// it (an immediate stop) and removes the directory.
pub struct MariaDbServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl MariaDbServer {
    /// mariadb-install-db and start, with `options` (server options, e.g. `--server-id=1`)
    /// after the ones every test instance gets.
    pub async fn start(options: &[&str]) -> MariaDbServer {
        assert!(
            Path::new(MARIADBD).exists() && which("mariadb-install-db"),
            "{MARIADBD} or mariadb-install-db missing: install Debian's mariadb-server (scripts/test.sh does)"
        );
        let dir = server_dir("my-");
        let d = dir.path();
        // No durability, small buffers: a throwaway server. A temporary directory of its
        // own: two installs at once in one /tmp can trip over each other's temporary
        // tables ("Could not remove temporary table", then the install aborts).
        std::fs::create_dir_all(d.join("tmp")).unwrap();
        let common: Vec<String> = vec![
            "--no-defaults".into(),
            format!("--datadir={}", d.join("data").display()),
            format!("--tmpdir={}", d.join("tmp").display()),
            "--innodb-flush-log-at-trx-commit=0".into(),
            "--innodb-doublewrite=0".into(),
            "--innodb-buffer-pool-size=64M".into(),
            "--innodb-log-file-size=32M".into(),
        ];
        let mut install = Command::new("mariadb-install-db");
        install
            .args(&common)
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .current_dir(d)
            .stdin(Stdio::null());
        if is_root() {
            install.arg("--user=root");
        }
        run(install, "mariadb-install-db").await.unwrap();
        std::fs::write(
            d.join("init.sql"),
            "SET sql_log_bin = 0;\n\
             CREATE USER IF NOT EXISTS root@'127.0.0.1';\n\
             GRANT ALL ON *.* TO root@'127.0.0.1' WITH GRANT OPTION;\n",
        )
        .unwrap();
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port();
            let log = std::fs::File::create(d.join("stderr.log")).unwrap();
            let mut cmd = Command::new(MARIADBD);
            cmd.args(&common)
                .arg(format!("--port={port}"))
                .arg("--bind-address=127.0.0.1")
                .arg("--skip-name-resolve")
                .arg(format!("--socket={}", d.join("sock").display()))
                .arg(format!("--pid-file={}", d.join("mariadbd.pid").display()))
                .arg(format!("--log-error={}", d.join("error.log").display()))
                .arg(format!("--init-file={}", d.join("init.sql").display()))
                .arg(format!("--tmpdir={}", d.display()))
                .args([
                    "--sync-binlog=0",
                    "--performance-schema=OFF",
                    "--character-set-server=utf8mb4",
                    "--max-connections=100",
                ])
                .args(options)
                .current_dir(d)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log);
            if is_root() {
                cmd.arg("--user=root");
            }
            let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{MARIADBD}: {e}"));
            let url = format!("mysql://root@127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    last_error = format!(
                        "mariadbd exited ({status}):\n{}",
                        tail(&read_lossy(&d.join("error.log")), 30)
                    );
                    break; // most likely the port was taken meanwhile: try another
                }
                if let Ok(conn) = mysql_async::Conn::new(my_opts(&url)).await {
                    let _ = conn.disconnect().await;
                    return MariaDbServer { child, port, dir };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = format!(
                        "mariadbd on port {port} not answering after 60 s:\n{}",
                        tail(&read_lossy(&d.join("error.log")), 30)
                    );
                    break;
                }
                sleep(Duration::from_millis(100)).await;
            }
        }
        panic!("{last_error}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self, db: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{db}", self.port)
    }

    /// A connection over TCP (never the socket), in UTC.
    pub async fn connect(&self, db: &str) -> mysql_async::Conn {
        let mut conn = mysql_async::Conn::new(my_opts(&self.url(db)))
            .await
            .unwrap_or_else(|e| panic!("test mariadbd at {}: {e}", self.url(db)));
        conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
        conn
    }

    /// The server's error log so far.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("error.log"))
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub(super) fn my_opts(url: &str) -> mysql_async::Opts {
    mysql_async::OptsBuilder::from_opts(mysql_async::Opts::from_url(url).unwrap())
        .prefer_socket(false)
        .into()
}

/// MariaDB GTID replication between two test instances: a primary (binary log, ROW
/// format, gtid_strict_mode, server_id 1) and a replica (server_id 2, writable, no binary
/// log of its own) whose replication connection goes through a [`DelayProxy`], delaying by
/// the latency given once `start` returns (the connection is made without).
pub struct MariaDbReplica {
    // Field order is drop order: the replica stops before its primary goes away.
    pub replica: MariaDbServer,
    pub proxy: DelayProxy,
    pub primary: MariaDbServer,
}

impl MariaDbReplica {
    /// Both instances, replication running (both threads Yes), and the database
    /// [`PAIR_DB`] created on the primary and replicated.
    pub async fn start(latency: Duration) -> MariaDbReplica {
        let (primary, replica) = tokio::join!(
            MariaDbServer::start(&[
                "--server-id=1",
                "--log-bin=binlog",
                "--binlog-format=ROW",
                "--gtid-strict-mode=1",
            ]),
            MariaDbServer::start(&[
                "--server-id=2",
                "--gtid-strict-mode=1",
                "--relay-log=relay",
                "--skip-slave-start",
            ]),
        );
        let proxy = DelayProxy::start(primary.addr(), Duration::ZERO).await;
        let pair = MariaDbReplica {
            replica,
            proxy,
            primary,
        };
        let mut r = pair.replica.connect("").await;
        r.query_drop(format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='root', \
             MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, \
             MASTER_HEARTBEAT_PERIOD=1",
            pair.proxy.port()
        ))
        .await
        .unwrap();
        r.query_drop("START SLAVE").await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Err(e) = pair.replication_ok().await {
            assert!(
                Instant::now() < deadline,
                "replica not replicating after 60 s: {e:#}"
            );
            sleep(Duration::from_millis(100)).await;
        }
        pair.create_database(PAIR_DB).await;
        pair.wait_caught_up(Duration::from_secs(60)).await.unwrap();
        pair.proxy.set_latency(latency);
        pair
    }

    pub fn primary_url(&self, db: &str) -> String {
        self.primary.url(db)
    }

    pub fn replica_url(&self, db: &str) -> String {
        self.replica.url(db)
    }

    /// Creates database `name` on the primary; replication creates it on the replica.
    pub async fn create_database(&self, name: &str) {
        let mut p = self.primary.connect("").await;
        p.query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            .await
            .unwrap();
        let _ = p.disconnect().await;
    }

    /// Waits until the replica applied everything the primary had binlogged when called
    /// (MASTER_GTID_WAIT on the replica for the primary's @@gtid_binlog_pos). Returns how
    /// long that took.
    pub async fn wait_caught_up(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut p = self.primary.connect("").await;
        let target: String = p
            .query_first("SELECT @@gtid_binlog_pos")
            .await?
            .unwrap_or_default();
        let _ = p.disconnect().await;
        let mut r = self.replica.connect("").await;
        let waited: Option<Option<i64>> = r
            .exec_first(
                "SELECT MASTER_GTID_WAIT(?, ?)",
                (&target, timeout.as_secs_f64()),
            )
            .await?;
        let _ = r.disconnect().await;
        match waited.flatten() {
            Some(0) => Ok(started.elapsed()),
            other => bail!(
                "replica not caught up with the primary's {target:?} after {timeout:?} \
                 (MASTER_GTID_WAIT returned {other:?}); {}",
                self.replication_ok()
                    .await
                    .err()
                    .map(|e| format!("{e:#}"))
                    .unwrap_or_else(|| "replication threads running".into())
            ),
        }
    }

    /// Replication works: SHOW SLAVE STATUS has both threads running and no error; the
    /// error is the replica's own text.
    pub async fn replication_ok(&self) -> anyhow::Result<()> {
        let mut r = self.replica.connect("").await;
        let row: Option<mysql_async::Row> = r.query_first("SHOW SLAVE STATUS").await?;
        let _ = r.disconnect().await;
        let row = row.ok_or_else(|| anyhow!("the replica has no replication configured"))?;
        let field = |name: &str| -> String {
            row.get_opt::<Option<String>, _>(name)
                .and_then(|v| v.ok())
                .flatten()
                .unwrap_or_default()
        };
        let (io, sql) = (field("Slave_IO_Running"), field("Slave_SQL_Running"));
        let (sql_errno, io_errno) = (field("Last_SQL_Errno"), field("Last_IO_Errno"));
        if io != "Yes" || sql != "Yes" || sql_errno != "0" || io_errno != "0" {
            bail!(
                "replication: Slave_IO_Running={io} Slave_SQL_Running={sql} \
                 Last_IO_Errno={io_errno} Last_IO_Error={:?} Last_SQL_Errno={sql_errno} \
                 Last_SQL_Error={:?}",
                field("Last_IO_Error"),
                field("Last_SQL_Error")
            );
        }
        Ok(())
    }
}
