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
}
