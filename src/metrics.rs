//! Prometheus metrics of the process, served as text at `GET /metrics` on a
//! listener of their own (`CONSENTD_METRICS_LISTEN`).
//!
//! Every label is bounded: the service, method and status code of the RPCs
//! the server knows, a worker's name, a pool connection's state. Nothing
//! personal and no tenant is ever a label. Hot paths hold handles resolved
//! once (a counter or histogram is an `Arc` of atomics); values that exist
//! elsewhere anyway (pool state, queue depth) are read at scrape time.
//!
//! gRPC series follow the names of go-grpc-prometheus, so existing
//! dashboards work: `grpc_server_handled_total{grpc_service, grpc_method,
//! grpc_code}` with the code spelled as in Go (`OK`, `InvalidArgument`, ...)
//! and `grpc_server_handling_seconds{grpc_service, grpc_method}`.

use std::{
    net::SocketAddr,
    sync::{
        LazyLock, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Bytes, header::CONTENT_TYPE};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use tokio::net::TcpListener;

/// Seconds; a unary call takes milliseconds, an export minutes.
const LATENCY_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    120.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    grpc_service: &'static str,
    grpc_method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcCodeLabels {
    grpc_service: &'static str,
    grpc_method: &'static str,
    grpc_code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    worker: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerRunLabels {
    worker: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// What the pool reports at a scrape.
#[derive(Clone, Copy, Debug)]
pub struct PoolStatus {
    pub max_size: usize,
    /// Open connections, in use or idle.
    pub size: usize,
    pub available: usize,
    /// Calls waiting for a connection.
    pub waiting: usize,
}

type Source<T> = Mutex<Option<(u64, Box<dyn Fn() -> Option<T> + Send + Sync>)>>;

/// Every series of the process.
pub struct Metrics {
    registry: Registry,
    handled: Family<RpcCodeLabels, Counter>,
    handling: Family<RpcLabels, Histogram, fn() -> Histogram>,
    /// Records per writer transaction.
    pub writer_batch_size: Histogram,
    writer_queue_depth: Gauge,
    pool_connections: Family<StateLabels, Gauge>,
    pool_waiting: Gauge,
    pool_max: Gauge,
    /// Export streams open.
    pub exports_in_flight: Gauge,
    /// Records sent by export streams.
    pub exported_records: Counter,
    worker_runs: Family<WorkerRunLabels, Counter>,
    worker_rows: Family<WorkerLabels, Counter>,
    public_requests: Family<OutcomeLabels, Counter>,
    pool_source: Source<PoolStatus>,
    queue_source: Source<usize>,
    next_source: AtomicU64,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let handled = Family::<RpcCodeLabels, Counter>::default();
        registry.register(
            "grpc_server_handled",
            "RPCs completed, by service, method and status code",
            handled.clone(),
        );
        let handling: Family<RpcLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "grpc_server_handling_seconds",
            "Time from a call's arrival to its status (a stream's end), by service and method",
            handling.clone(),
        );
        let writer_batch_size = Histogram::new((0..13).map(|i| f64::from(1u32 << i)));
        registry.register(
            "consentd_writer_batch_size",
            "Records committed per RecordConsent writer transaction",
            writer_batch_size.clone(),
        );
        let writer_queue_depth = Gauge::default();
        registry.register(
            "consentd_writer_queue_depth",
            "RecordConsent calls queued for a writer",
            writer_queue_depth.clone(),
        );
        let pool_connections = Family::<StateLabels, Gauge>::default();
        registry.register(
            "consentd_db_pool_connections",
            "Open connections of the database pool, in use or idle",
            pool_connections.clone(),
        );
        let pool_waiting = Gauge::default();
        registry.register(
            "consentd_db_pool_waiting",
            "Calls waiting for a database connection",
            pool_waiting.clone(),
        );
        let pool_max = Gauge::default();
        registry.register(
            "consentd_db_pool_max_connections",
            "Most connections the database pool opens",
            pool_max.clone(),
        );
        let exports_in_flight = Gauge::default();
        registry.register(
            "consentd_exports_in_flight",
            "Export streams open",
            exports_in_flight.clone(),
        );
        let exported_records = Counter::default();
        registry.register(
            "consentd_exported_records",
            "Records sent by export streams",
            exported_records.clone(),
        );
        let worker_runs = Family::<WorkerRunLabels, Counter>::default();
        registry.register(
            "consentd_worker_runs",
            "Batches run by a background worker (expiry, request_ids, retention), by outcome",
            worker_runs.clone(),
        );
        let worker_rows = Family::<WorkerLabels, Counter>::default();
        registry.register(
            "consentd_worker_rows",
            "Rows a background worker removed: expired selections, forgotten request ids, records past retention",
            worker_rows.clone(),
        );
        let public_requests = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "consentd_public_requests",
            "Requests to the public listener, by outcome: recorded or the reason refused",
            public_requests.clone(),
        );
        Self {
            registry,
            handled,
            handling,
            writer_batch_size,
            writer_queue_depth,
            pool_connections,
            pool_waiting,
            pool_max,
            exports_in_flight,
            exported_records,
            worker_runs,
            worker_rows,
            public_requests,
            pool_source: Mutex::default(),
            queue_source: Mutex::default(),
            next_source: AtomicU64::new(1),
        }
    }

    /// The series of one RPC method.
    pub fn rpc(&'static self, service: &'static str, method: &'static str) -> RpcSeries {
        RpcSeries {
            metrics: self,
            service,
            method,
            latency: OnceLock::new(),
            codes: Default::default(),
        }
    }

    /// Counts one run of `worker` ("ok", "error", or "skipped" when another
    /// replica had the turn) and the rows it removed.
    pub fn worker_run(&self, worker: &'static str, outcome: &'static str, rows: u64) {
        self.worker_runs
            .get_or_create(&WorkerRunLabels { worker, outcome })
            .inc();
        // Created with the first run, so a worker that removed nothing
        // shows 0 rather than no series.
        self.worker_rows
            .get_or_create(&WorkerLabels { worker })
            .inc_by(rows);
    }

    /// Counts one request to the public listener: "recorded", or the code
    /// of its refusal.
    pub fn public_request(&self, outcome: &'static str) {
        self.public_requests
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Reads the pool's state at every scrape, until the guard is dropped.
    pub fn watch_pool(
        &self,
        status: impl Fn() -> PoolStatus + Send + Sync + 'static,
    ) -> SourceGuard<'_, PoolStatus> {
        self.watch(&self.pool_source, move || Some(status()))
    }

    /// Reads the writers' queue depth at every scrape (`None` once they
    /// stopped), until the guard is dropped.
    pub fn watch_writer_queue(
        &self,
        depth: impl Fn() -> Option<usize> + Send + Sync + 'static,
    ) -> SourceGuard<'_, usize> {
        self.watch(&self.queue_source, depth)
    }

    /// The latest server to start is the one reported: a process serves
    /// once, tests serve many times.
    fn watch<'a, T>(
        &'a self,
        slot: &'a Source<T>,
        read: impl Fn() -> Option<T> + Send + Sync + 'static,
    ) -> SourceGuard<'a, T> {
        let id = self.next_source.fetch_add(1, Ordering::Relaxed);
        *slot.lock().expect("not poisoned") = Some((id, Box::new(read)));
        SourceGuard { slot, id }
    }

    /// The whole registry in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        if let Some(pool) = read(&self.pool_source) {
            let gauge = |state| self.pool_connections.get_or_create(&StateLabels { state });
            gauge("in_use").set(pool.size.saturating_sub(pool.available) as i64);
            gauge("idle").set(pool.available as i64);
            self.pool_waiting.set(pool.waiting as i64);
            self.pool_max.set(pool.max_size as i64);
        }
        self.writer_queue_depth
            .set(read(&self.queue_source).unwrap_or(0) as i64);
        let mut text = String::with_capacity(16 * 1024);
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

