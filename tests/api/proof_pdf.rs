//! The proof document: `consentd proof RECORD_ID --out proof.pdf` against a
//! running consentd, read back with pdftotext (poppler-utils, which
//! scripts/test installs).

use std::process::Command;

use base64::{Engine, engine::general_purpose::STANDARD};
use consentd::api::proto::{
    GetConsentProofRequest, GetInclusionProofRequest, UpdateSiteSettingsRequest,
    get_inclusion_proof_request::Leaf,
};

use crate::{
    cli::stdout,
    helpers::{IP_KEYS, SIGNING_KEYS, TestApp, decision, recorded},
};

const RAW_IP: &str = "203.0.113.77";
const USER_AGENT_PART: &str = "Mozilla/5.0 (Windows NT 10.0";

/// `consentd proof`, then the PDF's text.
async fn proof_text(app: &TestApp, key: &str, record_id: &str) -> String {
    let pdf = std::env::temp_dir().join(format!("consentd-proof-{}.pdf", uuid::Uuid::new_v4()));
    let args = [
        "proof".to_string(),
        record_id.to_string(),
        "--out".into(),
        pdf.display().to_string(),
    ];
    let (addr, key) = (format!("http://{}", app.addr), key.to_string());
    // Off the runtime's thread, which serves the calls.
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_consentd"))
            .args(&args)
            .env("CONSENTD_ADDR", addr)
            .env("CONSENTD_KEY", key)
            .output()
            .unwrap();
        stdout(&out);
        let text = Command::new("pdftotext")
            .arg(&pdf)
            .arg("-")
            .output()
            .expect("pdftotext (poppler-utils) runs");
        stdout(&text)
    })
    .await
    .unwrap()
}

/// Without whitespace, so a token wrapped over lines reads whole.
fn joined(text: &str) -> String {
    text.split_whitespace().collect()
}

#[tokio::test]
async fn the_proof_pdf_shows_the_record_masked_and_its_receipt_and_no_secret() {
    let (app, key) = TestApp::spawn_with_key("acme").await;
    let mut admin = app.admin_client(&key).await;
    for (site, detailed) in [("detailed", true), ("minimal", false)] {
        admin
            .update_site_settings(UpdateSiteSettingsRequest {
                site_id: site.into(),
                detailed_logging: Some(detailed),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut client = app.client(Some(&key)).await;
    let secrets: Vec<String> = [key.as_str(), SIGNING_KEYS, IP_KEYS]
        .iter()
        .flat_map(|entries| entries.split(['=', ',']).skip(1).map(String::from))
        .filter(|secret| secret.len() > 8)
        .chain([key.clone()])
        .collect();

    for site in ["detailed", "minimal"] {
        let record = recorded(&mut client, decision(site, "visitor-pdf")).await;
        let text = proof_text(&app, &key, &record.id).await;
        let all = joined(&text);
        assert!(text.contains(&record.id), "{site}: the record id");
        let receipt = record.receipt.as_ref().unwrap();
        assert!(all.contains(&receipt.token), "{site}: the receipt token");
        assert!(text.contains(&receipt.key_id), "{site}: the signing key id");
        assert!(text.contains("consentd verify"), "{site}: how to verify");
        assert!(text.contains("Inclusion in the tenant's log"));
        assert!(!all.contains(RAW_IP), "{site}: never the full IP");
        for secret in &secrets {
            assert!(
                !all.contains(secret.as_str()),
                "{site}: no key in the document"
            );
        }
        if site == "detailed" {
            assert!(text.contains("203.0.113.0/24"), "the masked IP");
        } else {
            assert!(
                !text.contains(USER_AGENT_PART),
                "no user agent under minimal logging"
            );
        }
    }

    // Once logged: the inclusion proof GetInclusionProof gives, in the PDF.
    let record = recorded(&mut client, decision("detailed", "visitor-logged")).await;
    let claims: serde_json::Value =
        serde_json::from_str(&record.receipt.as_ref().unwrap().claims_json).unwrap();
    let tenant_id = claims["tenant_id"].as_str().unwrap().parse().unwrap();
    crate::tlog::log_caught_up(&app, tenant_id).await;
    let proof = client
        .get_inclusion_proof(GetInclusionProofRequest {
            leaf: Some(Leaf::RecordId(record.id.clone())),
            tree_size: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let text = proof_text(&app, &key, &record.id).await;
    assert!(
        text.contains(&format!("leaf index: {}", proof.leaf_index)),
        "{text}"
    );
    assert!(text.contains(&format!("tree size: {}", proof.tree_size)));
    let root = STANDARD.encode(&proof.checkpoint.as_ref().unwrap().root_hash);
    assert!(text.contains(&format!("root hash: {root}")), "{text}");
    assert!(!text.contains("Not in the log yet"));
    assert!(text.contains("consentd verify --inclusion proof.json"));

    // Over gRPC, the document comes only when asked for.
    let record = recorded(&mut client, decision("detailed", "visitor-grpc")).await;
    let proof = |include_document| GetConsentProofRequest {
        record_id: record.id.clone(),
        include_document,
    };
    let plain = client
        .get_consent_proof(proof(false))
        .await
        .unwrap()
        .into_inner();
    assert!(plain.document_pdf.is_empty());
    let with = client
        .get_consent_proof(proof(true))
        .await
        .unwrap()
        .into_inner();
    assert!(with.document_pdf.starts_with(b"%PDF-"));
}
