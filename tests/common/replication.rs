//! Test support for real replication: throwaway PostgreSQL clusters and mariadbd instances
//! started by the test itself, replicating through a TCP proxy that adds a fixed latency
//! each way, and a bounded write load of the shape the live-replication tests compare.
//!
//! Nothing here mocks a database or replication: the publisher, the subscriber and the
//! replication between them are the servers' own. The servers run in directories under
//! [`CLUSTERS_DIR`] and are stopped when their handle drops (also when a test fails); a run
//! that was killed leaves them behind, and the next start stops them (`sweep`).
//! These servers never touch the shared servers on 5432 and 3306.

use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use mysql_async::prelude::Queryable;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;

/// Where the test servers live, one directory each, with an `owner` file holding the pid
/// of the test process that started them (what the sweep goes by).
pub const CLUSTERS_DIR: &str = "/tmp/driftwatch-test-clusters";

/// The database the pairs create on both sides (the servers are the test's own, so the
/// name need not be unique).
pub const PAIR_DB: &str = "driftwatch";

/// A free TCP port on 127.0.0.1 (the kernel's choice; free when returned, so a server
/// started on it may still lose a race, which the starters below retry).
pub fn free_port() -> u16 {
    StdListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

// ---- the delaying proxy ------------------------------------------------------------------

/// A TCP proxy on 127.0.0.1 to `target` that delivers every byte `latency` after it
/// arrived, in each direction. Bytes are queued with their arrival time and released at
/// arrival + latency, so throughput is not limited by the delay (a connection's bytes keep
/// flowing while earlier ones wait). Connecting itself is not delayed. The latency can be
/// changed while connections run ([`DelayProxy::set_latency`]; bytes stay in order).
/// Dropping it (or [`DelayProxy::stop`]) closes the listener and every connection through
/// it.
pub struct DelayProxy {
    addr: SocketAddr,
    latency: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl DelayProxy {
    pub async fn start(target: SocketAddr, latency: Duration) -> DelayProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("proxy: bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let token = stop.clone();
        let latency = Arc::new(AtomicU64::new(latency.as_nanos() as u64));
        let shared = latency.clone();
        tokio::spawn(async move {
            loop {
                let inbound = tokio::select! {
                    _ = token.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((s, _)) => s,
                        Err(_) => continue,
                    },
                };
                let (token, latency) = (token.clone(), shared.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return; // the client sees the connection closed, as for a refusal
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::select! {
                        _ = token.cancelled() => {}
                        _ = futures::future::join(
                            delayed_pipe(ri, wo, latency.clone()),
                            delayed_pipe(ro, wi, latency),
                        ) => {}
                    }
                });
            }
        });
        DelayProxy {
            addr,
            latency,
            stop,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn latency(&self) -> Duration {
        Duration::from_nanos(self.latency.load(Ordering::Relaxed))
    }

    /// Bytes arriving from now on are delayed by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.latency
            .store(latency.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Closes the listener and every connection through it (replication then fails to
    /// reconnect until a new proxy is started).
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// One direction: a reader that timestamps chunks into a queue as fast as they come, and a
/// writer that releases each at its time. End of stream is passed on (as a shutdown of the
/// write side) after the bytes before it.
async fn delayed_pipe<R, W>(mut from: R, mut to: W, latency: Arc<AtomicU64>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let read = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let delay = Duration::from_nanos(latency.load(Ordering::Relaxed));
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    };
    let write = async move {
        while let Some((at, chunk)) = rx.recv().await {
            sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    futures::future::join(read, write).await;
}

// ---- server directories and the sweep ----------------------------------------------------

/// A directory for one server under [`CLUSTERS_DIR`], owned by this process; the first call
/// in a process first stops what killed runs left behind.
fn server_dir(prefix: &str) -> tempfile::TempDir {
    static SWEEP: Once = Once::new();
    let parent = Path::new(CLUSTERS_DIR);
    if !parent.exists() {
        std::fs::create_dir_all(parent).unwrap();
        // Sticky and world-writable like /tmp: any user's tests may start servers here,
        // and the postgres user must reach its cluster's directory.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o1777));
    }
    SWEEP.call_once(|| sweep(parent));
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(parent)
        .unwrap_or_else(|e| panic!("create a server directory in {CLUSTERS_DIR}: {e}"));
    std::fs::write(dir.path().join("owner"), std::process::id().to_string()).unwrap();
    dir
}

fn process_alive(pid: &str) -> bool {
    !pid.is_empty() && Path::new(&format!("/proc/{pid}")).exists()
}

/// Stops the servers of directories whose owning test process is gone (killed before its
/// handles dropped) and removes the directories. A server is signalled only if its command
/// line names its directory, so a recycled pid is never hit.
fn sweep(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let owner = read_lossy(&dir.join("owner")).trim().to_string();
        if owner.is_empty() {
            // Being created right now by another process, or a crash before the owner was
            // written: only the latter is old.
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(600))
                .unwrap_or(false);
            if !old {
                continue;
            }
        } else if process_alive(&owner) {
            continue;
        }
        // PostgreSQL: SIGQUIT is its immediate shutdown. mariadbd: SIGKILL.
        for (pid_file, signal) in [("data/postmaster.pid", "-QUIT"), ("mariadbd.pid", "-KILL")] {
            let text = read_lossy(&dir.join(pid_file));
            let pid = text.lines().next().unwrap_or("").trim();
            if !process_alive(pid) {
                continue;
            }
            let cmdline = read_lossy(Path::new(&format!("/proc/{pid}/cmdline")));
            if cmdline.contains(dir.to_str().unwrap_or("\u{0}")) {
                let _ = Command::new("kill").args([signal, pid]).status();
                for _ in 0..100 {
                    if !process_alive(pid) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

// ---- PostgreSQL clusters -------------------------------------------------------------------

/// The newest PostgreSQL server binaries installed (/usr/lib/postgresql/<version>/bin).
fn pg_bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!("no PostgreSQL server under /usr/lib/postgresql/*/bin: install Debian's postgresql (scripts/test.sh does)")
    })
}

/// A command for the PostgreSQL tools, which refuse to run as root: as root they run as
/// the `postgres` user, in `dir` (a directory that user can enter).
fn pg_tool(bin: &Path, tool: &str, dir: &Path) -> Command {
    let program = bin.join(tool);
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.current_dir(dir).stdin(Stdio::null());
    cmd
}

async fn run(mut cmd: Command, what: &str) -> anyhow::Result<()> {
    let shown = format!("{what} ({cmd:?})");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await?
        .with_context(|| format!("{shown}: could not run"))?;
    if !out.status.success() {
        bail!(
            "{shown}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Settings every test cluster gets: the replication capacity logical replication needs
/// on either side, and no durability (a throwaway cluster needs none; the tests measure
/// replication, not fsync).
const PG_SETTINGS: &[(&str, &str)] = &[
    ("wal_level", "logical"),
    ("max_wal_senders", "10"),
    ("max_replication_slots", "10"),
    ("max_worker_processes", "16"),
    ("max_logical_replication_workers", "8"),
    ("max_connections", "60"),
    ("shared_buffers", "32MB"),
    ("fsync", "off"),
    ("full_page_writes", "off"),
    // The subscriber reports its applied position at least every second.
    ("wal_receiver_status_interval", "1"),
    // Table sync workers start, and a failed apply worker restarts, within 200 ms rather
    // than 5 s.
    ("wal_retrieve_retry_interval", "200ms"),
];

/// A throwaway PostgreSQL cluster (initdb) on a free loopback port, trust authentication
/// for the `postgres` user, its socket and log in its own directory. Drop stops it
/// (immediate) and removes the directory.
pub struct PgCluster {
    bin: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
}

impl PgCluster {
    /// initdb and start, with [`PG_SETTINGS`] and then `settings` on the command line.
    pub async fn start(settings: &[(&str, &str)]) -> PgCluster {
        let bin = pg_bin_dir();
        let dir = server_dir("pg-");
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres:").arg(dir.path());
                    c
                },
                "chown the cluster directory to postgres",
            )
            .await
            .unwrap();
        }
        let mut initdb = pg_tool(&bin, "initdb", dir.path());
        initdb
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-U", "postgres", "-A", "trust", "--no-sync", "--no-locale"])
            .args(["-E", "UTF8"]);
        run(initdb, "initdb").await.unwrap();
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port();
            let mut options = format!(
                "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={}",
                dir.path().display()
            );
            for (k, v) in PG_SETTINGS.iter().chain(settings) {
                options.push_str(&format!(" -c {k}={v}"));
            }
            let mut start = pg_tool(&bin, "pg_ctl", dir.path());
            start
                .arg("-D")
                .arg(dir.path().join("data"))
                .arg("-l")
                .arg(dir.path().join("server.log"))
                .args(["-w", "-t", "60", "-s", "-o", &options, "start"]);
            match run(start, "pg_ctl start").await {
                Ok(()) => return PgCluster { bin, port, dir },
                // Most likely the port was taken meanwhile: try another.
                Err(e) => last_error = Some(e),
            }
        }
        panic!(
            "{:#}\nserver log:\n{}",
            last_error.unwrap(),
            tail(&read_lossy(&dir.path().join("server.log")), 30)
        );
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
        format!(
            "postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    pub async fn connect(&self, db: &str) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url(db), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("test cluster at {}: {e}", self.url(db)));
        tokio::spawn(conn);
        client
    }

    pub async fn create_database(&self, name: &str) {
        self.connect("postgres")
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} on {}: {e}", self.url(name)));
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("server.log"))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let mut stop = pg_tool(&self.bin, "pg_ctl", self.dir.path());
        stop.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "-s", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = stop.status();
    }
}

/// PostgreSQL logical replication between two test clusters, the subscription connecting
/// to the publisher through a [`DelayProxy`]. Usage: `start`, create the tables on both
/// sides (`execute_both`), seed the publisher if wanted, then `publish`. The proxy delays
/// by the pair's latency once `publish` returns; the subscription and its initial copy are
/// made without delay (they take dozens of round trips, 10 s and more at 250 ms each way,
/// and tell nothing about replication under lag).
pub struct PgLogicalPair {
    // Field order is drop order: the subscriber stops before its publisher goes away.
    pub subscriber: PgCluster,
    pub proxy: DelayProxy,
    pub publisher: PgCluster,
    /// The publication on the publisher.
    pub publication: String,
    /// The subscription on the subscriber; also the name of its slot on the publisher.
    pub subscription: String,
    latency: Duration,
}

impl PgLogicalPair {
    /// Two clusters, each with the database [`PAIR_DB`], and the proxy to the publisher.
    pub async fn start(latency: Duration) -> PgLogicalPair {
        let (publisher, subscriber) = tokio::join!(PgCluster::start(&[]), PgCluster::start(&[]));
        publisher.create_database(PAIR_DB).await;
        subscriber.create_database(PAIR_DB).await;
        let proxy = DelayProxy::start(publisher.addr(), Duration::ZERO).await;
        PgLogicalPair {
            subscriber,
            proxy,
            publisher,
            publication: "dw_pub".into(),
            subscription: "dw_sub".into(),
            latency,
        }
    }

    pub fn publisher_url(&self) -> String {
        self.publisher.url(PAIR_DB)
    }

    pub fn subscriber_url(&self) -> String {
        self.subscriber.url(PAIR_DB)
    }

    /// The replication slot of the subscription on the publisher.
    pub fn slot(&self) -> &str {
        &self.subscription
    }

    /// Runs `sql` (any number of statements) in [`PAIR_DB`] on both sides, e.g. the
    /// CREATE TABLEs (logical replication does not replicate DDL).
    pub async fn execute_both(&self, sql: &str) {
        for cluster in [&self.publisher, &self.subscriber] {
            cluster
                .connect(PAIR_DB)
                .await
                .batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("on {}: {e}\n{sql}", cluster.url(PAIR_DB)));
        }
    }

    /// Publishes `tables`, subscribes through the proxy and waits (up to 2 minutes) until
    /// the initial copy of every table is done and the apply worker took over
    /// (pg_subscription_rel.srsubstate = 'r'); then sets the proxy to the pair's latency.
    pub async fn publish(&self, tables: &[&str]) {
        self.publisher
            .connect(PAIR_DB)
            .await
            .batch_execute(&format!(
                "CREATE PUBLICATION {} FOR TABLE {}",
                self.publication,
                tables.join(", ")
            ))
            .await
            .unwrap();
        let sub = self.subscriber.connect(PAIR_DB).await;
        sub.batch_execute(&format!(
            "CREATE SUBSCRIPTION {} CONNECTION 'host=127.0.0.1 port={} user=postgres dbname={PAIR_DB}' PUBLICATION {}",
            self.subscription,
            self.proxy.port(),
            self.publication
        ))
        .await
        .unwrap_or_else(|e| panic!("CREATE SUBSCRIPTION: {e}\n{}", tail(&self.subscriber.log(), 20)));
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let row = sub
                .query_one(
                    "SELECT count(*) FILTER (WHERE srsubstate = 'r'), count(*) FROM pg_subscription_rel",
                    &[],
                )
                .await
                .unwrap();
            let (ready, all): (i64, i64) = (row.get(0), row.get(1));
            if ready == tables.len() as i64 && all == ready {
                self.proxy.set_latency(self.latency);
                return;
            }
            assert!(
                Instant::now() < deadline,
                "initial table sync not done after 2 minutes ({ready} of {} tables ready)\n{}",
                tables.len(),
                tail(&self.subscriber.log(), 30)
            );
            sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the subscription confirmed (applied and flushed) everything the
    /// publisher had written when called: the slot's confirmed_flush_lsn reaches the
    /// publisher's pg_current_wal_lsn(). Returns how long that took.
    pub async fn wait_caught_up(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let publisher = self.publisher.connect(PAIR_DB).await;
        let target: String = publisher
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await?
            .get(0);
        loop {
            let row = publisher
                .query_opt(
                    "SELECT confirmed_flush_lsn::text, confirmed_flush_lsn >= $1::text::pg_lsn
                     FROM pg_replication_slots WHERE slot_name = $2",
                    &[&target, &self.subscription],
                )
                .await?
                .ok_or_else(|| {
                    anyhow!("no replication slot {} on the publisher", self.subscription)
                })?;
            let (confirmed, done): (Option<String>, Option<bool>) = (row.get(0), row.get(1));
            if done == Some(true) {
                return Ok(started.elapsed());
            }
            if started.elapsed() > timeout {
                bail!(
                    "subscription {} not caught up after {timeout:?}: confirmed {confirmed:?}, publisher at {target}",
                    self.subscription
                );
            }
            sleep(Duration::from_millis(20)).await;
        }
    }

    /// Replication works: the subscription's apply worker runs, and it has met no error
    /// (pg_stat_subscription_stats on PostgreSQL 15 and later, and on every version the
    /// subscriber's log: an ERROR in the context of applying remote data). An error found
    /// once stays reported, as the log keeps it.
    pub async fn replication_ok(&self) -> anyhow::Result<()> {
        let sub = self.subscriber.connect(PAIR_DB).await;
        let errors: Vec<String> = {
            let log = self.subscriber.log();
            let lines: Vec<&str> = log.lines().collect();
            // An ERROR line, then its DETAIL/HINT lines, then the apply worker's CONTEXT.
            (0..lines.len())
                .filter(|&i| lines[i].contains("ERROR:"))
                .filter_map(|i| {
                    let end = (i + 4).min(lines.len());
                    let context = (i + 1..end).find(|&j| {
                        lines[j].contains("CONTEXT:") && lines[j].contains("processing remote data")
                    })?;
                    Some(lines[i..=context].join("\n"))
                })
                .collect()
        };
        if !errors.is_empty() {
            bail!(
                "subscription {} met apply errors:\n{}",
                self.subscription,
                errors.join("\n")
            );
        }
        let version: i32 = sub
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await?
            .get(0);
        if version >= 150000 {
            let row = sub
                .query_opt(
                    "SELECT apply_error_count, sync_error_count FROM pg_stat_subscription_stats WHERE subname = $1",
                    &[&self.subscription],
                )
                .await?
                .ok_or_else(|| anyhow!("no subscription {} on the subscriber", self.subscription))?;
            let (apply, sync): (i64, i64) = (row.get(0), row.get(1));
            if apply != 0 || sync != 0 {
                bail!(
                    "subscription {}: {apply} apply and {sync} sync errors\n{}",
                    self.subscription,
                    tail(&self.subscriber.log(), 20)
                );
            }
        }
        let running: i64 = sub
            .query_one(
                "SELECT count(*) FROM pg_stat_subscription WHERE subname = $1 AND relid IS NULL AND pid IS NOT NULL",
                &[&self.subscription],
            )
            .await?
            .get(0);
        if running == 0 {
            bail!(
                "subscription {}: no apply worker running\n{}",
                self.subscription,
                tail(&self.subscriber.log(), 20)
            );
        }
        Ok(())
    }
}

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

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn my_opts(url: &str) -> mysql_async::Opts {
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

// ---- either engine, for the load and the digests -------------------------------------------

/// A connection to a PostgreSQL or MariaDB test server, for the statements the load, the
/// digest and the lag probe send alike to both.
pub enum Db {
    Pg(tokio_postgres::Client),
    My(mysql_async::Conn),
}

impl Db {
    /// By the URL's scheme: postgres:// or mysql://.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .with_context(|| format!("connect to {url}"))?;
            tokio::spawn(conn);
            Ok(Db::Pg(client))
        } else if url.starts_with("mysql://") {
            let mut conn = mysql_async::Conn::new(my_opts(url))
                .await
                .with_context(|| format!("connect to {url}"))?;
            // Instants as written; the load runs in READ COMMITTED so that its concurrent
            // transactions take no gap locks (which could deadlock them).
            conn.query_drop(
                "SET time_zone = '+00:00', SESSION tx_isolation = 'READ-COMMITTED', \
                 SESSION group_concat_max_len = 1073741824",
            )
            .await?;
            Ok(Db::My(conn))
        } else {
            bail!("not a postgres:// or mysql:// URL: {url}")
        }
    }

    /// Runs one statement; returns the rows it affected.
    pub async fn execute(&mut self, sql: &str) -> anyhow::Result<u64> {
        Ok(self.transaction(&[sql.to_string()]).await?[0])
    }

    /// Runs `statements` in one transaction; returns the rows each affected.
    pub async fn transaction(&mut self, statements: &[String]) -> anyhow::Result<Vec<u64>> {
        match self {
            Db::Pg(client) => {
                // One round trip: the statements in one simple query, each reporting its count.
                let text = format!("BEGIN; {}; COMMIT", statements.join("; "));
                let messages = client
                    .simple_query(&text)
                    .await
                    .with_context(|| text.clone())?;
                let counts: Vec<u64> = messages
                    .iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(*n),
                        _ => None,
                    })
                    .collect();
                Ok(counts[1..counts.len() - 1].to_vec())
            }
            Db::My(conn) => {
                let mut tx = conn
                    .start_transaction(mysql_async::TxOpts::default())
                    .await?;
                let mut counts = Vec::with_capacity(statements.len());
                for s in statements {
                    tx.query_drop(s).await.with_context(|| s.clone())?;
                    counts.push(tx.affected_rows());
                }
                tx.commit().await?;
                Ok(counts)
            }
        }
    }

    /// The first column of the first row, as text (None for no row or NULL).
    pub async fn query_text(&mut self, sql: &str) -> anyhow::Result<Option<String>> {
        match self {
            Db::Pg(client) => {
                for m in client
                    .simple_query(sql)
                    .await
                    .with_context(|| sql.to_string())?
                {
                    if let tokio_postgres::SimpleQueryMessage::Row(row) = m {
                        return Ok(row.get(0).map(str::to_string));
                    }
                }
                Ok(None)
            }
            Db::My(conn) => Ok(conn
                .query_first::<Option<String>, _>(sql)
                .await
                .with_context(|| sql.to_string())?
                .flatten()),
        }
    }
}

/// The table the live-replication tests load and compare, on PostgreSQL or MariaDB.
pub fn orders_ddl(db: &Db) -> &'static str {
    match db {
        Db::Pg(_) => {
            "CREATE TABLE orders (id bigint PRIMARY KEY, customer int NOT NULL, \
             amount numeric(12,2) NOT NULL, status text NOT NULL, note text, \
             updated_at timestamp(6) NOT NULL)"
        }
        Db::My(_) => {
            "CREATE TABLE orders (id bigint PRIMARY KEY, customer int NOT NULL, \
             amount decimal(12,2) NOT NULL, status varchar(20) NOT NULL, note varchar(200), \
             updated_at datetime(6) NOT NULL) ENGINE=InnoDB"
        }
    }
}

