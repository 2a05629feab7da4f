//! The batch writer behind RecordConsent: per-row failures, request ids
//! inside one batch, no answer before COMMIT, and a flush on shutdown.

use std::time::Duration;

use consentd::store::WriterConfig;
use futures::future::join_all;
use tonic::Code;

use consentd::domain::{
    ids::{SiteId, SubjectId},
    receipt::Receipt,
};

use crate::helpers::{
    ConsentClient, TestApp, answer, cluster_url, consent_status, count, decision, served_key,
    settings,
};

/// One writer, so that calls queued behind a blocked commit form one batch.
pub(crate) async fn single_writer_app() -> TestApp {
    let mut settings = settings();
    settings.writer = WriterConfig {
        writers: 1,
        max_batch: 256,
    };
    TestApp::spawn_with(&cluster_url(), settings).await
}

/// Makes every COMMIT that inserted a record wait while the test holds
/// advisory lock 4242: a deferred constraint trigger runs at COMMIT.
const COMMIT_GATE: &str = "
    CREATE FUNCTION wait_at_gate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN NULL; END $$;
    CREATE CONSTRAINT TRIGGER commit_gate AFTER INSERT ON consent_records
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION wait_at_gate();";

/// Installs the gate and closes it: COMMITs wait until the returned
/// connection runs `SELECT pg_advisory_unlock(4242)`.
pub(crate) async fn close_commit_gate(app: &TestApp) -> tokio_postgres::Client {
    let gate = app.sql().await;
    gate.batch_execute(COMMIT_GATE).await.unwrap();
    gate.execute("SELECT pg_advisory_lock(4242)", &[])
        .await
        .unwrap();
    gate
}

/// One writer, a client of tenant "acme", and the commit gate closed.
async fn gated_writer() -> (TestApp, ConsentClient, tokio_postgres::Client) {
    let app = single_writer_app().await;
    let client = app.tenant_client("acme").await;
    let gate = close_commit_gate(&app).await;
    (app, client, gate)
}

fn spawn_record(
    client: &ConsentClient,
    subject: &str,
    request_id: &str,
) -> tokio::task::JoinHandle<Result<consentd::api::proto::ConsentRecord, tonic::Status>> {
    let mut client = client.clone();
    let mut request = decision("shop", subject);
    request.request_id = request_id.into();
    tokio::spawn(async move {
        client
            .record_consent(request)
            .await
            .map(|r| r.into_inner().record.unwrap())
    })
}

#[tokio::test]
async fn no_call_is_answered_before_its_commit() {
    let (app, client, gate) = gated_writer().await;

    let call = spawn_record(&client, "waiting", "");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !call.is_finished(),
        "answered while its COMMIT was still waiting"
    );
    assert_eq!(
        app.stored_records().await,
        0,
        "nothing visible before the commit"
    );

    gate.execute("SELECT pg_advisory_unlock(4242)", &[])
        .await
        .unwrap();
    let record = call.await.unwrap().unwrap();
    assert_eq!(record.subject_id, "waiting");
    assert_eq!(app.stored_records().await, 1);
}

