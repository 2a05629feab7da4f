//! The tower layer around every RPC: counts it by method and status code,
//! times it, and while traces are exported, runs it in a server span whose
//! parent is the caller's W3C `traceparent`.
//!
//! A unary error comes back with its status in the response headers; a
//! success, and every stream, with the status in the trailers at the end of
//! the body. So the call is complete, and measured, when the body ends. A
//! call dropped before its status (the client cancelled it, or it ran out
//! of time) counts as `Canceled`, or `DeadlineExceeded` past its
//! `grpc-timeout`.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::OnceLock,
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};

use http::{HeaderMap, Request, Response};
use http_body::{Frame, SizeHint};
use opentelemetry::{
    propagation::{Extractor, TextMapPropagator},
    trace::TraceContextExt,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use prost::Message;
use tonic::{Code, body::Body};
use tower::{Layer, Service};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use super::{TRACE_TARGET, exporting};
use crate::metrics::{RpcSeries, metrics};

/// Measures every call of the services it wraps.
#[derive(Clone, Copy)]
pub struct RpcLayer {
    methods: &'static Methods,
}

impl RpcLayer {
    /// Knows the methods of the services in `descriptor_sets` (encoded
    /// `FileDescriptorSet`s); any other path is counted as `unknown`, so a
    /// caller cannot add series. The first layer built names the methods
    /// for the whole process, as the series it counts are the process's.
    pub fn new(descriptor_sets: &[&[u8]]) -> Self {
        static METHODS: OnceLock<Methods> = OnceLock::new();
        Self {
            methods: METHODS.get_or_init(|| Methods::from_descriptors(descriptor_sets)),
        }
    }
}

impl<S> Layer<S> for RpcLayer {
    type Service = RpcService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcService {
            inner,
            methods: self.methods,
        }
    }
}

/// One method: its names and its series.
struct MethodInfo {
    service: &'static str,
    method: &'static str,
    /// "consent.v1.ConsentService/RecordConsent", the span's name.
    full_name: &'static str,
    /// Health checks and reflection are counted but not traced: probes
    /// every few seconds would bury the calls worth looking at.
    traced: bool,
    series: RpcSeries,
}

struct Methods {
    by_path: HashMap<&'static str, MethodInfo>,
    unknown: MethodInfo,
}

impl Methods {
    fn from_descriptors(sets: &[&[u8]]) -> Self {
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let mut by_path = HashMap::new();
        for set in sets {
            let Ok(set) = prost_types::FileDescriptorSet::decode(*set) else {
                continue;
            };
            for file in set.file {
                let package = file.package();
                for service in &file.service {
                    let service_name = leak(if package.is_empty() {
                        service.name().to_string()
                    } else {
                        format!("{package}.{}", service.name())
                    });
                    for method in &service.method {
                        let method_name = leak(method.name().to_string());
                        let full_name = leak(format!("{service_name}/{method_name}"));
                        let path = leak(format!("/{full_name}"));
                        by_path.insert(
                            path,
                            MethodInfo {
                                service: service_name,
                                method: method_name,
                                full_name,
                                traced: !service_name.starts_with("grpc."),
                                series: metrics().rpc(service_name, method_name),
                            },
                        );
                    }
                }
            }
        }
        Self {
            by_path,
            unknown: MethodInfo {
                service: "unknown",
                method: "unknown",
                full_name: "unknown",
                traced: false,
                series: metrics().rpc("unknown", "unknown"),
            },
        }
    }

    fn get(&'static self, path: &str) -> &'static MethodInfo {
        self.by_path.get(path).unwrap_or(&self.unknown)
    }
}

#[derive(Clone)]
pub struct RpcService<S> {
    inner: S,
    methods: &'static Methods,
}

impl<S> Service<Request<Body>> for RpcService<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<RpcBody>;
    type Error = S::Error;
    type Future = RpcFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let started = Instant::now();
        let info = self.methods.get(request.uri().path());
        let span = if info.traced && exporting() {
            let span = server_span(info, request.headers());
            request.extensions_mut().insert(RpcSpan(span.clone()));
            span
        } else {
            tracing::Span::none()
        };
        let deadline = request
            .headers()
            .get("grpc-timeout")
            .and_then(|value| grpc_timeout(value.as_bytes()))
            .and_then(|timeout| started.checked_add(timeout));
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        RpcFuture {
            inner: future,
            call: Some(Call {
                info,
                started,
                deadline,
                span,
                finished: false,
            }),
        }
    }
}

