use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, consent_status, decision, minimal_site, recorded};

#[tokio::test]
async fn only_the_anonymised_network_of_an_ip_is_stored_or_returned() {
    let app = TestApp::spawn().await;
    let mut client = app.tenant_client("acme").await;
    let cases = [
        ("v4", "203.0.113.77", "203.0.113.0/24"),
        (
            "v6",
            "2001:db8:abcd:12:3456:789a:bcde:f012",
            "2001:db8:abcd::/48",
        ),
    ];
    for (subject, raw, masked) in cases {
        let mut request = decision("shop", subject);
        request.ip_address = raw.into();
        let record = recorded(&mut client, request).await;
        assert_eq!(record.anonymized_ip, masked);
    }

    let sql = app.sql().await;
    for (subject, raw, masked) in cases {
        let row = sql
            .query_one(
                "SELECT anonymized_ip, t::text AS whole_row FROM consent_records t WHERE subject_id = $1",
                &[&subject],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>("anonymized_ip"), masked);
        let whole_row: String = row.get("whole_row");
        assert!(!whole_row.contains(raw), "raw IP {raw} stored: {whole_row}");
    }
}

#[tokio::test]
async fn every_tenant_table_has_a_primary_key_starting_with_tenant_id() {
    let app = TestApp::spawn().await;
    let rows = app
        .sql()
        .await
        .query(
            "SELECT c.relnamespace::regnamespace::text AS schema, c.relname::text AS table_name, \
                    (SELECT a.attname::text FROM pg_attribute a \
                     WHERE a.attrelid = c.oid AND a.attnum = i.indkey[0]) AS first_key_column \
             FROM pg_class c \
             LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary \
             WHERE c.relkind = 'r' \
               AND c.relnamespace::regnamespace::text NOT IN ('pg_catalog', 'information_schema')",
            &[],
        )
        .await
        .unwrap();
    let mut tenant_tables = 0;
    for row in rows {
        let schema: String = row.get("schema");
        let table: String = row.get("table_name");
        let first: Option<String> = row.get("first_key_column");
        // The servers' own bookkeeping (the migrations, the log's
        // sequencer) belongs to no tenant.
        if schema == "consentd_meta" {
            continue;
        }
        assert_eq!(first.as_deref(), Some("tenant_id"), "{schema}.{table}");
        tenant_tables += 1;
    }
    assert!(tenant_tables >= 4);
}

#[tokio::test]
async fn minimal_logging_keeps_the_decision_its_times_and_the_visitor_id_only() {
    let (app, key) = TestApp::spawn_with_key("acme").await;
    let mut client = app.site_client(&key, minimal_site("minimal")).await;
    let mut sent = decision("minimal", "visitor-min");
    sent.request_id = "minimal-request".into();
    sent.user_id = "user-min-7f3a".into();
    sent.notice_version = "banner-7".into();
    sent.notice_sha256 = hex::encode(Sha256::digest(b"We use cookies."));
    let stored = recorded(&mut client, sent.clone()).await;

    // What a minimal record keeps, as sent.
    let kept = (
        &stored.request_id,
        &stored.subject_id,
        stored.action,
        &stored.granted_categories,
        &stored.denied_categories,
        &stored.services,
        &stored.banner_revision,
        stored.regime,
        (
            stored.gpc_detected,
            stored.gpc_honoured,
            stored.ccpa_opt_out,
        ),
        (&stored.notice_version, &stored.notice_sha256),
        &stored.client_time,
    );
    assert_eq!(
        kept,
        (
            &sent.request_id,
            &sent.subject_id,
            sent.action,
            &sent.granted_categories,
            &sent.denied_categories,
            &sent.services,
            &sent.banner_revision,
            sent.regime,
            (sent.gpc_detected, sent.gpc_honoured, sent.ccpa_opt_out),
            (&sent.notice_version, &sent.notice_sha256),
            &sent.client_time,
        )
    );
    assert!(stored.record_time.is_some() && stored.expire_time.is_some());
    // And nothing else, in the answer and in every later read.
    let status = consent_status(&mut client, "minimal", "visitor-min")
        .await
        .unwrap();
    for record in [&stored, &status] {
        let dropped = [
            ("user_id", &record.user_id),
            ("tcf_string", &record.tcf_string),
            ("gpp_string", &record.gpp_string),
            ("google_ac_string", &record.google_ac_string),
            ("country_code", &record.country_code),
            ("language_code", &record.language_code),
            ("page_url", &record.page_url),
            ("user_agent", &record.user_agent),
            ("device_type", &record.device_type),
            ("os", &record.os),
            ("browser", &record.browser),
            ("anonymized_ip", &record.anonymized_ip),
        ];
        for (field, value) in dropped {
            assert_eq!(value, "", "{field} is kept by minimal logging");
        }
    }

    let whole_row = app
        .row_without(
            "minimal",
            &[
                "user_id",
                "tcf_string",
                "gpp_string",
                "google_ac_string",
                "country_code",
                "language_code",
                "page_url",
                "user_agent",
                "device_type",
                "os",
                "browser",
                "anonymized_ip",
                "ip_key_id",
            ],
        )
        .await;
    for sent_value in [
        &sent.user_id,
        &sent.tcf_string,
        &sent.gpp_string,
        &sent.google_ac_string,
        &sent.language_code,
    ] {
        assert!(
            !whole_row.contains(sent_value.as_str()),
            "{sent_value}: {whole_row}"
        );
    }
}

#[tokio::test]
async fn a_page_url_is_stored_and_returned_without_user_info_or_fragment() {
    let app = TestApp::spawn().await;
    let mut client = app.tenant_client("acme").await;
    let mut sent = decision("shop", "visitor-url");
    sent.page_url = "https://alice:hunter2@shop.example/checkout?step=2#reset=tok-93kd".into();
    let stored = recorded(&mut client, sent).await;
    assert_eq!(stored.page_url, "https://shop.example/checkout?step=2");

    let row = app
        .sql()
        .await
        .query_one(
            "SELECT page_url, t::text AS whole_row FROM consent_records t WHERE subject_id = 'visitor-url'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, String>("page_url"),
        "https://shop.example/checkout?step=2"
    );
    let whole_row: String = row.get("whole_row");
    for secret in ["alice", "hunter2", "tok-93kd"] {
        assert!(!whole_row.contains(secret), "{secret}: {whole_row}");
    }
}
