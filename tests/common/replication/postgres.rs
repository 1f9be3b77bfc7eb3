//! PostgreSQL clusters the test starts, and logical replication between two of them.

use super::*;

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
