use super::*;

fn visit() -> Visit {
    Visit {
        site_id: SiteId::parse("shop".into()).unwrap(),
        ip: Some("203.0.113.77".parse().unwrap()),
        user_agent: None,
        gpc: true,
        now: SystemTime::now(),
    }
}

fn body(extra: &str) -> Vec<u8> {
    format!(
        r#"{{"consentId":"0b4c7a5e-54d4-4c4a-9d6b-0c1f3b1f6e2a","acceptType":"custom",
        "acceptedCategories":["necessary","analytics"],"rejectedCategories":["marketing"],
        "acceptedServices":{{"analytics":["ga"]}},"rejectedServices":{{"marketing":["ads"]}},
        "revision":3,"consentTimestamp":"2026-01-01T10:00:00.000Z",
        "lastConsentTimestamp":"2026-01-02T10:00:00.123Z"{extra}}}"#
    )
    .into_bytes()
}

fn fields(error: ValidationError) -> Vec<String> {
    error.violations.into_iter().map(|v| v.field).collect()
}

#[test]
fn cookieconsent_data_becomes_a_decision() {
    let decision = decision(&body(r#","language":"en""#), visit()).unwrap();
    assert_eq!(decision.action, Action::Custom);
    assert_eq!(decision.banner_revision.as_deref(), Some("3"));
    let granted: Vec<&str> = decision
        .choices
        .granted()
        .iter()
        .map(|n| n.as_ref())
        .collect();
    assert_eq!(granted, ["necessary", "analytics"]);
    assert_eq!(decision.choices.services().len(), 2);
    assert!(decision.gpc_detected);
    assert_eq!(
        decision.anonymized_ip.unwrap().to_string(),
        "203.0.113.0/24"
    );
    assert_eq!(
        decision.client_time,
        Some(humantime::parse_rfc3339("2026-01-02T10:00:00.123Z").unwrap())
    );
    let again = super::decision(&body(""), visit()).unwrap();
    assert_eq!(decision.request_id, again.request_id);
}

#[test]
fn every_bad_field_is_named_as_the_page_sent_it() {
    let bad = br#"{"consentId":"x","acceptType":"some","acceptedCategories":["a b"],
        "lastConsentTimestamp":"2999-01-01T00:00:00Z","colour":"red"}"#;
    assert_eq!(
        fields(decision(bad, visit()).unwrap_err()),
        [
            "colour",
            "consentId",
            "acceptType",
            "acceptedCategories[0]",
            "lastConsentTimestamp"
        ]
    );
    let stray = br#"{"consentId":"0b4c7a5e-54d4-4c4a-9d6b-0c1f3b1f6e2a","acceptType":"custom",
        "acceptedCategories":["necessary"],"acceptedServices":{"ads":["x", "y z"]},
        "lastConsentTimestamp":"2026-01-01T00:00:00Z"}"#;
    assert_eq!(
        fields(decision(stray, visit()).unwrap_err()),
        ["acceptedServices.ads", "acceptedServices.ads[1]"]
    );
    assert_eq!(fields(decision(b"{", visit()).unwrap_err()), ["body"]);
    assert_eq!(fields(decision(b"[]", visit()).unwrap_err()), ["body"]);
}
