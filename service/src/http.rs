//! The HTTP surface (axum): `/metrics`, `/healthz`, `/readyz`, the HTML overview at `/`,
//! `/api/v1/status`, `POST /api/v1/groups/{group}/tables/{table}/validate`, and
//! `GET /api/v1/groups/{group}/tables/{table}/script` (a fresh diff as a script, streamed).
//!
//! Only tables named in the config can be addressed. `/api/*` needs the bearer token
//! when one is configured. Without a token on a non-loopback address, responses carry
//! no row data (no keys): this module must never widen that.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::json;

use crate::scheduler::Runtime;
use crate::status::{PairStatus, State as PairState};

pub struct App {
    pub runtime: Arc<Runtime>,
    pub ready: AtomicBool,
    /// Keys of differing rows may be shown (loopback, or a token is required).
    pub row_data: bool,
    /// Script requests under way (at most `server.max_concurrent_scripts`).
    pub scripts: Arc<tokio::sync::Semaphore>,
}

pub fn router(app: Arc<App>) -> Router {
    let api = Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/groups/{group}/tables/{table}/script", get(script))
        .route(
            "/api/v1/groups/{group}/tables/{table}/validate",
            post(validate),
        )
        .route_layer(middleware::from_fn_with_state(app.clone(), require_token));
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(api)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route") })
        .with_state(app)
}

fn error(code: StatusCode, message: &str) -> Response {
    (code, Json(json!({ "error": message }))).into_response()
}

async fn require_token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    if let Some(token) = &app.runtime.config.server.api_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let ok = given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes()));
        if !ok {
            return error(
                StatusCode::UNAUTHORIZED,
                "a valid `Authorization: Bearer <token>` header is required",
            );
        }
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.runtime.metrics.render(),
    )
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: first connections not tried yet\n",
        )
            .into_response()
    }
}

fn visible(app: &App) -> Vec<PairStatus> {
    let mut pairs = app.runtime.status.snapshot();
    if !app.row_data {
        for p in &mut pairs {
            p.sample.clear();
        }
    }
    pairs
}

async fn status(State(app): State<Arc<App>>) -> Response {
    let pairs = visible(&app);
    let converged = pairs.iter().all(|p| p.state == PairState::Converged);
    Json(json!({ "version": env!("CARGO_PKG_VERSION"), "converged": converged, "tables": pairs }))
        .into_response()
}

async fn validate(
    State(app): State<Arc<App>>,
    Path((group, table)): Path<(String, String)>,
) -> Response {
    let config = &app.runtime.config;
    let Some(g) = config.group(&group) else {
        return error(
            StatusCode::NOT_FOUND,
            &format!("no group {group:?} in the config"),
        );
    };
    if g.table(&table).is_none() {
        return error(
            StatusCode::NOT_FOUND,
            &format!("no table {table:?} in group {group:?}"),
        );
    }
    app.runtime.trigger(&group, &table);
    (
        StatusCode::ACCEPTED,
        Json(json!({ "group": group, "table": table, "scheduled": true })),
    )
        .into_response()
}

/// A fresh diff of one table as a script, streamed while the rows are compared.
async fn script(
    State(app): State<Arc<App>>,
    Path((group, table)): Path<(String, String)>,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> Response {
    use crate::script::{self, Dialect, Mode, ScriptError};
    if !app.row_data {
        return error(
            StatusCode::FORBIDDEN,
            "scripts carry row data: on a non-loopback address they need server.api_token_file",
        );
    }
    let rt = &app.runtime;
    let subscriber = match script::subscriber_of(
        rt,
        &group,
        &table,
        params.get("subscriber").map(String::as_str),
    ) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::NOT_FOUND, &e.to_string()),
    };
    let mode = match params
        .get("mode")
        .map(String::as_str)
        .map(|m| (m, Mode::parse(m)))
    {
        None => Mode::Fix,
        Some((_, Some(m))) => m,
        Some((m, None)) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("unknown mode {m:?} (fix, redrive)"),
            )
        }
    };
    let dialect = match params.get("dialect") {
        None => script::default_dialect(rt, &group, &subscriber, mode),
        Some(d) => match Dialect::parse(d) {
            Some(d) => d,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("unknown dialect {d:?} (tsql, postgres, mysql, sqlite)"),
                )
            }
        },
    };
    let flag = |name: &str, default: bool| match params.get(name).map(String::as_str) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(format!("{name} must be true or false, not {v:?}")),
    };
    let (guards, skip_unrepresentable) =
        match (flag("guards", true), flag("skip_unrepresentable", false)) {
            (Ok(g), Ok(s)) => (g, s),
            (Err(m), _) | (_, Err(m)) => return error(StatusCode::BAD_REQUEST, &m),
        };
    let number = |name: &str, default: usize| match params.get(name).map(|v| v.parse::<usize>()) {
        None => Ok(default),
        Some(Ok(n)) if n > 0 => Ok(n),
        Some(_) => Err(format!("{name} must be a positive number")),
    };
    let server = &rt.config.server;
    let (batch_statements, redrive_batch_keys) = match (
        number("batch", server.script_batch_statements),
        number("keys", server.redrive_batch_keys),
    ) {
        (Ok(b), Ok(k)) => (b, k),
        (Err(m), _) | (_, Err(m)) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let Ok(permit) = app.scripts.clone().try_acquire_owned() else {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many script requests under way; try again later",
        );
    };
    let options = script::Options {
        dialect,
        mode,
        guards,
        batch_statements,
        redrive_batch_keys,
        counts_in_header: false,
        skip_unrepresentable,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(16);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
    let limit = server.script_time_limit;
    let file = format!(
        "driftwatch-{group}-{table}-{subscriber}-{}.{}.sql",
        match mode {
            Mode::Fix => "fix",
            Mode::Redrive => "redrive",
        },
        dialect.name()
    );
    let file: String = file
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let app2 = app.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let rt = &app2.runtime;
        let span = tracing::info_span!(
            "script",
            group = %group,
            table = %table,
            subscriber = %subscriber,
            dialect = options.dialect.name(),
            mode = ?options.mode
        );
        let generate = script::generate(rt, &group, &table, &subscriber, &options, &tx);
        let result = match tokio::time::timeout(
            limit,
            tracing::Instrument::instrument(generate, span),
        )
        .await
        {
            Ok(Ok((summary, _))) => summary.incomplete().map_or(Ok(()), Err),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(ScriptError::Compare(format!(
                "the script took longer than server.script_time_limit ({})",
                humantime::format_duration(limit)
            ))
            .to_string()),
        };
        if let Err(e) = &result {
            tracing::warn!(%group, %table, %subscriber, error = %e, "script failed");
        }
        drop(tx);
        let _ = done_tx.send(result);
    });
    // The body: the script's pieces as they come, then, if the script could not be
    // finished, its error trailer as the last piece of a body that ends normally. (A body
    // that ends in an error makes hyper drop the connection with its last pieces still
    // unsent: the trailer would almost never arrive.)
    let pieces = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|s| (Ok::<_, std::io::Error>(axum::body::Bytes::from(s)), rx))
    });
    let end = futures::stream::once(done_rx).filter_map(|r| async move {
        let error = match r {
            Ok(Ok(())) => return None,
            Ok(Err(e)) => e,
            Err(_) => "the script task ended unexpectedly".to_string(),
        };
        Some(Ok(axum::body::Bytes::from(script::error_trailer(&error))))
    });
    (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        axum::body::Body::from_stream(futures::StreamExt::chain(pieces, end)),
    )
        .into_response()
}

