//! A verifier written from the README's "Verify without consentd" alone
//! (tests/verifier/verify.mjs, Node's standard library only) checks what a
//! real server answers, as grpcurl prints it: the README says enough to
//! write one. Then the same answers, tampered with, fail it.

use std::{path::Path, process::Command};

use base64::{Engine, engine::general_purpose::STANDARD};
use consentd::{
    api::proto::{
        ConsentAction, ConsentRecord, GetCheckpointRequest, GetConsentProofRequest,
        GetConsentProofResponse, GetConsistencyProofRequest, LogCheckpoint, RecordConsentRequest,
        Regime, ServiceDecision, get_inclusion_proof_request::Leaf,
    },
    domain::auth::Scope,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    helpers::{ConsentClient, TestApp, decision, minimal_site, record_many, recorded},
    tlog::log_caught_up,
    verify::{
        Files, checkpoint_json, consistency_json, fails_with, flip, holds_with, inclusion,
        inclusion_json, keys_json, object, objects, signed_with_root, signing_keys, tenant_of,
        verdict,
    },
};

/// `node tests/verifier/verify.mjs ARGS`: whether it exited 0, and what it
/// said. Node is checked the way the project's scripts check it, so a
/// machine without it fails here saying so, instead of skipping.
fn third_party(args: &[&str]) -> (bool, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let check = Command::new("bash")
        .args(["-c", ". scripts/node-tools && node_tools_check_node"])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "the third-party verifier runs on Node.js, which is missing: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    verdict(
        Command::new("node")
            .arg(root.join("tests/verifier/verify.mjs"))
            .args(args),
    )
}

fn holds(args: &[&str]) {
    holds_with(third_party, args);
}

fn fails(args: &[&str], message: &str) {
    fails_with(third_party, args, message)
}

fn timestamp(t: &Option<prost_types::Timestamp>) -> Value {
    t.map_or(Value::Null, |t| json!(t.to_string()))
}

/// A ConsentRecord as grpcurl prints it.
fn record_json(r: &ConsentRecord) -> Value {
    let receipt = r.receipt.as_ref().map_or(Value::Null, |c| {
        object(vec![
            ("token", json!(c.token)),
            ("keyId", json!(c.key_id)),
            ("claimsJson", json!(c.claims_json)),
            ("signature", json!(STANDARD.encode(&c.signature))),
            ("proof", json!(STANDARD.encode(&c.proof))),
        ])
    });
    let services = objects(&r.services, |s| {
        vec![
            ("category", json!(s.category)),
            ("service", json!(s.service)),
            ("granted", json!(s.granted)),
        ]
    });
    object(vec![
        ("id", json!(r.id)),
        ("requestId", json!(r.request_id)),
        ("siteId", json!(r.site_id)),
        ("subjectId", json!(r.subject_id)),
        ("userId", json!(r.user_id)),
        ("action", json!(r.action().as_str_name())),
        ("status", json!(r.status().as_str_name())),
        ("grantedCategories", json!(r.granted_categories)),
        ("deniedCategories", json!(r.denied_categories)),
        ("services", services),
        ("bannerRevision", json!(r.banner_revision)),
        ("regime", json!(r.regime().as_str_name())),
        ("gpcDetected", json!(r.gpc_detected)),
        ("gpcHonoured", json!(r.gpc_honoured)),
        ("ccpaOptOut", json!(r.ccpa_opt_out)),
        ("tcfString", json!(r.tcf_string)),
        ("gppString", json!(r.gpp_string)),
        ("googleAcString", json!(r.google_ac_string)),
        ("countryCode", json!(r.country_code)),
        ("languageCode", json!(r.language_code)),
        ("pageUrl", json!(r.page_url)),
        ("userAgent", json!(r.user_agent)),
        ("deviceType", json!(r.device_type)),
        ("os", json!(r.os)),
        ("browser", json!(r.browser)),
        ("anonymizedIp", json!(r.anonymized_ip)),
        ("clientTime", timestamp(&r.client_time)),
        ("recordTime", timestamp(&r.record_time)),
        ("expireTime", timestamp(&r.expire_time)),
        ("noticeVersion", json!(r.notice_version)),
        ("noticeSha256", json!(r.notice_sha256)),
        ("receipt", receipt),
    ])
}

fn proof_json(p: &GetConsentProofResponse) -> Value {
    object(vec![
        ("record", p.record.as_ref().map_or(Value::Null, record_json)),
        ("noticeSha256", json!(p.notice_sha256)),
        ("noticeOnFile", json!(p.notice_on_file)),
    ])
}

/// A GetCheckpointResponse as grpcurl prints it.
fn checkpoint_response_json(checkpoint: &LogCheckpoint) -> Value {
    json!({ "checkpoint": checkpoint_json(&Some(checkpoint.clone())) })
}

