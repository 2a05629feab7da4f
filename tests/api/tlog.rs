//! The proof an auditor checks: batch receipts whose signed trees hold only
//! stored records.

use std::collections::{BTreeSet, HashMap};

use consentd::{
    api::proto::{ConsentView, ExportConsentsRequest},
    domain::receipt::Receipt,
};
use futures::{StreamExt, stream};

use crate::{
    helpers::{TestApp, decision, recorded, served_key},
    round_trip::export_all,
};

#[tokio::test]
async fn every_leaf_of_every_signed_batch_tree_is_a_stored_record() {
    let app = TestApp::spawn().await;
    let mut client = app.tenant_client("acme").await;
    // Retries of one request id sent at once land in batches of different
    // writers; calls without a request id fill the batches around them.
    let calls: Vec<(usize, Option<usize>)> = (0..480)
        .map(|i| (i, (i % 3 != 0).then_some((i * 7) % 40)))
        .collect();
    let answers: Vec<_> = stream::iter(calls)
        .map(|(i, request)| {
            let mut client = client.clone();
            let mut body = decision("shop", &format!("visitor-{i}"));
            if let Some(request) = request {
                body.request_id = format!("retried-{request}");
            }
            async move { (request, recorded(&mut client, body).await) }
        })
        .buffer_unordered(64)
        .collect()
        .await;

    let stored = export_all(
        &mut client,
        ExportConsentsRequest {
            site_id: "shop".into(),
            view: ConsentView::Full.into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(stored.len(), 160 + 40, "one row per request id");
    let mut first_answer = HashMap::new();
    for (request, answer) in &answers {
        if let Some(request) = request {
            let first = first_answer.entry(*request).or_insert(answer.clone());
            assert_eq!(first, answer, "every retry gets the stored record");
        }
        assert!(stored.contains(answer), "an answer names a stored record");
    }

    let public = served_key(&mut client, "sig-1").await;
    let mut trees: HashMap<[u8; 64], (u16, BTreeSet<u16>)> = HashMap::new();
    for record in &stored {
        let token = &record.receipt.as_ref().unwrap().token;
        let receipt = Receipt::parse(token).unwrap();
        assert_eq!(receipt.verify(&public), Ok(()));
        let inclusion = receipt.inclusion.unwrap();
        let (size, leaves) = trees
            .entry(receipt.signature)
            .or_insert((inclusion.size, BTreeSet::new()));
        assert_eq!(*size, inclusion.size, "one signature, one tree");
        assert!(leaves.insert(inclusion.index), "one record per leaf");
    }
    for (size, leaves) in trees.values() {
        let every: BTreeSet<u16> = (0..*size).collect();
        assert_eq!(
            leaves, &every,
            "a signed tree of {size} whose leaves not all are stored records"
        );
    }
}
