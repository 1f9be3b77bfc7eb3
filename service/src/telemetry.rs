//! Logs and traces.
//!
//! Logs: text or JSON lines on stderr, filtered by RUST_LOG (default `info`). JSON lines
//! carry the `trace_id` and `span_id` of the current span while spans are exported.
//!
//! Traces: spans (`pass`, `recheck`, `chunk_digest`, `bisect`, `row_fetch`) exported with
//! OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set,
//! or `OTEL_TRACES_EXPORTER=otlp` (then to the default endpoint); off with
//! `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. The protocol is that of
//! `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`: `http/protobuf` (the default), `http/json` or
//! `grpc`. `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT` (milliseconds, default 10 s) bounds one
//! export; headers and resource attributes apply as the OpenTelemetry SDK reads them;
//! payloads are not compressed. A variable with a value that cannot be used is a startup
//! error naming it.
//!
//! Log lines and span attributes name groups, tables, databases and key ranges, never row
//! values or credentials.

use std::fmt;
use std::io::IsTerminal;
use std::time::Duration;

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::tonic_types::transport::ClientTlsConfig;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// How spans travel to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (tonic), plaintext for `http://` endpoints, TLS for `https://`.
    Grpc,
    /// OTLP/HTTP with protobuf payloads.
    HttpProtobuf,
    /// OTLP/HTTP with JSON payloads.
    HttpJson,
}

/// Where spans go, and how.
#[derive(Debug, Clone)]
pub struct Otlp {
    /// Over HTTP, the full traces URL (`http://collector:4318/v1/traces`); over gRPC, the
    /// collector's address (`http://collector:4317`; `https://` for TLS).
    pub endpoint: String,
    pub protocol: Protocol,
    /// For one export request.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub log_format: LogFormat,
    /// `None`: no export.
    pub otlp: Option<Otlp>,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A standard variable's value that cannot be used. The value itself is not repeated:
    /// headers carry credentials.
    #[error("{var}: {problem}")]
    Variable { var: &'static str, problem: String },
    #[error("OpenTelemetry OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("OpenTelemetry OTLP exporter: HTTP client: {0}")]
    Client(String),
    #[error("OpenTelemetry OTLP exporter: the gRPC exporter's runtime: {0}")]
    Runtime(std::io::Error),
}

/// The running telemetry; [`Telemetry::shutdown`] exports the spans still buffered.
#[must_use = "call shutdown() before exiting, or buffered spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    /// Drives the gRPC exporter's connection, until `shutdown` has flushed.
    runtime: Option<ExportRuntime>,
}

impl Telemetry {
    /// Exports what is buffered and stops the exporter. It blocks (up to the exporter's
    /// timeout): call it outside async code, or from `spawn_blocking`.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(e) = provider.shutdown() {
                tracing::warn!(error = %e, "exporting the last spans failed");
            }
        }
        // Only now: the last export above ran on it.
        drop(self.runtime);
    }
}

/// Logs in `log_format`; spans exported when the standard OTLP variables ask for it.
pub fn init(log_format: LogFormat) -> Result<Telemetry, TelemetryError> {
    let otlp = otlp_from_env(|name| std::env::var(name).ok())?;
    init_with(Options { log_format, otlp })
}

/// The standard default of OTEL_EXPORTER_OTLP_TIMEOUT.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The standard default endpoints, by transport.
const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";
const DEFAULT_HTTP_ENDPOINT: &str = "http://localhost:4318";

