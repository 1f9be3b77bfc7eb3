//! The Prometheus registry and every metric driftwatch exports (their names are part of the
//! interface: dashboards and alert rules use them).
//!
//! Passes run on their own schedule, not at scrape time: each figure is the result of
//! the last completed pass, as the HELP texts say. Labels stay bounded: group, table,
//! subscriber, database and fixed enumerations only, never keys, values or ranges.
//!
//! The series that count a problem (divergent rows, the confirmed row count difference,
//! mismatched chunks, a schema mismatch, the first sighting of a difference) exist only
//! while there is one, so that a scrape of a thousand converged tables stays small;
//! `table_converged` and `validation_last_success_timestamp_seconds` exist for every pair
//! that has passed, so an absent problem series means "none", never "no data".
//!
//! A scrape must not cost in proportion to the work of rebuilding every series: the
//! families with a series per table are kept as text as they change (`family.rs`), and a
//! scrape of a thousand tables copies that text.

mod family;

use family::TextFamilies;
pub use family::{CounterFamily, GaugeFamily};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The families with a series per table are [`GaugeFamily`] and [`CounterFamily`], kept as
/// text (see `family.rs`); those with a series per database, route or group stay in the
/// prometheus crate's registry.
pub struct Metrics {
    registry: Registry,
    texts: TextFamilies,
    pub up: IntGaugeVec,
    pub table_rows: GaugeFamily,
    pub row_count_difference: GaugeFamily,
    pub confirmed_row_count_difference: GaugeFamily,
    pub first_seen: GaugeFamily,
    pub chunks: GaugeFamily,
    pub divergent_rows: GaugeFamily,
    pub converged: GaugeFamily,
    pub schema_mismatch: GaugeFamily,
    pub last_success: GaugeFamily,
    pub duration: HistogramVec,
    pub last_duration: GaugeFamily,
    pub validations: CounterFamily,
    pub rechecks: CounterFamily,
    pub errors: IntCounterVec,
    pub rows_scanned: IntCounterVec,
    pub rows_fetched: IntCounterVec,
    /// Script requests and refused requests, as `events.rs` logs them.
    pub http_audited: IntCounterVec,
}

const PAIR: &[&str] = &["group", "table", "subscriber"];

