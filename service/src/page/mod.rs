//! The status page, served by the binary itself: the overview at `/`, a table's page at
//! `/tables/{group}/{table}`, their static assets and the alert runbook at `/runbook`,
//! and the differing rows behind the table page (`…/rows` under `/api/v1`).
//!
//! The HTML, CSS and JavaScript are compiled in (no CDN, no external font or script: the
//! page works on an air-gapped host). The HTML carries no status and no row data: the
//! scripts fetch them from `/api/v1`, which needs the API token when one is configured,
//! so the page asks for it then. Nothing here may serve row values where the API would
//! not (see `http::App::row_data`).

pub mod rows;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::compare::localize::Kind;
use crate::http::{error, App};
use rows::{RowsError, RowsQuery, MAX_PAGE_ROWS};

const INDEX_HTML: &str = include_str!("assets/index.html");
const TABLE_HTML: &str = include_str!("assets/table.html");
const CSS: &str = include_str!("assets/page.css");
const COMMON_JS: &str = include_str!("assets/common.js");
const STATUS_JS: &str = include_str!("assets/status.js");
const TABLE_JS: &str = include_str!("assets/table.js");
const RUNBOOK_MD: &str = include_str!("../../../docs/runbook.md");

/// The page routes, all open: they carry no data of their own.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(index))
        .route("/tables/{group}/{table}", get(table))
        .route("/assets/{file}", get(asset))
        .route("/runbook", get(runbook))
}

/// The differing rows of a table, a page at a time (mounted under the token check).
pub fn api_routes() -> Router<Arc<App>> {
    Router::new().route("/api/v1/groups/{group}/tables/{table}/rows", get(rows))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A page's HTML with what its scripts need to know about this server in `<body>`.
fn shell(app: &App, html: &str) -> Response {
    let server = &app.runtime.config.server;
    let body = format!(
        "<body data-version=\"{}\" data-token=\"{}\" data-row-data=\"{}\"{}>",
        env!("CARGO_PKG_VERSION"),
        server.api_token.is_some(),
        app.row_data,
        server
            .grafana_url
            .as_deref()
            .map(|u| format!(" data-grafana=\"{}\"", esc(u)))
            .unwrap_or_default()
    );
    (
        [(header::CACHE_CONTROL, "no-cache")],
        Html(html.replacen("<body>", &body, 1)),
    )
        .into_response()
}

async fn index(State(app): State<Arc<App>>) -> Response {
    shell(&app, INDEX_HTML)
}

async fn table(
    State(app): State<Arc<App>>,
    Path((group, table)): Path<(String, String)>,
) -> Response {
    if let Err(e) = app.runtime.config.find(&group, &table) {
        return error(StatusCode::NOT_FOUND, &e.to_string());
    }
    shell(&app, TABLE_HTML)
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "page.css" => (CSS, "text/css; charset=utf-8"),
        "common.js" => (COMMON_JS, "text/javascript; charset=utf-8"),
        "status.js" => (STATUS_JS, "text/javascript; charset=utf-8"),
        "table.js" => (TABLE_JS, "text/javascript; charset=utf-8"),
        _ => return error(StatusCode::NOT_FOUND, "no such asset"),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The runbook (docs/runbook.md), rendered once; its sections keep their anchors.
static RUNBOOK: LazyLock<String> = LazyLock::new(|| {
    let mut body = String::new();
    pulldown_cmark::html::push_html(
        &mut body,
        pulldown_cmark::Parser::new_ext(RUNBOOK_MD, pulldown_cmark::Options::ENABLE_TABLES),
    );
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <title>driftwatch runbook</title><link rel=stylesheet href=/assets/page.css></head>\
         <body><main class=runbook><p><a href=/>← status</a></p>{body}</main></body></html>"
    )
});

async fn runbook() -> Html<&'static str> {
    Html(RUNBOOK.as_str())
}

async fn rows(
    State(app): State<Arc<App>>,
    Path((group, table)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if !app.row_data {
        return error(
            StatusCode::FORBIDDEN,
            "rows carry row data: on a non-loopback address they need server.api_token_file",
        );
    }
    let query = match rows_query(&params) {
        Ok(q) => q,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    // Reading rows costs the databases what a script does: they share the script limits.
    let Ok(_permit) = app.scripts.clone().try_acquire_owned() else {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many script or row requests under way; try again later",
        );
    };
    let limit = app.runtime.config.server.script_time_limit;
    let read = rows::read(&app.runtime, &group, &table, &query);
    match tokio::time::timeout(limit, read).await {
        Ok(Ok(page)) => Json(page).into_response(),
        Ok(Err(e @ RowsError::Lookup(_))) => error(StatusCode::NOT_FOUND, &e.to_string()),
        Ok(Err(e @ RowsError::NoPass(..))) => error(StatusCode::CONFLICT, &e.to_string()),
        Ok(Err(e @ RowsError::Engine(_))) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "reading the rows took longer than server.script_time_limit ({})",
                humantime::format_duration(limit)
            ),
        ),
    }
}

fn rows_query(params: &HashMap<String, String>) -> Result<RowsQuery, String> {
    const KNOWN: [&str; 4] = ["subscriber", "kind", "offset", "limit"];
    if let Some(p) = params.keys().find(|p| !KNOWN.contains(&p.as_str())) {
        return Err(format!(
            "unknown parameter {p:?} (subscriber, kind, offset, limit)"
        ));
    }
    let kind = match params.get("kind").map(String::as_str) {
        None | Some("") | Some("all") => None,
        Some(k) => Some(
            Kind::ALL
                .into_iter()
                .find(|x| x.as_str() == k)
                .ok_or_else(|| format!("unknown kind {k:?} (missing, extra, changed, all)"))?,
        ),
    };
    let offset = match params.get("offset") {
        None => 0,
        Some(o) => o
            .parse::<u64>()
            .map_err(|_| format!("offset must be a whole number, not {o:?}"))?,
    };
    let limit = match params.get("limit") {
        None => 50,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE_ROWS).contains(&n) => n,
            _ => return Err(format!("limit must be 1 to {MAX_PAGE_ROWS}, not {l:?}")),
        },
    };
    Ok(RowsQuery {
        subscriber: params.get("subscriber").cloned(),
        kind,
        offset,
        limit,
    })
}
