use std::{
    process::{Command, Output},
    time::Duration,
};

use consentd::domain::site::DAY;
use tonic::Code;

use crate::{
    cli_limits::consentd_line,
    helpers::{TestApp, consent_status, count, decision},
};

pub fn consentd(database_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_consentd"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

pub fn stdout(output: &Output) -> String {
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
    app.cli("migrate");

    let created = app.cli("keys|create|--tenant|acme|--scopes|consent:write,consent:read");
    let key = created.lines().last().unwrap().to_string();
    assert!(key.starts_with("cdk_") && key.len() >= 40, "{key}");
    let key_id = created
        .lines()
        .find_map(|line| line.strip_prefix("key_id: "))
        .unwrap()
        .to_string();

    let mut client = app.client(Some(&key)).await;
    client.record_consent(decision("shop", "v")).await.unwrap();

    let listed = app.cli("keys|list");
    assert!(listed.contains(&key_id) && listed.contains("consent:write,consent:read"));
    assert!(!listed.contains(&key), "keys list never shows a secret");
    let stored = count(
        &app.sql().await,
        "SELECT count(*) FROM api_keys t WHERE t::text LIKE '%' || $1 || '%'",
        &[&key],
    )
    .await;
    assert_eq!(stored, 0, "only the key's hash is stored");

    stdout(&consentd(&url, &["keys", "revoke", &key_id]));
    let status = consent_status(&mut client, "shop", "v").await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    let unknown_scope = consentd_line(
        &url,
        "keys|create|--tenant|acme|--scopes|consent:everything",
    );
    assert!(!unknown_scope.status.success());
    let stderr = String::from_utf8_lossy(&unknown_scope.stderr);
    assert!(stderr.contains("consent:everything"), "{stderr}");
}

#[tokio::test]
async fn sites_are_set_and_read_from_the_command_line_and_keys_generated() {
    let app = TestApp::spawn().await;
    let set =
        app.cli("sites|set|--tenant|acme|--site|shop|--detailed-logging|false|--retention|30d");
    assert!(
        set.contains("detailed_logging: false") && set.contains("retention: 30d"),
        "{set}"
    );
    assert!(
        set.contains("consent_lifetime: 365d"),
        "unset values inherit: {set}"
    );
    let stored = app.cli("sites|get|--tenant|acme|--site|shop");
    assert!(
        stored.contains("detailed_logging: false") && stored.contains("retention: 30d"),
        "what was set is read back: {stored}"
    );
    let got = app.cli("sites|get|--tenant|acme|--site|other");
    assert!(
        got.contains("detailed_logging: true") && got.contains("retention: 1095d"),
        "{got}"
    );
    let audited = count(
        &app.sql().await,
        "SELECT count(*) FROM audit_events WHERE action = 'site.update' AND key_id IS NULL",
        &[],
    )
    .await;
    assert_eq!(audited, 1);

    let entry = app.cli("generate-key|--id|k9");
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
    app.cli("migrate");
    app.cli("migrate");
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

/// `consentd` with `env` set and nothing else from this process's
/// environment that configures it.
fn consentd_with(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_consentd"));
    for (name, _) in std::env::vars() {
        if name.starts_with("CONSENTD_") || name == "DATABASE_URL" {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn refused(output: &Output) -> String {
    assert!(!output.status.success(), "accepted: {output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// What `serve` needs besides the setting under test; the database is
/// never reached, nothing listens on port 1.
const SERVE_ENV: [(&str, &str); 3] = [
    ("DATABASE_URL", "postgres://consentd@127.0.0.1:1/consentd"),
    (
        "CONSENTD_AUDIT_KEY",
        "test-audit-key-that-is-long-enough-0123456789",
    ),
    ("CONSENTD_SIGNING_KEYS", crate::helpers::SIGNING_KEYS),
];

/// `consentd serve` with `flag` set to a value out of its range refuses to
/// start, naming the flag, its `variable` and the `rule`.
fn serve_refuses((flag, value): (&str, &str), variable: &str, rule: &str) {
    let stderr = refused(&consentd_with(&SERVE_ENV, &["serve", flag, value]));
    assert!(
        stderr.contains(&format!("{flag} ({variable})")) && stderr.contains(rule),
        "{flag} {value}: {stderr}"
    );
}

#[test]
fn serve_refuses_a_duration_it_cannot_read_naming_the_flag_and_variable() {
    let mut env = SERVE_ENV.to_vec();
    env.push(("CONSENTD_HEALTH_CHECK_INTERVAL", "2000"));
    let stderr = refused(&consentd_with(&env, &["serve"]));
    assert!(
        stderr.contains("--health-check-interval")
            && stderr.contains("CONSENTD_HEALTH_CHECK_INTERVAL")
            && stderr.contains("'2000'"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("migrate"),
        "refused before any database work: {stderr}"
    );
}

#[test]
fn serve_refuses_a_value_out_of_range_rather_than_clamping_it() {
    serve_refuses(
        ("--expiry-interval", "10ms"),
        "CONSENTD_EXPIRY_INTERVAL",
        "must be between 50ms and 1d",
    );
    serve_refuses(
        ("--consent-lifetime", "36501d"),
        "CONSENTD_CONSENT_LIFETIME",
        "must be between 1s and 36500d",
    );
    let mut env = SERVE_ENV.to_vec();
    env.push(("CONSENTD_WRITERS", "0"));
    let stderr = refused(&consentd_with(&env, &["serve"]));
    assert!(
        stderr.contains("--writers (CONSENTD_WRITERS)") && stderr.contains("between 1 and 64"),
        "{stderr}"
    );
}

#[test]
fn serve_remembers_request_ids_for_one_hour_to_seven_days() {
    for ttl in ["8d", "59m"] {
        serve_refuses(
            ("--request-id-ttl", ttl),
            "CONSENTD_REQUEST_ID_TTL",
            "must be between 1h and 7d",
        );
    }
}

#[test]
fn serve_names_the_setting_of_a_bad_key() {
    let bad = [
        (1, "--audit-key", "CONSENTD_AUDIT_KEY", "short"),
        (
            2,
            "--signing-keys-file",
            "CONSENTD_SIGNING_KEYS_FILE",
            "/nonexistent/signing-keys",
        ),
    ];
    for (index, flag, variable, value) in bad {
        let mut env = SERVE_ENV.to_vec();
        env[index] = (variable, value);
        let stderr = refused(&consentd_with(&env, &["serve"]));
        assert!(stderr.contains(&format!("{flag} ({variable})")), "{stderr}");
    }
}

#[tokio::test]
async fn sites_take_durations_as_the_api_does_within_its_limits() {
    let app = TestApp::spawn().await;
    let url = app.database_url.clone();
    let site = ["sites", "set", "--tenant", "acme", "--site", "shop"];
    let set = stdout(&consentd(
        &url,
        &[
            &site[..],
            &["--consent-lifetime", "400d 12h", "--retention", "12h"],
        ]
        .concat(),
    ));
    assert!(
        set.contains("consent_lifetime: 400d 12h") && set.contains("retention: 12h"),
        "{set}"
    );
    let stored = app
        .store
        .site_settings(
            app.store.tenant_id("acme").await.unwrap(),
            "shop",
            crate::helpers::settings().api.defaults,
        )
        .await
        .unwrap();
    assert_eq!(
        stored.consent_lifetime,
        DAY * 400 + Duration::from_secs(12 * 3600)
    );
    assert_eq!(stored.retention, Duration::from_secs(12 * 3600));

    for (flag, value, problem) in [
        ("--consent-lifetime", "0s", "must be between 1s and 36500d"),
        (
            "--consent-lifetime",
            "36501d",
            "must be between 1s and 36500d",
        ),
        ("--retention", "36501d", "must be between 0s and 36500d"),
        ("--retention", "30", "time unit needed"),
    ] {
        let stderr = refused(&consentd(&url, &[&site[..], &[flag, value]].concat()));
        assert!(
            stderr.contains(flag) && stderr.contains(problem),
            "{flag} {value}: {stderr}"
        );
    }
    let kept = app.cli("sites|get|--tenant|acme|--site|shop");
    assert!(
        kept.contains("retention: 12h"),
        "a refused change changes nothing: {kept}"
    );
}

#[test]
fn generate_key_refuses_an_id_a_keyring_would_refuse() {
    let stderr = refused(&consentd_with(&[], &["generate-key", "--id", "bad.id"]));
    assert!(stderr.contains("1-64 of [A-Za-z0-9_-]"), "{stderr}");
    let help = consentd_with(&[], &["generate-key", "--help"]);
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("1-64 of [A-Za-z0-9_-]"),
        "the rule is in --help"
    );
    let long = "k".repeat(65);
    refused(&consentd_with(&[], &["generate-key", "--id", &long]));
}

#[tokio::test]
async fn a_publishable_key_is_created_for_one_site_and_its_origins() {
    let app = TestApp::spawn().await;
    let url = app.database_url.clone();
    let created = app.cli(
        "keys|create|--tenant|acme|--site|shop|--publishable\
         |--origins|https://shop.example,https://www.shop.example",
    );
    let key = created.lines().last().unwrap().to_string();
    assert!(key.starts_with("cdp_"), "publishable keys look it: {key}");
    let listed = app.cli("keys|list");
    assert!(
        listed.contains(
            "publishable site=shop origins=https://shop.example,https://www.shop.example"
        ),
        "{listed}"
    );
    // It is no key at all to the gRPC API.
    let refused = app
        .client(Some(&key))
        .await
        .record_consent(decision("shop", "v"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);

    for wrong in [
        &["--site", "shop", "--publishable"][..],
        &[
            "--site",
            "shop",
            "--publishable",
            "--origins",
            "https://shop.example/path",
        ],
        &["--publishable", "--origins", "https://shop.example"],
        &[
            "--scopes",
            "admin",
            "--site",
            "shop",
            "--origins",
            "https://shop.example",
        ],
    ] {
        let mut args = vec!["keys", "create", "--tenant", "acme"];
        args.extend_from_slice(wrong);
        assert!(!consentd(&url, &args).status.success(), "{wrong:?}");
    }
}
