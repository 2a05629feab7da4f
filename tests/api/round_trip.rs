use consentd::{
    api::proto::{ConsentStatus, EraseConsentsRequest, ExportConsentsRequest, ListConsentsRequest},
    domain::erasure::AuditKey,
};
use tonic::Code;

use crate::helpers::{AUDIT_KEY, TestApp, answer, consent_status, decision, recorded, shop_export};

#[tokio::test]
async fn record_status_list_export_erase_round_trip() {
    let app = TestApp::spawn().await;
    let mut client = app.tenant_client("acme").await;

    let sent = decision("shop", "visitor-42");
    let recorded = recorded(&mut client, sent.clone()).await;
    assert_eq!(recorded.subject_id, "visitor-42");
    assert_eq!(recorded.status, ConsentStatus::Partial as i32);
    assert_eq!(recorded.granted_categories, sent.granted_categories);
    assert_eq!(recorded.denied_categories, sent.denied_categories);
    assert_eq!(recorded.services, sent.services);
    assert_eq!(recorded.tcf_string, sent.tcf_string);
    assert_eq!(recorded.browser, "Chrome");
    assert_eq!(recorded.device_type, "pc");
    assert_eq!(recorded.client_time, sent.client_time);
    let record_time = recorded.record_time.unwrap();
    let expire_time = recorded.expire_time.unwrap();
    assert_eq!(expire_time.seconds - record_time.seconds, 365 * 86_400);
    // Another subject on the same site must survive the erasure.
    client
        .record_consent(decision("shop", "visitor-7"))
        .await
        .unwrap();

    let status = consent_status(&mut client, "shop", "visitor-42")
        .await
        .unwrap();
    assert_eq!(status, recorded);

    let list = |subject: &str| ListConsentsRequest {
        site_id: "shop".into(),
        filter: Some(consentd::api::proto::ConsentFilter {
            subject_id: subject.into(),
            ..Default::default()
        }),
        view: consentd::api::proto::ConsentView::Full.into(),
        ..Default::default()
    };
    let listed = answer(client.list_consents(list("visitor-42"))).await;
    assert_eq!(listed.records, vec![recorded.clone()]);
    assert!(listed.next_page_token.is_empty());

    let export = ExportConsentsRequest {
        view: consentd::api::proto::ConsentView::Full.into(),
        ..shop_export()
    };
    let exported = export_all(&mut client, export.clone()).await;
    assert_eq!(exported.len(), 2);
    assert!(exported.contains(&recorded));

    let erased = answer(client.erase_consents(EraseConsentsRequest {
        site_id: "shop".into(),
        subject_id: "visitor-42".into(),
        user_id: String::new(),
    }))
    .await;
    assert_eq!(erased.erased_count, 1);

    let gone = consent_status(&mut client, "shop", "visitor-42")
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert!(
        answer(client.list_consents(list("visitor-42")))
            .await
            .records
            .is_empty()
    );
    let exported = export_all(&mut client, export).await;
    assert_eq!(
        exported
            .iter()
            .map(|r| r.subject_id.as_str())
            .collect::<Vec<_>>(),
        vec!["visitor-7"]
    );

    let sql = app.sql().await;
    let audit = sql
        .query_one(
            "SELECT audit_id::text, subject_hmac, item_count, t::text AS whole_row FROM audit_events t WHERE action = 'consent.erase'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(audit.get::<_, String>("audit_id"), erased.audit_id);
    assert_eq!(audit.get::<_, i64>("item_count"), 1);
    let expected = AuditKey::new(AUDIT_KEY)
        .unwrap()
        .digest("subject_id", "visitor-42");
    assert_eq!(audit.get::<_, Vec<u8>>("subject_hmac"), expected.to_vec());
    assert!(!audit.get::<_, String>("whole_row").contains("visitor-42"));
}

pub async fn export_all(
    client: &mut crate::helpers::ConsentClient,
    request: ExportConsentsRequest,
) -> Vec<consentd::api::proto::ConsentRecord> {
    let messages = crate::helpers::streamed(client.export_consents(request)).await;
    messages.into_iter().flat_map(|m| m.records).collect()
}
