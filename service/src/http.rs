//! The HTTP surface (axum): `/metrics`, `/healthz`, `/readyz`, the status page (`/`,
//! `/tables/…`, its assets and `/runbook`, from [`crate::page`]) with `POST /login` and
//! `POST /logout` for its token cookie, `/api/v1/status`,
//! `POST /api/v1/groups/{group}/tables/{table}/validate` (a pass on demand, with its id),
//! `GET …/passes/{id}` (how that pass stands) and `GET …/script` (a fresh diff as a
//! script, streamed).
//!
//! Only tables named in the config can be addressed. When a token is configured,
//! `/api/*` needs it (a bearer header, or the HttpOnly cookie the login form sets) and the
//! page shows row keys only with it. Without a token on a non-loopback address,
//! responses carry no row data (no keys): this module must never widen that. Routes
//! with query parameters refuse unknown and repeated ones ([`Params`]). Script requests
//! and refused requests are recorded through `events.rs`. Connection limits live in
//! `connections.rs`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, MatchedPath, Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::json;

use crate::api;
use crate::events::{Denied, Outcome, ScriptRequest, SCRIPT_ROUTE};
use crate::passes::Lookup;
use crate::runtime::Runtime;
use crate::status::{PairStatus, State as PairState};

pub struct App {
    pub runtime: Arc<Runtime>,
    pub ready: AtomicBool,
    /// Keys of differing rows may be shown (loopback, or a token is required).
    pub row_data: bool,
    /// Script requests under way (at most `server.max_concurrent_scripts`).
    pub scripts: Arc<tokio::sync::Semaphore>,
}

/// The pass-status route, beside the validate route that hands out its ids.
const PASS_ROUTE: &str = "/api/v1/groups/{group}/tables/{table}/passes/{id}";

/// The query parameters of the script route.
const SCRIPT_PARAMS: &[&str] = &[
    "subscriber",
    "dialect",
    "mode",
    "guards",
    "include_in_flight",
    "skip_unrepresentable",
    "batch",
    "keys",
];

/// Seconds a client is told to wait (Retry-After) when every script slot is taken.
const RETRY_AFTER_SECONDS: u64 = 10;

/// The cookie the login form sets: the token's bytes in hex, HttpOnly, SameSite=Strict.
const TOKEN_COOKIE: &str = "driftwatch_token";

pub fn router(app: Arc<App>) -> Router {
    let api = Router::new()
        .route("/api/v1/status", get(status))
        .route(SCRIPT_ROUTE, get(script))
        .route(
            "/api/v1/groups/{group}/tables/{table}/validate",
            post(validate),
        )
        .route(PASS_ROUTE, get(pass))
        .merge(crate::page::api_routes())
        .route_layer(middleware::from_fn_with_state(app.clone(), require_token));
    let routes = Router::new()
        .merge(crate::page::routes())
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(api)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route") })
        .with_state(app);
    // Around the whole router: a route's `Allow` header is set outside the layers that
    // `Router::layer` would put around its handlers.
    let explained = tower::Layer::layer(
        &middleware::map_response(explain_method_not_allowed),
        routes,
    );
    Router::new().fallback_service(explained)
}

pub(crate) fn error(code: StatusCode, message: &str) -> Response {
    (code, Json(json!({ "error": message }))).into_response()
}

/// axum answers a known route asked with another method with 405, an `Allow` header and
/// no body: say it in the body too.
async fn explain_method_not_allowed(response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let allowed = allow
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none");
    let mut explained = error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("method not allowed on this route; allowed: {allowed}"),
    );
    if let Some(allow) = allow {
        explained.headers_mut().insert(header::ALLOW, allow);
    }
    explained
}

/// A route's query parameters: each known to the route and given at most once, so that
/// a typo (`dialekt=tsql`) is refused instead of silently ignored.
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(query: Option<&str>, accepted: &[&str]) -> Result<Params, String> {
        let mut params = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if !accepted.contains(&name.as_ref()) {
                return Err(format!(
                    "unknown query parameter {name:?}; this route accepts {}",
                    accepted.join(", ")
                ));
            }
            if params
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                return Err(format!("query parameter {name:?} is given more than once"));
            }
        }
        Ok(Params(params))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// The client's address, as `connections.rs` records it on every request.
fn client_of(req: &Request) -> SocketAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// True when no token is configured, or the request carries it (bearer header or the
/// login cookie).
fn authenticated(app: &App, headers: &HeaderMap) -> bool {
    let Some(token) = &app.runtime.config.server.api_token else {
        return true;
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
        return true;
    }
    let expected = hex(token.as_bytes());
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .any(|(name, value)| {
            name == TOKEN_COOKIE && constant_time_eq(value.as_bytes(), expected.as_bytes())
        })
}

