//! The published state of every (group, table, subscriber): what the HTML page, the
//! status JSON, the CLI summary and the metrics show.
//!
//! A pass's results become visible here in one step, under one lock, metrics included:
//! a reader never sees half of a pass. Nothing here queries a database.

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::compare::confirm::{DiffState, Divergence};
use crate::compare::localize::Kind;
use crate::compare::schema::{Comparison, Resolved, SchemaReport};
use crate::compare::PairPass;
use crate::metrics::Metrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
    /// Only differences that are not confirmed yet.
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
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub key: Vec<String>,
    pub kind: Kind,
    pub changed_columns: Vec<String>,
    pub confirmed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PairStatus {
    pub group: String,
    pub table: String,
    pub publisher: String,
    pub subscriber: String,
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
    pub pending: crate::compare::confirm::Tally,
    pub confirmed: crate::compare::confirm::Tally,
    /// Earliest and latest time_column value of the missing rows (the "gap").
    pub missing_window: Option<(String, String)>,
    /// The first differing rows (at most [`SAMPLE_ROWS`]).
    pub sample: Vec<Sample>,
    /// Where a fix script for this pair is served, while it differs.
    pub script: Option<String>,
    pub last_pass_end: Option<String>,
    pub last_success: Option<String>,
    pub last_duration_seconds: Option<f64>,
}

pub const SAMPLE_ROWS: usize = 20;

/// What the service keeps per pair besides what it shows.
pub struct PairEntry {
    pub public: PairStatus,
    pub diff: DiffState,
    pub comparison: Option<Comparison>,
    pub confirm_after: Duration,
}

pub type PairId = (String, String, String);

pub struct Status {
    pairs: RwLock<BTreeMap<PairId, PairEntry>>,
}

fn rfc3339(t: SystemTime) -> String {
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
                        confirmed: Default::default(),
                        missing_window: None,
                        sample: vec![],
                        script: None,
                        last_pass_end: None,
                        last_success: None,
                        last_duration_seconds: None,
                    };
                    let entry = PairEntry {
                        public,
                        diff: DiffState::default(),
                        comparison: None,
                        confirm_after: t.confirm_after,
                    };
                    pairs.insert((g.name.clone(), t.name.clone(), s.clone()), entry);
                }
            }
        }
        Status {
            pairs: RwLock::new(pairs),
        }
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
        result: Result<PairPass, String>,
        duration: Duration,
    ) {
        let now = SystemTime::now();
        let mut pairs = self.pairs.write().unwrap();
        let Some(e) = pairs.get_mut(id) else { return };
        let labels = [id.0.as_str(), id.1.as_str(), id.2.as_str()];
        e.public.last_pass_end = Some(rfc3339(now));
        e.public.last_duration_seconds = Some(duration.as_secs_f64());
        m.duration
            .with_label_values(&labels)
            .observe(duration.as_secs_f64());
        match result {
            Err(message) => {
                tracing::warn!(group = %id.0, table = %id.1, subscriber = %id.2, error = %message, "pass failed");
                e.public.state = State::Error;
                e.public.error = Some(message);
                // Nothing reports converged from stale data.
                m.converged.with_label_values(&labels).set(0);
                m.validations
                    .with_label_values(&[labels[0], labels[1], labels[2], "error"])
                    .inc();
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
                e.public.last_success = Some(rfc3339(now));
                e.diff.replace(pass.findings, now);
                e.comparison = Some(pass.comparison);
                let rows = |role: &str, db: &str, n: u64| {
                    m.table_rows
                        .with_label_values(&[labels[0], labels[1], db, role])
                        .set(n as i64)
                };
                rows("publisher", &e.public.publisher, pass.publisher_rows);
                rows("subscriber", &e.public.subscriber, pass.subscriber_rows);
                m.row_count_difference
                    .with_label_values(&labels)
                    .set(pass.publisher_rows as i64 - pass.subscriber_rows as i64);
                m.chunks
                    .with_label_values(&[labels[0], labels[1], labels[2], "matched"])
                    .set(pass.chunks_matched as i64);
                m.chunks
                    .with_label_values(&[labels[0], labels[1], labels[2], "mismatched"])
                    .set(pass.chunks_mismatched as i64);
                m.schema_mismatch
                    .with_label_values(&labels)
                    .set(e.public.schema_mismatch as i64);
                m.last_success.with_label_values(&labels).set(
                    now.duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs_f64(),
                );
                let d = refresh(e, m, &labels, now);
                let result = if d.pending.total() + d.confirmed.total() == 0 {
                    "converged"
                } else {
                    "divergent"
                };
                m.validations
                    .with_label_values(&[labels[0], labels[1], labels[2], result])
                    .inc();
                if e.public.schema_mismatch {
                    tracing::warn!(group = %id.0, table = %id.1, subscriber = %id.2, schema = ?e.public.schema, "schema differs between publisher and subscriber");
                }
                if !e.public.schema.unsupported.is_empty() {
                    tracing::warn!(group = %id.0, table = %id.1, subscriber = %id.2, columns = ?e.public.schema.unsupported, "columns of types driftwatch cannot compare exactly are skipped");
                }
            }
        }
    }

    /// Publishes a recheck: the diff state was updated by `f`.
    pub fn publish_recheck(
        &self,
        m: &Metrics,
        id: &PairId,
        f: impl FnOnce(&mut DiffState, SystemTime),
    ) {
        let now = SystemTime::now();
        let mut pairs = self.pairs.write().unwrap();
        let Some(e) = pairs.get_mut(id) else { return };
        f(&mut e.diff, now);
        refresh(e, m, &[id.0.as_str(), id.1.as_str(), id.2.as_str()], now);
    }

    /// Re-evaluates confirmation as time passes (a pending difference does not become
    /// confirmed without a re-check; this only refreshes what is shown).
    pub fn next_confirmation(&self, id: &PairId) -> Option<SystemTime> {
        self.with(id, |e| {
            e.diff.next_confirmation(SystemTime::now(), e.confirm_after)
        })
        .flatten()
    }
}