/// A table for lag probes ([`marker_lag`]); the same statement on both engines.
pub const MARKER_DDL: &str = "CREATE TABLE dw_marker (id bigint PRIMARY KEY)";

/// The row count and the md5 of an ordered text dump of `orders`: equal on two sides of
/// the same engine exactly when their rows are equal.
pub async fn orders_digest(db: &mut Db) -> anyhow::Result<(i64, String)> {
    let sql = match db {
        Db::Pg(_) => {
            "SELECT count(*) || ' ' || md5(coalesce(string_agg(o::text, E'\\n' ORDER BY id), '')) \
             FROM orders o"
        }
        // QUOTE renders NULL as the word NULL (CONCAT_WS would skip it).
        Db::My(_) => {
            "SELECT CONCAT(COUNT(*), ' ', MD5(COALESCE(GROUP_CONCAT(CONCAT_WS('|', id, customer, \
             amount, status, QUOTE(note), updated_at) ORDER BY id SEPARATOR '\\n'), ''))) \
             FROM orders"
        }
    };
    let text = db
        .query_text(sql)
        .await?
        .ok_or_else(|| anyhow!("orders digest: NULL"))?;
    let (count, md5) = text
        .split_once(' ')
        .ok_or_else(|| anyhow!("orders digest: {text:?}"))?;
    Ok((count.parse()?, md5.to_string()))
}

