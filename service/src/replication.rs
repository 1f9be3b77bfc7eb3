//! Replication positions. Where a replication shows, through reads alone, how far a
//! subscriber has applied the publisher's transactions, a recheck reads the publisher's
//! position right after its own reads and waits (bounded) until the subscriber has
//! applied it: whatever the subscriber then still shows differently, for a row the
//! publisher did not touch meanwhile, is not in flight. PostgreSQL logical replication
//! (the subscription's slot on the publisher) and MySQL/MariaDB GTID replication expose
//! such positions; elsewhere (trigger-based sync, SQL Server, SQLite) confirmation rests
//! on time alone (see `compare::confirm`).
//!
//! It only reads, like everything else: positions are read, and waited for with
//! functions that only read (MASTER_GTID_WAIT, WAIT_FOR_EXECUTED_GTID_SET).

use std::time::Duration;

use crate::config::Replication;
use crate::database::Database;
use crate::engine::{Feed, Result};

/// Longest single wait asked of a server (it holds a connection while it waits).
const WAIT_STEP: Duration = Duration::from_secs(1);
/// Pause between two polls of a position that cannot be waited for on the server.
const POLL: Duration = Duration::from_millis(50);

/// A publisher and one subscriber, and where the subscriber's applied position is read.
pub struct Positions<'a> {
    pub publisher: &'a Database,
    pub subscriber: &'a Database,
    pub feed: Feed,
}

impl Positions<'_> {
    /// The publisher's position now: taken after a read, it covers what the read saw.
    pub async fn mark(&self) -> Result<Option<String>> {
        self.publisher.replication_position().await
    }

    /// Waits, at most `limit`, until the subscriber has applied `position`; false when it
    /// has not by then (the subscriber lags more than that, or replication stopped).
    pub async fn wait(&self, position: &str, limit: Duration) -> Result<bool> {
        let asked = match self.feed {
            Feed::PostgresSlot(_) => self.publisher,
            Feed::Gtid => self.subscriber,
        };
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if asked
                .position_applied(&self.feed, position, left.min(WAIT_STEP))
                .await?
            {
                return Ok(true);
            }
            if left.is_zero() {
                return Ok(false);
            }
            tokio::time::sleep(left.min(POLL)).await;
        }
    }
}

/// The feed of a subscriber as configured: a named slot, none, or the one the subscriber
/// shows (detection only says yes where there is exactly one candidate).
pub async fn resolve(setting: &Replication, subscriber: &Database) -> Result<Option<Feed>> {
    match setting {
        Replication::Off => Ok(None),
        Replication::PostgresSlot(slot) => Ok(Some(Feed::PostgresSlot(slot.clone()))),
        Replication::Gtid => Ok(Some(Feed::Gtid)),
        Replication::Auto => subscriber.detect_feed().await,
    }
}
