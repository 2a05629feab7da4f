//! Prometheus metrics, scraped over HTTP from a real `consentd serve`
//! process (the series are process-wide, so the test binary's own servers
//! would move them too).

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use consentd::{api::proto::ExportConsentsRequest, domain::auth::Scope};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::StreamExt;
use tonic::Code;

use crate::{
    child::free_addr,
    helpers::{TestApp, answer, decision},
    telemetry::ServeProcess,
};

/// `(status, body)` of a GET over HTTP/1.1.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: consentd\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// Samples of a Prometheus text exposition, by series: the name and its
/// labels, sorted, as [`series`] writes them.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (name, rest) = match line.split_once('{') {
            Some((name, rest)) => (name, rest),
            None => {
                let (name, value) = line.split_once(' ').unwrap_or_else(|| panic!("{line}"));
                samples.insert(
                    name.to_string(),
                    value.parse().unwrap_or_else(|_| panic!("{line}")),
                );
                continue;
            }
        };
        let mut labels = Vec::new();
        let mut rest = rest;
        while let Some((key, after)) = rest.split_once("=\"") {
            let key = key.trim_start_matches(',');
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next().unwrap_or_else(|| panic!("{line}")) {
                    (_, '\\') => value.push(chars.next().unwrap().1),
                    (i, '"') => break i,
                    (_, c) => value.push(c),
                }
            };
            labels.push((key.to_string(), value));
            rest = &after[end + 1..];
            if rest.starts_with('}') {
                break;
            }
        }
        let value = rest.trim_start_matches('}').trim();
        let labels: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        samples.insert(
            series(name, &labels),
            value.parse().unwrap_or_else(|_| panic!("{line}")),
        );
    }
    samples
}

/// A series' key in [`parse`]'s map: `name{a="1",b="2"}`, labels sorted.
fn series(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_string();
    }
    let mut labels = labels.to_vec();
    labels.sort();
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", labels.join(","))
}

async fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    parse(&body)
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

fn handled(method: &str, code: &str) -> String {
    series(
        "grpc_server_handled_total",
        &[
            ("grpc_service", "consent.v1.ConsentService"),
            ("grpc_method", method),
            ("grpc_code", code),
        ],
    )
}

fn handling(suffix: &str, method: &str, extra: &[(&str, &str)]) -> String {
    let mut labels = vec![
        ("grpc_service", "consent.v1.ConsentService"),
        ("grpc_method", method),
    ];
    labels.extend_from_slice(extra);
    series(&format!("grpc_server_handling_seconds_{suffix}"), &labels)
}

#[tokio::test]
async fn calls_move_the_counters_under_their_method_and_code() {
    let app = TestApp::spawn().await;
    let key = app.key("metered", &Scope::ALL).await;
    let metrics_addr = free_addr();
    let server = ServeProcess::start(
        &app.database_url,
        &[
            ("CONSENTD_METRICS_LISTEN", metrics_addr.to_string()),
            ("CONSENTD_EXPIRY_INTERVAL", "100ms".into()),
            ("CONSENTD_RETENTION_INTERVAL", "100ms".into()),
        ],
    )
    .await;
    let mut client = server.client(&key).await;
    let before = scrape(metrics_addr).await;

    for i in 0..3 {
        client
            .record_consent(decision("shop", &format!("subject-{i}")))
            .await
            .unwrap();
    }
    for _ in 0..2 {
        let status = client
            .record_consent(decision("", "subject"))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
    }
    let mut stranger = server.client("cdk_not-a-key").await;
    let status = stranger
        .record_consent(decision("shop", "subject"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut export = answer(client.export_consents(ExportConsentsRequest {
        site_id: "shop".into(),
        ..Default::default()
    }))
    .await;
    let mut exported = 0;
    while let Some(message) = export.next().await {
        exported += message.unwrap().records.len();
    }
    assert_eq!(exported, 3);
    // The workers run every 100 ms.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let after = scrape(metrics_addr).await;
    let moved = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(moved(&handled("RecordConsent", "OK")), 3.0, "{after:#?}");
    assert_eq!(moved(&handled("RecordConsent", "InvalidArgument")), 2.0);
    assert_eq!(moved(&handled("RecordConsent", "Unauthenticated")), 1.0);
    assert_eq!(moved(&handled("ExportConsents", "OK")), 1.0);
    assert_eq!(moved(&handling("count", "RecordConsent", &[])), 6.0);
    assert_eq!(
        moved(&handling("bucket", "RecordConsent", &[("le", "+Inf")])),
        6.0
    );
    assert!(moved(&handling("sum", "RecordConsent", &[])) > 0.0);

    assert_eq!(moved("consentd_writer_batch_size_sum"), 3.0);
    assert!(moved("consentd_writer_batch_size_count") >= 1.0);
    assert_eq!(value(&after, "consentd_writer_queue_depth"), 0.0);
    assert_eq!(moved("consentd_exported_records_total"), 3.0);
    assert_eq!(value(&after, "consentd_exports_in_flight"), 0.0);
    assert!(value(&after, "consentd_db_pool_max_connections") >= 1.0);
    let pool = |state| {
        value(
            &after,
            &series("consentd_db_pool_connections", &[("state", state)]),
        )
    };
    assert!(pool("idle") + pool("in_use") >= 1.0, "{after:#?}");
    assert_eq!(value(&after, "consentd_db_pool_waiting"), 0.0);
    for worker in ["expiry", "retention"] {
        // The test's own server works the same database: a retention run
        // may find it has the turn.
        let runs = |outcome| {
            moved(&series(
                "consentd_worker_runs_total",
                &[("worker", worker), ("outcome", outcome)],
            ))
        };
        assert!(
            runs("ok") + runs("skipped") >= 1.0,
            "{worker} never ran: {after:#?}"
        );
        assert_eq!(runs("error"), 0.0);
        assert!(after.contains_key(&series("consentd_worker_rows_total", &[("worker", worker)])));
    }

    // Nothing personal, no key, and no label beyond the bounded ones.
    let (_, text) = get(metrics_addr, "/metrics").await;
    for secret in [key.as_str(), "subject-0", "203.0.113", "shop.example"] {
        assert!(!text.contains(secret), "the metrics hold {secret}");
    }
    assert_eq!(get(metrics_addr, "/other").await.0, 404);
}
