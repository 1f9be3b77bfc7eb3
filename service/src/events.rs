//! Events of the HTTP surface that must leave a record: who fetched which script, and
//! every request refused for want of a token (401) or of row-data clearance (403).
//!
//! One struct per event; its `emit` writes the event's one log line and counts it in
//! `driftwatch_http_audited_requests_total{route,outcome}` in the same call, so the log
//! and the metric cannot disagree. Labels stay bounded: `route` is a route template of
//! the router, `outcome` one of [`Outcome`]. Nothing here ever carries a token, a cookie
//! or a row value.

use std::net::SocketAddr;

use crate::metrics::Metrics;

/// How an audited request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The script was sent whole.
    Served,
    /// The script stopped with an error (its transfer ends broken, after the trailer).
    Failed,
    BadRequest,
    NotFound,
    /// `max_concurrent_scripts` requests were under way (429).
    Busy,
    /// No valid token (401).
    Unauthorized,
    /// Row data refused: beyond loopback without a configured token (403).
    Forbidden,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Served,
        Outcome::Failed,
        Outcome::BadRequest,
        Outcome::NotFound,
        Outcome::Busy,
        Outcome::Unauthorized,
        Outcome::Forbidden,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Served => "served",
            Outcome::Failed => "failed",
            Outcome::BadRequest => "bad_request",
            Outcome::NotFound => "not_found",
            Outcome::Busy => "busy",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Forbidden => "forbidden",
        }
    }
}

/// The route template of the script endpoint, its `route` label.
pub const SCRIPT_ROUTE: &str = "/api/v1/groups/{group}/tables/{table}/script";

/// One script request, logged when it ends (served, failed or refused).
pub struct ScriptRequest<'a> {
    pub client: SocketAddr,
    pub group: &'a str,
    pub table: &'a str,
    /// As asked for, or as chosen by default; `None` when the request was refused first.
    pub subscriber: Option<&'a str>,
    pub dialect: Option<&'a str>,
    pub mode: Option<&'a str>,
    pub outcome: Outcome,
    /// Why it failed or was refused.
    pub detail: Option<&'a str>,
}

impl ScriptRequest<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        let outcome = self.outcome.as_str();
        let subscriber = self.subscriber.unwrap_or("");
        let dialect = self.dialect.unwrap_or("");
        let mode = self.mode.unwrap_or("");
        let detail = self.detail.unwrap_or("");
        match self.outcome {
            Outcome::Served => tracing::info!(
                route = SCRIPT_ROUTE, client = %self.client, group = self.group,
                table = self.table, subscriber, dialect, mode, outcome, "script request"
            ),
            _ => tracing::warn!(
                route = SCRIPT_ROUTE, client = %self.client, group = self.group,
                table = self.table, subscriber, dialect, mode, outcome, detail, "script request"
            ),
        }
        count(metrics, SCRIPT_ROUTE, self.outcome);
    }
}

/// A request refused with 401 or 403 on any route.
pub struct Denied<'a> {
    pub client: SocketAddr,
    /// The matched route template.
    pub route: &'a str,
    /// The path asked for (it names the group and table; the query is left out).
    pub path: &'a str,
    pub method: &'a str,
    pub outcome: Outcome,
}

impl Denied<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        tracing::warn!(
            route = self.route,
            path = self.path,
            method = self.method,
            client = %self.client,
            outcome = self.outcome.as_str(),
            "request refused"
        );
        count(metrics, self.route, self.outcome);
    }
}

/// Creates the script route's series at 0, so that rate() sees the first of each.
pub fn register(metrics: &Metrics) {
    for outcome in Outcome::ALL {
        metrics
            .http_audited
            .with_label_values(&[SCRIPT_ROUTE, outcome.as_str()]);
    }
}

fn count(metrics: &Metrics, route: &str, outcome: Outcome) {
    metrics
        .http_audited
        .with_label_values(&[route, outcome.as_str()])
        .inc();
}
