//! The continuous loop: one task per table, a full pass every `interval` (with jitter, so
//! tables configured alike do not hit a database in lockstep), a recheck of pending
//! differences when they become due, and a pass on demand (POST …/validate).
//!
//! A table's passes never overlap: its task runs them one after another. On shutdown
//! the pass in flight is dropped (nothing of it is published) and every database's
//! queries in flight are cancelled.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::future::join_all;
use rand::Rng;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::compare::localize::MAX_LEAVES;
use crate::compare::TableTarget;
use crate::config::{Config, GroupConfig, TableConfig};
use crate::database::Database;
use crate::metrics::Metrics;
use crate::status::{PairId, Status};

/// Everything a running driftwatch holds: the config, one [`Database`] per configured
/// database, the metrics and the published status.
pub struct Runtime {
    pub config: Config,
    pub databases: BTreeMap<String, Arc<Database>>,
    pub metrics: Arc<Metrics>,
    pub status: Status,
    triggers: HashMap<(String, String), Arc<Notify>>,
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
        let mut triggers = HashMap::new();
        for g in &config.groups {
            for t in &g.tables {
                triggers.insert((g.name.clone(), t.name.clone()), Arc::new(Notify::new()));
            }
        }
        Ok(Runtime {
            status: Status::new(&config),
            config,
            databases,
            metrics,
            triggers,
        })
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
            .map(|s| (g.name.clone(), t.name.clone(), s.clone()))
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
        for (id, result) in Self::pair_ids(g, t).iter().zip(results) {
            self.status.publish_pass(&self.metrics, id, result, elapsed);
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
        for (id, sub) in Self::pair_ids(g, t).iter().zip(&target.subscribers) {
            let work = self.status.with(id, |e| {
                let untracked =
                    e.diff.untracked.iter().any(|&c| c > 0) || e.diff.leaves.len() >= MAX_LEAVES;
                let ranges: Vec<(usize, crate::engine::KeyRange)> = e
                    .diff
                    .leaves
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (i, l.range.clone()))
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
            match target.recheck(&cmp, sub, &ranges).await {
                Ok(found) => self.status.publish_recheck(&self.metrics, id, |diff, now| {
                    diff.update_leaves(found, now)
                }),
                Err(e) => self
                    .status
                    .publish_pass(&self.metrics, id, Err(e), Duration::ZERO),
            }
        }
    }

    fn next_confirmation(&self, g: &GroupConfig, t: &TableConfig) -> Option<SystemTime> {
        Self::pair_ids(g, t)
            .iter()
            .filter_map(|id| self.status.next_confirmation(id))
            .min()
    }

    /// Asks for a pass of a table now. False when the config names no such table.
    pub fn trigger(&self, group: &str, table: &str) -> bool {
        match self.triggers.get(&(group.to_string(), table.to_string())) {
            Some(n) => {
                n.notify_one();
                true
            }
            None => false,
        }
    }

    /// Runs every table's loop until `shutdown` is cancelled.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let tasks = self.config.groups.iter().enumerate().flat_map(|(gi, g)| {
            let rt = self.clone();
            let shutdown = shutdown.clone();
            (0..g.tables.len()).map(move |ti| {
                let (rt, shutdown) = (rt.clone(), shutdown.clone());
                tokio::spawn(async move { rt.table_loop(gi, ti, shutdown).await })
            })
        });
        let tasks: Vec<_> = tasks.collect();
        shutdown.cancelled().await;
        for db in self.databases.values() {
            db.cancel_all().await;
        }
        join_all(tasks).await;
    }

    async fn table_loop(&self, gi: usize, ti: usize, shutdown: CancellationToken) {
        let g = &self.config.groups[gi];
        let t = &g.tables[ti];
        let trigger = self.triggers[&(g.name.clone(), t.name.clone())].clone();
        // Spread first passes over a tenth of the interval (at most 2 s at start).
        let first = jitter(t.interval / 10).min(Duration::from_secs(2));
        let mut next_full = tokio::time::Instant::now() + first;
        loop {
            let wake = match self.next_confirmation(g, t) {
                Some(due) => {
                    let wait = due.duration_since(SystemTime::now()).unwrap_or_default();
                    next_full.min(tokio::time::Instant::now() + wait)
                }
                None => next_full,
            };
            let full = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = trigger.notified() => true,
                _ = tokio::time::sleep_until(wake) => wake >= next_full,
            };
            let work = async {
                if full {
                    self.pass(g, t).await;
                } else {
                    self.recheck(g, t).await;
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = work => {}
            }
            if full {
                next_full = tokio::time::Instant::now() + t.interval - t.interval / 10
                    + jitter(t.interval / 5);
            }
        }
    }
}

fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return max;
    }
    Duration::from_secs_f64(rand::rng().random_range(0.0..max.as_secs_f64()))
}