/// A standard variable that is set, with its name for the error that blames it.
type Var = Option<(&'static str, String)>;

/// Reads the standard variables (through `env`); `None`: no export.
fn otlp_from_env(env: impl Fn(&str) -> Option<String>) -> Result<Option<Otlp>, TelemetryError> {
    // An empty variable counts as unset, as the specification asks.
    let var = |name: &'static str| {
        env(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .map(|v| (name, v))
    };
    // The signal's own variable wins over the general one.
    let either = |traces, general| var(traces).or_else(|| var(general));

    if let Some((name, value)) = var("OTEL_SDK_DISABLED") {
        if boolean(name, &value)? {
            return Ok(None);
        }
    }
    let traces_endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let base_endpoint = var("OTEL_EXPORTER_OTLP_ENDPOINT");
    if !exporting(
        var("OTEL_TRACES_EXPORTER"),
        traces_endpoint.is_some() || base_endpoint.is_some(),
    )? {
        return Ok(None);
    }
    let protocol = protocol(either(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ))?;
    let insecure = either(
        "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
        "OTEL_EXPORTER_OTLP_INSECURE",
    );
    let endpoint = endpoint(protocol, traces_endpoint, base_endpoint, insecure)?;
    let timeout = timeout(either(
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ))?;
    // The exporter reads the headers itself, and skips what it cannot parse: refuse that
    // here instead, so that a collector does not reject every export for a missing token.
    if let Some((name, value)) = either(
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_EXPORTER_OTLP_HEADERS",
    ) {
        headers(name, &value)?;
    }
    Ok(Some(Otlp {
        endpoint,
        protocol,
        timeout,
    }))
}

/// Whether spans are exported at all, by OTEL_TRACES_EXPORTER and whether an endpoint is
/// set: driftwatch exports only when asked to.
fn exporting(exporter: Var, endpoint_set: bool) -> Result<bool, TelemetryError> {
    match exporter {
        Some((_, value)) if value.eq_ignore_ascii_case("none") => Ok(false),
        Some((_, value)) if value.eq_ignore_ascii_case("otlp") => Ok(true),
        Some((name, value)) => Err(invalid(
            name,
            format!("{value:?} is not an exporter of this build (otlp or none)"),
        )),
        // The specification's default is `otlp`, to localhost; driftwatch exports only
        // when asked to, so that a `check` where no collector listens logs no export
        // errors and waits for none at exit.
        None => Ok(endpoint_set),
    }
}

/// The transport, from OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL.
fn protocol(setting: Var) -> Result<Protocol, TelemetryError> {
    match setting {
        // The specification's default: it keeps grpc as the default only for SDKs that
        // had it so in a stable release, which driftwatch never did.
        None => Ok(Protocol::HttpProtobuf),
        Some((name, value)) => match value.to_ascii_lowercase().as_str() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "http/json" => Ok(Protocol::HttpJson),
            _ => Err(invalid(
                name,
                format!("{value:?} is not grpc, http/protobuf or http/json"),
            )),
        },
    }
}

/// Where spans are sent: the endpoint variables mean different things over gRPC (an
/// address) and over HTTP (a URL, or a base the traces path is added to).
fn endpoint(
    protocol: Protocol,
    traces_endpoint: Var,
    base_endpoint: Var,
    insecure: Var,
) -> Result<String, TelemetryError> {
    Ok(match (protocol, traces_endpoint, base_endpoint) {
        // gRPC has no per-signal path: either variable is the collector's address.
        (Protocol::Grpc, traces, base) => match traces.or(base) {
            None => DEFAULT_GRPC_ENDPOINT.to_string(),
            Some((name, value)) => {
                // An address without a scheme is plaintext only when the INSECURE
                // variable says so, as the specification (and the exporter) have it.
                let value = if value.contains("://") {
                    value
                } else {
                    let insecure = match insecure {
                        Some((insecure_var, v)) => boolean(insecure_var, &v)?,
                        None => false,
                    };
                    let scheme = if insecure { "http" } else { "https" };
                    format!("{scheme}://{value}")
                };
                url(name, value)?
            }
        },
        // The per-signal URL is used as it is; the general one is a base.
        (_, Some((name, value)), _) => url(name, value)?,
        (_, None, Some((name, value))) => {
            url(name, format!("{}/v1/traces", value.trim_end_matches('/')))?
        }
        (_, None, None) => format!("{DEFAULT_HTTP_ENDPOINT}/v1/traces"),
    })
}

/// How long one export may take, from OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT.
fn timeout(setting: Var) -> Result<Duration, TelemetryError> {
    match setting {
        None => Ok(DEFAULT_TIMEOUT),
        Some((name, value)) => match value.parse::<u64>() {
            Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
            _ => Err(invalid(
                name,
                format!("{value:?} is not a positive number of milliseconds"),
            )),
        },
    }
}

fn invalid(var: &'static str, problem: String) -> TelemetryError {
    TelemetryError::Variable { var, problem }
}

fn boolean(var: &'static str, value: &str) -> Result<bool, TelemetryError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(var, format!("{value:?} is not true or false"))),
    }
}

