//! Span export: real `check` runs over two SQLite files with known drift, their spans
//! exported with OTLP to receivers on loopback (OTLP/HTTP with protobuf, and OTLP/gRPC
//! through tonic's server), decoded, and their names, attributes and parentage asserted
//! alike; no attribute carries row values.
//!
//! In-process, the subscriber is set up through `telemetry::init_with`, not the OTEL_*
//! variables (environment variables are process-wide), once per process: that run exports
//! over gRPC from a multi-thread runtime, as `serve` runs. The binary, run as a child
//! process with the variables set, runs `check` on a current-thread runtime and must read
//! them (headers included), flush before it exits, over either transport, and write the
//! trace and span ids into its JSON log lines.

use driftwatch_tests as common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderMap};
use common::*;
use driftwatch::telemetry::{self, LogFormat, Options, Otlp, Protocol};
use driftwatch::value::Value;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use prost::Message;

/// One export request as a receiver got it: its HTTP headers (gRPC metadata) and its
/// payload, or why the payload is not one.
struct Export {
    headers: HeaderMap,
    request: Result<ExportTraceServiceRequest, String>,
}

type Received = Arc<Mutex<Vec<Export>>>;

/// An OTLP/HTTP receiver on 127.0.0.1:0: keeps every POST /v1/traces. Returns its base URL.
async fn http_receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post({
            let received = received.clone();
            move |headers: HeaderMap, body: bytes::Bytes| async move {
                let content_type = headers.get(header::CONTENT_TYPE);
                let request = if content_type.is_some_and(|c| c == "application/x-protobuf") {
                    ExportTraceServiceRequest::decode(body).map_err(|e| e.to_string())
                } else {
                    Err(format!("content type {content_type:?}"))
                };
                received.lock().unwrap().push(Export { headers, request });
                // An empty ExportTraceServiceResponse: everything accepted.
                (
                    [(header::CONTENT_TYPE, "application/x-protobuf")],
                    Vec::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

struct Collector(Received);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = request.metadata().clone().into_headers();
        let request = Ok(request.into_inner());
        self.0.lock().unwrap().push(Export { headers, request });
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// An OTLP/gRPC receiver (the collector's TraceService) on 127.0.0.1:0, plaintext.
/// Returns its address as an http:// URL.
async fn grpc_receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(Collector(received.clone())))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    tokio::spawn(async move { server.await.unwrap() });
    (url, received)
}

/// One exported span, flattened.
#[derive(Debug)]
struct Span {
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Vec<u8>,
    attributes: BTreeMap<String, String>,
}

fn flatten(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::IntValue(i)) => i.to_string(),
                Some(any_value::Value::BoolValue(b)) => b.to_string(),
                Some(any_value::Value::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

/// A text key in one chunk larger than a fetch (localizing bisects, then fetches rows),
/// with drift; every row's `note` carries a marker that no span may show. Returns the
/// config file.
fn drifted_pair(dir: &Path) -> PathBuf {
    let (pub_db, sub_db) = (dir.join("pub.db"), dir.join("sub.db"));
    let schema = text_key_schema();
    let mut case = Case::generate(
        schema.clone(),
        3000,
        7,
        Domain {
            portable: false,
            sqlite: true,
        },
    );
    let note = schema.cols.iter().position(|c| c.name == "note").unwrap();
    let mut notes = HashMap::new();
    for (i, row) in case.publisher.iter_mut().enumerate() {
        row[note] = Value::Text(format!("row-secret-{i}"));
        notes.insert(key_strings(&row[..schema.key]), row[note].clone());
    }
    for row in &mut case.subscriber {
        row[note] = notes
            .get(&key_strings(&row[..schema.key]))
            .cloned()
            .unwrap_or_else(|| Value::Text("row-secret-extra".into()));
    }
    sqlite_load(&pub_db, "items", &schema, &case.publisher);
    sqlite_load(&sub_db, "items", &schema, &case.subscriber);
    write_config(
        dir,
        &format!(
            r#"
[defaults]
confirm_after = "100ms"
chunk_rows = 5000

[databases.pub]
url = "{}"
[databases.sub]
url = "{}"

[[groups]]
name = "g"
publisher = "pub"
subscribers = ["sub"]

[[groups.tables]]
name = "items"
"#,
            sqlite_url(&pub_db),
            sqlite_url(&sub_db)
        ),
    )
}

/// Every span received, decoded; the payloads must be export requests from driftwatch.
fn decode(received: &Received) -> Vec<Span> {
    let mut spans = Vec::new();
    for export in received.lock().unwrap().iter() {
        let request = export.request.as_ref().expect("an OTLP export request");
        for resource_spans in &request.resource_spans {
            let resource = resource_spans
                .resource
                .as_ref()
                .map(|r| flatten(&r.attributes))
                .unwrap_or_default();
            assert_eq!(resource["service.name"], "driftwatch");
            assert_eq!(resource["service.version"], env!("CARGO_PKG_VERSION"));
            for scope in &resource_spans.scope_spans {
                for s in &scope.spans {
                    spans.push(Span {
                        name: s.name.clone(),
                        trace_id: s.trace_id.clone(),
                        span_id: s.span_id.clone(),
                        parent: s.parent_span_id.clone(),
                        attributes: flatten(&s.attributes),
                    });
                }
            }
        }
    }
    spans
}

/// What a `check` of [`drifted_pair`] must have exported, whatever the transport: a pass
/// over the table, chunk digests of both sides under it, a bisection with its row
/// fetches, a recheck, and no row values in any attribute.
fn assert_check_spans(spans: &[Span]) {
    let named = |name: &'static str| spans.iter().filter(move |s| s.name == name);
    let by_id: HashMap<&[u8], &Span> = spans.iter().map(|s| (&s.span_id[..], s)).collect();
    // The span's ancestor named `name`, if any.
    let ancestor = |s: &Span, name: &str| {
        let mut at = by_id.get(&s.parent[..]).copied();
        while let Some(p) = at {
            if p.name == name {
                return Some(p);
            }
            at = by_id.get(&p.parent[..]).copied();
        }
        None
    };

    let pass = named("pass").next().expect("a pass span");
    assert_eq!(pass.attributes["group"], "g");
    assert_eq!(pass.attributes["table"], "items");

    let digests: Vec<&Span> = named("chunk_digest").collect();
    assert!(!digests.is_empty());
    for side in ["publisher", "sub"] {
        let d = digests
            .iter()
            .find(|d| d.attributes["subscriber"] == side)
            .unwrap_or_else(|| panic!("no chunk_digest of {side}: {digests:#?}"));
        let database = if side == "publisher" { "pub" } else { "sub" };
        assert_eq!(d.attributes["database"], database);
        assert_eq!(d.attributes["table"], "items");
        assert!(d.attributes.contains_key("range"), "{d:#?}");
        assert_eq!(ancestor(d, "pass").map(|p| &p.span_id), Some(&pass.span_id));
        assert_eq!(d.trace_id, pass.trace_id);
    }

    let bisect = named("bisect")
        .find(|b| ancestor(b, "pass").is_some())
        .expect("a bisect span under the pass");
    assert_eq!(bisect.attributes["database"], "sub");
    assert!(bisect.attributes.contains_key("range"));
    assert!(
        named("recheck").next().is_some(),
        "differences are rechecked after confirm_after"
    );

    let fetches: Vec<&Span> = named("row_fetch").collect();
    assert!(fetches.iter().any(|f| ancestor(f, "bisect").is_some()));
    for f in &fetches {
        assert!(["pub", "sub"].contains(&f.attributes["database"].as_str()));
        assert!(f.attributes.contains_key("range"));
        assert!(
            f.attributes["rows"].parse::<u64>().unwrap() <= 2048,
            "{f:#?}"
        );
    }
    assert!(fetches
        .iter()
        .any(|f| f.attributes["rows"].parse::<u64>().unwrap() > 0));

    for s in spans {
        for (key, value) in &s.attributes {
            assert!(
                !value.contains("row-secret"),
                "span {} attribute {key} carries row values: {value}",
                s.name
            );
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// In-process, over gRPC, from a multi-thread runtime (as `serve` runs).
#[test]
fn a_check_exports_its_spans_over_otlp_grpc() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (endpoint, received) = runtime.block_on(grpc_receiver());
    let telemetry = telemetry::init_with(Options {
        log_format: LogFormat::Json,
        otlp: Some(Otlp {
            endpoint,
            protocol: Protocol::Grpc,
            timeout: telemetry::DEFAULT_TIMEOUT,
        }),
    })
    .unwrap();

    let dir = temp_dir();
    let config = driftwatch::config::load(&drifted_pair(dir.path())).unwrap();
    let report = runtime
        .block_on(driftwatch::check::check(config, None, None))
        .unwrap();
    assert_eq!(report.exit_code(), 1, "{}", report.human());
    // Flushes: blocks until the exporter has sent what is buffered (the receiver keeps
    // running on the runtime's worker threads).
    telemetry.shutdown();

    assert_check_spans(&decode(&received));
}

/// Runs the binary's `check` of [`drifted_pair`] with only the given OTEL_* variables
/// (besides the endpoint and headers), and asserts what `receiver` got: complete spans,
/// the headers on every export, and the pass span that the JSON log lines name.
fn exported_check(receiver: (String, Received), variables: &[(&str, &str)]) {
    let (endpoint, received) = receiver;
    let dir = temp_dir();
    let config = drifted_pair(dir.path());
    let mut command = std::process::Command::new(driftwatch_tests::bin());
    command
        .args(["check", "--log-format", "json", "--config"])
        .arg(&config);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OTEL_") {
            command.env_remove(name);
        }
    }
    let out = command
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-driftwatch-test=exported%20check",
        )
        .envs(variables.iter().copied())
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");

    let pass_complete: serde_json::Value = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "pass complete")
        .unwrap_or_else(|| panic!("no JSON line \"pass complete\": {stderr}"));
    let trace_id = pass_complete["trace_id"].as_str().unwrap();
    let span_id = pass_complete["span_id"].as_str().unwrap();
    assert_eq!((trace_id.len(), span_id.len()), (32, 16), "{pass_complete}");

    // Exported before the process exited.
    let spans = decode(&received);
    assert!(
        spans.iter().any(|s| s.name == "pass"
            && hex(&s.trace_id) == trace_id
            && hex(&s.span_id) == span_id),
        "no pass span {trace_id}/{span_id}: {spans:#?}"
    );
    assert_check_spans(&spans);
    for export in received.lock().unwrap().iter() {
        assert_eq!(export.headers["x-driftwatch-test"], "exported check");
    }
}

/// Without a protocol variable: OTLP/HTTP with protobuf, the specification's default.
#[test]
fn the_binary_exports_over_http_by_default() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    exported_check(runtime.block_on(http_receiver()), &[]);
}

/// gRPC from `check`'s current-thread runtime, flushed after that runtime has returned.
#[test]
fn the_binary_exports_over_grpc() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    exported_check(
        runtime.block_on(grpc_receiver()),
        &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
    );
}
