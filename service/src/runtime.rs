//! What a running driftwatch holds (the config, one `Database` per configured database,
//! the metrics, the published status) and the work it does on a table: a full pass, a
//! recheck of the differences not confirmed yet, a confirmation that waits for them.
//!
//! It decides what to run, never when: the schedule is `scheduler`'s, a one-off command's
//! or a request's. It must not write to a monitored database.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::future::join_all;
use tracing::Instrument;

use crate::compare::confirm::MIN_RECHECK;
use crate::compare::localize::MAX_LEAVES;
use crate::compare::TableTarget;
use crate::config::{Config, GroupConfig, TableConfig};
use crate::database::Database;
use crate::engine::Feed;
use crate::metrics::Metrics;
use crate::passes::{PassInfo, PassRequests};
use crate::replication::Positions;
use crate::state::{StateError, StateStore};
use crate::status::{PairId, Status};
use crate::table::KeyRange;

/// Everything a running driftwatch holds: the config, one [`Database`] per configured
/// database, the metrics and the published status.
pub struct Runtime {
    pub config: Config,
    pub databases: BTreeMap<String, Arc<Database>>,
    pub metrics: Arc<Metrics>,
    pub status: Status,
    /// Passes asked for on demand, by table.
    pub requests: PassRequests,
    /// Where each (publisher, subscriber) reads replication positions, once known.
    feeds: Mutex<HashMap<(String, String), Option<Feed>>>,
    /// Set once shutdown begins, before the databases' queries are cancelled: a pass or
    /// recheck that ends after it publishes nothing, as its queries may have failed only
    /// because they were cancelled under it.
    stopping: AtomicBool,
}

impl Runtime {
    /// Builds the runtime. A database whose URL cannot be used is an error here, at
    /// start, naming it; a database that is down is not (it is retried every pass).
    pub fn new(config: Config) -> Result<Runtime, crate::engine::EngineError> {
        let metrics = Arc::new(Metrics::new());
        let mut databases = BTreeMap::new();
        for (name, db) in &config.databases {
            // Every error series exists from the start, at 0: rate() then sees the first
            // error, and dashboards show 0 rather than no data.
            for reason in crate::engine::EngineError::REASONS {
                metrics.errors.with_label_values(&[name.as_str(), reason]);
            }
            databases.insert(
                name.clone(),
                Arc::new(Database::new(name, db, metrics.clone())?),
            );
        }
        Ok(Runtime {
            status: Status::new(&config),
            requests: PassRequests::new(&config),
            config,
            databases,
            metrics,
            feeds: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
        })
    }

    /// Marks the start of shutdown (see `stopping`); the caller cancels the queries after.
    pub(crate) fn begin_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Opens the state store of `server.state_dir` (if set) and resumes from it.
    pub fn open_state(&mut self) -> Result<(), StateError> {
        let Some(dir) = &self.config.server.state_dir else {
            return Ok(());
        };
        let (store, saved) = StateStore::open(dir)?;
        tracing::info!(file = %store.path().display(), pairs = saved.len(), "state restored");
        self.status.restore(&self.metrics, store, saved);
        Ok(())
    }

    /// Where rechecks of a subscriber read its applied replication position: as
    /// configured, or detected once (a detection that fails is tried again later).
    pub async fn feed(&self, publisher: &str, subscriber: &str) -> Option<Feed> {
        let key = (publisher.to_string(), subscriber.to_string());
        if let Some(f) = self.feeds.lock().unwrap().get(&key) {
            return f.clone();
        }
        let setting = &self.config.databases[subscriber].replication;
        match crate::replication::resolve(setting, &self.databases[subscriber]).await {
            Ok(feed) => {
                match &feed {
                    Some(f) => tracing::info!(publisher, subscriber, feed = %f, "rechecks wait for the subscriber's replication position"),
                    None => tracing::info!(publisher, subscriber, "no replication position to read: differences are confirmed by time (confirm_after)"),
                }
                self.feeds.lock().unwrap().insert(key, feed.clone());
                feed
            }
            Err(e) => {
                tracing::warn!(publisher, subscriber, error = %e, "cannot tell how the subscriber replicates: confirming by time for now");
                None
            }
        }
    }

    fn known_feed(&self, publisher: &str, subscriber: &str) -> bool {
        self.feeds
            .lock()
            .unwrap()
            .get(&(publisher.to_string(), subscriber.to_string()))
            .is_some_and(Option::is_some)
    }

    /// Tries every database once, so that `up` is known before the first pass.
    pub async fn probe(&self) {
        join_all(self.databases.values().map(|db| async move {
            if let Err(e) = db.ping().await {
                tracing::warn!(database = %db.name, error = %e, "database does not answer");
            }
        }))
        .await;
    }

