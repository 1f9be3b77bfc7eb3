//! The published state of every (group, table, subscriber): what the HTML page, the
//! status JSON, the CLI summary and the metrics show.
//!
//! A pass's results become visible here in one step, under one lock, metrics included:
//! a reader never sees half of a pass. Each publication is also handed to the state
//! store (when one is configured), so that a restart resumes from it. Nothing here
//! queries a database.

use std::collections::{BTreeMap, VecDeque};
use std::sync::RwLock;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::compare::confirm::{DiffState, Divergence, Evidence, Status as RowStatus};
use crate::compare::localize::Kind;
use crate::compare::localize::Tally;
use crate::compare::schema::{Comparison, Resolved, SchemaReport};
use crate::compare::{PairPass, PassError};
use crate::metrics::{GaugeFamily, Metrics};
use crate::state::{SavedPair, SavedRow, StateStore};
use crate::value::key_bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// No pass has completed yet.
    Unknown,
    /// No differences.
    Converged,
    /// The compared schemas differ (columns on one side only, of types that cannot be
    /// compared, or skipped as unsupported): not converged, whatever the rows say.
    #[serde(rename = "schema_differs")]
    SchemaDiffers,
    /// Only differences that are not confirmed: pending or in flight.
    Pending,
    /// Confirmed differences.
    Divergent,
    /// The last pass failed.
    Error,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Converged => "converged",
            State::SchemaDiffers => "schema_differs",
            State::Pending => "pending",
            State::Divergent => "divergent",
            State::Error => "error",
        }
    }
}

/// Whether a pair's schemas differ in what should be compared. Columns excluded on purpose
/// (exclude_columns) do not count; columns skipped as unsupported do, as their values are
/// never compared. (`table_schema_mismatch` is narrower: columns that differ between sides.)
pub fn schema_differs(s: &SchemaReport) -> bool {
    s.mismatch() || !s.unsupported.is_empty()
}

/// One differing row, as shown (keys only; never the row's other values).
#[derive(Debug, Clone)]
pub struct Sample {
    pub key: Vec<String>,
    pub kind: Kind,
    pub changed_columns: Vec<String>,
    pub status: RowStatus,
    pub confirmed: bool,
    /// When a difference at this key was first seen.
    pub first_seen: String,
}

#[derive(Debug, Clone)]
pub struct PairStatus {
    pub group: String,
    pub table: String,
    pub publisher: String,
    pub subscriber: String,
    /// The table's configured filter: the rows are counted with it.
    pub filter: Option<String>,
    pub time_column: Option<String>,
    pub state: State,
    pub error: Option<String>,
    pub strategy: Option<Resolved>,
    pub compared_columns: Vec<String>,
    pub schema: SchemaReport,
    pub schema_mismatch: bool,
    pub publisher_rows: Option<u64>,
    pub subscriber_rows: Option<u64>,
    pub chunks_matched: u64,
    pub chunks_mismatched: u64,
    /// Differences seen with the publisher's side unchanged, not yet proven.
    pub pending: Tally,
    /// Differences whose publisher side changed between sightings: rows being written.
    pub in_flight: Tally,
    /// Differences proven at a consistent point.
    pub confirmed: Tally,
    /// When the oldest confirmed difference was first seen.
    pub divergent_since: Option<String>,
    /// When the oldest difference now in flight was first seen.
    pub in_flight_since: Option<String>,
    /// Where rechecks read the subscriber's applied replication position, if anywhere.
    pub positions: Option<String>,
    /// Shown as saved before a restart: no pass has completed since.
    pub restored: bool,
    /// Earliest and latest time_column value of the missing rows (the "gap").
    pub missing_window: Option<(String, String)>,
    /// The first differing rows (at most [`SAMPLE_ROWS`]).
    pub sample: Vec<Sample>,
    /// Where the last pass's mismatched chunks and buckets lie in the key order.
    pub mismatched_ranges: Vec<crate::compare::keyspace::KeySpan>,
    /// The divergence after each of the last [`HISTORY_PASSES`] passes, oldest first.
    pub history: VecDeque<HistoryPoint>,
    pub last_pass_end: Option<String>,
    pub last_success: Option<String>,
    pub last_duration_seconds: Option<f64>,
}

pub const SAMPLE_ROWS: usize = 20;

/// Passes remembered per pair for the divergence sparkline (in memory only).
pub const HISTORY_PASSES: usize = 60;

