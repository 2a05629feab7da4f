//! Resources (issue 14, item 6), against a `consentd serve` child whose
//! memory is read from /proc: exports that nobody reads, a slow reader,
//! 1,000 streams on one connection, 200 idle connections, and exports
//! cancelled after their first message.
//!
//! The child's pool is small and its key cache off, so every call needs a
//! pooled connection: a pool held by exports shows as calls that wait.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use consentd::{
    api::proto::{ExportConsentsRequest, GetConsentStatusRequest},
    domain::auth::Scope,
    store::Store,
};
use futures::{StreamExt, future::join_all, stream};
use prost::Message;
use tonic::{Code, transport::Channel};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::{
    child::{Consentd, consent_client, free_addr, health},
    helpers::{
        ConsentClient, answer, cluster_url, connect, copy_record, count, decision, fresh_database,
        recorded,
    },
    soak,
};

/// The child's pool (CONSENTD_POOL_SIZE).
const POOL: usize = 8;

struct Setup {
    consentd: Consentd,
    sql: tokio_postgres::Client,
    key: String,
    other_key: String,
}

impl Setup {
    /// consentd on a new database whose site "shop" holds `records` + 1
    /// records of tenant "acme".
    async fn new(records: i64) -> Self {
        let database = fresh_database(&cluster_url()).await;
        let store = Store::new(&database, 2).unwrap();
        store.migrate().await.unwrap();
        let key = store.create_key("acme", &Scope::ALL).await.unwrap();
        let other_key = store.create_key("globex", &Scope::ALL).await.unwrap();
        let consentd = Consentd::start(
            &database,
            free_addr(),
            &[
                ("CONSENTD_POOL_SIZE", &POOL.to_string()),
                ("CONSENTD_AUTH_CACHE_TTL", "0s"),
            ],
        )
        .await;
        let setup = Self {
            sql: connect(&database).await,
            key: key.secret.expose().to_string(),
            other_key: other_key.secret.expose().to_string(),
            consentd,
        };
        let template = recorded(&mut setup.client(), decision("shop", "template")).await;
        copy_record(&setup.sql, &template.id, records).await;
        setup
    }

    fn client(&self) -> ConsentClient {
        consent_client(self.consentd.channel(), &self.key)
    }

    fn mib(&self) -> f64 {
        self.consentd.rss_kib() as f64 / 1024.0
    }
}

fn export_shop() -> ExportConsentsRequest {
    ExportConsentsRequest {
        site_id: "shop".into(),
        ..Default::default()
    }
}

/// The median of `n` RecordConsent calls in sequence.
async fn median_record_latency(client: &ConsentClient, n: usize) -> Duration {
    let mut client = client.clone();
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        recorded(&mut client, decision("shop", &format!("timed-{i}"))).await;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies[n / 2]
}