    fn target<'a>(&'a self, g: &'a GroupConfig, t: &'a TableConfig) -> TableTarget<'a> {
        TableTarget {
            group: &g.name,
            config: t,
            publisher: &self.databases[&g.publisher],
            subscribers: g
                .subscribers
                .iter()
                .map(|s| self.databases[s].as_ref())
                .collect(),
            changes: None,
        }
    }

    fn pair_ids(g: &GroupConfig, t: &TableConfig) -> Vec<PairId> {
        g.subscribers
            .iter()
            .map(|s| PairId::new(&g.name, &t.name, s))
            .collect()
    }

    /// One full pass of a table over all its subscribers, published when complete.
    pub async fn pass(&self, g: &GroupConfig, t: &TableConfig) {
        let span = tracing::info_span!("pass", group = %g.name, table = %t.name);
        self.pass_inner(g, t).instrument(span).await
    }

    async fn pass_inner(&self, g: &GroupConfig, t: &TableConfig) {
        let started = Instant::now();
        let target = self.target(g, t);
        let comparisons = target.compare_schemas().await;
        let results = target.full_pass(comparisons).await;
        let elapsed = started.elapsed();
        if self.is_stopping() {
            return;
        }
        for (id, result) in Self::pair_ids(g, t).iter().zip(results) {
            let differs = result.as_ref().is_ok_and(|p| p.findings.counts.total() > 0);
            self.status.publish_pass(&self.metrics, id, result, elapsed);
            if differs {
                // Known before the rechecks are scheduled, so that they wait for positions.
                let feed = self.feed(&g.publisher, &id.subscriber).await;
                self.status.set_positions(id, feed.map(|f| f.to_string()));
            }
        }
        tracing::info!(group = %g.name, table = %t.name, seconds = elapsed.as_secs_f64(), "pass complete");
    }

    /// Re-checks the pending differences of a table; falls back to a full pass when the
    /// differences were too many to track by range.
    pub async fn recheck(&self, g: &GroupConfig, t: &TableConfig) {
        let span = tracing::info_span!("recheck", group = %g.name, table = %t.name);
        self.recheck_inner(g, t).instrument(span).await
    }

    async fn recheck_inner(&self, g: &GroupConfig, t: &TableConfig) {
        let target = self.target(g, t);
        // A subscriber that cannot apply a position within this is lagging more than
        // confirm_after, which confirmation by time could not tell apart either.
        let wait = t.confirm_after.clamp(MIN_RECHECK, Duration::from_secs(30));
        // Slack, so that differences due within a moment are rechecked with the rest.
        let now = SystemTime::now() + Duration::from_millis(200);
        for (id, sub) in Self::pair_ids(g, t).iter().zip(&target.subscribers) {
            let positions = self.known_feed(&g.publisher, &id.subscriber);
            let work = self.status.with(id, |e| {
                let untracked = e.diff.untracked.total() > 0 || e.diff.leaves.len() >= MAX_LEAVES;
                // Leaves with a difference due; the others wait for their time (rows that
                // keep changing back off) or, confirmed, for the next pass.
                let ranges: Vec<(KeyRange, u64)> = e
                    .diff
                    .leaves
                    .iter()
                    .filter(|l| l.due(e.confirm_after, positions).is_some_and(|d| d <= now))
                    .map(|l| (l.range.clone(), l.publisher_rows))
                    .collect();
                (e.comparison.clone(), ranges, untracked)
            });
            let Some((Some(cmp), ranges, untracked)) = work else {
                continue;
            };
            if untracked {
                return self.pass(g, t).await;
            }
            if ranges.is_empty() {
                continue;
            }
            let feed = self.feed(&g.publisher, &id.subscriber).await;
            self.metrics.rechecks.inc(&[
                g.name.as_str(),
                t.name.as_str(),
                id.subscriber.as_str(),
                if feed.is_some() { "true" } else { "false" },
            ]);
            let positions = feed.map(|feed| Positions {
                publisher: target.publisher,
                subscriber: sub,
                feed,
            });
            let found = target
                .recheck(&cmp, sub, &ranges, positions.as_ref(), wait)
                .await;
            if self.is_stopping() {
                return;
            }
            match found {
                Ok(found) => {
                    self.status
                        .publish_recheck(&self.metrics, id, |diff, now, confirm_after| {
                            diff.update_leaves(found, now, confirm_after)
                        })
                }
                Err(e) => self
                    .status
                    .publish_pass(&self.metrics, id, Err(e), Duration::ZERO),
            }
        }
    }

    /// A pass, then rechecks as differences become due, for as long as a difference that
    /// moved once can still be confirmed (twice confirm_after); what still moves then is
    /// left in flight. The one-off commands (`check`, `diff`) confirm this way.
    pub async fn confirm(&self, g: &GroupConfig, t: &TableConfig) {
        self.pass(g, t).await;
        let deadline = SystemTime::now() + 2 * t.confirm_after + 2 * MIN_RECHECK;
        let mut not_before = SystemTime::now();
        while let Some(due) = self.next_confirmation(g, t).filter(|&d| d <= deadline) {
            // A recheck that failed leaves its differences due: never spin on them.
            let due = due.max(not_before);
            if due > deadline {
                break;
            }
            let unproven: u64 = Self::pair_ids(g, t)
                .iter()
                .filter_map(|id| self.status.get(id))
                .map(|p| p.pending.total() + p.in_flight.total())
                .sum();
            tracing::info!(
                group = %g.name, table = %t.name, rows = unproven,
                recheck_at = %chrono::DateTime::<chrono::Local>::from(due).format("%H:%M:%S"),
                "waiting to re-check differences not confirmed yet (confirm_after; --confirm-after overrides it)"
            );
            tokio::time::sleep(due.duration_since(SystemTime::now()).unwrap_or_default()).await;
            self.recheck(g, t).await;
            not_before = SystemTime::now() + MIN_RECHECK;
        }
    }

    /// When the table's earliest unconfirmed difference is due for a recheck.
    pub fn next_confirmation(&self, g: &GroupConfig, t: &TableConfig) -> Option<SystemTime> {
        Self::pair_ids(g, t)
            .iter()
            .filter_map(|id| {
                let positions = self.known_feed(&g.publisher, &id.subscriber);
                self.status.next_confirmation(id, positions)
            })
            .min()
    }

    /// Asks for a pass of a table now: the pass that will answer (joined by further
    /// requests until it starts). `None` when the config names no such table.
    pub fn trigger(&self, group: &str, table: &str) -> Option<PassInfo> {
        self.requests.request(group, table)
    }
}