/// What one pass left a pair with.
#[derive(Debug, Clone)]
pub struct HistoryPoint {
    pub at: String,
    pub confirmed: u64,
    pub pending: u64,
    pub in_flight: u64,
    pub error: bool,
}

/// What the service keeps per pair besides what it shows.
pub struct PairEntry {
    pub public: PairStatus,
    pub diff: DiffState,
    pub comparison: Option<Comparison>,
    pub confirm_after: Duration,
    /// The rows restored from the state store, kept (and saved again) until a pass
    /// completes.
    restored_rows: Vec<SavedRow>,
}

/// One (group, table, subscriber).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PairId {
    pub group: String,
    pub table: String,
    pub subscriber: String,
}

impl PairId {
    pub fn new(group: &str, table: &str, subscriber: &str) -> PairId {
        PairId {
            group: group.to_string(),
            table: table.to_string(),
            subscriber: subscriber.to_string(),
        }
    }

    fn labels(&self) -> [&str; 3] {
        [&self.group, &self.table, &self.subscriber]
    }
}

pub struct Status {
    pairs: RwLock<BTreeMap<PairId, PairEntry>>,
    store: Option<StateStore>,
}

pub(crate) fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Status {
    pub fn new(config: &crate::config::Config) -> Status {
        let mut pairs = BTreeMap::new();
        for g in &config.groups {
            for t in &g.tables {
                for s in &g.subscribers {
                    let public = PairStatus {
                        group: g.name.clone(),
                        table: t.name.clone(),
                        publisher: g.publisher.clone(),
                        subscriber: s.clone(),
                        filter: t.filter.clone(),
                        time_column: t.time_column.clone(),
                        state: State::Unknown,
                        error: None,
                        strategy: None,
                        compared_columns: vec![],
                        schema: SchemaReport::default(),
                        schema_mismatch: false,
                        publisher_rows: None,
                        subscriber_rows: None,
                        chunks_matched: 0,
                        chunks_mismatched: 0,
                        pending: Default::default(),
                        in_flight: Default::default(),
                        confirmed: Default::default(),
                        divergent_since: None,
                        in_flight_since: None,
                        positions: None,
                        restored: false,
                        missing_window: None,
                        sample: vec![],
                        mismatched_ranges: vec![],
                        history: VecDeque::new(),
                        last_pass_end: None,
                        last_success: None,
                        last_duration_seconds: None,
                    };
                    let entry = PairEntry {
                        public,
                        diff: DiffState::default(),
                        comparison: None,
                        confirm_after: t.confirm_after,
                        restored_rows: Vec::new(),
                    };
                    pairs.insert(PairId::new(&g.name, &t.name, s), entry);
                }
            }
        }
        Status {
            pairs: RwLock::new(pairs),
            store: None,
        }
    }

    /// Takes in what the state store held, and saves every later publication there.
    /// Confirmed differences stay confirmed until a pass finds them resolved; pending
    /// ones keep their first sighting; a pair saved as converged shows nothing (no
    /// "converged") until its first pass.
    pub fn restore(
        &mut self,
        m: &Metrics,
        store: StateStore,
        saved: std::collections::HashMap<PairId, SavedPair>,
    ) {
        let pairs = self.pairs.get_mut().unwrap();
        for (id, s) in saved {
            let Some(e) = pairs.get_mut(&id) else {
                continue;
            };
            let p = &mut e.public;
            p.state = match s.state {
                State::Converged => State::Unknown,
                other => other,
            };
            p.restored = true;
            p.error = s.error;
            p.pending = s.pending;
            p.in_flight = s.in_flight;
            p.confirmed = s.confirmed;
            p.divergent_since = s.oldest_confirmed.map(rfc3339);
            p.in_flight_since = s.oldest_in_flight.map(rfc3339);
            p.publisher_rows = s.publisher_rows;
            p.subscriber_rows = s.subscriber_rows;
            p.missing_window = s.missing_window;
            p.last_success = s.last_success;
            p.last_pass_end = s.last_pass_end;
            p.sample = s
                .rows
                .iter()
                .take(SAMPLE_ROWS)
                .map(|r| {
                    sample(
                        r.key.clone(),
                        r.kind,
                        r.changed_columns.clone(),
                        &r.evidence,
                    )
                })
                .collect();
            e.diff.carried.rows = s
                .rows
                .iter()
                .filter_map(|r| Some((from_hex(&r.key_bytes)?, r.evidence.clone())))
                .collect();
            e.diff.carried.overflow = s.overflow;
            e.restored_rows = s.rows;
            let labels = id.labels();
            let d = Divergence {
                pending: s.pending,
                in_flight: s.in_flight,
                confirmed: s.confirmed,
                oldest_in_flight: s.oldest_in_flight,
                oldest_confirmed: s.oldest_confirmed,
            };
            show_divergence(m, &labels, &d);
            if p.state != State::Unknown {
                m.converged.set(
                    &labels,
                    u8::from(s.confirmed.total() == 0 && p.state != State::Error).into(),
                );
            }
        }
        self.store = Some(store);
    }

    /// Waits until every publication so far is saved (shutdown).
    pub fn flush(&self) {
        if let Some(s) = &self.store {
            s.flush();
        }
    }

    fn save(&self, id: &PairId, e: &PairEntry) {
        let Some(store) = &self.store else { return };
        let columns = e
            .comparison
            .as_ref()
            .map(|c| c.column_names())
            .unwrap_or_default();
        let rows: Vec<SavedRow> = if e.public.restored {
            e.restored_rows.clone()
        } else {
            e.diff
                .rows()
                .map(|r| SavedRow {
                    key_bytes: to_hex(&key_bytes(&r.key)),
                    key: r.key.iter().map(|v| v.to_string()).collect(),
                    kind: r.kind,
                    changed_columns: r
                        .changed
                        .iter()
                        .filter_map(|&i| columns.get(i).cloned())
                        .collect(),
                    evidence: r.evidence.clone(),
                })
                .collect()
        };
        let d = e.diff.divergence();
        let p = &e.public;
        let overflow = e
            .diff
            .leaves
            .iter()
            .filter(|l| l.counts.total() > l.rows.len() as u64)
            .map(|l| l.evidence.clone())
            .min_by_key(|ev| ev.first_seen)
            .or_else(|| e.diff.carried.overflow.clone());
        store.save(
            id,
            &SavedPair {
                state: p.state,
                rows,
                overflow,
                pending: p.pending,
                in_flight: p.in_flight,
                confirmed: p.confirmed,
                oldest_in_flight: d.oldest_in_flight,
                oldest_confirmed: d.oldest_confirmed,
                publisher_rows: p.publisher_rows,
                subscriber_rows: p.subscriber_rows,
                missing_window: p.missing_window.clone(),
                last_success: p.last_success.clone(),
                last_pass_end: p.last_pass_end.clone(),
                error: p.error.clone(),
            },
        );
    }

    pub fn snapshot(&self) -> Vec<PairStatus> {
        self.pairs
            .read()
            .unwrap()
            .values()
            .map(|e| e.public.clone())
            .collect()
    }

    pub fn get(&self, id: &PairId) -> Option<PairStatus> {
        self.pairs.read().unwrap().get(id).map(|e| e.public.clone())
    }

    /// Reads a pair's internal state.
    pub fn with<T>(&self, id: &PairId, f: impl FnOnce(&PairEntry) -> T) -> Option<T> {
        self.pairs.read().unwrap().get(id).map(f)
    }

    /// Publishes a full pass's result for one pair.
    pub fn publish_pass(
        &self,
        m: &Metrics,
        id: &PairId,
        result: Result<PairPass, PassError>,
        duration: Duration,
    ) {
        let now = SystemTime::now();
        let mut pairs = self.pairs.write().unwrap();
        let Some(e) = pairs.get_mut(id) else { return };
        let labels = id.labels();
        e.public.last_pass_end = Some(rfc3339(now));
        e.public.last_duration_seconds = Some(duration.as_secs_f64());
        m.duration
            .with_label_values(&labels[..1])
            .observe(duration.as_secs_f64());
        m.last_duration.set(&labels, duration.as_secs_f64());
        match result {
            Err(error) => {
                let message = error.to_string();
                tracing::warn!(group = %id.group, table = %id.table, subscriber = %id.subscriber, error = %message, "pass failed");
                e.public.state = State::Error;
                e.public.error = Some(message);
                // Nothing reports converged from stale data.
                m.converged.set(&labels, 0.0);
                m.validations
                    .inc(&[labels[0], labels[1], labels[2], "error"]);
                remember(&mut e.public, now, None);
            }
            Ok(pass) => {
                e.public.error = None;
                e.public.strategy = Some(pass.comparison.strategy);
                e.public.compared_columns = pass.comparison.column_names();
                e.public.schema_mismatch = pass.comparison.schema.mismatch();
                e.public.schema = pass.comparison.schema.clone();
                e.public.publisher_rows = Some(pass.publisher_rows);
                e.public.subscriber_rows = Some(pass.subscriber_rows);
                e.public.chunks_matched = pass.chunks_matched;
                e.public.chunks_mismatched = pass.chunks_mismatched;
                e.public.mismatched_ranges = pass.mismatched_ranges;
                e.public.last_success = Some(rfc3339(now));
                e.public.restored = false;
                e.restored_rows.clear();
                e.diff.replace(pass.findings, now, e.confirm_after);
                e.comparison = Some(pass.comparison);
                let rows = |role: &str, db: &str, n: u64| {
                    m.table_rows
                        .set(&[labels[0], labels[1], db, role], n as f64)
                };
                rows("publisher", &e.public.publisher, pass.publisher_rows);
                rows("subscriber", &e.public.subscriber, pass.subscriber_rows);
                m.row_count_difference.set(
                    &labels,
                    pass.publisher_rows as f64 - pass.subscriber_rows as f64,
                );
                m.chunks.set(
                    &[labels[0], labels[1], labels[2], "matched"],
                    pass.chunks_matched as f64,
                );
                set_nonzero(
                    &m.chunks,
                    &[labels[0], labels[1], labels[2], "mismatched"],
                    pass.chunks_mismatched as f64,
                );
                set_nonzero(
                    &m.schema_mismatch,
                    &labels,
                    u8::from(e.public.schema_mismatch).into(),
                );
                m.last_success.set(&labels, unix(now));
                let d = refresh(e, m, &labels);
                remember(&mut e.public, now, Some(&d));
                let result = if d.confirmed.total() > 0 {
                    "divergent"
                } else if d.total() > 0 {
                    "pending"
                } else {
                    "converged"
                };
                m.validations
                    .inc(&[labels[0], labels[1], labels[2], result]);
                if e.public.schema_mismatch {
                    let [publisher_only, subscriber_only, type_mismatch] =
                        e.public.schema.drift_fields();
                    tracing::warn!(group = %id.group, table = %id.table, subscriber = %id.subscriber, %publisher_only, %subscriber_only, %type_mismatch, "schema differs between publisher and subscriber");
                }
                if !e.public.schema.unsupported.is_empty() {
                    tracing::warn!(group = %id.group, table = %id.table, subscriber = %id.subscriber, columns = ?e.public.schema.unsupported, "columns of types driftwatch cannot compare exactly are skipped");
                }
            }
        }
        self.save(id, e);
    }

    /// Publishes a recheck: the diff state was updated by `f`.
    pub fn publish_recheck(
        &self,
        m: &Metrics,
        id: &PairId,
        f: impl FnOnce(&mut DiffState, SystemTime, Duration),
    ) {
        let now = SystemTime::now();
        let mut pairs = self.pairs.write().unwrap();
        let Some(e) = pairs.get_mut(id) else { return };
        f(&mut e.diff, now, e.confirm_after);
        refresh(e, m, &id.labels());
        self.save(id, e);
    }

    /// Shows where a pair's rechecks read replication positions.
    pub fn set_positions(&self, id: &PairId, positions: Option<String>) {
        if let Some(e) = self.pairs.write().unwrap().get_mut(id) {
            e.public.positions = positions;
        }
    }

    /// When a pair's earliest unconfirmed difference is due for a recheck.
    pub fn next_confirmation(&self, id: &PairId, positions: bool) -> Option<SystemTime> {
        self.with(id, |e| e.diff.next_recheck(e.confirm_after, positions))
            .flatten()
    }
}

