use futures::future::join_all;

use crate::helpers::{TestApp, decision, recorded};

#[tokio::test]
async fn a_request_id_sent_twice_and_twenty_times_concurrently_writes_one_row() {
    let app = TestApp::spawn().await;
    let client = app.tenant_client("acme").await;

    let mut request = decision("shop", "visitor-1");
    request.request_id = "3f1c8e2a-7d4b-4c1e-9a55-1b2f3c4d5e6f".into();
    let first = client
        .clone()
        .record_consent(request.clone())
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    let again = client
        .clone()
        .record_consent(request.clone())
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(again, first);

    request.request_id = "concurrent-retries".into();
    let answers = join_all((0..20).map(|_| {
        let mut client = client.clone();
        let request = request.clone();
        async move { recorded(&mut client, request).await }
    }))
    .await;
    assert!(
        answers.iter().all(|answer| *answer == answers[0]),
        "every retry gets the first record"
    );
    assert_eq!(answers[0].request_id, "concurrent-retries");

    let rows = app.stored_records().await;
    assert_eq!(rows, 2, "one row per request id");
}