#[tokio::test]
async fn one_batch_holds_many_calls_and_a_request_id_twice_gives_one_row() {
    let (app, client, gate) = gated_writer().await;

    // The writer is stuck committing this one while the others queue up.
    let first = spawn_record(&client, "first", "");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut calls: Vec<_> = (0..8)
        .map(|i| spawn_record(&client, &format!("v{i}"), ""))
        .collect();
    calls.push(spawn_record(&client, "dup", "same-request"));
    calls.push(spawn_record(&client, "dup", "same-request"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    gate.execute("SELECT pg_advisory_unlock(4242)", &[])
        .await
        .unwrap();

    first.await.unwrap().unwrap();
    let records: Vec<_> = join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert_eq!(records[8], records[9], "both calls get the first record");
    // One batch, one transaction: one record time for all of them.
    assert!(
        records
            .iter()
            .all(|r| r.record_time == records[0].record_time),
        "written in one batch"
    );
    assert_eq!(app.stored_records().await, 1 + 8 + 1);

    // One signature covers the batch; each receipt proves its own record.
    let mut client = client.clone();
    let public = served_key(&mut client, "sig-1").await;
    let receipts: Vec<Receipt> = records
        .iter()
        .map(|r| Receipt::parse(&r.receipt.as_ref().unwrap().token).unwrap())
        .collect();
    for (record, receipt) in records.iter().zip(&receipts) {
        assert_eq!(receipt.verify(&public), Ok(()));
        let claims: serde_json::Value = serde_json::from_slice(&receipt.claims_json).unwrap();
        assert_eq!(claims["record_id"], record.id);
        assert_eq!(receipt.signature, receipts[0].signature, "one signature");
        // Ten calls, nine records: the repeated request id adds no leaf.
        assert_eq!(receipt.inclusion.as_ref().unwrap().size, 9);
    }
}

#[tokio::test]
async fn a_row_the_database_refuses_fails_only_its_own_call() {
    let (app, client, gate) = gated_writer().await;
    // A constraint no validated request can foresee.
    gate.batch_execute(
        "ALTER TABLE consent_records ADD CONSTRAINT no_evil CHECK (subject_id <> 'evil')",
    )
    .await
    .unwrap();

    let first = spawn_record(&client, "first", "");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let neighbours: Vec<_> = (0..6)
        .map(|i| spawn_record(&client, &format!("v{i}"), ""))
        .collect();
    let evil = spawn_record(&client, "evil", "");
    tokio::time::sleep(Duration::from_millis(300)).await;
    gate.execute("SELECT pg_advisory_unlock(4242)", &[])
        .await
        .unwrap();

    first.await.unwrap().unwrap();
    for call in neighbours {
        call.await
            .unwrap()
            .expect("a neighbour of a bad row is written");
    }
    let refused = evil.await.unwrap().unwrap_err();
    assert_eq!(refused.code(), Code::Internal);
    assert!(
        !refused.message().contains("no_evil"),
        "no database text: {}",
        refused.message()
    );
    assert_eq!(app.stored_records().await, 7);
}

#[tokio::test]
async fn shutdown_answers_every_queued_call_and_keeps_every_acknowledged_record() {
    let app = TestApp::spawn().await;
    let client = app.tenant_client("acme").await;
    let calls: Vec<_> = (0..300)
        .map(|i| spawn_record(&client, &format!("v{i}"), ""))
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let database_url = app.database_url.clone();
    tokio::time::timeout(Duration::from_secs(30), app.stop())
        .await
        .expect("shutdown drains in time");

    let answers = tokio::time::timeout(Duration::from_secs(30), join_all(calls))
        .await
        .expect("every caller is answered");
    let mut acknowledged: Vec<String> = answers
        .iter()
        .filter_map(|answer| match answer {
            Ok(Ok(record)) => Some(record.subject_id.clone()),
            _ => None,
        })
        .collect();
    assert!(!acknowledged.is_empty());
    let mut stored: Vec<String> = crate::helpers::connect(&database_url)
        .await
        .query("SELECT subject_id FROM consent_records", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get("subject_id"))
        .collect();
    acknowledged.sort();
    stored.sort();
    assert_eq!(
        stored, acknowledged,
        "every acknowledged record is stored, nothing else"
    );
}

#[tokio::test]
async fn retries_in_concurrent_transactions_still_write_one_row() {
    let app = TestApp::spawn().await; // two writers: each batch its own transaction
    let client = app.tenant_client("acme").await;
    let gate = close_commit_gate(&app).await;

    // The first call holds its writer at COMMIT; the retries go to the other
    // writers, whose inserts wait on the unique index for its outcome.
    let first = spawn_record(&client, "dup", "retried-request");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let retries: Vec<_> = (0..20)
        .map(|_| spawn_record(&client, "dup", "retried-request"))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    gate.execute("SELECT pg_advisory_unlock(4242)", &[])
        .await
        .unwrap();

    let first = first.await.unwrap().unwrap();
    for retry in join_all(retries).await {
        assert_eq!(retry.unwrap().unwrap(), first);
    }
    assert_eq!(app.stored_records().await, 1);
}

#[tokio::test]
async fn a_batch_that_fails_midway_leaves_no_transaction_open() {
    let app = single_writer_app().await;
    let client = app.tenant_client("acme").await;
    // Settings edited by hand past their constraint: the batch fails after
    // BEGIN, while the record is being sealed.
    let sql = app.sql().await;
    sql.batch_execute(
        "ALTER TABLE sites DROP CONSTRAINT sites_consent_lifetime_micros_check;
         INSERT INTO sites (tenant_id, site_id, consent_lifetime_micros)
         SELECT tenant_id, 'broken', -1 FROM tenants",
    )
    .await
    .unwrap();

    spawn_record(&client, "v", "")
        .await
        .unwrap()
        .expect("another site is unaffected");
    let refused = {
        let mut client = client.clone();
        client.record_consent(decision("broken", "v")).await
    };
    assert_eq!(refused.unwrap_err().code(), Code::Internal);

    // A closed connection's backend leaves pg_stat_activity once it has
    // seen the close: give it a moment.
    let mut open: i64 = -1;
    for _ in 0..50 {
        open = count(
            &sql,
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
            &[],
        )
        .await;
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open, 0, "no pooled connection is left inside a transaction");
    spawn_record(&client, "after", "")
        .await
        .unwrap()
        .expect("the writer goes on");
    assert_eq!(app.stored_records().await, 2);
}

#[tokio::test]
async fn a_stored_row_that_no_longer_reads_names_its_table_and_column() {
    let app = TestApp::spawn().await;
    let mut client = app.tenant_client("acme").await;
    let record = answer(client.record_consent(decision("shop", "edited")))
        .await
        .record
        .unwrap();
    let sql = app.sql().await;
    // A value no build writes, as a hand edit would leave it.
    sql.execute(
        "UPDATE consent_records SET action = 99 WHERE record_id = $1",
        &[&uuid::Uuid::parse_str(&record.id).unwrap()],
    )
    .await
    .unwrap();

    let refused = consent_status(&mut client, "shop", "edited")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Internal);
    assert!(
        !refused.message().contains("consent_records"),
        "opaque to the client"
    );

    let tenant_id: uuid::Uuid = sql
        .query_one("SELECT tenant_id FROM tenants WHERE name = 'acme'", &[])
        .await
        .unwrap()
        .get(0);
    let error = app
        .store
        .consent_status(
            tenant_id,
            &SiteId::parse("shop".into()).unwrap(),
            &SubjectId::parse("edited".into()).unwrap(),
            consentd::domain::time::Reading::Now(std::time::SystemTime::now()),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, consentd::store::Error::Internal(_)));
    let chain = consentd::telemetry::error_chain(&error);
    assert!(
        chain.contains("corrupt row in consent_records: column action"),
        "{chain}"
    );
}