fn sample(key: Vec<String>, kind: Kind, changed_columns: Vec<String>, e: &Evidence) -> Sample {
    Sample {
        key,
        kind,
        changed_columns,
        status: e.status,
        confirmed: e.status == RowStatus::Confirmed,
        first_seen: rfc3339(e.first_seen),
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Sets the divergence metrics of a pair.
fn show_divergence(m: &Metrics, labels: &[&str; 3], d: &Divergence) {
    for k in Kind::ALL {
        for status in RowStatus::ALL {
            set_nonzero(
                &m.divergent_rows,
                &[labels[0], labels[1], labels[2], k.as_str(), status.as_str()],
                d.of(status).get(k) as f64,
            );
        }
    }
    set_nonzero(
        &m.confirmed_row_count_difference,
        labels,
        d.confirmed.missing as f64 - d.confirmed.extra as f64,
    );
    for (status, since) in [
        (RowStatus::Confirmed, d.oldest_confirmed),
        (RowStatus::InFlight, d.oldest_in_flight),
    ] {
        let l = [labels[0], labels[1], labels[2], status.as_str()];
        match since {
            Some(t) => m.first_seen.set(&l, unix(t)),
            None => m.first_seen.remove(&l),
        }
    }
}

/// Sets a gauge that counts a problem, or removes its series when there is none: nine
/// divergence series per pair, nearly all zero, were most of a large deployment's scrape.
/// `table_converged` and `validation_last_success_timestamp_seconds` exist for every pair
/// that passed, so an absent problem series means no problem, not no data.
fn set_nonzero(g: &GaugeFamily, labels: &[&str], v: f64) {
    if v == 0.0 {
        g.remove(labels);
    } else {
        g.set(labels, v);
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Adds a pass's outcome (`None`: it failed) to the pair's bounded history.
fn remember(p: &mut PairStatus, now: SystemTime, d: Option<&Divergence>) {
    if p.history.len() == HISTORY_PASSES {
        p.history.pop_front();
    }
    p.history.push_back(HistoryPoint {
        at: rfc3339(now),
        confirmed: d.map_or(0, |d| d.confirmed.total()),
        pending: d.map_or(0, |d| d.pending.total()),
        in_flight: d.map_or(0, |d| d.in_flight.total()),
        error: d.is_none(),
    });
}

/// Recomputes a pair's divergence figures from its diff state and shows them.
fn refresh(e: &mut PairEntry, m: &Metrics, labels: &[&str; 3]) -> Divergence {
    let d = e.diff.divergence();
    e.public.pending = d.pending;
    e.public.in_flight = d.in_flight;
    e.public.confirmed = d.confirmed;
    e.public.divergent_since = d.oldest_confirmed.map(rfc3339);
    e.public.in_flight_since = d.oldest_in_flight.map(rfc3339);
    let schema_differs = schema_differs(&e.public.schema);
    e.public.state = if d.confirmed.total() > 0 {
        State::Divergent
    } else if schema_differs {
        State::SchemaDiffers
    } else if d.total() > 0 {
        State::Pending
    } else {
        State::Converged
    };
    e.public.missing_window = e
        .diff
        .missing_window()
        .map(|(a, b)| (a.to_string(), b.to_string()));
    let columns = e
        .comparison
        .as_ref()
        .map(|c| c.column_names())
        .unwrap_or_default();
    // Confirmed rows first, then those in flight: what needs acting on leads.
    let mut rows: Vec<_> = e.diff.rows().collect();
    rows.sort_by_key(|r| match r.evidence.status {
        RowStatus::Confirmed => 0,
        RowStatus::InFlight => 1,
        RowStatus::Pending => 2,
    });
    e.public.sample = rows
        .into_iter()
        .take(SAMPLE_ROWS)
        .map(|r| {
            let changed = r
                .changed
                .iter()
                .filter_map(|&i| columns.get(i).cloned())
                .collect();
            sample(
                r.key.iter().map(|v| v.to_string()).collect(),
                r.kind,
                changed,
                &r.evidence,
            )
        })
        .collect();
    show_divergence(m, labels, &d);
    m.converged.set(
        labels,
        u8::from(d.confirmed.total() == 0 && !schema_differs).into(),
    );
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_keeps_the_last_passes_only() {
        let config = crate::config::parse(
            "[databases.a]\nurl = \"sqlite:///nowhere/a.db\"\n[databases.b]\nurl = \"sqlite:///nowhere/b.db\"\n\
             [[groups]]\nname = \"g\"\npublisher = \"a\"\nsubscribers = [\"b\"]\n[[groups.tables]]\nname = \"t\"\n",
            std::path::Path::new("/test.toml"),
        )
        .unwrap();
        let status = Status::new(&config);
        let id = PairId::new("g", "t", "b");
        let metrics = Metrics::new();
        for i in 0..HISTORY_PASSES + 5 {
            let error = PassError::Schema {
                table: "t".into(),
                error: crate::compare::schema::SchemaError(format!("failure {i}")),
            };
            status.publish_pass(&metrics, &id, Err(error), Duration::ZERO);
        }
        let p = status.get(&id).unwrap();
        assert_eq!(p.history.len(), HISTORY_PASSES);
        assert!(p.history.iter().all(|h| h.error));
    }
}
