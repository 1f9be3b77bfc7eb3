//! Either engine, for the load and the digests; the bounded write load.

use super::*;

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