async fn latest_checkpoint(client: &mut ConsentClient) -> LogCheckpoint {
    client
        .get_checkpoint(GetCheckpointRequest::default())
        .await
        .unwrap()
        .into_inner()
        .checkpoint
        .unwrap()
}

async fn consent_proof(client: &mut ConsentClient, record: &ConsentRecord) -> Value {
    let proof = client
        .get_consent_proof(GetConsentProofRequest {
            record_id: record.id.clone(),
            include_document: false,
        })
        .await
        .unwrap()
        .into_inner();
    proof_json(&proof)
}

/// Categories out of order, services out of order, text that JSON escapes
/// and a notice: what the claims' ordering and escaping rules are about.
fn everything_set() -> RecordConsentRequest {
    let service = |category: &str, service: &str, granted| ServiceDecision {
        category: category.into(),
        service: service.into(),
        granted,
    };
    RecordConsentRequest {
        granted_categories: vec!["statistics".into(), "analytics".into(), "necessary".into()],
        denied_categories: vec!["marketing".into(), "ads".into()],
        services: vec![
            service("statistics", "zeta", true),
            service("marketing", "google-ads", false),
            service("analytics", "matomo", true),
            service("ads", "criteo", false),
            service("analytics", "hotjar", true),
        ],
        banner_revision: "rev \"2026/11\" \\ été ✓".into(),
        notice_version: "v3".into(),
        notice_sha256: hex::encode(Sha256::digest(b"Our cookie notice.")),
        ip_address: "2001:db8:abcd:12::1".into(),
        ..decision("shop", "subject-full")
    }
}