/// Whether this request may see row keys and values: the address rule, and the token
/// when one is configured.
fn may_see_rows(app: &App, headers: &HeaderMap) -> bool {
    app.row_data && authenticated(app, headers)
}

async fn require_token(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if !authenticated(&app, req.headers()) {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        Denied {
            client: client_of(&req),
            route: &route,
            path: req.uri().path(),
            method: req.method().as_str(),
            outcome: Outcome::Unauthorized,
        }
        .emit(&app.runtime.metrics);
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "a valid `Authorization: Bearer <token>` header (or the cookie of the login form at /) is required",
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    next.run(req).await
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

/// The page's login form: a right token sets the cookie that opens row data to this
/// browser (HttpOnly: no script reads it; SameSite=Strict: no other site sends it).
async fn login(
    State(app): State<Arc<App>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Form(form): Form<LoginForm>,
) -> Response {
    let Some(token) = &app.runtime.config.server.api_token else {
        return error(
            StatusCode::NOT_FOUND,
            "no server.api_token_file is configured: there is nothing to sign in to",
        );
    };
    if !constant_time_eq(form.token.trim().as_bytes(), token.as_bytes()) {
        Denied {
            client,
            route: "/login",
            path: "/login",
            method: "POST",
            outcome: Outcome::Unauthorized,
        }
        .emit(&app.runtime.metrics);
        return error(StatusCode::UNAUTHORIZED, "wrong token");
    }
    let cookie = format!(
        "{TOKEN_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
        hex(token.as_bytes())
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

async fn logout() -> Response {
    let cookie = format!("{TOKEN_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The scrape, gzip-compressed when the client accepts it (Prometheus does): the text
/// of a thousand tables is repetitive and shrinks tenfold.
async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let text = app.runtime.metrics.render();
    let content_type = (
        header::CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8",
    );
    if !accepts_gzip(&headers) {
        return ([content_type], text).into_response();
    }
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(text.len() / 8),
        flate2::Compression::fast(),
    );
    std::io::Write::write_all(&mut gz, text.as_bytes()).expect("writing to memory succeeds");
    let body = gz.finish().expect("writing to memory succeeds");
    (
        [
            content_type,
            (header::CONTENT_ENCODING, "gzip"),
            (header::VARY, "accept-encoding"),
        ],
        body,
    )
        .into_response()
}

/// Whether `Accept-Encoding` lists gzip with a non-zero weight.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        })
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

/// The pairs as this request may see them: without row access, no keys and no values
/// (the first differing rows, the missing rows' time window).
fn visible(app: &App, rows: bool) -> Vec<PairStatus> {
    let mut pairs = app.runtime.status.snapshot();
    if !rows {
        for p in &mut pairs {
            p.sample.clear();
            for r in &mut p.mismatched_ranges {
                r.range.clear();
            }
            p.missing_window = None;
        }
    }
    pairs
}

async fn status(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let pairs = visible(&app, may_see_rows(&app, &headers));
    let converged = pairs.iter().all(|p| p.state == PairState::Converged);
    let rt = &app.runtime;
    // `up` is known once the first connections were tried.
    let ready = app.ready.load(Ordering::Acquire);
    let databases = rt
        .databases
        .keys()
        .map(|d| api::DatabaseStatus {
            name: d.clone(),
            up: ready.then(|| rt.metrics.up.with_label_values(&[d]).get() == 1),
        })
        .collect();
    let tables = pairs
        .iter()
        .map(|p| {
            let script = (p.pending.total() + p.in_flight.total() + p.confirmed.total() > 0)
                .then(|| script_url(&p.group, &p.table, &p.subscriber));
            api::TableStatus::new(p, script, rt.requests.last_completed(&p.group, &p.table))
        })
        .collect();
    Json(api::StatusResponse {
        version: env!("CARGO_PKG_VERSION"),
        converged,
        databases,
        tables,
    })
    .into_response()
}

/// Where a pair's fix script is served.
fn script_url(group: &str, table: &str, subscriber: &str) -> String {
    format!(
        "/api/v1/groups/{}/tables/{}/script?subscriber={}",
        url_part(group),
        url_part(table),
        url_part(subscriber)
    )
}

fn pass_url(group: &str, table: &str, id: u64) -> String {
    format!(
        "/api/v1/groups/{}/tables/{}/passes/{id}",
        url_part(group),
        url_part(table)
    )
}

async fn validate(
    State(app): State<Arc<App>>,
    Path((group, table)): Path<(String, String)>,
) -> Response {
    if let Err(e) = app.runtime.config.find(&group, &table) {
        return error(StatusCode::NOT_FOUND, &e.to_string());
    }
    let pass = app
        .runtime
        .trigger(&group, &table)
        .expect("every configured table takes requests");
    let url = pass_url(&group, &table, pass.id);
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, url.clone())],
        Json(
            json!({ "group": group, "table": table, "scheduled": true, "pass": pass, "url": url }),
        ),
    )
        .into_response()
}

/// How a requested pass stands: queued, running, or completed (and when).
async fn pass(
    State(app): State<Arc<App>>,
    Path((group, table, id)): Path<(String, String, String)>,
) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("{id:?} is not a pass id (a number from POST …/validate)"),
        );
    };
    if let Err(e) = app.runtime.config.find(&group, &table) {
        return error(StatusCode::NOT_FOUND, &e.to_string());
    }
    match app.runtime.requests.get(&group, &table, id) {
        None => error(
            StatusCode::NOT_FOUND,
            &format!("no requested passes are kept for {group}/{table}"),
        ),
        Some(Lookup::Unknown) => error(
            StatusCode::NOT_FOUND,
            &format!("no pass {id} was requested for {group}/{table}"),
        ),
        Some(Lookup::Forgotten) => Json(json!({
            "group": group, "table": table, "id": id, "state": "completed", "completed_at": null,
            "note": format!("completed; only the last {} requested passes keep their times", crate::passes::KEPT),
        }))
        .into_response(),
        Some(Lookup::Known(info)) => {
            let mut body = json!(info);
            body["group"] = json!(group);
            body["table"] = json!(table);
            Json(body).into_response()
        }
    }
}