/// Percent-encodes a URL path segment or query value.
pub fn url_part(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

async fn index(State(app): State<Arc<App>>) -> Html<String> {
    let pairs = visible(&app);
    let mut rows = String::new();
    for p in &pairs {
        let state = p.state.name();
        let n = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "–".into());
        let mut detail = String::new();
        if let Some(e) = &p.error {
            detail.push_str(&format!("<div class=err>{}</div>", esc(e)));
        }
        if p.schema_mismatch {
            let s = &p.schema;
            detail.push_str(&format!(
                "<div>schema differs: publisher only [{}], subscriber only [{}], types [{}]</div>",
                esc(&s.publisher_only.join(", ")),
                esc(&s.subscriber_only.join(", ")),
                esc(&s.type_mismatch.join("; "))
            ));
        }
        if !p.schema.unsupported.is_empty() || !p.schema.excluded.is_empty() {
            detail.push_str(&format!(
                "<div>not compared: {}</div>",
                esc(&p
                    .schema
                    .unsupported
                    .iter()
                    .chain(&p.schema.excluded)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "))
            ));
        }
        if let Some(script) = p.script.as_ref().filter(|_| app.row_data) {
            detail.push_str(&format!(
                "<div>scripts: <a href=\"{0}\">fix</a> · <a href=\"{0}&amp;mode=redrive\">redrive</a></div>",
                esc(script)
            ));
        }
        if let Some((a, b)) = &p.missing_window {
            detail.push_str(&format!(
                "<div>missing rows between {} and {}</div>",
                esc(a),
                esc(b)
            ));
        }
        if !p.sample.is_empty() {
            let items: Vec<String> = p
                .sample
                .iter()
                .map(|s| {
                    let cols = if s.changed_columns.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", s.changed_columns.join(", "))
                    };
                    format!(
                        "<li>{:?} key ({}){}{}</li>",
                        s.kind,
                        esc(&s.key.join(", ")),
                        esc(&cols),
                        if s.confirmed { "" } else { " – pending" }
                    )
                })
                .collect();
            detail.push_str(&format!(
                "<details><summary>first differing rows</summary><ul>{}</ul></details>",
                items.join("")
            ));
        }
        rows.push_str(&format!(
            "<tr class={state}><td>{}</td><td>{}</td><td>{} → {}</td><td>{state}</td><td>{}</td><td>{}</td>\
             <td>{} / {} / {}</td><td>{} / {} / {}</td><td>{}</td><td>{}</td></tr>",
            esc(&p.group),
            esc(&p.table),
            esc(&p.publisher),
            esc(&p.subscriber),
            n(p.publisher_rows),
            n(p.subscriber_rows),
            p.confirmed.missing,
            p.confirmed.extra,
            p.confirmed.changed,
            p.pending.missing,
            p.pending.extra,
            p.pending.changed,
            esc(p.last_success.as_deref().unwrap_or("never")),
            detail
        ));
    }
    Html(format!(
        "<!doctype html><html><head><meta charset=utf-8><meta http-equiv=refresh content=10>\
         <title>driftwatch</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}\
         .converged td:nth-child(4){{color:#080}}.divergent td:nth-child(4),.error td:nth-child(4),.err{{color:#b00}}\
         .pending td:nth-child(4){{color:#a60}}</style></head><body>\
         <h1>driftwatch</h1><p>Every figure is the result of the last completed pass. \
         <a href=/metrics>metrics</a> · <a href=/api/v1/status>status JSON</a></p>\
         <table><tr><th>group</th><th>table</th><th>publisher → subscriber</th><th>state</th>\
         <th>publisher rows</th><th>subscriber rows</th><th>confirmed missing / extra / changed</th>\
         <th>pending missing / extra / changed</th><th>last success</th><th>detail</th></tr>{rows}</table>\
         </body></html>"
    ))
}
