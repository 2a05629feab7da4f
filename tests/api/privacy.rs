use crate::helpers::{TestApp, decision, recorded};

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
        // The migrations' own bookkeeping belongs to no tenant.
        if (schema.as_str(), table.as_str()) == ("consentd_meta", "schema_migrations") {
            continue;
        }
        assert_eq!(first.as_deref(), Some("tenant_id"), "{schema}.{table}");
        tenant_tables += 1;
    }
    assert!(tenant_tables >= 4);
}