/// Writes marker `id` on the publisher and returns how long until the subscriber shows it
/// (polled every 2 ms; `timeout` bounds the wait). `dw_marker` ([`MARKER_DDL`]) must be
/// replicated.
pub async fn marker_lag(
    publisher: &mut Db,
    subscriber: &mut Db,
    id: i64,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let written = Instant::now();
    publisher
        .execute(&format!("INSERT INTO dw_marker (id) VALUES ({id})"))
        .await?;
    let probe = format!("SELECT count(*) FROM dw_marker WHERE id = {id}");
    loop {
        if subscriber.query_text(&probe).await?.as_deref() == Some("1") {
            return Ok(written.elapsed());
        }
        if written.elapsed() > timeout {
            bail!("marker {id} not on the subscriber after {timeout:?}");
        }
        sleep(Duration::from_millis(2)).await;
    }
}

// ---- the write load ------------------------------------------------------------------------

const STATUSES: [&str; 5] = ["new", "paid", "shipped", "cancelled", "refunded"];

/// What a [`Load`] does: `rate` transactions a second (over `workers` connections) for
/// `duration`. Every transaction updates one of the `hot_rows` lowest ids and one random
/// row; with probability `insert_share` it inserts a new id (above every id so far), with
/// `delete_share` it deletes a random row that is not hot. Rows of one transaction are
/// written in id order, so concurrent transactions cannot deadlock.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub rate: u32,
    pub duration: Duration,
    pub workers: usize,
    pub hot_rows: i64,
    pub insert_share: f64,
    pub delete_share: f64,
    pub seed: u64,
    /// Ids the random updates and deletes never touch (where a test injects drift).
    pub spare: Option<std::ops::RangeInclusive<i64>>,
}

