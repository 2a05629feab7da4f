//! Traces: a real `consentd serve` process exports to an OTLP collector
//! running in the test. The OpenTelemetry exporter is process-wide, so the
//! server runs as a child process, not in the test binary.

use std::{
    net::SocketAddr,
    process::{Child, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use consentd::{
    api::proto::{GetConsentStatusRequest, consent_service_client::ConsentServiceClient},
    domain::auth::Scope,
};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, KeyValue, any_value::Value},
    trace::v1::{Span, span::SpanKind},
};
use tokio::net::TcpListener;
use tonic::{
    Request, Response, Status,
    transport::{Channel, Server, server::TcpIncoming},
};
use uuid::Uuid;

use crate::{
    child::{free_addr, serve_command},
    helpers::{ConsentClient, IP_KEYS, TestApp, WithKey, decision},
};

/// `consentd serve` on `database_url`, killed when dropped.
pub struct ServeProcess {
    child: Child,
    pub addr: SocketAddr,
}

impl ServeProcess {
    /// Starts it with `env` on top of what it needs, and waits until it
    /// answers gRPC.
    pub async fn start(database_url: &str, env: &[(&str, String)]) -> Self {
        let addr = free_addr();
        let mut command = serve_command(database_url);
        command
            .env("CONSENTD_LISTEN", addr.to_string())
            .env("CONSENTD_IP_KEYS", IP_KEYS)
            .env("RUST_LOG", "warn")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("CONSENTD_METRICS_LISTEN")
            .stdin(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut process = Self {
            child: command.spawn().unwrap(),
            addr,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = process.child.try_wait().unwrap() {
                panic!("consentd serve exited early: {status}");
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return process;
            }
            assert!(Instant::now() < deadline, "consentd serve did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A client sending `key`.
    pub async fn client(&self, key: &str) -> ConsentClient {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        ConsentServiceClient::with_interceptor(channel, WithKey(Some(key.parse().unwrap())))
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An OTLP trace collector keeping every request it receives.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    async fn start() -> (Self, SocketAddr) {
        let collector = Self::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            Server::builder()
                .add_service(TraceServiceServer::new(collector.clone()))
                .serve_with_incoming(TcpIncoming::from(listener)),
        );
        (collector, addr)
    }

    fn spans(&self) -> Vec<Span> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .flat_map(|request| &request.resource_spans)
            .flat_map(|resource| &resource.scope_spans)
            .flat_map(|scope| scope.spans.clone())
            .collect()
    }

    fn resource_attribute(&self, key: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .flat_map(|request| &request.resource_spans)
            .filter_map(|resource| resource.resource.as_ref())
            .flat_map(|resource| &resource.attributes)
            .find(|attribute| attribute.key == key)
            .map(|attribute| text(attribute.value.as_ref()))
    }

    /// Waits until `found` holds of the spans received so far.
    async fn wait_for<T>(&self, found: impl Fn(&[Span]) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(value) = found(&self.spans()) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "spans never arrived; received: {:#?}",
                self.spans()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the first span that `matches`.
    async fn span(&self, matches: impl Fn(&Span) -> bool) -> Span {
        self.wait_for(|spans| spans.iter().find(|span| matches(span)).cloned())
            .await
    }

    /// Waits for the server span of the call of trace `trace_id`.
    async fn server_span(&self, trace_id: &str) -> Span {
        self.span(|span| {
            hex::encode(&span.trace_id) == trace_id && span.kind == SpanKind::Server as i32
        })
        .await
    }
}

/// `message` as a call from span `parent_id` of trace `trace_id`, sampled
/// or not: a W3C `traceparent`.
fn traced<T>(message: T, trace_id: &str, parent_id: &str, sampled: bool) -> Request<T> {
    let flags = if sampled { "01" } else { "00" };
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_id}-{flags}")
            .parse()
            .unwrap(),
    );
    request
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|value| value.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|attribute| attribute.key == key)
        .map(|attribute| text(attribute.value.as_ref()))
}

/// Every attribute of a span, its events and its links.
fn all_attributes(span: &Span) -> impl Iterator<Item = &KeyValue> {
    span.attributes
        .iter()
        .chain(span.events.iter().flat_map(|event| &event.attributes))
        .chain(span.links.iter().flat_map(|link| &link.attributes))
}

fn random_hex(bytes: usize) -> String {
    Uuid::new_v4().simple().to_string()[..bytes * 2].to_string()
}

#[tokio::test]
async fn traced_calls_continue_the_callers_trace_with_their_statements_and_batches() {
    let app = TestApp::spawn().await;
    let created = app
        .store
        .create_key("traced-tenant", &[Scope::ConsentWrite, Scope::ConsentRead])
        .await
        .unwrap();
    let key = created.secret.expose().to_string();
    let (collector, collector_addr) = Collector::start().await;
    let server = ServeProcess::start(
        &app.database_url,
        &[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://{collector_addr}"),
            ),
            ("OTEL_SERVICE_NAME", "consentd-under-test".into()),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=test".into(),
            ),
            ("OTEL_TRACES_SAMPLER", "parentbased_always_on".into()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ],
    )
    .await;
    let mut client = server.client(&key).await;

