//! The public JSON: what `GET /api/v1/status` and `driftwatch check --json` answer. These
//! are its own types, each field copied on purpose from the status or the check report, so
//! that renaming an internal type or field never changes the API unseen (a test pins the
//! shape of both answers).
//!
//! It must not derive its answers by serializing compare's or status's types, and it
//! builds no links: the HTTP layer adds those.

use serde::Serialize;

use crate::check;
use crate::compare::localize::Tally;
use crate::compare::schema::{Resolved, SchemaReport};
use crate::passes::PassInfo;
use crate::status::{self, PairStatus};

/// Differing rows by kind.
#[derive(Debug, Serialize)]
pub struct Counts {
    pub missing: u64,
    pub extra: u64,
    pub changed: u64,
}

impl From<&Tally> for Counts {
    fn from(t: &Tally) -> Counts {
        Counts {
            missing: t.missing,
            extra: t.extra,
            changed: t.changed,
        }
    }
}

/// How the compared schemas differ, by column name.
#[derive(Debug, Serialize)]
pub struct Schema {
    pub publisher_only: Vec<String>,
    pub subscriber_only: Vec<String>,
    pub type_mismatch: Vec<String>,
    pub unsupported: Vec<String>,
    pub excluded: Vec<String>,
}

impl From<&SchemaReport> for Schema {
    fn from(s: &SchemaReport) -> Schema {
        Schema {
            publisher_only: s.publisher_only.clone(),
            subscriber_only: s.subscriber_only.clone(),
            type_mismatch: s.type_mismatch.clone(),
            unsupported: s.unsupported.clone(),
            excluded: s.excluded.clone(),
        }
    }
}

/// One differing row: its key, never its other values.
#[derive(Debug, Serialize)]
pub struct Sample {
    pub key: Vec<String>,
    pub kind: &'static str,
    pub changed_columns: Vec<String>,
    pub status: &'static str,
    pub confirmed: bool,
    pub first_seen: String,
}

impl From<&status::Sample> for Sample {
    fn from(s: &status::Sample) -> Sample {
        Sample {
            key: s.key.clone(),
            kind: s.kind.as_str(),
            changed_columns: s.changed_columns.clone(),
            status: s.status.as_str(),
            confirmed: s.confirmed,
            first_seen: s.first_seen.clone(),
        }
    }
}

/// One mismatched stretch of the key space.
#[derive(Debug, Serialize)]
pub struct KeySpan {
    pub from: f64,
    pub to: f64,
    pub publisher_rows: u64,
    pub subscriber_rows: u64,
    pub range: String,
}

/// What one pass left a pair with.
#[derive(Debug, Serialize)]
pub struct HistoryPoint {
    pub at: String,
    pub confirmed: u64,
    pub pending: u64,
    pub in_flight: u64,
    pub error: bool,
}

fn strategy(r: Option<Resolved>) -> Option<&'static str> {
    r.map(|r| match r {
        Resolved::Pushdown => "pushdown",
        Resolved::Streamed => "streamed",
    })
}

/// One table and subscriber in `GET /api/v1/status`.
#[derive(Debug, Serialize)]
pub struct TableStatus {
    pub group: String,
    pub table: String,
    pub publisher: String,
    pub subscriber: String,
    pub filter: Option<String>,
    pub time_column: Option<String>,
    pub state: &'static str,
    pub error: Option<String>,
    pub strategy: Option<&'static str>,
    pub compared_columns: Vec<String>,
    pub schema: Schema,
    pub schema_mismatch: bool,
    pub publisher_rows: Option<u64>,
    pub subscriber_rows: Option<u64>,
    pub chunks_matched: u64,
    pub chunks_mismatched: u64,
    pub pending: Counts,
    pub in_flight: Counts,
    pub confirmed: Counts,
    pub divergent_since: Option<String>,
    pub in_flight_since: Option<String>,
    pub positions: Option<String>,
    pub restored: bool,
    pub missing_window: Option<(String, String)>,
    pub sample: Vec<Sample>,
    /// Where a fix script for this pair is served, while it differs.
    pub script: Option<String>,
    pub mismatched_ranges: Vec<KeySpan>,
    pub history: Vec<HistoryPoint>,
    pub last_pass_end: Option<String>,
    pub last_success: Option<String>,
    pub last_duration_seconds: Option<f64>,
    pub last_requested_pass: Option<PassInfo>,
}