impl LoadSpec {
    /// A random id in 1..=top (above the hot rows when `cold`), outside `spare`.
    fn pick(&self, rng: &mut StdRng, top: i64, cold: bool) -> i64 {
        let low = if cold { self.hot_rows + 1 } else { 1 };
        loop {
            let id = rng.random_range(low..=top);
            if !self.spare.as_ref().is_some_and(|s| s.contains(&id)) {
                return id;
            }
        }
    }
}

impl Default for LoadSpec {
    fn default() -> LoadSpec {
        LoadSpec {
            rate: 200,
            duration: Duration::from_secs(20),
            workers: 2,
            hot_rows: 20,
            insert_share: 0.3,
            delete_share: 0.1,
            seed: 1,
            spare: None,
        }
    }
}

/// What a load did, in rows affected (a random update or delete can find its row
/// deleted already, and then counts nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadCounts {
    pub transactions: u64,
    pub hot_updates: u64,
    pub random_updates: u64,
    pub inserts: u64,
    pub deletes: u64,
}

#[derive(Default)]
struct Counters {
    transactions: AtomicU64,
    hot_updates: AtomicU64,
    random_updates: AtomicU64,
    inserts: AtomicU64,
    deletes: AtomicU64,
}

fn now_literal() -> String {
    chrono::Utc::now()
        .format("'%Y-%m-%d %H:%M:%S%.6f'")
        .to_string()
}