/// Every optional field empty, as proto3 sends an unset string.
fn nothing_optional() -> RecordConsentRequest {
    RecordConsentRequest {
        site_id: "shop".into(),
        subject_id: "subject-bare".into(),
        action: ConsentAction::Custom.into(),
        granted_categories: vec!["necessary".into()],
        regime: Regime::Basic.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_verifier_written_from_the_readme_accepts_real_proofs_and_refuses_tampered_ones() {
    let app = TestApp::spawn().await;
    let key = app.key("acme", &Scope::ALL).await;
    let mut client = app.site_client(&key, minimal_site("minimal")).await;
    let records = [
        recorded(&mut client, everything_set()).await,
        recorded(&mut client, nothing_optional()).await,
        // Minimal logging drops most of what was sent: nulls in the claims.
        recorded(&mut client, decision("minimal", "visitor-min")).await,
    ];
    let claims: Vec<Value> = records
        .iter()
        .map(|r| serde_json::from_str(&r.receipt.as_ref().unwrap().claims_json).unwrap())
        .collect();
    // What the README promises of the claims, on the server's own bytes.
    assert_eq!(
        claims[0]["granted_categories"],
        json!(["statistics", "analytics", "necessary"])
    );
    let services: Vec<String> = claims[0]["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}/{}",
                s["category"].as_str().unwrap(),
                s["service"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        services,
        [
            "ads/criteo",
            "analytics/hotjar",
            "analytics/matomo",
            "marketing/google-ads",
            "statistics/zeta"
        ]
    );
    for field in [
        "banner_revision",
        "notice_sha256",
        "tcf_string",
        "anonymized_ip",
        "client_time_us",
    ] {
        assert_eq!(claims[1][field], Value::Null, "{field}");
    }
    assert_eq!(claims[2]["tcf_string"], Value::Null);
    assert_eq!(claims[1]["action"], json!("CUSTOM"));
    let raw = &records[0].receipt.as_ref().unwrap().claims_json;
    assert!(
        raw.contains(r#""banner_revision":"rev \"2026/11\" \\ été ✓""#),
        "{raw}"
    );

    let tenant_id = tenant_of(&records[0].receipt.as_ref().unwrap().claims_json);
    log_caught_up(&app, tenant_id).await;
    let files = Files::new();
    let keys = keys_json(&signing_keys(&mut client).await);
    let keys = files.put("keys.json", keys.to_string());
    let old = latest_checkpoint(&mut client).await;
    assert_eq!(old.tree_size, 3);
    let old_file = files.put("old.json", checkpoint_response_json(&old).to_string());

    let mut proofs = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let proof = consent_proof(&mut client, record).await;
        let log = inclusion_json(&inclusion(&mut client, Leaf::RecordId(record.id.clone())).await);
        let (proof_file, log_file) = (
            files.put(&format!("proof-{i}.json"), proof.to_string()),
            files.put(&format!("inclusion-{i}.json"), log.to_string()),
        );
        holds(&[
            "--keys",
            &keys,
            "--receipt",
            &proof_file,
            "--inclusion",
            &log_file,
        ]);
        holds(&[
            "--keys",
            &keys,
            "--inclusion",
            &log_file,
            "--checkpoint",
            &old_file,
        ]);
        proofs.push((proof, log));
    }

    record_many(&client, "shop", 6, 6).await;
    log_caught_up(&app, tenant_id).await;
    let new = latest_checkpoint(&mut client).await;
    assert_eq!(new.tree_size, 9);
    let new_file = files.put("new.json", checkpoint_response_json(&new).to_string());
    let consistency = client
        .get_consistency_proof(GetConsistencyProofRequest {
            old_size: 3,
            new_size: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let consistency = consistency_json(&consistency);
    let consistency_file = files.put("consistency.json", consistency.to_string());
    let both = ["--old", &old_file, "--new", &new_file];
    holds(
        &[
            &["--keys", &keys, "--consistency", &consistency_file][..],
            &both,
        ]
        .concat(),
    );
    let latest =
        inclusion_json(&inclusion(&mut client, Leaf::RecordId(records[1].id.clone())).await);
    let latest = files.put("latest.json", latest.to_string());
    holds(&[
        "--keys",
        &keys,
        "--inclusion",
        &latest,
        "--checkpoint",
        &new_file,
    ]);

    // Tampered: each must fail, saying what failed.
    let (proof, log) = &proofs[0];
    let mut record_changed = proof.clone();
    record_changed["record"]["gpcDetected"] = json!(false);
    let mut token_changed = proof.clone();
    let token = proof["record"]["receipt"]["token"].as_str().unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let payload = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[2])
            .unwrap(),
    )
    .unwrap()
    .replace(r#""gpc_detected":true"#, r#""gpc_detected":false"#);
    let forged_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&payload);
    token_changed["record"]["receipt"]["token"] =
        json!([parts[0], parts[1], &forged_payload, parts[3], parts[4]].join("."));
    token_changed["record"]["receipt"]["claimsJson"] = json!(payload);
    let mut claims_changed = log.clone();
    claims_changed["claimsJson"] = json!(
        log["claimsJson"]
            .as_str()
            .unwrap()
            .replace(r#""gpc_detected":true"#, r#""gpc_detected":false"#)
    );
    let mut note_changed = checkpoint_response_json(&old);
    let note = old.note.replace(
        &STANDARD.encode(&old.root_hash),
        &flip(&STANDARD.encode(&old.root_hash), 3),
    );
    note_changed["checkpoint"]["note"] = json!(note);
    let mut root: [u8; 32] = old.root_hash.clone().try_into().unwrap();
    root[0] ^= 0x80;
    let resigned = checkpoint_response_json(&LogCheckpoint {
        note: signed_with_root(&old.note, root),
        ..old.clone()
    });
    let mut hashes_changed = consistency.clone();
    hashes_changed["hashes"][0] = json!(flip(hashes_changed["hashes"][0].as_str().unwrap(), 7));

    let put = |name: &str, json: &Value| files.put(name, json.to_string());
    let log_file = put("log.json", log);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--receipt".into(), put("t1.json", &record_changed)],
            "the record is not what its receipt signs",
        ),
        (
            vec!["--receipt".into(), put("t2.json", &token_changed)],
            "signature by key",
        ),
        (
            vec!["--inclusion".into(), put("t3.json", &claims_changed)],
            "is not the leaf hash",
        ),
        (
            vec![
                "--inclusion".into(),
                log_file.clone(),
                "--checkpoint".into(),
                put("t4.json", &note_changed),
            ],
            "no valid signature",
        ),
        (
            vec![
                "--inclusion".into(),
                log_file,
                "--checkpoint".into(),
                put("t5.json", &resigned),
            ],
            "the leaf is not in the checkpoint's tree",
        ),
        (
            vec![
                "--consistency".into(),
                consistency_file.clone(),
                "--old".into(),
                put("t6.json", &resigned),
                "--new".into(),
                new_file.clone(),
            ],
            "does not lead to the old root",
        ),
        (
            vec![
                "--consistency".into(),
                put("t7.json", &hashes_changed),
                "--old".into(),
                old_file.clone(),
                "--new".into(),
                new_file.clone(),
            ],
            "does not lead to",
        ),
        (
            vec![
                "--consistency".into(),
                consistency_file,
                "--old".into(),
                new_file,
                "--new".into(),
                old_file,
            ],
            "the proof's sizes are not the checkpoints'",
        ),
    ];
    for (args, message) in &cases {
        let args: Vec<&str> = ["--keys", keys.as_str()]
            .into_iter()
            .chain(args.iter().map(String::as_str))
            .collect();
        fails(&args, message);
    }
}
