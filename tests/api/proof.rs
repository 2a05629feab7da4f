use std::{process::Command, time::Duration};

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use consentd::{
    api::proto::{
        ConsentRecord, EraseConsentsRequest, GetConsentProofRequest, GetConsentProofResponse,
        GetConsentStatusRequest, GetNoticeRequest, ListAuditEventsRequest, PutNoticeRequest,
    },
    domain::{
        auth::Scope,
        keyring::{EncryptedIp, IpKeyring, SigningKeyring, record_context},
        receipt::Receipt,
    },
    server::ServerSettings,
};
use tonic::Code;
use uuid::Uuid;

use crate::{
    helpers::{
        ConsentClient, IP_KEYS, SIGNING_KEYS, TestApp, answer, cluster_url, decision, first_column,
        minimal_site, recorded, served_key, settings, settings_with_clock, shop_export,
        short_lived_site, violated_fields,
    },
    round_trip::export_all,
};

/// GetConsentProof of the record `id`.
async fn proof_of(
    client: &mut ConsentClient,
    id: &str,
) -> Result<GetConsentProofResponse, tonic::Status> {
    let proof = client
        .get_consent_proof(GetConsentProofRequest {
            include_document: false,
            record_id: id.into(),
        })
        .await?;
    Ok(proof.into_inner())
}

async fn record(client: &mut ConsentClient, subject: &str) -> ConsentRecord {
    recorded(client, decision("shop", subject)).await
}

/// Records one consent, then restarts consentd on the same database with
/// `rotate` applied to its settings: a key rotation as operators do it.
async fn record_then_restart(
    rotate: impl FnOnce(&mut ServerSettings),
) -> (TestApp, String, ConsentRecord) {
    let first = TestApp::spawn().await;
    let key = first.key("acme", &Scope::ALL).await;
    let old = record(&mut first.client(Some(&key)).await, "before").await;
    let database_url = first.database_url.clone();
    first.stop().await;
    let mut rotated = settings();
    rotate(&mut rotated);
    (
        TestApp::spawn_on_database(database_url, rotated).await,
        key,
        old,
    )
}

fn verifies(token: &str, public_key: &[u8; 32]) -> bool {
    Receipt::parse(token)
        .and_then(|receipt| receipt.verify(public_key))
        .is_ok()
}