/// Records a script request refused before any work, and answers it.
#[allow(clippy::too_many_arguments)] // the fields of the one log line
fn refuse_script(
    app: &App,
    client: SocketAddr,
    group: &str,
    table: &str,
    subscriber: Option<&str>,
    outcome: Outcome,
    code: StatusCode,
    message: &str,
) -> Response {
    ScriptRequest {
        client,
        group,
        table,
        subscriber,
        dialect: None,
        mode: None,
        outcome,
        detail: Some(message),
    }
    .emit(&app.runtime.metrics);
    error(code, message)
}

/// A fresh diff of one table as a script, streamed while the rows are compared.
async fn script(
    State(app): State<Arc<App>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path((group, table)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let refuse = |subscriber: Option<&str>, outcome, code, message: &str| {
        refuse_script(
            &app, client, &group, &table, subscriber, outcome, code, message,
        )
    };
    if !app.row_data {
        return refuse(
            None,
            Outcome::Forbidden,
            StatusCode::FORBIDDEN,
            "scripts carry row data: on a non-loopback address they need server.api_token_file",
        );
    }
    let params = match Params::parse(query.as_deref(), SCRIPT_PARAMS) {
        Ok(p) => p,
        Err(m) => return refuse(None, Outcome::BadRequest, StatusCode::BAD_REQUEST, &m),
    };
    let rt = &app.runtime;
    let subscriber = match crate::diff::subscriber_of(rt, &group, &table, params.get("subscriber"))
    {
        Ok(s) => s,
        Err(e) => {
            return refuse(
                params.get("subscriber"),
                Outcome::NotFound,
                StatusCode::NOT_FOUND,
                &e.to_string(),
            )
        }
    };
    let options = match script_options(rt, &group, &subscriber, &params) {
        Ok(o) => o,
        Err(m) => {
            return refuse(
                Some(&subscriber),
                Outcome::BadRequest,
                StatusCode::BAD_REQUEST,
                &m,
            )
        }
    };
    let Ok(permit) = app.scripts.clone().try_acquire_owned() else {
        let mut busy = refuse(
            Some(&subscriber),
            Outcome::Busy,
            StatusCode::TOO_MANY_REQUESTS,
            "too many script requests under way; try again later",
        );
        busy.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        return busy;
    };
    let file = script_file_name(&group, &table, &subscriber, &options);
    let (pieces, done) = start_script(
        app.clone(),
        permit,
        client,
        group,
        table,
        subscriber,
        options,
    );
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
        script_body(pieces, done),
    )
        .into_response()
}

