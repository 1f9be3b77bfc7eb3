//! Logs and traces.
//!
//! Logs: text or JSON lines on stderr, filtered by RUST_LOG (default `info`). JSON lines
//! carry the `trace_id` and `span_id` of the current span while spans are exported.
//!
//! Traces: spans (`pass`, `recheck`, `chunk_digest`, `bisect`, `row_fetch`) exported with
//! OTLP over HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, in the protocol of
//! `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL` (`http/protobuf`, the default, or `http/json`;
//! `grpc` is not in this build: export stays off, with a warning).
//! `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT` (milliseconds, default 10 s) bounds one export;
//! headers and resource attributes apply as the OpenTelemetry SDK reads them; payloads are
//! not compressed.
//!
//! Log lines and span attributes name groups, tables, databases and key ranges, never row
//! values or credentials.

use std::fmt;
use std::time::Duration;

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
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

/// How OTLP payloads are encoded (both over HTTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    HttpProtobuf,
    HttpJson,
}

/// Where spans go, and how.
#[derive(Debug, Clone)]
pub struct Otlp {
    /// The full traces URL (`http://collector:4318/v1/traces`); `None` leaves it to the
    /// standard variables.
    pub endpoint: Option<String>,
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
    #[error("OpenTelemetry OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("OpenTelemetry OTLP exporter: HTTP client: {0}")]
    Client(String),
}

/// The running telemetry; [`Telemetry::shutdown`] exports the spans still buffered.
#[must_use = "call shutdown() before exiting, or buffered spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
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
    }
}

/// Logs in `log_format`; spans exported when the standard OTLP variables ask for it.
pub fn init(log_format: LogFormat) -> Result<Telemetry, TelemetryError> {
    let (otlp, refused) = otlp_from_env(|name| std::env::var(name).ok());
    let telemetry = init_with(Options { log_format, otlp })?;
    if let Some(message) = refused {
        tracing::warn!("{message}; spans are not exported");
    }
    Ok(telemetry)
}

/// The standard default of OTEL_EXPORTER_OTLP_TIMEOUT.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the standard variables (through `env`): export is on when an endpoint is set.
/// The second value says why export stays off although an endpoint is set.
fn otlp_from_env(env: impl Fn(&str) -> Option<String>) -> (Option<Otlp>, Option<String>) {
    let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
        && var("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
    {
        return (None, None);
    }
    let chosen = [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ]
    .into_iter()
    .find_map(|name| Some((name, var(name)?)));
    let protocol = match chosen {
        None => Protocol::HttpProtobuf,
        Some((var, value)) => match value.trim().to_ascii_lowercase().as_str() {
            "http/protobuf" => Protocol::HttpProtobuf,
            "http/json" => Protocol::HttpJson,
            _ => {
                let refused =
                    format!("{var}={value:?} is not supported (http/protobuf or http/json)");
                return (None, Some(refused));
            }
        },
    };
    let timeout = [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ]
    .into_iter()
    .find_map(|name| var(name)?.trim().parse().ok())
    .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
    let otlp = Otlp {
        endpoint: None,
        protocol,
        timeout,
    };
    (Some(otlp), None)
}

/// Sets up logs and, with `options.otlp`, span export. A second call (tests) keeps the
/// first setup and exports nothing of its own.
pub fn init_with(options: Options) -> Result<Telemetry, TelemetryError> {
    let provider = options.otlp.map(tracer_provider).transpose()?;
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
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
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
        return Ok(Telemetry { provider: None });
    }
    Ok(Telemetry { provider })
}

fn tracer_provider(otlp: Otlp) -> Result<SdkTracerProvider, TelemetryError> {
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(BlockingClient::new(otlp.timeout)?);
    if let Some(endpoint) = otlp.endpoint {
        exporter = exporter.with_endpoint(endpoint);
    }
    exporter = exporter.with_protocol(match otlp.protocol {
        Protocol::HttpProtobuf => opentelemetry_otlp::Protocol::HttpBinary,
        Protocol::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
    });
    let resource = Resource::builder()
        .with_service_name("driftwatch")
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter.build()?)
        .with_resource(resource)
        .build())
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

    fn otlp(vars: &[(&str, &str)]) -> (Option<Otlp>, Option<String>) {
        otlp_from_env(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    fn from(vars: &[(&str, &str)]) -> (Option<Protocol>, Option<String>) {
        let (otlp, refused) = otlp(vars);
        (otlp.map(|o| o.protocol), refused)
    }

    #[test]
    fn export_follows_the_standard_variables() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
        assert_eq!(from(&[]), (None, None));
        assert_eq!(from(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]), (None, None));
        assert_eq!(from(&[endpoint]), (Some(Protocol::HttpProtobuf), None));
        assert_eq!(
            from(&[(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://c:4318/v1/traces"
            )]),
            (Some(Protocol::HttpProtobuf), None)
        );
        assert_eq!(
            from(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]),
            (Some(Protocol::HttpJson), None)
        );
        // The signal's own variable wins.
        assert_eq!(
            from(&[
                endpoint,
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "HTTP/Protobuf"),
            ]),
            (Some(Protocol::HttpProtobuf), None)
        );
        let (protocol, refused) = from(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
        assert_eq!(protocol, None);
        assert!(refused.unwrap().contains("\"grpc\" is not supported"));

        let timeout = |vars: &[(&str, &str)]| otlp(vars).0.unwrap().timeout;
        assert_eq!(timeout(&[endpoint]), DEFAULT_TIMEOUT);
        assert_eq!(
            timeout(&[endpoint, ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")]),
            Duration::from_millis(2500)
        );
        assert_eq!(
            timeout(&[
                endpoint,
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
                ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "500"),
            ]),
            Duration::from_millis(500)
        );
    }
}