fn read<T>(slot: &Source<T>) -> Option<T> {
    let slot = slot.lock().expect("not poisoned");
    slot.as_ref().and_then(|(_, read)| read())
}

/// Stops reading a source when dropped, unless a newer one replaced it.
pub struct SourceGuard<'a, T> {
    slot: &'a Source<T>,
    id: u64,
}

impl<T> Drop for SourceGuard<'_, T> {
    fn drop(&mut self) {
        let mut slot = self.slot.lock().expect("not poisoned");
        if slot.as_ref().is_some_and(|(id, _)| *id == self.id) {
            *slot = None;
        }
    }
}

/// Handles of one RPC method's series, resolved on first use and kept.
pub struct RpcSeries {
    metrics: &'static Metrics,
    service: &'static str,
    method: &'static str,
    latency: OnceLock<Histogram>,
    /// By gRPC status code (0..=16).
    codes: [OnceLock<Counter>; 17],
}

impl RpcSeries {
    /// Counts a call that ended with status `code` (named `code_name`)
    /// after `elapsed`.
    pub fn record(&self, code: usize, code_name: &'static str, elapsed: Duration) {
        let labels = || RpcLabels {
            grpc_service: self.service,
            grpc_method: self.method,
        };
        self.latency
            .get_or_init(|| self.metrics.handling.get_or_create(&labels()).clone())
            .observe(elapsed.as_secs_f64());
        let Some(counter) = self.codes.get(code) else {
            return;
        };
        counter
            .get_or_init(|| {
                self.metrics
                    .handled
                    .get_or_create(&RpcCodeLabels {
                        grpc_service: self.service,
                        grpc_method: self.method,
                        grpc_code: code_name,
                    })
                    .clone()
            })
            .inc();
    }
}