/// `value` if it is an http:// or https:// URL with a host.
fn url(var: &'static str, value: String) -> Result<String, TelemetryError> {
    match value.parse::<http::Uri>() {
        Ok(uri)
            if [http::uri::Scheme::HTTP, http::uri::Scheme::HTTPS]
                .iter()
                .any(|s| uri.scheme() == Some(s))
                && uri.host().is_some_and(|h| !h.is_empty()) =>
        {
            Ok(value)
        }
        _ => Err(invalid(
            var,
            format!("{value:?} is not an http:// or https:// URL"),
        )),
    }
}

/// Checks `key=value,...` (values percent-encoded) as the exporter reads it, without
/// repeating values in errors. Empty entries are skipped, there as here.
fn headers(var: &'static str, value: &str) -> Result<(), TelemetryError> {
    for (n, entry) in (1..).zip(value.split(',').map(str::trim)) {
        if entry.is_empty() {
            continue;
        }
        let Some((key, value)) = entry
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        else {
            return Err(invalid(
                var,
                format!("entry {n} is not key=value (non-empty both)"),
            ));
        };
        if http::HeaderName::from_bytes(key.as_bytes()).is_err() {
            return Err(invalid(
                var,
                format!("entry {n}: {key:?} is not a header name"),
            ));
        }
        if http::HeaderValue::from_str(value).is_err() {
            return Err(invalid(
                var,
                format!("entry {n}: the value of {key} is not a header value"),
            ));
        }
    }
    Ok(())
}

/// Sets up logs and, with `options.otlp`, span export. A second call (tests) keeps the
/// first setup and exports nothing of its own.
pub fn init_with(options: Options) -> Result<Telemetry, TelemetryError> {
    let (provider, runtime) = match options.otlp.map(tracer_provider).transpose()? {
        Some((provider, runtime)) => (Some(provider), runtime),
        None => (None, None),
    };
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("driftwatch"))
            .with_location(false)
            .with_threads(false)
    });
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let installed = match options.log_format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    // Colour codes only for a person at a terminal, never into a file,
                    // a pipe or a journal.
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .fmt_fields(JsonFields::new())
                    .event_format(WithTraceIds(Format::default().json().flatten_event(true)))
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    if installed.is_err() {
        if let Some(p) = provider {
            let _ = p.shutdown();
        }
        return Ok(Telemetry {
            provider: None,
            runtime: None,
        });
    }
    Ok(Telemetry { provider, runtime })
}

fn tracer_provider(
    otlp: Otlp,
) -> Result<(SdkTracerProvider, Option<ExportRuntime>), TelemetryError> {
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let (exporter, runtime) = match otlp.protocol {
        Protocol::Grpc => {
            let mut exporter = builder
                .with_tonic()
                .with_endpoint(&otlp.endpoint)
                .with_timeout(otlp.timeout);
            let https = otlp
                .endpoint
                .parse::<http::Uri>()
                .is_ok_and(|u| u.scheme() == Some(&http::uri::Scheme::HTTPS));
            // Only for https: loading the system's roots fails where there are none,
            // which must not stop plaintext export. rustls with ring (the process's
            // provider if one is installed).
            if https {
                exporter = exporter.with_tls_config(ClientTlsConfig::new().with_native_roots());
            }
            let runtime = ExportRuntime::new()?;
            // The channel spawns its connection onto the runtime it is built in.
            let exporter = {
                let _entered = runtime.0.as_ref().map(tokio::runtime::Runtime::enter);
                exporter.build()?
            };
            (exporter, Some(runtime))
        }
        Protocol::HttpProtobuf | Protocol::HttpJson => {
            let exporter = builder
                .with_http()
                .with_http_client(BlockingClient::new(otlp.timeout)?)
                .with_endpoint(&otlp.endpoint)
                .with_timeout(otlp.timeout)
                .with_protocol(if otlp.protocol == Protocol::HttpJson {
                    opentelemetry_otlp::Protocol::HttpJson
                } else {
                    opentelemetry_otlp::Protocol::HttpBinary
                })
                .build()?;
            (exporter, None)
        }
    };
    let resource = Resource::builder()
        .with_service_name("driftwatch")
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    Ok((provider, runtime))
}

/// The gRPC exporter's own tokio runtime. The batch span processor exports from a thread
/// of its own, outside any runtime, and tonic's connection needs one that runs: the
/// service's cannot be it (`check` and `diff` run a current-thread runtime, idle while
/// the last spans are flushed after it returns, and export must not take the service's
/// threads). One worker thread: a single connection's I/O and timers.
struct ExportRuntime(Option<tokio::runtime::Runtime>);

