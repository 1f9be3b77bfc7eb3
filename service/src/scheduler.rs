//! The continuous loop: one task per table, a full pass every `interval` (with jitter, so
//! tables configured alike do not hit a database in lockstep), a recheck of pending
//! differences when they become due, and a pass on demand (POST …/validate).
//!
//! A table's passes never overlap: its task runs them one after another. On shutdown
//! the pass in flight is dropped (nothing of it is published) and every database's
//! queries in flight are cancelled. What a pass does is the runtime's; only when is here.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::join_all;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::compare::confirm::MIN_RECHECK;
use crate::runtime::Runtime;

impl Runtime {
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
        self.begin_stopping();
        for db in self.databases.values() {
            db.cancel_all().await;
        }
        join_all(tasks).await;
        self.status.flush();
    }

    async fn table_loop(&self, gi: usize, ti: usize, shutdown: CancellationToken) {
        let g = &self.config.groups[gi];
        let t = &g.tables[ti];
        let requested = self
            .requests
            .notifier(&g.name, &t.name)
            .expect("every configured table has its requests");
        // Spread first passes over a tenth of the interval (at most 2 s at start).
        let first = jitter(t.interval / 10).min(Duration::from_secs(2));
        let mut next_full = tokio::time::Instant::now() + first;
        // Rechecks never follow each other closer than this, even when one failed.
        let mut not_before = tokio::time::Instant::now();
        loop {
            let wake = match self.next_confirmation(g, t) {
                Some(due) => {
                    let wait = due.duration_since(SystemTime::now()).unwrap_or_default();
                    next_full.min((tokio::time::Instant::now() + wait).max(not_before))
                }
                None => next_full,
            };
            let full = tokio::select! {
                _ = shutdown.cancelled() => return,
                // A pass that started meanwhile may have taken the request already.
                _ = requested.notified() => if self.requests.queued(&g.name, &t.name) { true } else { continue },
                _ = tokio::time::sleep_until(wake) => wake >= next_full,
            };
            let work = async {
                if full {
                    // Any full pass answers the requests made before it starts.
                    self.requests.start(&g.name, &t.name);
                    self.pass(g, t).await;
                    self.requests.finish(&g.name, &t.name);
                } else {
                    self.recheck(g, t).await;
                }
            };
            tokio::select! {
                // Shutdown first, so that a pass is not polled on once it began (a pass
                // that ends during that poll publishes nothing either: `begin_stopping`).
                biased;
                _ = shutdown.cancelled() => return,
                _ = work => {}
            }
            if full {
                next_full = tokio::time::Instant::now() + t.interval - t.interval / 10
                    + jitter(t.interval / 5);
            }
            not_before = tokio::time::Instant::now() + MIN_RECHECK;
        }
    }
}

fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return max;
    }
    Duration::from_secs_f64(rand::rng().random_range(0.0..max.as_secs_f64()))
}
