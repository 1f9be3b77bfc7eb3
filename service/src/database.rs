//! One monitored database: its engine behind the limits that keep driftwatch gentle on
//! production (at most `max_concurrent_queries` queries at once, at most
//! `max_rows_per_second` rows read per second), and the bookkeeping every query shares
//! (up, errors, rows scanned and fetched).
//!
//! Every query driftwatch sends goes through here; nothing else may call an engine.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::DatabaseConfig;
use crate::engine::{self, DigestSpec, Digests, Engine, Feed, Result};
use crate::metrics::Metrics;
use crate::table::{Family, KeyRange, Row, TableQuery, TableRef, TableSchema};
use crate::value::Key;

pub struct Database {
    pub name: String,
    engine: Arc<dyn Engine>,
    permits: Semaphore,
    pacer: Pacer,
    metrics: Arc<Metrics>,
}

impl Database {
    pub fn new(name: &str, config: &DatabaseConfig, metrics: Arc<Metrics>) -> Result<Database> {
        let engine = engine::connect(name, config)?;
        Ok(Database {
            name: name.to_string(),
            engine,
            permits: Semaphore::new(config.max_concurrent_queries),
            pacer: Pacer::new(config.max_rows_per_second),
            metrics,
        })
    }

    pub fn family(&self) -> Family {
        self.engine.family()
    }

    /// Runs one query under the limits and records its outcome.
    async fn call<T>(&self, f: impl Future<Output = Result<T>>) -> Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        self.pacer.wait().await;
        let r = f.await;
        self.record(&r);
        r
    }

    fn record<T>(&self, r: &Result<T>) {
        let up = self.metrics.up.with_label_values(&[&self.name]);
        match r {
            Ok(_) => up.set(1),
            Err(e) => {
                self.metrics
                    .errors
                    .with_label_values(&[&self.name, e.reason()])
                    .inc();
                up.set(if e.is_connection() { 0 } else { 1 });
            }
        }
    }

    fn scanned(&self, rows: u64) {
        self.metrics
            .rows_scanned
            .with_label_values(&[&self.name])
            .inc_by(rows);
        self.pacer.debit(rows);
    }

    fn fetched(&self, rows: u64) {
        self.metrics
            .rows_fetched
            .with_label_values(&[&self.name])
            .inc_by(rows);
    }

    pub async fn ping(&self) -> Result<()> {
        self.call(self.engine.ping()).await
    }

    /// See [`Engine::replication_position`].
    pub async fn replication_position(&self) -> Result<Option<String>> {
        self.call(self.engine.replication_position()).await
    }

    /// See [`Engine::position_applied`].
    pub async fn position_applied(
        &self,
        feed: &Feed,
        position: &str,
        wait: Duration,
    ) -> Result<bool> {
        self.call(self.engine.position_applied(feed, position, wait))
            .await
    }

    /// See [`Engine::detect_feed`].
    pub async fn detect_feed(&self) -> Result<Option<Feed>> {
        self.call(self.engine.detect_feed()).await
    }

    pub async fn introspect(&self, table: &TableRef) -> Result<TableSchema> {
        self.call(self.engine.introspect(table)).await
    }

    pub async fn lead_bounds(&self, q: &TableQuery) -> Result<Option<(i64, i64)>> {
        self.call(self.engine.lead_bounds(q)).await
    }

    pub async fn key_at(
        &self,
        q: &TableQuery,
        range: &KeyRange,
        offset: u64,
    ) -> Result<Option<Key>> {
        let r = self.call(self.engine.key_at(q, range, offset)).await;
        // The key scan reads `offset` index entries.
        self.pacer.debit(offset);
        r
    }

    pub async fn pushdown_digest(&self, q: &TableQuery, spec: &DigestSpec) -> Result<Digests> {
        let d = self.call(self.engine.pushdown_digest(q, spec)).await?;
        self.scanned(d.values().map(|b| b.count).sum());
        Ok(d)
    }

    /// Streams the rows of a range, in key order, into `tx` (row diffs).
    pub async fn scan(
        &self,
        q: &TableQuery,
        range: &KeyRange,
        tx: mpsc::Sender<Vec<Row>>,
    ) -> Result<u64> {
        let span = tracing::info_span!(
            "row_fetch",
            database = %self.name,
            range = %range,
            rows = tracing::field::Empty
        );
        let n = self
            .call(self.engine.scan(q, range, tx))
            .instrument(span.clone())
            .await?;
        span.record("rows", n);
        self.fetched(n);
        self.pacer.debit(n);
        Ok(n)
    }

    /// Streams the canonical encodings of a range's rows (the streamed digest).
    pub async fn scan_encoded(
        &self,
        q: &TableQuery,
        range: &KeyRange,
        tx: engine::EncodedSender,
    ) -> Result<u64> {
        let n = self.call(self.engine.scan_encoded(q, range, tx)).await?;
        self.fetched(n);
        self.scanned(n);
        Ok(n)
    }

    /// All rows of a range (callers bound its size).
    pub async fn rows(&self, q: &TableQuery, range: &KeyRange) -> Result<Vec<Row>> {
        let (tx, mut rx) = mpsc::channel(4);
        let collect = async {
            let mut out = Vec::new();
            while let Some(batch) = rx.recv().await {
                out.extend(batch);
            }
            out
        };
        let (n, rows) = tokio::join!(self.scan(q, range, tx), collect);
        n?;
        Ok(rows)
    }

    pub async fn cancel_all(&self) {
        self.engine.cancel_all().await;
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({})", self.name)
    }
}