impl Metrics {
    pub fn new() -> Metrics {
        let registry =
            Registry::new_custom(Some("driftwatch".into()), None).expect("valid registry prefix");
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let mut texts = TextFamilies::default();
        let t = &mut texts;
        let last = " (result of the last completed pass)";
        let m = Metrics {
            up: gauge("up", "1 if the last query to the database succeeded or failed for a table's own reason, 0 if the database could not be reached", &["database"]),
            table_rows: GaugeFamily::new(t, "table_rows", &format!("Rows in the table, honouring its row filter{last}"), &["group", "table", "database", "role"]),
            row_count_difference: GaugeFamily::new(t, "table_row_count_difference", &format!("Publisher rows minus subscriber rows as the last pass counted them; includes rows in flight, so it moves with replication lag (alert on table_confirmed_row_count_difference){last}"), PAIR),
            confirmed_row_count_difference: GaugeFamily::new(t, "table_confirmed_row_count_difference", "Confirmed missing rows minus confirmed extra rows: the row count difference that is not replication lag; absent while zero", PAIR),
            first_seen: GaugeFamily::new(t, "table_divergence_first_seen_timestamp_seconds", "Unix time at which the oldest difference of a status (confirmed, in_flight) was first seen; absent when there is none", &["group", "table", "subscriber", "status"]),
            chunks: GaugeFamily::new(t, "table_chunks", &format!("Chunks by state, matched or mismatched (absent while none is){last}"), &["group", "table", "subscriber", "state"]),
            divergent_rows: GaugeFamily::new(t, "table_divergent_rows", "Rows that differ, by kind (missing, extra, changed on the subscriber) and status: pending (seen, the publisher's side unchanged, not yet proven), in_flight (the publisher's side changed between sightings: rows being written), confirmed (proven at a consistent point: a replication position, or the publisher's side unchanged for confirm_after); absent while zero", &["group", "table", "subscriber", "kind", "status"]),
            converged: GaugeFamily::new(t, "table_converged", "1 when the last complete pass found no confirmed divergence and the compared schemas agree; 0 otherwise, and when the last pass failed", PAIR),
            schema_mismatch: GaugeFamily::new(t, "table_schema_mismatch", &format!("1 when columns differ between publisher and subscriber, absent otherwise{last}"), PAIR),
            last_success: GaugeFamily::new(t, "validation_last_success_timestamp_seconds", "Unix time at the end of the last complete pass", PAIR),
            // One histogram per group, not per table: 19 series per table were most of a
            // large deployment's scrape. Per table, the last pass's duration is a gauge.
            duration: {
                let buckets = vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];
                let h = HistogramVec::new(HistogramOpts::new("validation_duration_seconds", "Duration of one pass, over every table and subscriber of the group").buckets(buckets), &["group"]).expect("valid metric");
                registry.register(Box::new(h.clone())).expect("unique metric");
                h
            },
            last_duration: GaugeFamily::new(t, "validation_last_duration_seconds", &format!("Duration of the last pass{last}"), PAIR),
            validations: CounterFamily::new(t, "validations_total", "Passes by result: converged, pending (differences, none confirmed), divergent (confirmed differences) or error", &["group", "table", "subscriber", "result"]),
            rechecks: CounterFamily::new(t, "rechecks_total", "Rechecks of differences not confirmed yet, by whether they waited for the subscriber's replication position (positions = true) or rested on time", &["group", "table", "subscriber", "positions"]),
            errors: counter("errors_total", "Failed queries and connections, by reason", &["database", "reason"]),
            rows_scanned: counter("rows_scanned_total", "Rows read by digests", &["database"]),
            rows_fetched: counter("rows_fetched_total", "Rows that crossed the network into driftwatch", &["database"]),
            http_audited: counter("http_audited_requests_total", "Script requests by outcome, and requests refused for want of a token (401) or of row-data clearance (403), by route template", &["route", "outcome"]),
            registry: registry.clone(),
            texts,
        };
        let build = gauge(
            "build_info",
            "Always 1; the version label names the build",
            &["version"],
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        m
    }

    /// The text exposition format: the registry's families, then those kept as text.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encoding to memory succeeds");
        let mut text = String::from_utf8(buf).expect("the text format is UTF-8");
        self.texts.render(&mut text);
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registry's families and those kept as text make one exposition: each family
    /// once, its samples after its `# TYPE`, every sample line a name, labels and a number.
    #[test]
    fn the_exposition_has_each_family_once() {
        let m = Metrics::new();
        let pair = ["g", "t", "s"];
        m.up.with_label_values(&["hub"]).set(1);
        m.table_rows.set(&["g", "t", "hub", "publisher"], 5.0);
        m.row_count_difference.set(&pair, 1.0);
        m.confirmed_row_count_difference.set(&pair, 1.0);
        m.first_seen.set(&["g", "t", "s", "confirmed"], 1.5e9);
        m.chunks.set(&["g", "t", "s", "matched"], 3.0);
        m.divergent_rows
            .set(&["g", "t", "s", "missing", "confirmed"], 1.0);
        m.converged.set(&pair, 0.0);
        m.schema_mismatch.set(&pair, 1.0);
        m.last_success.set(&pair, 1.5e9);
        m.duration.with_label_values(&["g"]).observe(0.2);
        m.last_duration.set(&pair, 0.2);
        m.validations.inc(&["g", "t", "s", "divergent"]);
        m.rechecks.inc(&["g", "t", "s", "false"]);
        m.errors.with_label_values(&["hub", "timeout"]).inc();
        m.rows_scanned.with_label_values(&["hub"]).inc_by(5);
        m.rows_fetched.with_label_values(&["hub"]).inc_by(1);
        m.http_audited.with_label_values(&["/x", "401"]).inc();
        let text = m.render();
        let mut families = std::collections::BTreeSet::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                current = rest.split(' ').next().unwrap().to_string();
                assert!(families.insert(current.clone()), "{current} twice");
            } else if !line.starts_with("# HELP ") {
                let (series, value) = line.rsplit_once(' ').unwrap();
                assert!(series.starts_with(&current), "{line} outside its family");
                value.parse::<f64>().unwrap();
            }
        }
        assert_eq!(families.len(), 19, "{families:?}");
    }
}