fn order_values(rng: &mut StdRng, id: i64) -> String {
    let note = if rng.random_bool(0.2) {
        "NULL".to_string()
    } else {
        let len = rng.random_range(0..60);
        let text: String = (0..len)
            .map(|_| rng.sample(rand::distr::Alphanumeric) as char)
            .collect();
        format!("'{text}'")
    };
    format!(
        "({id}, {}, {}.{:02}, '{}', {note}, {})",
        rng.random_range(1..5000),
        rng.random_range(0..100_000),
        rng.random_range(0..100),
        STATUSES[rng.random_range(0..STATUSES.len())],
        now_literal()
    )
}

fn update_sql(rng: &mut StdRng, id: i64) -> String {
    format!(
        "UPDATE orders SET amount = {}.{:02}, status = '{}', updated_at = {} WHERE id = {id}",
        rng.random_range(0..100_000),
        rng.random_range(0..100),
        STATUSES[rng.random_range(0..STATUSES.len())],
        now_literal()
    )
}

/// Fills `orders` (empty, created with [`orders_ddl`]) with ids 1..=rows.
pub async fn seed_orders(db: &mut Db, rows: i64, seed: u64) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut id = 1;
    while id <= rows {
        let batch: Vec<String> = (id..=rows.min(id + 999))
            .map(|i| order_values(&mut rng, i))
            .collect();
        id += batch.len() as i64;
        db.execute(&format!(
            "INSERT INTO orders (id, customer, amount, status, note, updated_at) VALUES {}",
            batch.join(", ")
        ))
        .await?;
    }
    Ok(())
}

