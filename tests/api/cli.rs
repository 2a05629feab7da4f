use std::process::{Command, Output};

use consentd::api::proto::GetConsentStatusRequest;
use tonic::Code;

use crate::helpers::{TestApp, decision};

fn consentd(database_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_consentd"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[tokio::test]
async fn keys_are_created_listed_and_revoked_from_the_command_line() {
    let app = TestApp::spawn().await;
    let url = app.database_url.clone();
    stdout(&consentd(&url, &["migrate"]));

    let created = stdout(&consentd(
        &url,
        &[
            "keys",
            "create",
            "--tenant",
            "acme",
            "--scopes",
            "consent:write,consent:read",
        ],
    ));
    let key = created.lines().last().unwrap().to_string();
    assert!(key.starts_with("cdk_") && key.len() >= 40, "{key}");
    let key_id = created
        .lines()
        .find_map(|line| line.strip_prefix("key_id: "))
        .unwrap()
        .to_string();

    let mut client = app.client(Some(&key)).await;
    client.record_consent(decision("shop", "v")).await.unwrap();

    let listed = stdout(&consentd(&url, &["keys", "list"]));
    assert!(listed.contains(&key_id) && listed.contains("consent:write,consent:read"));
    assert!(!listed.contains(&key), "keys list never shows a secret");
    let stored: i64 = app
        .sql()
        .await
        .query_one(
            "SELECT count(*) FROM api_keys t WHERE t::text LIKE '%' || $1 || '%'",
            &[&key],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0, "only the key's hash is stored");

    stdout(&consentd(&url, &["keys", "revoke", &key_id]));
    let status = client
        .get_consent_status(GetConsentStatusRequest {
            site_id: "shop".into(),
            subject_id: "v".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    let unknown_scope = consentd(
        &url,
        &[
            "keys",
            "create",
            "--tenant",
            "acme",
            "--scopes",
            "consent:everything",
        ],
    );
    assert!(!unknown_scope.status.success());
    let stderr = String::from_utf8_lossy(&unknown_scope.stderr);
    assert!(stderr.contains("consent:everything"), "{stderr}");
}

#[tokio::test]
async fn sites_are_set_and_read_from_the_command_line_and_keys_generated() {
    let app = TestApp::spawn().await;
    let url = app.database_url.clone();
    let set = stdout(&consentd(
        &url,
        &[
            "sites",
            "set",
            "--tenant",
            "acme",
            "--site",
            "shop",
            "--detailed-logging",
            "false",
            "--retention-days",
            "30",
        ],
    ));
    assert!(
        set.contains("detailed_logging: false") && set.contains("retention_days: 30"),
        "{set}"
    );
    assert!(
        set.contains("consent_lifetime_days: 365"),
        "unset values inherit: {set}"
    );
    let stored = stdout(&consentd(
        &url,
        &["sites", "get", "--tenant", "acme", "--site", "shop"],
    ));
    assert!(
        stored.contains("detailed_logging: false") && stored.contains("retention_days: 30"),
        "what was set is read back: {stored}"
    );
    let got = stdout(&consentd(
        &url,
        &["sites", "get", "--tenant", "acme", "--site", "other"],
    ));
    assert!(
        got.contains("detailed_logging: true") && got.contains("retention_days: 1095"),
        "{got}"
    );
    let audited: i64 = app
        .sql()
        .await
        .query_one(
            "SELECT count(*) FROM audit_events WHERE action = 'site.update' AND key_id IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 1);

    let entry = stdout(&consentd(&url, &["generate-key", "--id", "k9"]));
    assert!(
        consentd::domain::keyring::SigningKeyring::parse(entry.trim()).is_ok(),
        "{entry}"
    );
    assert!(entry.starts_with("k9="));
}

#[tokio::test]
async fn migrate_is_idempotent_and_refuses_a_changed_migration() {
    let app = TestApp::spawn().await;
    let url = app.database_url.clone();
    stdout(&consentd(&url, &["migrate"]));
    stdout(&consentd(&url, &["migrate"]));
    app.sql()
        .await
        .execute(
            "UPDATE consentd_meta.schema_migrations SET checksum = '\\x00' WHERE version = 1",
            &[],
        )
        .await
        .unwrap();
    let refused = consentd(&url, &["migrate"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("migration 1 (init) differs"));
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_build_is_refused() {
    let app = TestApp::spawn().await;
    let url = app.database_url.clone();
    app.sql()
        .await
        .execute(
            "INSERT INTO consentd_meta.schema_migrations (version, name, checksum)
             VALUES (999, 'from the future', '\\x00')",
            &[],
        )
        .await
        .unwrap();
    let refused = consentd(&url, &["migrate"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("at migration 999"), "{stderr}");
}
