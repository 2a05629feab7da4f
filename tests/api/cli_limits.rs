//! Every command refuses a bad value where it is given, with the rule in
//! the message and in `--help`, and writes nothing.

use std::process::Output;

use consentd::domain::auth::Scope;

use crate::{
    cli::{consentd, stdout},
    helpers::TestApp,
};

/// Text with its runs of white space as one space, so a rule reads the
/// same however `--help` wraps it.
fn flat(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

const TENANT_RULE: &str = "a tenant name is 1-128 printable ASCII characters, no spaces";
const SITE_RULE: &str = "a site id is 1-128 printable ASCII characters, no spaces";

/// `consentd` with the arguments of `line`, separated by `|` (so an
/// argument may hold a space or be empty).
pub fn consentd_line(database_url: &str, line: &str) -> Output {
    consentd(database_url, &line.split('|').collect::<Vec<_>>())
}

#[tokio::test]
async fn each_command_refuses_a_bad_value_with_its_rule_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let url = app.database_url.clone();
    let long_tenant = format!("keys|create|--tenant|{}|--scopes|admin", "t".repeat(129));
    let cases = [
        (
            "keys|create|--tenant|acme corp|--scopes|consent:read",
            TENANT_RULE,
        ),
        ("keys|create|--tenant||--scopes|consent:read", TENANT_RULE),
        (long_tenant.as_str(), TENANT_RULE),
        (
            "keys|create|--tenant|acme|--scopes|consent:all",
            "known scopes: consent:write, consent:read, consent:read_raw",
        ),
        (
            "keys|create|--tenant|acme|--publishable|--site|my shop|--origins|https://shop.example",
            SITE_RULE,
        ),
        (
            "keys|create|--tenant|acme|--publishable|--site|shop|--origins|https://shop.example/a",
            "must be an origin such as https://shop.example",
        ),
        ("keys|revoke|key-7", "a UUID"),
        (
            "sites|set|--tenant|acme|--site|my shop|--retention|1d",
            SITE_RULE,
        ),
        (
            "sites|set|--tenant|a\tb|--site|shop|--retention|1d",
            TENANT_RULE,
        ),
        ("sites|get|--tenant|acme|--site|x y", SITE_RULE),
        (
            "sites|set|--tenant|acme|--site|shop|--consent-lifetime|0s",
            "must be between 1s and 36500d",
        ),
        (
            "sites|set|--tenant|acme|--site|shop|--retention|36501d",
            "must be between 0s and 36500d",
        ),
        (
            "sites|set|--tenant|acme|--site|shop|--drop-query-strings|yes",
            "true, false",
        ),
        ("migrate|--pool-size|0", "must be between 1 and 1024"),
        (
            "serve|--listen|localhost:50051|--audit-key|k|--signing-keys|k",
            "must be an IP address and a port",
        ),
        (
            "serve|--public-listen|0.0.0.0|--audit-key|k|--signing-keys|k",
            "must be an IP address and a port",
        ),
        ("generate-key|--id|bad.id", "1-64 of [A-Za-z0-9_-]"),
        (
            "sites|set|--tenant|acme|--site|shop|--category|my cat",
            "a category or service name is 1-64 of [A-Za-z0-9_.-]",
        ),
        (
            "sites|set|--tenant|acme|--site|shop|--category|analytics=ga,g/a",
            "a category or service name is 1-64 of [A-Za-z0-9_.-]",
        ),
        (
            "sites|set|--tenant|acme|--site|shop|--category|analytics|--necessary|ads",
            "--necessary ads: not a --category",
        ),
    ];
    for (line, rule) in cases {
        let output = consentd_line(&url, line);
        assert!(!output.status.success(), "{line} was accepted");
        let stderr = flat(&output.stderr);
        assert!(stderr.contains(rule), "{line}: {stderr}");
        assert!(!stderr.contains("panicked"), "{line}: {stderr}");
    }

    let sql = app.sql().await;
    for table in ["tenants", "api_keys", "sites"] {
        let rows: i64 = sql
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, 0, "{table}: a refused command wrote");
    }

    // Values within their rules are taken.
    for line in [
        "sites|set|--tenant|acme|--site||--retention|1d",
        "keys|create|--tenant|acme|--publishable|--site|shop|--origins|https://shop.example",
    ] {
        stdout(&consentd_line(&url, line));
    }
}

#[test]
fn the_rules_are_in_help() {
    let help = |args: &[&str]| flat(&consentd("postgres://unused", args).stdout);
    let create = help(&["keys", "create", "--help"]);
    assert!(
        create.contains("1-128 printable ASCII characters, no spaces"),
        "{create}"
    );
    assert!(create.contains("no path"), "the origin rule: {create}");
    for scope in Scope::ALL {
        assert!(
            create.contains(scope.as_str()),
            "{scope} is not in: {create}"
        );
    }
    for args in [["sites", "set", "--help"], ["sites", "get", "--help"]] {
        let text = help(&args);
        assert!(
            text.contains("The site: 1-128 printable ASCII characters, no spaces; '' for the tenant's defaults"),
            "{text}"
        );
        assert!(text.contains("The tenant"), "{text}");
    }
    let set = help(&["sites", "set", "--help"]);
    assert!(
        set.contains("1s to 36500d") && set.contains("0s to 36500d"),
        "{set}"
    );
    assert!(set.contains("each name 1-64 of [A-Za-z0-9_.-]"), "{set}");
    assert!(help(&["keys", "revoke", "--help"]).contains("a UUID"));
    assert!(help(&["migrate", "--help"]).contains("1 to 1024"));
    let serve = help(&["serve", "--help"]);
    for flag in ["--listen", "--public-listen", "--metrics-listen"] {
        let described = serve
            .split(&format!(" {flag} <"))
            .nth(1)
            .and_then(|rest| rest.split(" --").next())
            .unwrap_or_default();
        assert!(described.contains("IP:PORT"), "{flag}: {serve}");
    }
    assert!(help(&["generate-key", "--help"]).contains("1-64 of [A-Za-z0-9_-]"));
}
