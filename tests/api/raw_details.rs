//! Records in responses show the parsed user agent and the page URL without
//! its query; the raw agent and the full URL only to a key holding
//! `consent:read_raw`. Receipts verify the same for both.

use consentd::{
    api::proto::{
        ConsentRecord, ConsentView, ExportConsentsRequest, GetConsentProofRequest,
        GetConsentStatusRequest, ListConsentsRequest,
    },
    domain::{auth::Scope, receipt::Receipt},
};

use crate::{
    helpers::{ConsentClient, TestApp, decision, served_key},
    round_trip::export_all,
};

const URL: &str = "https://shop.example/checkout?email=ann%40mail.example&step=2";
const PAGE: &str = "https://shop.example/checkout";

/// The record as every read RPC returns it, by name.
async fn every_read(
    client: &mut ConsentClient,
    record_id: &str,
) -> Vec<(&'static str, ConsentRecord)> {
    let status = client
        .get_consent_status(GetConsentStatusRequest {
            as_of: None,
            site_id: "shop".into(),
            subject_id: "visitor-raw".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    let list = |view: ConsentView| ListConsentsRequest {
        site_id: "shop".into(),
        view: view.into(),
        ..Default::default()
    };
    let basic = client
        .list_consents(list(ConsentView::Basic))
        .await
        .unwrap();
    let full = client.list_consents(list(ConsentView::Full)).await.unwrap();
    let exported = export_all(
        client,
        ExportConsentsRequest {
            site_id: "shop".into(),
            view: ConsentView::Full.into(),
            ..Default::default()
        },
    )
    .await;
    let proof = client
        .get_consent_proof(GetConsentProofRequest {
            include_document: false,
            record_id: record_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    vec![
        ("GetConsentStatus", status),
        ("ListConsents BASIC", basic.into_inner().records.remove(0)),
        ("ListConsents FULL", full.into_inner().records.remove(0)),
        ("ExportConsents", exported.into_iter().next().unwrap()),
        ("GetConsentProof", proof),
    ]
}

#[tokio::test]
async fn records_show_the_parsed_agent_and_no_query_unless_the_key_may_read_raw() {
    let app = TestApp::spawn().await;
    let mut sent = decision("shop", "visitor-raw");
    sent.page_url = URL.into();
    let user_agent = sent.user_agent.clone();

    let write_only = app.key("acme", &[Scope::ConsentWrite]).await;
    let recorded = app
        .client(Some(&write_only))
        .await
        .record_consent(sent)
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    let default = app
        .key("acme", &[Scope::ConsentRead, Scope::ConsentExport])
        .await;
    let raw = app
        .key(
            "acme",
            &[
                Scope::ConsentRead,
                Scope::ConsentExport,
                Scope::ConsentReadRaw,
            ],
        )
        .await;

    let mut default_reads = every_read(&mut app.client(Some(&default)).await, &recorded.id).await;
    default_reads.push(("RecordConsent", recorded.clone()));
    for (rpc, record) in &default_reads {
        assert_eq!(record.user_agent, "", "{rpc} shows the raw agent");
        assert_eq!(record.page_url, PAGE, "{rpc} shows the query");
        assert_eq!(
            (record.device_type.as_str(), record.browser.as_str()),
            ("pc", "Chrome"),
            "{rpc} shows what is parsed from the agent"
        );
        assert!(!record.os.is_empty(), "{rpc}");
    }

    let mut raw_client = app.client(Some(&raw)).await;
    let raw_reads = every_read(&mut raw_client, &recorded.id).await;
    for (rpc, record) in &raw_reads {
        assert_eq!(record.user_agent, user_agent, "{rpc}");
        assert_eq!(record.page_url, URL, "{rpc}");
        assert_eq!(record.browser, "Chrome", "{rpc}");
    }

    // The stored row keeps what was sent; only the response differs.
    let row = app
        .sql()
        .await
        .query_one(
            "SELECT page_url, user_agent FROM consent_records WHERE subject_id = 'visitor-raw'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>("page_url"), URL);
    assert_eq!(row.get::<_, String>("user_agent"), user_agent);

    // A receipt signs neither the agent nor the URL: it verifies for both
    // callers, and the claims they get are the same.
    let receipt = |reads: &[(&str, ConsentRecord)]| {
        reads
            .iter()
            .find(|(rpc, _)| *rpc == "GetConsentProof")
            .and_then(|(_, record)| record.receipt.clone())
            .unwrap()
    };
    let (plain, full) = (receipt(&default_reads), receipt(&raw_reads));
    assert_eq!(plain.claims_json, full.claims_json);
    assert!(!plain.claims_json.contains("email") && !plain.claims_json.contains("Mozilla"));
    let public = served_key(&mut raw_client, &plain.key_id).await;
    for token in [&plain.token, &full.token] {
        assert_eq!(Receipt::parse(token).unwrap().verify(&public), Ok(()));
    }
}
