//! A real `consentd serve` process: SIGTERM under load, the drain, and
//! settings refused at start.

use std::{
    collections::HashSet,
    io::Read,
    net::SocketAddr,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use consentd::{
    api::proto::{GetConsentStatusRequest, consent_service_client::ConsentServiceClient},
    domain::auth::Scope,
};
use tokio::sync::watch;
use tonic::{Request, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{
    child::{exited, free_addr, serve_command},
    helpers::{
        ConsentClient, TestApp, WithKey, cluster_url, consent_status, count, decision,
        first_column, recorded, settings,
    },
};

/// `consentd serve` as a child process on a port of its own.
struct Served {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Served {
    fn spawn(database_url: &str, env: &[(&str, &str)]) -> Self {
        // A port the kernel just handed out and took back: free unless
        // another test grabs it in the meantime.
        let addr = free_addr();
        let mut child = info_serve_command(database_url)
            .env("CONSENTD_LISTEN", addr.to_string())
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        std::thread::spawn({
            let stderr = stderr.clone();
            move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                    stderr
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&chunk[..n]));
                }
            }
        });
        Self {
            child,
            addr,
            stderr,
        }
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    async fn channel(&self) -> Result<Channel, tonic::transport::Error> {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect_timeout(Duration::from_secs(1))
            .connect()
            .await
    }

    /// Readiness on a new connection; `None` when none can be opened.
    async fn readiness(&self) -> Option<ServingStatus> {
        let mut client = HealthClient::new(self.channel().await.ok()?);
        let response = client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .ok()?;
        ServingStatus::try_from(response.into_inner().status).ok()
    }

    async fn wait_until_ready(&mut self) {
        let started = Instant::now();
        while self.readiness().await != Some(ServingStatus::Serving) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("consentd exited with {status}: {}", self.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "consentd never became ready: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    async fn exit(&mut self, within: Duration) -> ExitStatus {
        let stderr = self.stderr.clone();
        exited(&mut self.child, within, || stderr.lock().unwrap().clone()).await
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn info_serve_command(database_url: &str) -> Command {
    let mut command = serve_command(database_url);
    command.env("RUST_LOG", "info").stdout(Stdio::null());
    command
}

async fn client(served: &Served, key: &str) -> ConsentClient {
    ConsentServiceClient::with_interceptor(
        served.channel().await.unwrap(),
        WithKey(Some(key.parse().unwrap())),
    )
}

#[tokio::test]
async fn sigterm_under_load_goes_not_serving_first_drops_no_acknowledged_record_and_exits_0() {
    let (app, key) = TestApp::spawn_with_key("acme").await;
    let mut served = Served::spawn(
        &app.database_url,
        &[
            ("CONSENTD_SHUTDOWN_DELAY", "1s"),
            ("CONSENTD_DRAIN_TIMEOUT", "15s"),
        ],
    );
    served.wait_until_ready().await;

    // Callers record without pause, each on a connection of its own, and
    // keep the ids of what was acknowledged, and when each call began.
    let (stop, stopped) = watch::channel(false);
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, Instant)>::new()));
    let mut callers = Vec::new();
    for caller in 0..16 {
        let mut client = client(&served, &key).await;
        let (acknowledged, stopped) = (acknowledged.clone(), stopped.clone());
        callers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for i in 0.. {
                if *stopped.borrow() {
                    break;
                }
                let began = Instant::now();
                match client
                    .record_consent(decision("shop", &format!("caller-{caller}-{i}")))
                    .await
                {
                    Ok(response) => {
                        let record = response.into_inner().record.unwrap();
                        acknowledged.lock().unwrap().push((record.id, began));
                    }
                    Err(status) => {
                        failures.push((began, status.code()));
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            failures
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let signalled = Instant::now();
    served.signal("-TERM");
    // What a readiness probe sees once the signal has been taken in, until
    // connections are refused.
    let mut seen = Vec::new();
    let mut first_change = None;
    loop {
        let status = served.readiness().await;
        if status == Some(ServingStatus::Serving) && seen.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        first_change.get_or_insert_with(|| signalled.elapsed());
        seen.push(status);
        if status.is_none() || signalled.elapsed() > Duration::from_secs(20) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = served.exit(Duration::from_secs(20)).await;
    let _ = stop.send(true);
    let mut failures = Vec::new();
    for caller in callers {
        failures.extend(caller.await.unwrap());
    }

    assert!(status.success(), "exit status {status}: {}", served.log());
    assert_eq!(
        seen.first(),
        Some(&Some(ServingStatus::NotServing)),
        "readiness went NOT_SERVING before the listener closed: {seen:?}"
    );
    assert!(
        first_change < Some(Duration::from_millis(800)),
        "NOT_SERVING at once, not after the delay: {first_change:?}"
    );
    assert_eq!(seen.last(), Some(&None), "{seen:?}");
    assert!(
        !seen.contains(&Some(ServingStatus::Serving)),
        "readiness never came back: {seen:?}"
    );

    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        failures.iter().all(|(began, _)| *began > signalled),
        "nothing failed before the signal: {failures:?}"
    );
    assert!(
        acknowledged
            .iter()
            .any(|(_, began)| *began > signalled + Duration::from_millis(500)),
        "calls kept being served during the shutdown delay"
    );
    let stored: HashSet<String> = first_column(
        &app.sql().await,
        "SELECT record_id::text FROM consent_records",
        &[],
    )
    .await
    .into_iter()
    .collect();
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|(id, _)| !stored.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {missing:?}"
    );
    assert!(
        acknowledged.len() > 16,
        "{} acknowledged",
        acknowledged.len()
    );
    let log = served.log();
    assert!(log.contains("shutting down"), "{log}");
}

#[tokio::test]
async fn postgres_ends_a_statement_of_a_killed_process_at_the_deadline_plus_margin() {
    let app = TestApp::spawn_with(&cluster_url(), {
        let mut settings = settings();
        settings.retention_interval = Duration::from_secs(3600);
        settings.expiry_interval = Duration::from_secs(3600);
        settings.log.interval = Duration::from_secs(3600);
        settings
    })
    .await;
    let key = app.key("acme", &Scope::ALL).await;
    let mut served = Served::spawn(&app.database_url, &[]);
    served.wait_until_ready().await;
    let mut client = client(&served, &key).await;

    let lock = app.lock_consent_records().await;
    // GetConsentStatus's statement only (consent_status.sql): the killed
    // process's workers may have queued behind the lock too, at their
    // start or their next round, and those have no deadline of a call.
    let waiting = || async {
        count(
            &app.sql().await,
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'
               AND query LIKE '-- The subject''s latest record%'",
            &[],
        )
        .await
    };
    tokio::spawn(async move {
        let mut request = Request::new(GetConsentStatusRequest {
            as_of: None,
            site_id: "shop".into(),
            subject_id: "visitor".into(),
        });
        request.set_timeout(Duration::from_secs(2));
        let _ = client.get_consent_status(request).await;
    });
    let started = Instant::now();
    while waiting().await == 0 {
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // No cancel can come from a process that is gone.
    served.signal("-KILL");
    served.exit(Duration::from_secs(5)).await;

    // Its statement timeout, the deadline plus 2 s, ends the wait.
    while waiting().await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the statement still waits after the deadline and its margin"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "not before the deadline"
    );
    lock.release().await;
}

#[tokio::test]
async fn settings_refused_at_start_name_their_flag_and_environment_variable() {
    let refused = |env: &[(&str, &str)]| {
        let output = info_serve_command("postgres://nobody@127.0.0.1:1/none")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8(output.stderr).unwrap()
    };

    let stderr = refused(&[("CONSENTD_SHUTDOWN_DELAY", "soon")]);
    assert!(
        stderr.contains("--shutdown-delay") && stderr.contains("CONSENTD_SHUTDOWN_DELAY"),
        "{stderr}"
    );
    let stderr = refused(&[("CONSENTD_MAX_CONCURRENT_REQUESTS", "0")]);
    assert!(
        stderr.contains("--max-concurrent-requests")
            && stderr.contains("CONSENTD_MAX_CONCURRENT_REQUESTS"),
        "{stderr}"
    );
    let stderr = refused(&[("CONSENTD_TLS_CERT_FILE", "/nonexistent/cert.pem")]);
    assert!(
        stderr.contains("--tls-key-file") && stderr.contains("CONSENTD_TLS_KEY_FILE"),
        "a certificate needs its key: {stderr}"
    );
    let stderr = refused(&[
        ("CONSENTD_TLS_CERT_FILE", "/nonexistent/cert.pem"),
        ("CONSENTD_TLS_KEY_FILE", "/nonexistent/key.pem"),
    ]);
    assert!(
        stderr.contains("--tls-cert-file")
            && stderr.contains("CONSENTD_TLS_CERT_FILE")
            && stderr.contains("/nonexistent/cert.pem"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_drain_timeout_bounds_a_call_that_does_not_finish() {
    let mut settings = settings();
    settings.retention_interval = Duration::from_secs(3600);
    settings.drain.timeout = Duration::from_millis(500);
    let app = TestApp::spawn_with(&cluster_url(), settings).await;
    let mut client = app.tenant_client("acme").await;
    recorded(&mut client, decision("shop", "visitor")).await;

    let lock = app.lock_consent_records().await;
    let stuck = tokio::spawn(async move { consent_status(&mut client, "shop", "visitor").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!stuck.is_finished(), "the call waits for the lock");
    let stopping = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("the server returns once the drain timeout has passed");
    assert!(stopping.elapsed() >= Duration::from_millis(500));
    lock.release().await;
    let _ = tokio::time::timeout(Duration::from_secs(10), stuck).await;
}