impl ExportRuntime {
    fn new() -> Result<ExportRuntime, TelemetryError> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-grpc")
            .enable_all()
            .build()
            .map(|rt| ExportRuntime(Some(rt)))
            .map_err(TelemetryError::Runtime)
    }
}

impl Drop for ExportRuntime {
    // Dropping a runtime blocks, which panics inside async code: let it wind down on its
    // own thread, wherever the telemetry is dropped.
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The exporter's HTTP client: reqwest's blocking client, since the batch span processor
/// exports from a thread of its own, outside any async runtime.
#[derive(Debug)]
struct BlockingClient(reqwest::blocking::Client);

impl BlockingClient {
    fn new(timeout: Duration) -> Result<BlockingClient, TelemetryError> {
        // The blocking client runs a runtime of its own, which must not be created
        // (or dropped) inside another: build it on a thread of its own.
        std::thread::spawn(move || {
            reqwest::blocking::Client::builder()
                .timeout(timeout)
                .build()
        })
        .join()
        .map_err(|_| TelemetryError::Client("building the client panicked".into()))?
        .map(BlockingClient)
        .map_err(|e| TelemetryError::Client(e.to_string()))
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for BlockingClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let response = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body.to_vec())
            .send()?;
        let mut out = http::Response::builder().status(response.status());
        if let Some(headers) = out.headers_mut() {
            *headers = response.headers().clone();
        }
        Ok(out.body(response.bytes()?)?)
    }
}

/// JSON log lines with the current span's trace and span ids appended (when it is
/// exported).
struct WithTraceIds(Format<Json>);