/// The span of one call, child of the caller's `traceparent` if it sent
/// one.
fn server_span(info: &MethodInfo, headers: &HeaderMap) -> tracing::Span {
    let span = tracing::info_span!(
        target: TRACE_TARGET,
        parent: None,
        "rpc",
        otel.name = info.full_name,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.service = info.service,
        rpc.method = info.method,
        rpc.grpc.status_code = tracing::field::Empty,
        tenant.id = tracing::field::Empty,
    );
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    span
}

/// The RPC span of a call, in its request extensions while traces are
/// exported, for what the handler learns later (the tenant).
#[derive(Clone)]
pub struct RpcSpan(tracing::Span);

impl RpcSpan {
    /// Records the authenticated tenant on the call's span, if traced.
    pub fn record_tenant(extensions: &tonic::Extensions, tenant_id: Uuid) {
        if let Some(RpcSpan(span)) = extensions.get::<RpcSpan>() {
            span.record("tenant.id", tracing::field::display(tenant_id));
        }
    }
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

/// A call being measured: recorded once, when its status is known or when
/// it is dropped without one.
struct Call {
    info: &'static MethodInfo,
    started: Instant,
    /// When the caller's `grpc-timeout` runs out.
    deadline: Option<Instant>,
    span: tracing::Span,
    finished: bool,
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.finished {
            let code = match self.deadline {
                Some(deadline) if Instant::now() >= deadline => Code::DeadlineExceeded,
                _ => Code::Cancelled,
            };
            self.record(code);
        }
    }
}

impl Call {
    fn finish(mut self, code: Code) {
        self.finished = true;
        self.record(code);
    }

    fn record(&self, code: Code) {
        self.info
            .series
            .record(code as usize, code_name(code), self.started.elapsed());
        if !self.span.is_none() {
            self.span.record("rpc.grpc.status_code", code as i64);
            if server_fault(code) {
                self.span.record("otel.status_code", "error");
            }
        }
    }
}

pin_project_lite::pin_project! {
    pub struct RpcFuture<F> {
        #[pin]
        inner: F,
        call: Option<Call>,
    }
}

impl<F, E> Future for RpcFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<RpcBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let call = this.call.as_ref().expect("polled after completion");
        let result = {
            let _entered = call.span.enter();
            ready!(this.inner.poll(cx))
        };
        let call = this.call.take().expect("present until ready");
        Poll::Ready(match result {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                let call = match status_of(&parts.headers) {
                    // Trailers-only: the status is already here.
                    Some(code) => {
                        call.finish(code);
                        None
                    }
                    None => Some(call),
                };
                Ok(Response::from_parts(parts, RpcBody { inner: body, call }))
            }
            Err(error) => {
                call.finish(Code::Unknown);
                Err(error)
            }
        })
    }
}

/// A response body that records its call when the trailers go out.
pub struct RpcBody {
    inner: Body,
    call: Option<Call>,
}

impl http_body::Body for RpcBody {
    type Data = <Body as http_body::Body>::Data;
    type Error = <Body as http_body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let frame = match &this.call {
            Some(call) => {
                let _entered = call.span.enter();
                ready!(Pin::new(&mut this.inner).poll_frame(cx))
            }
            None => return Pin::new(&mut this.inner).poll_frame(cx),
        };
        let code = match &frame {
            Some(Ok(frame)) => frame
                .trailers_ref()
                .map(|t| status_of(t).unwrap_or(Code::Ok)),
            Some(Err(status)) => Some(status.code()),
            // gRPC always ends with trailers.
            None => Some(Code::Unknown),
        };
        if let Some(code) = code
            && let Some(call) = this.call.take()
        {
            call.finish(code);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A `grpc-timeout` value: at most 8 digits and a unit.
fn grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (digits, unit) = value.split_at_checked(value.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b"H" => Duration::from_secs(n * 3600),
        b"M" => Duration::from_secs(n * 60),
        b"S" => Duration::from_secs(n),
        b"m" => Duration::from_millis(n),
        b"u" => Duration::from_micros(n),
        b"n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn status_of(headers: &HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .map(|value| Code::from_bytes(value.as_bytes()))
}

/// The codes that mean the server failed, not the caller (OpenTelemetry's
/// rule for gRPC server spans).
fn server_fault(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

/// A code as Go's grpc library spells it, which go-grpc-prometheus
/// dashboards expect.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests;