    // What the call sends that no span may hold.
    let subject_id = format!("subject-{}", Uuid::new_v4().simple());
    let user_id = format!("user-{}", Uuid::new_v4().simple());
    let mut request = decision("shop", &subject_id);
    request.user_id = user_id.clone();
    let personal = [
        subject_id.clone(),
        user_id.clone(),
        request.ip_address.clone(),
        "203.0.113.0".to_string(),
        request.page_url.clone(),
        request.user_agent.clone(),
        key.clone(),
    ];

    // A caller that did not sample its trace: parent-based sampling drops
    // the call's span.
    let unsampled_trace = random_hex(16);
    let unsampled = traced(request.clone(), &unsampled_trace, &random_hex(8), false);
    client.record_consent(unsampled).await.unwrap();

    let (trace_id, parent_id) = (random_hex(16), random_hex(8));
    let sampled = traced(request, &trace_id, &parent_id, true);
    client.record_consent(sampled).await.unwrap();

    let rpc = collector.server_span(&trace_id).await;
    assert_eq!(hex::encode(&rpc.parent_span_id), parent_id, "{rpc:#?}");
    assert_eq!(rpc.name, "consent.v1.ConsentService/RecordConsent");
    assert_eq!(attribute(&rpc, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(
        attribute(&rpc, "rpc.service").as_deref(),
        Some("consent.v1.ConsentService")
    );
    assert_eq!(
        attribute(&rpc, "rpc.method").as_deref(),
        Some("RecordConsent")
    );
    assert_eq!(
        attribute(&rpc, "rpc.grpc.status_code").as_deref(),
        Some("0")
    );
    assert_eq!(
        attribute(&rpc, "tenant.id"),
        Some(created.tenant_id.to_string())
    );

    let batch = collector
        .span(|span| {
            span.links
                .iter()
                .any(|link| link.trace_id == rpc.trace_id && link.span_id == rpc.span_id)
        })
        .await;
    assert_eq!(batch.name, "INSERT consent_records");
    assert_eq!(batch.kind, SpanKind::Client as i32);
    assert_eq!(
        attribute(&batch, "db.system.name").as_deref(),
        Some("postgresql")
    );
    let size: i64 = attribute(&batch, "db.operation.batch.size")
        .unwrap()
        .parse()
        .unwrap();
    assert!(size >= 1, "{batch:#?}");

    // A read: its SQL statements are spans of their own under the call's.
    let read_trace = random_hex(16);
    let read = GetConsentStatusRequest {
        as_of: None,
        site_id: "shop".into(),
        subject_id: subject_id.clone(),
    };
    let read = traced(read, &read_trace, &random_hex(8), true);
    client.get_consent_status(read).await.unwrap();
    let read_rpc = collector.server_span(&read_trace).await;
    assert_eq!(read_rpc.name, "consent.v1.ConsentService/GetConsentStatus");
    let statement = collector
        .span(|span| {
            span.parent_span_id == read_rpc.span_id
                && attribute(span, "db.query.text")
                    .is_some_and(|text| text.contains("consent_records"))
        })
        .await;
    assert_eq!(statement.trace_id, read_rpc.trace_id);
    assert_eq!(statement.name, "SELECT");
    assert_eq!(statement.kind, SpanKind::Client as i32);
    assert_eq!(
        attribute(&statement, "db.system.name").as_deref(),
        Some("postgresql")
    );

    let spans = collector.spans();
    assert!(
        spans
            .iter()
            .all(|span| hex::encode(&span.trace_id) != unsampled_trace),
        "a span of the unsampled trace was exported"
    );
    for span in &spans {
        for attribute in all_attributes(span) {
            let value = text(attribute.value.as_ref());
            for secret in &personal {
                assert!(
                    !value.contains(secret.as_str()),
                    "span {} attribute {} holds {secret}",
                    span.name,
                    attribute.key
                );
            }
        }
    }
    assert_eq!(
        collector.resource_attribute("service.name").as_deref(),
        Some("consentd-under-test")
    );
    assert_eq!(
        collector
            .resource_attribute("deployment.environment")
            .as_deref(),
        Some("test")
    );
}