/// `calls` RecordConsent and GetConsentStatus calls, 16 at a time; all must
/// succeed. Returns their latencies, fastest first.
async fn latencies_of_calls(client: &ConsentClient, calls: usize) -> Vec<Duration> {
    let mut latencies: Vec<Duration> = stream::iter(0..calls)
        .map(|i| {
            let mut client = client.clone();
            async move {
                let started = Instant::now();
                if i % 2 == 0 {
                    recorded(&mut client, decision("shop", &format!("during-{i}"))).await;
                } else {
                    client
                        .get_consent_status(GetConsentStatusRequest {
                            as_of: None,
                            site_id: "shop".into(),
                            subject_id: "template".into(),
                        })
                        .await
                        .unwrap();
                }
                started.elapsed()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    latencies.sort();
    latencies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_exports_cannot_starve_record_consent() {
    let setup = Setup::new(20_000).await;
    // The hostile client has a connection of its own, as it would.
    let (hostile, client) = (setup.client(), setup.client());
    let baseline = latencies_of_calls(&client, 64).await;
    let before = setup.mib();
    let opened = join_all((0..100).map(|_| {
        let mut hostile = hostile.clone();
        async move { hostile.export_consents(export_shop()).await }
    }))
    .await;
    let mut held = Vec::new();
    let mut refused = BTreeMap::new();
    for export in opened {
        match export {
            Ok(stream) => held.push(stream),
            Err(status) => *refused.entry(format!("{:?}", status.code())).or_insert(0) += 1,
        }
    }
    // Let the exports that were let in take their connections and fill
    // every buffer up to the unread client.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = latencies_of_calls(&client, 64).await;
    let mut other = consent_client(setup.consentd.channel(), &setup.other_key);
    let other_tenant = other.export_consents(export_shop()).await.map(|_| ());
    let memory = setup.mib();
    println!(
        "100 unread exports: {} running, refused {refused:?}; 64 calls meanwhile: median {:?} \
         slowest {:?} (before: {:?}, {:?}); another tenant's export {other_tenant:?}; \
         RSS {before:.1} MiB -> {memory:.1} MiB",
        held.len(),
        during[32],
        during[63],
        baseline[32],
        baseline[63],
    );
    assert!(!held.is_empty() && held.len() <= POOL / 2, "{}", held.len());
    assert_eq!(refused.get("ResourceExhausted"), Some(&(100 - held.len())));
    // A call that waits for a pooled connection fails after 3 s: none did,
    // and none came near.
    assert!(
        during[63] < Duration::from_millis(2500),
        "RecordConsent waited {:?} behind unread exports",
        during[63]
    );
    other_tenant.expect("another tenant's export is not refused for this one's");

    drop(held);
    let started = Instant::now();
    let mut client = client.clone();
    let response = loop {
        match client.export_consents(export_shop()).await {
            Ok(response) => break response,
            Err(status) if status.code() == Code::ResourceExhausted => {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "slots never freed"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("{status:?}"),
        }
    };
    let freed = started.elapsed();
    let mut stream = response.into_inner();
    let mut records = 0;
    while let Some(message) = stream.message().await.unwrap() {
        records += message.records.len();
    }
    assert_eq!(
        records,
        20_001 + 64,
        "the whole site, with the records made meanwhile"
    );
    println!(
        "unread exports dropped: a new export let in {freed:?} later; RSS {:.1} MiB",
        setup.mib()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_does_not_grow_memory() {
    let records = soak::pick(100_000, 300_000);
    let pause = soak::pick(Duration::from_millis(40), Duration::from_millis(200));
    let setup = Setup::new(records).await;
    let mut client = setup.client();
    let before = setup.mib();
    let mut stream = answer(client.export_consents(export_shop())).await;
    let (mut received, mut bytes, mut peak) = (0, 0, before);
    while let Some(message) = stream.message().await.unwrap() {
        received += message.records.len();
        bytes += message.encoded_len();
        peak = peak.max(setup.mib());
        tokio::time::sleep(pause).await;
    }
    let after = setup.mib();
    let exported = bytes as f64 / (1 << 20) as f64;
    println!(
        "slow reader ({pause:?} per message): {received} records, {exported:.1} MiB sent; \
         RSS {before:.1} MiB, peak {peak:.1} MiB, after {after:.1} MiB"
    );
    assert_eq!(received as i64, records + 1);
    assert!(
        peak - before < 32.0 && peak - before < exported / 2.0,
        "RSS grew {:.1} MiB for an export of {exported:.1} MiB",
        peak - before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_streams_on_one_connection_and_200_idle_connections_leave_it_up() {
    let setup = Setup::new(0).await;
    let client = setup.client();
    let before = setup.mib();

    let started = Instant::now();
    let answers = join_all((0..1000).map(|i| {
        let mut client = client.clone();
        async move {
            client
                .record_consent(decision("shop", &format!("stream-{i}")))
                .await
                .map(|_| ())
        }
    }))
    .await;
    let took = started.elapsed();
    let mut statuses = BTreeMap::new();
    for answer in &answers {
        let code = answer.as_ref().map_or_else(|s| s.code(), |_| Code::Ok);
        *statuses.entry(format!("{code:?}")).or_insert(0) += 1;
    }
    let after_streams = setup.mib();

    let mut idle: Vec<Channel> = Vec::new();
    for _ in 0..200 {
        let channel = Channel::from_shared(format!("http://{}", setup.consentd.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        // A call sets the connection up on the server's side too.
        tonic_health::pb::health_client::HealthClient::new(channel.clone())
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .unwrap();
        idle.push(channel);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let with_idle = setup.mib();
    let serving = health(setup.consentd.addr, "").await;
    let fresh = Instant::now();
    recorded(&mut setup.client(), decision("shop", "after")).await;
    let fresh = fresh.elapsed();
    drop(idle);
    println!(
        "1000 streams on one connection in {took:?}: {statuses:?}; RSS {before:.1} MiB -> {after_streams:.1} MiB; \
         with 200 idle connections {with_idle:.1} MiB; health {serving:?}; a new call then {fresh:?}"
    );
    for code in statuses.keys() {
        assert!(code == "Ok" || code == "ResourceExhausted", "{statuses:?}");
    }
    assert!(statuses.contains_key("Ok"));
    assert_eq!(serving, Some(ServingStatus::Serving));
    assert!(fresh < Duration::from_secs(1), "{fresh:?}");
    assert!(
        after_streams - before < 64.0 && with_idle - before < 96.0,
        "RSS {before:.1} -> {after_streams:.1} -> {with_idle:.1} MiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_cancelled_after_their_first_message_free_their_connections() {
    let setup = Setup::new(10_000).await;
    let client = setup.client();
    let latency_before = median_record_latency(&client, 20).await;
    let before = setup.mib();

    // A small window, so each export stops early for want of a reader, as
    // one does that nobody reads, with most of the site still to send.
    let exporter = consent_client(
        Channel::from_shared(format!("http://{}", setup.consentd.addr))
            .unwrap()
            .initial_stream_window_size(64 * 1024)
            .connect_lazy(),
        &setup.key,
    );
    for _ in 0..100 {
        // A refusal would mean the last one's place was not freed within
        // the second an export waits for one.
        let mut stream = answer(exporter.clone().export_consents(export_shop())).await;
        assert!(!stream.message().await.unwrap().unwrap().records.is_empty());
    }

    let started = Instant::now();
    let in_transaction = loop {
        let open = count(
            &setup.sql,
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'consentd' \
               AND state <> 'idle'",
            &[],
        )
        .await;
        if open == 0 || started.elapsed() > Duration::from_secs(5) {
            break open;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let serving = health(setup.consentd.addr, "").await;
    let latency_after = median_record_latency(&client, 20).await;
    let slowest = *latencies_of_calls(&client, 2 * POOL).await.last().unwrap();
    let after = setup.mib();
    println!(
        "100 exports cancelled after one message: connections still in use {in_transaction}; health {serving:?}; RecordConsent median \
         {latency_before:?} -> {latency_after:?}; slowest of {} calls {slowest:?}; RSS {before:.1} MiB -> {after:.1} MiB",
        2 * POOL
    );
    assert_eq!(
        in_transaction, 0,
        "cancelled exports keep their connections"
    );
    assert_eq!(serving, Some(ServingStatus::Serving));
    assert!(
        latency_after <= latency_before * 2 + Duration::from_millis(25),
        "RecordConsent {latency_before:?} before, {latency_after:?} after"
    );
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
}