fn cli_verify(token: &str, public_key: &[u8; 32]) -> bool {
    let dir = std::env::temp_dir().join(format!("consentd-verify-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("receipt"), token).unwrap();
    std::fs::write(dir.join("key.pub"), STANDARD.encode(public_key)).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_consentd"))
        .arg("verify")
        .arg(dir.join("receipt"))
        .arg("--public-key")
        .arg(dir.join("key.pub"))
        .output()
        .unwrap()
        .status;
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(status.code(), Some(0 | 1)), "{status:?}");
    status.success()
}

#[tokio::test]
async fn a_receipt_verifies_with_the_served_key_and_no_changed_byte_does() {
    let app = TestApp::spawn().await;
    let mut client = app.tenant_client("acme").await;
    let record = record(&mut client, "visitor-1").await;
    let receipt = record.receipt.clone().unwrap();
    assert_eq!(receipt.key_id, "sig-1");
    let public = served_key(&mut client, &receipt.key_id).await;

    // The receipt holds the record's proof fields, the IP only masked.
    let claims: serde_json::Value = serde_json::from_str(&receipt.claims_json).unwrap();
    assert_eq!(claims["record_id"], record.id);
    assert_eq!(claims["subject_id"], "visitor-1");
    assert_eq!(claims["status"], "PARTIAL");
    assert_eq!(claims["anonymized_ip"], "203.0.113.0/24");
    assert!(!receipt.claims_json.contains("203.0.113.77"));

    let parsed = Receipt::parse(&receipt.token).unwrap();
    assert_eq!(parsed.verify(&public), Ok(()));
    for i in 0..receipt.token.len() {
        let mut bytes = receipt.token.clone().into_bytes();
        bytes[i] = if bytes[i] == b'x' { b'y' } else { b'x' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(
            Receipt::parse(&tampered)
                .and_then(|r| r.verify(&public))
                .is_err(),
            "byte {i}"
        );
    }
    // A record changed after the fact: its claims no longer carry the signature.
    let forged_claims = receipt.claims_json.replace("\"PARTIAL\"", "\"ACCEPTED\"");
    let mut parts: Vec<String> = receipt.token.split('.').map(str::to_string).collect();
    assert_eq!(parts[0], "cr2", "signed as part of a batch");
    parts[2] = URL_SAFE_NO_PAD.encode(&forged_claims);
    let forged = parts.join(".");
    assert!(Receipt::parse(&forged).unwrap().verify(&public).is_err());

    // Offline, with the command line.
    assert!(cli_verify(&receipt.token, &public));
    assert!(!cli_verify(&forged, &public));

    // GetConsentProof returns the same receipt for the stored record.
    let proof = proof_of(&mut client, &record.id).await.unwrap();
    assert_eq!(proof.record.unwrap().receipt.unwrap().token, receipt.token);

    // Stored rows keep only the signature: the token rebuilt from a row is
    // the one issued, whatever the order of services or the clock's nanos.
    let mut request = decision("shop", "visitor-2");
    request.services.reverse();
    request.client_time = Some(prost_types::Timestamp {
        seconds: 1_790_000_000,
        nanos: 123_456_789,
    });
    let issued = recorded(&mut client, request).await;
    let proof = proof_of(&mut client, &issued.id).await.unwrap();
    let stored = proof.record.unwrap();
    assert_eq!(stored.receipt, issued.receipt);
    assert!(verifies(&stored.receipt.unwrap().token, &public));
}

#[tokio::test]
async fn after_a_signing_key_rotation_new_receipts_use_the_new_key_and_old_ones_verify() {
    let new_entry = "sig-2=AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=";
    let (second, key, old) = record_then_restart(|settings| {
        settings.api.sealing.signing =
            SigningKeyring::parse(&format!("{SIGNING_KEYS},{new_entry}")).unwrap();
    })
    .await;
    let mut client = second.client(Some(&key)).await;
    let new = record(&mut client, "after").await;
    assert_eq!(new.receipt.as_ref().unwrap().key_id, "sig-2");

    let proof = proof_of(&mut client, &old.id).await.unwrap();
    let old_receipt = proof.record.unwrap().receipt.unwrap();
    assert_eq!(old_receipt.key_id, "sig-1");
    let old_key = served_key(&mut client, "sig-1").await;
    let new_key = served_key(&mut client, "sig-2").await;
    assert!(verifies(&old_receipt.token, &old_key));
    assert!(verifies(&new.receipt.unwrap().token, &new_key));
    assert!(!verifies(&old_receipt.token, &new_key));
}

#[tokio::test]
async fn the_full_ip_is_only_stored_encrypted_and_decrypts_across_a_key_rotation() {
    let keys = format!("{IP_KEYS},ip-2=BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ=");
    let (second, key, old) = record_then_restart(|settings| {
        settings.api.sealing.ip_keys = Some(IpKeyring::parse(&keys).unwrap());
    })
    .await;
    let new = record(&mut second.client(Some(&key)).await, "after").await;

    let sql = second.sql().await;
    let dump: Vec<String> = first_column(&sql, "SELECT t::text FROM consent_records t", &[]).await;
    assert_eq!(dump.len(), 2);
    assert!(
        dump.iter().all(|row| !row.contains("203.0.113.77")),
        "{dump:?}"
    );

    let keyring = IpKeyring::parse(&keys).unwrap();
    for (record, key_id) in [(&old, "ip-1"), (&new, "ip-2")] {
        let row = sql
            .query_one(
                "SELECT tenant_id, ip_key_id, ip_ciphertext FROM consent_records WHERE record_id = $1",
                &[&Uuid::parse_str(&record.id).unwrap()],
            )
            .await
            .unwrap();
        let encrypted = EncryptedIp {
            key_id: row.get("ip_key_id"),
            ciphertext: row.get("ip_ciphertext"),
        };
        assert_eq!(encrypted.key_id, key_id);
        let context = record_context(row.get("tenant_id"), Uuid::parse_str(&record.id).unwrap());
        assert_eq!(
            keyring.decrypt(&encrypted, &context).unwrap().to_string(),
            "203.0.113.77"
        );
    }
}

#[tokio::test]
async fn without_detailed_logging_no_agent_url_or_ip_is_stored() {
    let (app, key) = TestApp::spawn_with_key("acme").await;
    let mut client = app.site_client(&key, minimal_site("minimal-site")).await;
    let minimal = recorded(&mut client, decision("minimal-site", "v")).await;
    assert!(
        minimal.user_agent.is_empty()
            && minimal.page_url.is_empty()
            && minimal.anonymized_ip.is_empty()
    );
    assert_eq!(minimal.granted_categories, vec!["necessary", "analytics"]);
    let detailed = record(&mut client, "v").await;
    assert_eq!(detailed.anonymized_ip, "203.0.113.0/24");

    let whole_row = app
        .row_without(
            "minimal-site",
            &[
                "user_agent",
                "device_type",
                "os",
                "browser",
                "page_url",
                "anonymized_ip",
                "ip_key_id",
            ],
        )
        .await;
    assert!(
        !whole_row.contains("203.0.113")
            && !whole_row.contains("Mozilla")
            && !whole_row.contains("shop.example")
    );
}

#[tokio::test]
async fn records_past_lifetime_plus_retention_are_deleted_and_expiry_ends_the_status() {
    let (settings, clock) = settings_with_clock();
    let app = TestApp::spawn_with(&cluster_url(), settings).await;
    let key = app.key("acme", &Scope::ALL).await;
    let mut client = app.site_client(&key, short_lived_site()).await;
    let short = recorded(&mut client, decision("short", "v")).await;
    assert_eq!(
        short.expire_time.unwrap().seconds - short.record_time.unwrap().seconds,
        86_400
    );
    client.record_consent(decision("shop", "v")).await.unwrap();
    let status = |site: &str| GetConsentStatusRequest {
        as_of: None,
        site_id: site.into(),
        subject_id: "v".into(),
    };
    client.get_consent_status(status("short")).await.unwrap();

    // Past its lifetime: no longer the current consent, but still kept.
    clock.advance(Duration::from_secs(86_400 + 60));
    assert_eq!(
        client
            .get_consent_status(status("short"))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    client.get_consent_status(status("shop")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let count = |site: &'static str| {
        let url = app.database_url.clone();
        async move {
            let sql = crate::helpers::connect(&url).await;
            let query = "SELECT count(*) FROM consent_records WHERE site_id = $1";
            crate::helpers::count(&sql, query, &[&site]).await
        }
    };
    assert_eq!(count("short").await, 1, "kept during retention");

    // Past lifetime plus retention: deleted; the default site's stays.
    clock.advance(Duration::from_secs(86_400));
    let mut left = 1;
    for _ in 0..100 {
        left = count("short").await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0);
    assert_eq!(count("shop").await, 1);
}

#[tokio::test]
async fn audit_events_list_erasures_and_exports_with_who_when_and_counts() {
    let app = TestApp::spawn().await;
    let created = app.store.create_key("acme", &Scope::ALL).await.unwrap();
    let mut client = app.client(Some(created.secret.expose())).await;
    record(&mut client, "visitor-1").await;
    record(&mut client, "visitor-2").await;
    let exported = export_all(&mut client, shop_export()).await;
    assert_eq!(exported.len(), 2);
    client
        .erase_consents(EraseConsentsRequest {
            subject_id: "visitor-1".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    let mut admin = app.admin_client(created.secret.expose()).await;
    let mut events = Vec::new();
    for _ in 0..50 {
        events = answer(admin.list_audit_events(ListAuditEventsRequest::default()))
            .await
            .events;
        if events.iter().any(|e| e.action == "consent.export") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Each by the key that did it, with its count.
    let audited = |action: &str, count: i64| {
        let event = events
            .iter()
            .find(|e| e.action == action)
            .unwrap_or_else(|| panic!("{action} audited"));
        assert_eq!(event.actor_key_id, created.key_id.to_string(), "{action}");
        assert_eq!(event.item_count, count, "{action}");
        event
    };
    let export = audited("consent.export", 2);
    assert_eq!(export.target, "shop");
    assert_eq!(export.detail, "complete");
    let erase = audited("consent.erase", 1);
    assert!(erase.event_time.is_some());
    assert_eq!(erase.subject_digest.len(), 64);
    assert!(
        events
            .iter()
            .any(|e| e.action == "key.create" && e.actor_key_id.is_empty())
    );
    let listed = format!("{events:?}");
    assert!(
        !listed.contains("visitor-1"),
        "no raw identifier in the audit trail"
    );

    let reader = app.key("acme", &[Scope::ConsentRead]).await;
    let denied = app
        .admin_client(&reader)
        .await
        .list_audit_events(ListAuditEventsRequest::default())
        .await;
    assert_eq!(denied.unwrap_err().code(), Code::PermissionDenied);
    let stranger = app.key("other", &Scope::ALL).await;
    let theirs = answer(
        app.admin_client(&stranger)
            .await
            .list_audit_events(ListAuditEventsRequest::default()),
    )
    .await
    .events;
    // Only the creation of the stranger's own key, none of acme's events.
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert_eq!(theirs[0].action, "key.create");
    assert!(events.iter().all(|e| e.id != theirs[0].id));
}

#[tokio::test]
async fn a_notice_comes_back_byte_for_byte_and_the_proof_names_it() {
    let app = TestApp::spawn().await;
    let mut client = app.tenant_client("acme").await;
    let text = "<h1>Cookies 🍪</h1>\r\n<p>Wir verwenden Cookies…</p>\n\t trailing space ";
    let put = client
        .put_notice(PutNoticeRequest {
            text: text.into(),
            expected_sha256: String::new(),
        })
        .await
        .unwrap();
    let put = put.into_inner();
    assert!(put.created);
    let again = client
        .put_notice(PutNoticeRequest {
            text: text.into(),
            expected_sha256: put.sha256.clone(),
        })
        .await;
    assert!(!again.unwrap().into_inner().created, "idempotent");
    let got = answer(client.get_notice(GetNoticeRequest {
        sha256: put.sha256.clone(),
    }))
    .await;
    assert_eq!(got.text.as_bytes(), text.as_bytes());

    let mut with_notice = decision("shop", "v");
    with_notice.notice_version = "banner-7".into();
    with_notice.notice_sha256 = put.sha256.to_uppercase();
    let with_notice = recorded(&mut client, with_notice).await;
    assert_eq!(with_notice.notice_sha256, put.sha256);
    let proof = proof_of(&mut client, &with_notice.id).await.unwrap();
    assert_eq!(proof.notice_sha256, put.sha256);
    assert!(proof.notice_on_file);
    let claims: serde_json::Value =
        serde_json::from_str(&proof.record.unwrap().receipt.unwrap().claims_json).unwrap();
    assert_eq!(claims["notice_sha256"], put.sha256);
    assert_eq!(claims["notice_version"], "banner-7");

    let mut unknown = decision("shop", "w");
    unknown.notice_sha256 = "ab".repeat(32);
    let unknown = recorded(&mut client, unknown).await;
    let proof = proof_of(&mut client, &unknown.id).await.unwrap();
    assert!(!proof.notice_on_file);

    let wrong = client
        .put_notice(PutNoticeRequest {
            text: "other".into(),
            expected_sha256: put.sha256.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&wrong), vec!["expected_sha256"]);
    let mut bad = decision("shop", "x");
    bad.notice_sha256 = "not-a-hash".into();
    let bad = client.record_consent(bad).await.unwrap_err();
    assert_eq!(violated_fields(&bad), vec!["notice_sha256"]);

    // Another tenant neither sees the notice nor the proof.
    let mut stranger = app.tenant_client("other").await;
    let hidden = stranger
        .get_notice(GetNoticeRequest { sha256: put.sha256 })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    let hidden = proof_of(&mut stranger, &with_notice.id).await.unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
}

#[tokio::test]
async fn a_record_signed_alone_before_batch_receipts_keeps_its_cr1_receipt() {
    let app = TestApp::spawn().await;
    let mut client = app.tenant_client("acme").await;
    let record = record(&mut client, "visitor-1").await;
    let claims = record.receipt.unwrap().claims_json;

    // What a row written before migration 0004 holds: a signature over its
    // claims alone and no proof.
    let payload = URL_SAFE_NO_PAD.encode(&claims);
    let input = format!("cr1.sig-1.{payload}");
    let (_, signature) = SigningKeyring::parse(SIGNING_KEYS)
        .unwrap()
        .sign(input.as_bytes());
    app.sql()
        .await
        .execute(
            "UPDATE consent_records SET receipt_signature = $1, receipt_proof = NULL",
            &[&signature.to_vec()],
        )
        .await
        .unwrap();

    let proof = proof_of(&mut client, &record.id).await.unwrap();
    let receipt = proof.record.unwrap().receipt.unwrap();
    assert_eq!(
        receipt.token,
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    );
    assert!(receipt.proof.is_empty());
    let public = served_key(&mut client, "sig-1").await;
    assert!(verifies(&receipt.token, &public));
    assert!(cli_verify(&receipt.token, &public));
}
