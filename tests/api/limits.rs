//! What one call and one connection may take: deadlines that reach
//! PostgreSQL, load shedding, message sizes, keepalive and connection age.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use consentd::{
    api::proto::{GetConsentStatusRequest, consent_service_client::ConsentServiceClient},
    domain::auth::Scope,
    server::ServerSettings,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tonic::{
    Code, Request, body::Body, service::interceptor::InterceptedService, transport::Endpoint,
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tower::util::BoxCloneService;

use crate::helpers::{
    self, TestApp, WithKey, cluster_url, consent_status, count, decision, recorded, settings,
    shop_list,
};

/// A consent client that sends `grpc-timeout` without enforcing it
/// itself: tonic's client gives up at the deadline on its own, with
/// CANCELLED, before the server's answer can arrive. This one hears what
/// the server answers.
type PatientClient = ConsentServiceClient<
    InterceptedService<
        BoxCloneService<http::Request<Body>, http::Response<hyper::body::Incoming>, hyper::Error>,
        WithKey,
    >,
>;

async fn patient_client(app: &TestApp, key: &str) -> PatientClient {
    let socket = TcpStream::connect(app.addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(socket))
            .await
            .unwrap();
    tokio::spawn(connection);
    let service = tower::service_fn(move |request: http::Request<Body>| {
        let mut sender = sender.clone();
        async move { sender.send_request(request).await }
    });
    ConsentServiceClient::with_origin(
        InterceptedService::new(
            BoxCloneService::new(service),
            WithKey(Some(key.parse().unwrap())),
        ),
        "http://consentd.test".parse().unwrap(),
    )
}

/// Settings whose background workers run only at start, so the only
/// statements waiting on a lock the test holds are its calls'.
fn quiet_settings() -> ServerSettings {
    let mut settings = settings();
    settings.expiry_interval = Duration::from_secs(3600);
    settings.retention_interval = Duration::from_secs(3600);
    settings
}

/// Backends of the app's database waiting on a lock.
async fn lock_waiters(app: &TestApp) -> i64 {
    count(
        &app.sql().await,
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
        &[],
    )
    .await
}

async fn wait_for_lock_waiters(app: &TestApp, wanted: i64, within: Duration) {
    let started = Instant::now();
    while started.elapsed() < within {
        if lock_waiters(app).await == wanted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{} backends wait on a lock, not {wanted}, after {within:?}",
        lock_waiters(app).await
    );
}

#[tokio::test]
async fn a_deadline_shorter_than_a_blocked_statement_ends_deadline_exceeded_and_cancels_it() {
    let app = TestApp::spawn_with(&cluster_url(), quiet_settings()).await;
    let key = app.key("acme", &Scope::ALL).await;
    let mut client = app.client(Some(&key)).await;
    recorded(&mut client, decision("shop", "visitor")).await;

    // The test's own transaction holds the table: the call's SELECT waits.
    let lock = app.lock_consent_records().await;

    let call = tokio::spawn({
        let mut client = patient_client(&app, &key).await;
        async move {
            let mut request = Request::new(GetConsentStatusRequest {
                as_of: None,
                site_id: "shop".into(),
                subject_id: "visitor".into(),
            });
            request.set_timeout(Duration::from_millis(1500));
            let started = Instant::now();
            let outcome = client.get_consent_status(request).await;
            (outcome, started.elapsed())
        }
    });
    wait_for_lock_waiters(&app, 1, Duration::from_secs(5)).await;
    let (outcome, took) = call.await.unwrap();
    let status = outcome.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(took < Duration::from_secs(3), "answered after {took:?}");

    // The lock is still held: only a cancel ends the waiting statement,
    // and this one comes before the statement timeout would, 2 s later.
    wait_for_lock_waiters(&app, 0, Duration::from_millis(1500)).await;
    lock.release().await;

    // The pool is whole: the cancelled connection was not handed out again.
    for _ in 0..8 {
        consent_status(&mut client, "shop", "visitor")
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_deadline_leaves_no_statement_timeout_behind_for_the_next_call() {
    let app = TestApp::spawn_with(&cluster_url(), quiet_settings()).await;
    let client = app.tenant_client("acme").await;
    let status_request = || GetConsentStatusRequest {
        as_of: None,
        site_id: "shop".into(),
        subject_id: "visitor".into(),
    };
    recorded(&mut client.clone(), decision("shop", "visitor")).await;
    // Calls at once, so every connection of the pool serves one with a
    // deadline, and its statement timeout of at most 3 s.
    let calls: Vec<_> = (0..helpers::POOL_SIZE * 2)
        .map(|_| {
            let mut client = client.clone();
            let mut request = Request::new(status_request());
            request.set_timeout(Duration::from_secs(1));
            tokio::spawn(async move { client.get_consent_status(request).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }

    // A call without a deadline may wait longer than that.
    let lock = app.lock_consent_records().await;
    let call = tokio::spawn({
        let mut client = client.clone();
        async move { client.get_consent_status(status_request()).await }
    });
    wait_for_lock_waiters(&app, 1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    lock.release().await;
    call.await
        .unwrap()
        .expect("no statement timeout is left from an earlier call");
}

#[tokio::test]
async fn a_burst_above_the_concurrency_limit_is_refused_at_once_and_the_rest_succeed() {
    let mut settings = quiet_settings();
    settings.limits.max_concurrent_requests = 4;
    let app = TestApp::spawn_with(&cluster_url(), settings).await;
    let client = app.tenant_client("acme").await;

    // Admitted calls wait on the writer's INSERT, so none ends before the
    // whole burst has arrived.
    let lock = app.lock_consent_records().await;

    let calls: Vec<_> = (0..12)
        .map(|i| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let outcome = client
                    .record_consent(decision("shop", &format!("burst-{i}")))
                    .await;
                (outcome, Instant::now())
            })
        })
        .collect();
    // The excess is answered while the lock is still held.
    let waited = Instant::now();
    while calls.iter().filter(|call| call.is_finished()).count() < 8 {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "the excess calls were not refused at once"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut health = HealthClient::new(app.channel().await);
    let probe = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health checks are never refused for load");
    assert_eq!(probe.into_inner().status, ServingStatus::Serving as i32);

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        calls.iter().filter(|call| call.is_finished()).count(),
        8,
        "the admitted calls wait for the lock"
    );
    let released = Instant::now();
    lock.release().await;

    let (mut refused, mut served) = (0, 0);
    for call in calls {
        let (outcome, at) = call.await.unwrap();
        match outcome {
            Ok(_) => served += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert!(at < released, "refused at once, not after a wait");
                refused += 1;
            }
        }
    }
    assert_eq!((served, refused), (4, 8));
    assert_eq!(app.stored_records().await, 4);

    // The places are given back.
    let mut client = client.clone();
    recorded(&mut client, decision("shop", "after-the-burst")).await;
}

#[tokio::test]
async fn messages_over_the_size_limits_get_resource_exhausted() {
    let mut settings = settings();
    settings.limits.max_request_bytes = 16 * 1024;
    settings.limits.max_response_bytes = 8 * 1024;
    let app = TestApp::spawn_with(&cluster_url(), settings).await;
    let mut client = app.tenant_client("acme").await;

    let mut large = decision("shop", "large");
    large.page_url = format!("https://shop.example/?q={}", "x".repeat(20 * 1024));
    let status = client.record_consent(large).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(app.stored_records().await, 0);

    for i in 0..20 {
        recorded(&mut client, decision("shop", &format!("visitor-{i}"))).await;
    }
    client.list_consents(shop_list(1)).await.unwrap();
    let status = client.list_consents(shop_list(20)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
}

/// The types of the HTTP/2 frames the server sends, up to the first of
/// type `until` or the end of the connection.
async fn frames(socket: &mut TcpStream, until: Option<u8>) -> Vec<u8> {
    let mut types = Vec::new();
    loop {
        let mut header = [0u8; 9];
        if socket.read_exact(&mut header).await.is_err() {
            return types;
        }
        let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; len];
        if socket.read_exact(&mut payload).await.is_err() {
            return types;
        }
        types.push(header[3]);
        if Some(header[3]) == until {
            return types;
        }
    }
}

/// A connection that has said hello (preface and SETTINGS) and then
/// answers nothing.
async fn silent_connection(app: &TestApp) -> TcpStream {
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    socket
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    socket
}

const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;

#[tokio::test]
async fn a_connection_that_does_not_answer_pings_is_closed() {
    let mut settings = settings();
    settings.limits.keepalive_interval = Duration::from_millis(200);
    settings.limits.keepalive_timeout = Duration::from_millis(200);
    let app = TestApp::spawn_with(&cluster_url(), settings).await;

    let mut socket = silent_connection(&app).await;
    let frames = tokio::time::timeout(Duration::from_secs(5), frames(&mut socket, None))
        .await
        .expect("the server closes a connection whose pings go unanswered");
    assert!(frames.contains(&PING), "{frames:?}");
}

#[tokio::test]
async fn connections_past_the_maximum_age_are_sent_away_and_the_client_reconnects() {
    let mut settings = settings();
    settings.limits.max_connection_age = Some(Duration::from_millis(300));
    let app = TestApp::spawn_with(&cluster_url(), settings).await;

    let mut socket = silent_connection(&app).await;
    let frames = tokio::time::timeout(Duration::from_secs(5), frames(&mut socket, Some(GOAWAY)))
        .await
        .expect("a connection past its age is sent a GOAWAY");
    assert_eq!(frames.last(), Some(&GOAWAY), "{frames:?}");

    // A real client opens a new connection for its next call.
    let connections = Arc::new(AtomicUsize::new(0));
    let addr = app.addr;
    let channel = Endpoint::from_static("http://consentd.test")
        .connect_with_connector(tower::service_fn({
            let connections = connections.clone();
            move |_| {
                connections.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, std::io::Error>(TokioIo::new(TcpStream::connect(addr).await?)) }
            }
        }))
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let check = || HealthCheckRequest {
        service: "liveness".into(),
    };
    health.check(check()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    health.check(check()).await.unwrap();
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}