/// Serves `GET /metrics` on `listener` until the process exits.
pub async fn serve(listener: TcpListener) {
    use hyper::{server::conn::http1, service::service_fn};
    use hyper_util::rt::TokioIo;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors, most likely: wait, don't spin.
                tracing::warn!(%error, "cannot accept a metrics connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let service =
                service_fn(|request| async move { Ok::<_, hyper::Error>(answer(&request)) });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "metrics connection ended");
            }
        });
    }
}

/// Binds `addr` for [`serve`].
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|error| {
        format!(
            "cannot listen on {addr} ({}): {error}",
            crate::config::setting_name("metrics-listen")
        )
    })
}

fn answer<B>(request: &Request<B>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics().encode(),
        ),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "metrics are at /metrics\n".into(),
        ),
    };
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rpc_counts_under_its_method_and_code() {
        let series = metrics().rpc("test.v1.UnitService", "Count");
        series.record(3, "InvalidArgument", Duration::from_millis(2));
        series.record(3, "InvalidArgument", Duration::from_millis(3));
        series.record(0, "OK", Duration::from_millis(1));
        let text = metrics().encode();
        assert!(text.contains(
            r#"grpc_server_handled_total{grpc_service="test.v1.UnitService",grpc_method="Count",grpc_code="InvalidArgument"} 2"#
        ), "{text}");
        assert!(text.contains(
            r#"grpc_server_handled_total{grpc_service="test.v1.UnitService",grpc_method="Count",grpc_code="OK"} 1"#
        ));
        assert!(text.contains(
            r#"grpc_server_handling_seconds_count{grpc_service="test.v1.UnitService",grpc_method="Count"} 3"#
        ));
    }

    #[test]
    fn a_source_stops_being_read_once_its_guard_is_dropped() {
        let metrics = Box::leak(Box::new(Metrics::new()));
        let guard = metrics.watch_writer_queue(|| Some(7));
        assert!(metrics.encode().contains("consentd_writer_queue_depth 7"));
        drop(guard);
        assert!(metrics.encode().contains("consentd_writer_queue_depth 0"));
    }
}