/// The script route's query as script options: every parameter checked before any work
/// starts, so that a bad request costs no script slot (the error is the 400's message).
fn script_options(
    rt: &Runtime,
    group: &str,
    subscriber: &str,
    params: &Params,
) -> Result<crate::script::Options, String> {
    use crate::script::{Dialect, Mode};
    let mode = match params.get("mode").map(|m| (m, Mode::parse(m))) {
        None => Mode::Fix,
        Some((_, Some(m))) => m,
        Some((m, None)) => return Err(format!("unknown mode {m:?} (fix, redrive)")),
    };
    let dialect = match params.get("dialect") {
        None => crate::diff::default_dialect(rt, group, subscriber, mode),
        Some(d) => match Dialect::parse(d) {
            Some(d) => d,
            None => {
                return Err(format!(
                    "unknown dialect {d:?} ({})",
                    Dialect::names(", ", ", ")
                ))
            }
        },
    };
    let flag = |name: &str, default: bool| match params.get(name) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(format!("{name} must be true or false, not {v:?}")),
    };
    let (guards, include_in_flight, skip_unrepresentable) = match (
        flag("guards", true),
        flag("include_in_flight", false),
        flag("skip_unrepresentable", false),
    ) {
        (Ok(g), Ok(i), Ok(s)) => (g, i, s),
        (Err(m), _, _) | (_, Err(m), _) | (_, _, Err(m)) => return Err(m),
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
        (Err(m), _) | (_, Err(m)) => return Err(m),
    };
    Ok(crate::script::Options {
        dialect,
        mode,
        guards,
        batch_statements,
        redrive_batch_keys,
        counts_in_header: false,
        include_in_flight,
        skip_unrepresentable,
    })
}

/// The mode as the query, the file name and the request log spell it.
fn mode_name(mode: crate::script::Mode) -> &'static str {
    match mode {
        crate::script::Mode::Fix => "fix",
        crate::script::Mode::Redrive => "redrive",
    }
}

/// The download's file name says what the script is for; only characters safe in a
/// Content-Disposition header and on any file system are kept.
fn script_file_name(
    group: &str,
    table: &str,
    subscriber: &str,
    options: &crate::script::Options,
) -> String {
    let file = format!(
        "driftwatch-{group}-{table}-{subscriber}-{}.{}.sql",
        mode_name(options.mode),
        options.dialect.name()
    );
    file.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Generates the script in its own task, holding the script slot and bounded by
/// server.script_time_limit, so that the response can stream while rows are compared:
/// the pieces come on the first receiver, how it ended on the second.
fn start_script(
    app: Arc<App>,
    permit: tokio::sync::OwnedSemaphorePermit,
    client: SocketAddr,
    group: String,
    table: String,
    subscriber: String,
    options: crate::script::Options,
) -> (
    tokio::sync::mpsc::Receiver<String>,
    tokio::sync::oneshot::Receiver<Result<(), String>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(16);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
    let limit = app.runtime.config.server.script_time_limit;
    tokio::spawn(async move {
        let _permit = permit;
        let rt = &app.runtime;
        let span = tracing::info_span!(
            "script",
            group = %group,
            table = %table,
            subscriber = %subscriber,
            dialect = options.dialect.name(),
            mode = ?options.mode
        );
        let generate = crate::diff::generate(rt, &group, &table, &subscriber, &options, &tx);
        let result = match tokio::time::timeout(
            limit,
            tracing::Instrument::instrument(generate, span),
        )
        .await
        {
            Ok(Ok((summary, _))) => summary.incomplete().map_or(Ok(()), Err),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "the script took longer than server.script_time_limit ({})",
                humantime::format_duration(limit)
            )),
        };
        ScriptRequest {
            client,
            group: &group,
            table: &table,
            subscriber: Some(&subscriber),
            dialect: Some(options.dialect.name()),
            mode: Some(mode_name(options.mode)),
            outcome: match result {
                Ok(()) => Outcome::Served,
                Err(_) => Outcome::Failed,
            },
            detail: result.as_ref().err().map(String::as_str),
        }
        .emit(&rt.metrics);
        drop(tx);
        let _ = done_tx.send(result);
    });
    (rx, done_rx)
}

/// The body: the script's pieces as they come, then, if the script could not be
/// finished, its error trailer as the last piece of a body that ends normally. (A body
/// that ends in an error makes hyper drop the connection with its last pieces still
/// unsent: the trailer would almost never arrive.)
fn script_body(
    rx: tokio::sync::mpsc::Receiver<String>,
    done_rx: tokio::sync::oneshot::Receiver<Result<(), String>>,
) -> axum::body::Body {
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
        Some(Ok(axum::body::Bytes::from(crate::script::error_trailer(
            &error,
        ))))
    });
    axum::body::Body::from_stream(futures::StreamExt::chain(pieces, end))
}

/// Percent-encodes a URL path segment or query value.
fn url_part(s: &str) -> String {
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