/// Recomputes a pair's divergence figures from its diff state and shows them.
fn refresh(e: &mut PairEntry, m: &Metrics, labels: &[&str; 3], now: SystemTime) -> Divergence {
    let d = e.diff.divergence(now, e.confirm_after);
    e.public.pending = d.pending;
    e.public.confirmed = d.confirmed;
    let schema_differs = schema_differs(&e.public.schema);
    e.public.state = if d.confirmed.total() > 0 {
        State::Divergent
    } else if schema_differs {
        State::SchemaDiffers
    } else if d.pending.total() > 0 {
        State::Pending
    } else {
        State::Converged
    };
    e.public.missing_window = e
        .diff
        .missing_window()
        .map(|(a, b)| (a.to_string(), b.to_string()));
    e.public.script = (d.pending.total() + d.confirmed.total() > 0).then(|| {
        let p = &e.public;
        let u = crate::http::url_part;
        format!(
            "/api/v1/groups/{}/tables/{}/script?subscriber={}",
            u(&p.group),
            u(&p.table),
            u(&p.subscriber)
        )
    });
    let columns = e
        .comparison
        .as_ref()
        .map(|c| c.column_names())
        .unwrap_or_default();
    e.public.sample = e
        .diff
        .rows()
        .take(SAMPLE_ROWS)
        .map(|r| Sample {
            key: r.key.iter().map(|v| v.to_string()).collect(),
            kind: r.kind,
            changed_columns: r
                .changed
                .iter()
                .filter_map(|&i| columns.get(i).cloned())
                .collect(),
            confirmed: now.duration_since(r.first_seen).unwrap_or_default() >= e.confirm_after,
        })
        .collect();
    for k in Kind::ALL {
        for (status, tally) in [("pending", &d.pending), ("confirmed", &d.confirmed)] {
            m.divergent_rows
                .with_label_values(&[labels[0], labels[1], labels[2], k.as_str(), status])
                .set(tally.get(k) as i64);
        }
    }
    m.converged
        .with_label_values(labels)
        .set((d.confirmed.total() == 0 && !schema_differs) as i64);
    d
}
