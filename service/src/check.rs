//! One validation pass on demand (`driftwatch check`): every selected table compared
//! once, its differences re-checked as they become due (see `Runtime::confirm`), and a
//! report whose verdict speaks of confirmed divergence only.
//!
//! It runs the same passes as the service, through the same limits; it must not
//! publish anything beyond its own report.

use futures::future::join_all;

use crate::compare::localize::Tally;
use crate::compare::schema::SchemaReport;
use crate::config::{Config, GroupConfig, TableConfig};
use crate::runtime::Runtime;
use crate::status::{schema_differs, PairStatus, Sample, State};

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Lookup(#[from] crate::config::LookupError),
    #[error("no table {0:?} in the selected groups")]
    UnknownTable(String),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
}

#[derive(Debug)]
pub struct TableLine {
    pub group: String,
    pub table: String,
    pub subscriber: String,
    pub state: State,
    pub strategy: Option<crate::compare::schema::Resolved>,
    pub publisher_rows: Option<u64>,
    pub subscriber_rows: Option<u64>,
    pub missing: u64,
    pub extra: u64,
    pub changed: u64,
    pub confirmed: Tally,
    pub pending: Tally,
    pub in_flight: Tally,
    pub schema_mismatch: bool,
    /// The schema differences by column name (as the status JSON has them).
    pub schema: SchemaReport,
    pub compared_columns: Vec<String>,
    pub missing_window: Option<(String, String)>,
    /// The first differing rows (at most [`crate::status::SAMPLE_ROWS`]): key, kind,
    /// changed columns, confirmed or not.
    pub sample: Vec<Sample>,
    pub error: Option<String>,
}

#[derive(Debug)]
pub struct DatabaseLine {
    pub name: String,
    pub rows_scanned: u64,
    pub rows_fetched: u64,
}

#[derive(Debug)]
pub struct Report {
    pub converged: bool,
    pub tables: Vec<TableLine>,
    pub databases: Vec<DatabaseLine>,
}

impl Report {
    /// 0 converged, 1 confirmed divergence or schemas that differ, 2 an error.
    pub fn exit_code(&self) -> i32 {
        if self.tables.iter().any(|t| t.state == State::Error) {
            2
        } else if self
            .tables
            .iter()
            .any(|t| t.confirmed.total() > 0 || schema_differs(&t.schema))
        {
            1
        } else {
            0
        }
    }

    pub fn human(&self) -> String {
        let mut out = String::new();
        for t in &self.tables {
            let verdict = match t.state {
                State::Converged => "converged",
                State::SchemaDiffers => "NOT CONVERGED (schema differs)",
                State::Pending => "pending (not confirmed)",
                State::Divergent => "DIVERGENT",
                State::Error => "ERROR",
                State::Unknown => "not run",
            };
            out.push_str(&format!(
                "{}/{} → {}: {verdict}",
                t.group, t.table, t.subscriber
            ));
            if let (Some(p), Some(s)) = (t.publisher_rows, t.subscriber_rows) {
                out.push_str(&format!("; rows publisher {p}, subscriber {s}"));
            }
            if t.missing + t.extra + t.changed > 0 {
                out.push_str(&format!(
                    "; {} missing, {} extra, {} changed ({} confirmed, {} pending, {} in flight)",
                    t.missing,
                    t.extra,
                    t.changed,
                    t.confirmed.total(),
                    t.pending.total(),
                    t.in_flight.total()
                ));
            }
            if let Some((a, b)) = &t.missing_window {
                out.push_str(&format!("; missing rows from {a} to {b}"));
            }
            let s = &t.schema;
            for (what, columns) in [
                ("publisher only", &s.publisher_only),
                ("subscriber only", &s.subscriber_only),
                ("types differ", &s.type_mismatch),
                ("not comparable", &s.unsupported),
            ] {
                if !columns.is_empty() {
                    out.push_str(&format!("; schema differs, {what}: {}", columns.join(", ")));
                }
            }
            if let Some(e) = &t.error {
                out.push_str(&format!("; {e}"));
            }
            out.push('\n');
        }
        out
    }
}

fn select<'a>(
    config: &'a Config,
    group: Option<&str>,
    table: Option<&str>,
) -> Result<Vec<(&'a GroupConfig, &'a TableConfig)>, CheckError> {
    let groups: Vec<&GroupConfig> = match group {
        Some(g) => vec![config.group(g)?],
        None => config.groups.iter().collect(),
    };
    let selected: Vec<_> = groups
        .into_iter()
        .flat_map(|g| g.tables.iter().map(move |t| (g, t)))
        .filter(|(_, t)| table.is_none_or(|name| t.name == name))
        .collect();
    match table {
        Some(name) if selected.is_empty() => Err(CheckError::UnknownTable(name.to_string())),
        _ => Ok(selected),
    }
}

pub async fn check(
    config: Config,
    group: Option<&str>,
    table: Option<&str>,
) -> Result<Report, CheckError> {
    let targets: Vec<(String, String)> = select(&config, group, table)?
        .into_iter()
        .map(|(g, t)| (g.name.clone(), t.name.clone()))
        .collect();
    let rt = Runtime::new(config)?;
    join_all(targets.iter().map(|(gn, tn)| {
        let rt = &rt;
        async move {
            let (g, t) = rt.config.find(gn, tn).expect("selected from the config");
            rt.confirm(g, t).await;
        }
    }))
    .await;
    let lines: Vec<TableLine> = rt
        .status
        .snapshot()
        .into_iter()
        .filter(|p| targets.iter().any(|(g, t)| *g == p.group && *t == p.table))
        .map(line)
        .collect();
    let databases = rt
        .databases
        .keys()
        .map(|name| DatabaseLine {
            name: name.clone(),
            rows_scanned: rt.metrics.rows_scanned.with_label_values(&[name]).get(),
            rows_fetched: rt.metrics.rows_fetched.with_label_values(&[name]).get(),
        })
        .collect();
    Ok(Report {
        converged: lines.iter().all(|l| l.state == State::Converged),
        tables: lines,
        databases,
    })
}

fn line(p: PairStatus) -> TableLine {
    TableLine {
        missing: p.pending.missing + p.in_flight.missing + p.confirmed.missing,
        extra: p.pending.extra + p.in_flight.extra + p.confirmed.extra,
        changed: p.pending.changed + p.in_flight.changed + p.confirmed.changed,
        group: p.group,
        table: p.table,
        subscriber: p.subscriber,
        state: p.state,
        strategy: p.strategy,
        publisher_rows: p.publisher_rows,
        subscriber_rows: p.subscriber_rows,
        confirmed: p.confirmed,
        pending: p.pending,
        in_flight: p.in_flight,
        schema_mismatch: p.schema_mismatch,
        schema: p.schema,
        compared_columns: p.compared_columns,
        missing_window: p.missing_window,
        sample: p.sample,
        error: p.error,
    }
}