/// Paces reads to a rate: each read moves the earliest start of the next query forward
/// by rows / rate, so bursts are allowed but the average stays at the rate.
struct Pacer {
    rows_per_second: u64,
    next_free: Mutex<Option<Instant>>,
}

impl Pacer {
    fn new(rows_per_second: u64) -> Pacer {
        Pacer {
            rows_per_second,
            next_free: Mutex::new(None),
        }
    }

    fn debit(&self, rows: u64) {
        if self.rows_per_second == 0 || rows == 0 {
            return;
        }
        let cost = Duration::from_secs_f64(rows as f64 / self.rows_per_second as f64);
        let mut next = self.next_free.lock().unwrap();
        let now = Instant::now();
        *next = Some(next.map_or(now, |n| n.max(now)) + cost);
    }

    async fn wait(&self) {
        let until = *self.next_free.lock().unwrap();
        if let Some(t) = until {
            tokio::time::sleep_until(t).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineError;

    #[test]
    fn a_timeout_is_counted_under_its_reason_and_leaves_the_database_up() {
        let metrics = Arc::new(Metrics::new());
        let config = DatabaseConfig {
            // Built without connecting: nothing is sent.
            url: "mssql://u@h/db".into(),
            password: Some("pw".into()),
            max_concurrent_queries: 1,
            max_rows_per_second: 0,
            statement_timeout: Duration::from_secs(30),
            replication: crate::config::Replication::Off,
        };
        let db = Database::new("hub", &config, metrics.clone()).unwrap();
        let up = || metrics.up.with_label_values(&["hub"]).get();
        let errors = |reason| metrics.errors.with_label_values(&["hub", reason]).get();
        db.record::<()>(&Err(EngineError::Timeout {
            database: "hub".into(),
            table: "t".into(),
            limit: config.statement_timeout,
        }));
        assert_eq!((up(), errors("timeout"), errors("connect")), (1, 1, 0));
        db.record::<()>(&Err(EngineError::Connect {
            database: "hub".into(),
            message: "refused".into(),
        }));
        assert_eq!((up(), errors("timeout"), errors("connect")), (0, 1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn the_pacer_holds_the_average_rate() {
        let p = Pacer::new(1000);
        let start = Instant::now();
        for _ in 0..5 {
            p.wait().await;
            p.debit(500);
        }
        p.wait().await;
        // 2,500 rows at 1,000 rows/s: 2.5 s, whatever the burst pattern.
        assert_eq!(start.elapsed(), Duration::from_millis(2500));
    }
}