impl TableStatus {
    pub fn new(
        p: &PairStatus,
        script: Option<String>,
        last_requested_pass: Option<PassInfo>,
    ) -> TableStatus {
        TableStatus {
            group: p.group.clone(),
            table: p.table.clone(),
            publisher: p.publisher.clone(),
            subscriber: p.subscriber.clone(),
            filter: p.filter.clone(),
            time_column: p.time_column.clone(),
            state: p.state.name(),
            error: p.error.clone(),
            strategy: strategy(p.strategy),
            compared_columns: p.compared_columns.clone(),
            schema: (&p.schema).into(),
            schema_mismatch: p.schema_mismatch,
            publisher_rows: p.publisher_rows,
            subscriber_rows: p.subscriber_rows,
            chunks_matched: p.chunks_matched,
            chunks_mismatched: p.chunks_mismatched,
            pending: (&p.pending).into(),
            in_flight: (&p.in_flight).into(),
            confirmed: (&p.confirmed).into(),
            divergent_since: p.divergent_since.clone(),
            in_flight_since: p.in_flight_since.clone(),
            positions: p.positions.clone(),
            restored: p.restored,
            missing_window: p.missing_window.clone(),
            sample: p.sample.iter().map(Sample::from).collect(),
            script,
            mismatched_ranges: p
                .mismatched_ranges
                .iter()
                .map(|k| KeySpan {
                    from: k.from,
                    to: k.to,
                    publisher_rows: k.publisher_rows,
                    subscriber_rows: k.subscriber_rows,
                    range: k.range.clone(),
                })
                .collect(),
            history: p
                .history
                .iter()
                .map(|h| HistoryPoint {
                    at: h.at.clone(),
                    confirmed: h.confirmed,
                    pending: h.pending,
                    in_flight: h.in_flight,
                    error: h.error,
                })
                .collect(),
            last_pass_end: p.last_pass_end.clone(),
            last_success: p.last_success.clone(),
            last_duration_seconds: p.last_duration_seconds,
            last_requested_pass,
        }
    }
}

/// A database in `GET /api/v1/status`: `up` is unknown (null) until the first connections
/// were tried.
#[derive(Debug, Serialize)]
pub struct DatabaseStatus {
    pub name: String,
    pub up: Option<bool>,
}

/// `GET /api/v1/status`.
#[derive(Debug, Serialize)]
pub struct StatusResponse {
    pub version: &'static str,
    pub converged: bool,
    pub databases: Vec<DatabaseStatus>,
    pub tables: Vec<TableStatus>,
}

/// One table and subscriber in `check --json`.
#[derive(Debug, Serialize)]
pub struct CheckTable {
    pub group: String,
    pub table: String,
    pub subscriber: String,
    pub state: &'static str,
    pub strategy: Option<&'static str>,
    pub publisher_rows: Option<u64>,
    pub subscriber_rows: Option<u64>,
    pub missing: u64,
    pub extra: u64,
    pub changed: u64,
    pub confirmed: Counts,
    pub pending: Counts,
    pub in_flight: Counts,
    pub schema_mismatch: bool,
    pub schema: Schema,
    pub compared_columns: Vec<String>,
    pub missing_window: Option<(String, String)>,
    pub sample: Vec<Sample>,
    pub error: Option<String>,
}

/// Rows a check read and fetched from one database.
#[derive(Debug, Serialize)]
pub struct CheckDatabase {
    pub name: String,
    pub rows_scanned: u64,
    pub rows_fetched: u64,
}

/// `driftwatch check --json`.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub converged: bool,
    pub tables: Vec<CheckTable>,
    pub databases: Vec<CheckDatabase>,
}

impl From<&check::Report> for CheckReport {
    fn from(r: &check::Report) -> CheckReport {
        CheckReport {
            converged: r.converged,
            tables: r
                .tables
                .iter()
                .map(|t| CheckTable {
                    group: t.group.clone(),
                    table: t.table.clone(),
                    subscriber: t.subscriber.clone(),
                    state: t.state.name(),
                    strategy: strategy(t.strategy),
                    publisher_rows: t.publisher_rows,
                    subscriber_rows: t.subscriber_rows,
                    missing: t.missing,
                    extra: t.extra,
                    changed: t.changed,
                    confirmed: (&t.confirmed).into(),
                    pending: (&t.pending).into(),
                    in_flight: (&t.in_flight).into(),
                    schema_mismatch: t.schema_mismatch,
                    schema: (&t.schema).into(),
                    compared_columns: t.compared_columns.clone(),
                    missing_window: t.missing_window.clone(),
                    sample: t.sample.iter().map(Sample::from).collect(),
                    error: t.error.clone(),
                })
                .collect(),
            databases: r
                .databases
                .iter()
                .map(|d| CheckDatabase {
                    name: d.name.clone(),
                    rows_scanned: d.rows_scanned,
                    rows_fetched: d.rows_fetched,
                })
                .collect(),
        }
    }
}
