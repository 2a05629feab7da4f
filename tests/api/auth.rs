use consentd::{
    api::proto::{ConsentRecord, EraseConsentsRequest, GetConsentStatusRequest},
    domain::auth::Scope,
};
use tonic::Code;

use crate::{
    helpers::{
        ConsentClient, TestApp, answer, consent_status, decision, record_many_ordered, shop_export,
        shop_list,
    },
    round_trip::export_all,
};

/// Asserts that a call was refused for want of `scope`, which the refusal
/// names.
fn assert_needs_scope<T: std::fmt::Debug>(call: Result<T, tonic::Status>, scope: &str) {
    let denied = call.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains(scope), "{denied:?}");
}

/// A client whose key (consent:write of "acme") recorded a decision, then
/// was revoked.
async fn record_then_revoke(app: &TestApp) -> ConsentClient {
    let created = app
        .store
        .create_key("acme", &[Scope::ConsentWrite])
        .await
        .unwrap();
    let mut client = app.client(Some(created.secret.expose())).await;
    client.record_consent(decision("shop", "v")).await.unwrap();
    app.store.revoke_key(created.key_id).await.unwrap();
    client
}

#[tokio::test]
async fn calls_without_a_live_key_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let request = || decision("shop", "visitor");

    for key in [None, Some("cdk_not-a-key")] {
        let mut client = app.client(key).await;
        let status = client.record_consent(request()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "key {key:?}");
    }

    let mut client = record_then_revoke(&app).await;
    let status = client.record_consent(request()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn each_rpc_needs_its_scope() {
    let app = TestApp::spawn().await;
    let write_only = app.key("acme", &[Scope::ConsentWrite]).await;
    let read_only = app.key("acme", &[Scope::ConsentRead]).await;
    let mut writer = app.client(Some(&write_only)).await;
    let mut reader = app.client(Some(&read_only)).await;

    let denied = reader.record_consent(decision("shop", "v")).await;
    assert_needs_scope(denied, "consent:write");
    writer.record_consent(decision("shop", "v")).await.unwrap();

    let status_request = GetConsentStatusRequest {
        as_of: None,
        site_id: "shop".into(),
        subject_id: "v".into(),
    };
    assert_eq!(
        writer
            .get_consent_status(status_request.clone())
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let status = reader.get_consent_status(status_request).await.unwrap();
    assert_eq!(status.into_inner().record.unwrap().subject_id, "v");
    let list = shop_list(0);
    assert_eq!(
        writer.list_consents(list.clone()).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert_eq!(answer(reader.list_consents(list)).await.records.len(), 1);
    let export = shop_export();
    assert_needs_scope(
        reader.export_consents(export.clone()).await,
        "consent:export",
    );
    let mut exporter = app.scoped_client("acme", &[Scope::ConsentExport]).await;
    let exported = crate::round_trip::export_all(&mut exporter, export).await;
    assert_eq!(exported.len(), 1);
    let erase = EraseConsentsRequest {
        subject_id: "v".into(),
        ..Default::default()
    };
    assert_needs_scope(reader.erase_consents(erase.clone()).await, "consent:erase");
    let mut eraser = app.scoped_client("acme", &[Scope::ConsentErase]).await;
    let erased = eraser.erase_consents(erase).await.unwrap().into_inner();
    assert_eq!(erased.erased_count, 1);
}

#[tokio::test]
async fn a_tenant_never_sees_counts_or_erases_another_tenants_records() {
    let app = TestApp::spawn().await;
    let mut tenant_a = app.tenant_client("tenant-a").await;
    let mut tenant_b = app.tenant_client("tenant-b").await;
    let recorded = record_many_ordered(&tenant_a, "shop", 3, 1).await;

    let status = consent_status(&mut tenant_b, "shop", "subject-0")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let listed = answer(tenant_b.list_consents(shop_list(0))).await;
    assert!(listed.records.is_empty());
    let exported = export_all(&mut tenant_b, shop_export()).await;
    assert!(exported.is_empty());
    let erased = answer(tenant_b.erase_consents(EraseConsentsRequest {
        subject_id: "subject-0".into(),
        ..Default::default()
    }))
    .await;
    assert_eq!(erased.erased_count, 0);

    // Tenant A still has all three records.
    let listed = answer(tenant_a.list_consents(shop_list(0))).await;
    let ids = |records: &[ConsentRecord]| records.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&listed.records), ids(&recorded));
}

#[tokio::test]
async fn with_the_key_cache_a_revocation_takes_effect_within_its_ttl() {
    let mut settings = crate::helpers::settings();
    settings.api.auth_cache_ttl = std::time::Duration::from_millis(300);
    let app = TestApp::spawn_with(&crate::helpers::cluster_url(), settings).await;
    let mut client = record_then_revoke(&app).await;
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let status = client
        .record_consent(decision("shop", "v"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}
