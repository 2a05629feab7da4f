//! Logs, traces and the RPC layer that measures every call.
//!
//! Logs are JSON on a sink. Traces go to an OTLP collector over gRPC only
//! when one is configured (`OTEL_EXPORTER_OTLP_ENDPOINT`); without one no
//! trace span is even created. Only the spans built here reach the
//! collector (target [`TRACE_TARGET`]: calls, SQL statements, writer
//! batches), never log events, whose messages may quote a database error.
//! Their attributes hold method names, tenant ids, statement texts (every
//! value is bound) and counts, never subject ids, user ids, IPs, user
//! agents, page URLs or keys.

mod rpc;

use std::sync::{
    OnceLock,
    atomic::{AtomicBool, Ordering},
};

use opentelemetry::trace::{SpanContext, TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter, Layer,
    filter::filter_fn,
    fmt::MakeWriter,
    layer::SubscriberExt,
    registry::{LookupSpan, Registry},
};

pub use rpc::{RpcLayer, RpcSpan};

/// The target of every span meant for the collector.
pub const TRACE_TARGET: &str = "consentd::trace";

/// Whether spans are exported: read on every call, so a relaxed load.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// The provider to flush at exit.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// True once [`get_subscriber`] installed an OTLP exporter.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// A JSON subscriber writing to `sink`, filtered by `RUST_LOG` or
/// `default_filter`, exporting spans to `otlp_endpoint` (an OTLP gRPC
/// collector) when given. Must run inside a Tokio runtime when exporting:
/// the exporter's channel lives on it.
pub fn get_subscriber<Sink>(
    default_filter: &str,
    sink: Sink,
    otlp_endpoint: Option<&str>,
) -> Result<Box<dyn Subscriber + Send + Sync>, String>
where
    Sink: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    Ok(
        match otlp_endpoint.filter(|endpoint| !endpoint.is_empty()) {
            // Without export, the filter stays global: a callsite it turns off
            // costs nothing at all.
            None => Box::new(Registry::default().with(filter).with(json_logs(sink))),
            // With it, the filter is the logs' alone: the collector gets our
            // spans whatever RUST_LOG says.
            Some(endpoint) => Box::new(
                Registry::default()
                    .with(json_logs(sink).with_filter(filter))
                    .with(otlp_layer(endpoint)?),
            ),
        },
    )
}

fn json_logs<S, Sink>(sink: Sink) -> impl Layer<S> + Send + Sync + use<S, Sink>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    Sink: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_writer(sink)
}

/// The OpenTelemetry layer, exporting our spans in batches to `endpoint`.
/// Service name, resource attributes and sampler come from the standard
/// OTEL_* variables.
fn otlp_layer<S>(endpoint: &str) -> Result<impl Layer<S> + Send + Sync + use<S>, String>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|error| {
            format!("cannot export traces to {endpoint} (OTEL_EXPORTER_OTLP_ENDPOINT): {error}")
        })?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource())
        .build();
    let tracer = provider.tracer("consentd");
    let _ = PROVIDER.set(provider);
    EXPORTING.store(true, Ordering::Relaxed);
    Ok(tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(filter_fn(|metadata| {
            metadata.is_span() && metadata.target() == TRACE_TARGET
        })))
}

/// The resource from OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, named
/// `consentd` unless they name it.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    if named {
        detected
    } else {
        Resource::builder().with_service_name("consentd").build()
    }
}

/// Installs `subscriber` for the whole process; a second call is a no-op.
pub fn init_subscriber(subscriber: impl Subscriber + Send + Sync) {
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Longest the last spans may hold up the exit: a collector that does not
/// answer must not eat the pod's termination grace period.
const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Sends the spans still buffered; call before the process exits.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get()
        && let Err(error) = provider.shutdown_with_timeout(FLUSH_TIMEOUT)
    {
        eprintln!("consentd: cannot flush traces: {error}");
    }
}

/// The RPC span a call runs in, to be linked from work done for it
/// elsewhere (a writer batch). Empty while nothing is exported.
#[derive(Clone, Debug, Default)]
pub struct TraceLink(Option<SpanContext>);

impl TraceLink {
    /// The exported span the current task runs in, if any.
    pub fn current() -> Self {
        if !exporting() {
            return Self(None);
        }
        let context = opentelemetry::Context::current();
        let span = context.span().span_context().clone();
        Self(span.is_valid().then_some(span))
    }
}

/// The span of one writer batch: one multi-row INSERT and its COMMIT,
/// linked to the RPC span of every call it answers. A root span: a batch
/// belongs to many traces at once.
pub fn batch_span<'a>(
    table: &'static str,
    size: usize,
    links: impl IntoIterator<Item = &'a TraceLink>,
) -> tracing::Span {
    if !exporting() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        target: TRACE_TARGET,
        parent: None,
        "db batch",
        otel.name = %format_args!("INSERT {table}"),
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = "INSERT",
        db.collection.name = table,
        db.operation.batch.size = size as i64,
    );
    for link in links {
        if let Some(context) = &link.0 {
            span.add_link(context.clone());
        }
    }
    span
}

/// The span of one SQL statement, named by its first keyword (`SELECT`,
/// `INSERT`, ...), its text as written: the statements bind every value, so
/// the text holds none.
pub fn statement_span(sql: &str) -> tracing::Span {
    if !exporting() {
        return tracing::Span::none();
    }
    let text = statement_text(sql);
    let operation = text
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or_default();
    tracing::info_span!(
        target: TRACE_TARGET,
        "db statement",
        otel.name = operation,
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = operation,
        db.query.text = text,
    )
}

/// A statement without the comment lines before it.
fn statement_text(sql: &str) -> &str {
    let mut text = sql.trim_start();
    while let Some(comment) = text.strip_prefix("--") {
        text = comment
            .split_once('\n')
            .map_or("", |(_, rest)| rest)
            .trim_start();
    }
    text.trim_end()
}

/// "outer: inner: root" — the whole cause chain on one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_is_named_without_its_leading_comments() {
        assert_eq!(
            statement_text("-- why\n-- and more\n  SELECT 1\nFROM t\n"),
            "SELECT 1\nFROM t"
        );
        assert_eq!(statement_text("-- only a comment"), "");
        assert_eq!(
            statement_text("WITH x AS (SELECT 1) SELECT * FROM x"),
            "WITH x AS (SELECT 1) SELECT * FROM x"
        );
    }
}