impl<S, N> FormatEvent<S, N> for WithTraceIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        if ctx.lookup_current().is_some() {
            let cx = tracing::Span::current().context();
            let span = cx.span();
            let ids = span.span_context();
            if ids.is_valid() {
                if let Some(object) = line.trim_end().strip_suffix('}') {
                    return writeln!(
                        writer,
                        r#"{object},"trace_id":"{}","span_id":"{}"}}"#,
                        ids.trace_id(),
                        ids.span_id()
                    );
                }
            }
        }
        writer.write_str(&line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn otlp(vars: &[(&str, &str)]) -> Result<Option<Otlp>, TelemetryError> {
        otlp_from_env(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    /// Protocol and endpoint, or `None` when export is off.
    fn export(vars: &[(&str, &str)]) -> Option<(Protocol, String)> {
        otlp(vars).unwrap().map(|o| (o.protocol, o.endpoint))
    }

    /// The message of the error that refuses `vars`.
    fn refused(vars: &[(&str, &str)]) -> String {
        match otlp(vars) {
            Err(e @ TelemetryError::Variable { .. }) => e.to_string(),
            other => panic!("{vars:?} accepted: {other:?}"),
        }
    }

    const ENDPOINT: (&str, &str) = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/");
    const GRPC: (&str, &str) = ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");

    #[test]
    fn export_is_on_when_asked_for_and_off_when_disabled() {
        assert!(export(&[]).is_none());
        assert!(export(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]).is_none());
        assert!(export(&[GRPC]).is_none(), "a protocol alone does not ask");
        assert!(export(&[ENDPOINT]).is_some());
        assert!(export(&[("OTEL_TRACES_EXPORTER", "otlp")]).is_some());
        for off in [
            ("OTEL_SDK_DISABLED", "TRUE"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            assert!(export(&[ENDPOINT, off]).is_none(), "{off:?}");
        }
        assert!(export(&[ENDPOINT, ("OTEL_SDK_DISABLED", "false")]).is_some());
    }

    #[test]
    fn protocol_and_endpoint_follow_the_specification() {
        let http = |endpoint: &str| Some((Protocol::HttpProtobuf, endpoint.to_string()));
        let grpc = |endpoint: &str| Some((Protocol::Grpc, endpoint.to_string()));
        let otlp = ("OTEL_TRACES_EXPORTER", "otlp");
        // Defaults: http/protobuf, and each transport's own port.
        assert_eq!(export(&[otlp]), http("http://localhost:4318/v1/traces"));
        assert_eq!(export(&[otlp, GRPC]), grpc("http://localhost:4317"));
        // The general endpoint is a base (over HTTP); the signal's own is used as it is.
        assert_eq!(export(&[ENDPOINT]), http("http://collector:4318/v1/traces"));
        let traces = (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "https://c/otlp/traces",
        );
        assert_eq!(export(&[ENDPOINT, traces]), http("https://c/otlp/traces"));
        assert_eq!(
            export(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), GRPC]),
            grpc("http://c:4317")
        );
        assert_eq!(
            export(&[ENDPOINT, traces, GRPC]),
            grpc("https://c/otlp/traces")
        );
        // Without a scheme, gRPC is TLS unless INSECURE says otherwise.
        let bare = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "c:4317");
        assert_eq!(export(&[bare, GRPC]), grpc("https://c:4317"));
        assert_eq!(
            export(&[bare, GRPC, ("OTEL_EXPORTER_OTLP_INSECURE", "true")]),
            grpc("http://c:4317")
        );
        // The signal's own protocol wins.
        assert_eq!(
            export(&[
                ENDPOINT,
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "GRPC"),
            ]),
            grpc("http://collector:4318/")
        );
        assert_eq!(
            export(&[
                ENDPOINT,
                GRPC,
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")
            ]),
            Some((
                Protocol::HttpJson,
                "http://collector:4318/v1/traces".to_string()
            ))
        );
    }

    #[test]
    fn timeout_follows_the_standard_variables() {
        let timeout = |vars: &[(&str, &str)]| otlp(vars).unwrap().unwrap().timeout;
        assert_eq!(timeout(&[ENDPOINT]), DEFAULT_TIMEOUT);
        assert_eq!(
            timeout(&[ENDPOINT, ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")]),
            Duration::from_millis(2500)
        );
        assert_eq!(
            timeout(&[
                ENDPOINT,
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
                ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "500"),
            ]),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn a_value_that_cannot_be_used_is_an_error_naming_its_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("OTEL_SDK_DISABLED", "yes")],
                "OTEL_SDK_DISABLED: \"yes\"",
            ),
            (
                &[("OTEL_TRACES_EXPORTER", "zipkin")],
                "OTEL_TRACES_EXPORTER: \"zipkin\"",
            ),
            (
                &[ENDPOINT, ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http")],
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: \"http\"",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")],
                "OTEL_EXPORTER_OTLP_ENDPOINT: \"collector:4318/v1/traces\"",
            ),
            (
                &[
                    (
                        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                        "unix:///run/otel.sock",
                    ),
                    GRPC,
                ],
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: \"unix:///run/otel.sock\"",
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4317"),
                    GRPC,
                    ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "1"),
                ],
                "OTEL_EXPORTER_OTLP_TRACES_INSECURE: \"1\"",
            ),
            (
                &[ENDPOINT, ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")],
                "OTEL_EXPORTER_OTLP_TIMEOUT: \"10s\"",
            ),
            (
                &[ENDPOINT, ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0")],
                "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: \"0\"",
            ),
            (
                &[
                    ENDPOINT,
                    ("OTEL_EXPORTER_OTLP_HEADERS", "a=1,api-key secret"),
                ],
                "OTEL_EXPORTER_OTLP_HEADERS: entry 2 is not key=value",
            ),
            (
                &[
                    ENDPOINT,
                    ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "api key=secret"),
                ],
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS: entry 1: \"api key\" is not a header name",
            ),
        ];
        for (vars, expected) in cases {
            let message = refused(vars);
            assert!(message.starts_with(expected), "{vars:?}: {message}");
            assert!(!message.contains("secret"), "{message}");
        }
        // Well-formed headers pass, percent-encoded values included.
        let headers = (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "api-key=s%20t, x-tenant = a ,",
        );
        assert!(export(&[ENDPOINT, headers]).is_some());
    }

    /// gRPC over TLS builds with rustls and ring, from the system's roots; plaintext
    /// gRPC needs none.
    #[test]
    fn grpc_exporters_build_for_both_schemes() {
        for endpoint in [
            "https://collector.invalid:4317",
            "http://collector.invalid:4317",
        ] {
            let (provider, runtime) = tracer_provider(Otlp {
                endpoint: endpoint.into(),
                protocol: Protocol::Grpc,
                timeout: Duration::from_millis(100),
            })
            .unwrap_or_else(|e| panic!("{endpoint}: {e}"));
            assert!(runtime.is_some());
            provider.shutdown().unwrap();
        }
    }
}