/// A bounded write load on `orders` (see [`LoadSpec`]) running in the background. It stops
/// by itself at the end of its duration, on [`Load::stop`], or when dropped; a failed
/// statement stops it and is returned by `wait`/`stop`.
pub struct Load {
    stop: CancellationToken,
    workers: Vec<JoinHandle<anyhow::Result<()>>>,
    counters: Arc<Counters>,
}

impl Load {
    /// Starts the load on the table `orders` at `url` (postgres:// or mysql://); new ids
    /// continue after the table's highest.
    pub async fn start(url: &str, spec: LoadSpec) -> anyhow::Result<Load> {
        let mut first = Db::connect(url).await?;
        let max: i64 = first
            .query_text("SELECT coalesce(max(id), 0) FROM orders")
            .await?
            .unwrap_or_default()
            .parse()?;
        anyhow::ensure!(
            max > spec.hot_rows,
            "orders at {url} has {max} rows; the load needs more than its {} hot rows",
            spec.hot_rows
        );
        let next_id = Arc::new(AtomicI64::new(max + 1));
        let counters = Arc::new(Counters::default());
        let stop = CancellationToken::new();
        let end = Instant::now() + spec.duration;
        let period = Duration::from_secs_f64(spec.workers as f64 / spec.rate as f64);
        let mut workers = Vec::new();
        let mut first = Some(first);
        for w in 0..spec.workers {
            let mut db = match first.take() {
                Some(db) => db,
                None => Db::connect(url).await?,
            };
            let (spec, next_id, counters, stop) = (
                spec.clone(),
                next_id.clone(),
                counters.clone(),
                stop.clone(),
            );
            workers.push(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(spec.seed.wrapping_add(w as u64));
                let mut ticks = tokio::time::interval(period);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(()),
                        _ = sleep_until(end) => return Ok(()),
                        _ = ticks.tick() => {}
                    }
                    let top = next_id.load(Ordering::Relaxed) - 1;
                    // (id, kind, statement), written in id order.
                    let mut ops: Vec<(i64, usize, String)> = Vec::new();
                    let hot = rng.random_range(1..=spec.hot_rows);
                    ops.push((hot, 0, update_sql(&mut rng, hot)));
                    let any = spec.pick(&mut rng, top, false);
                    if any != hot {
                        ops.push((any, 1, update_sql(&mut rng, any)));
                    }
                    if rng.random_bool(spec.delete_share) {
                        let victim = spec.pick(&mut rng, top, true);
                        if victim != any {
                            ops.push((victim, 3, format!("DELETE FROM orders WHERE id = {victim}")));
                        }
                    }
                    ops.sort_by_key(|op| op.0);
                    if rng.random_bool(spec.insert_share) {
                        let id = next_id.fetch_add(1, Ordering::Relaxed);
                        ops.push((id, 2, format!(
                            "INSERT INTO orders (id, customer, amount, status, note, updated_at) VALUES {}",
                            order_values(&mut rng, id)
                        )));
                    }
                    let statements: Vec<String> = ops.iter().map(|op| op.2.clone()).collect();
                    // Not interrupted by a stop: a transaction sent is counted as the
                    // server ran it.
                    let done = db.transaction(&statements).await?;
                    for ((_, kind, _), n) in ops.iter().zip(done) {
                        let counter = match kind {
                            0 => &counters.hot_updates,
                            1 => &counters.random_updates,
                            2 => &counters.inserts,
                            _ => &counters.deletes,
                        };
                        counter.fetch_add(n, Ordering::Relaxed);
                    }
                    counters.transactions.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        Ok(Load {
            stop,
            workers,
            counters,
        })
    }

    /// What the load did so far.
    pub fn counts(&self) -> LoadCounts {
        let c = &self.counters;
        LoadCounts {
            transactions: c.transactions.load(Ordering::Relaxed),
            hot_updates: c.hot_updates.load(Ordering::Relaxed),
            random_updates: c.random_updates.load(Ordering::Relaxed),
            inserts: c.inserts.load(Ordering::Relaxed),
            deletes: c.deletes.load(Ordering::Relaxed),
        }
    }

    /// Waits for the end of the load's duration; the first error of a worker, if any.
    pub async fn wait(mut self) -> anyhow::Result<LoadCounts> {
        for worker in std::mem::take(&mut self.workers) {
            worker.await??;
        }
        Ok(self.counts())
    }

    /// Stops the load now (after the transactions in flight) and waits for its workers.
    pub async fn stop(self) -> anyhow::Result<LoadCounts> {
        self.stop.cancel();
        self.wait().await
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
