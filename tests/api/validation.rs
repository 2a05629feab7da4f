use consentd::api::proto::{
    ConsentAction, ConsentFilter, EraseConsentsRequest, GetConsentStatusRequest,
    ListConsentsRequest, RecordConsentRequest, ServiceDecision,
};
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{ConsentClient, TestApp, decision, invalid_fields, violated_fields};

async fn rejected_fields(client: &mut ConsentClient, request: RecordConsentRequest) -> Vec<String> {
    let status = client.record_consent(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "INVALID_FIELDS"
    );
    violated_fields(&status)
}

#[tokio::test]
async fn every_validation_rule_names_its_field_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let mut client = app.tenant_client("acme").await;
    let valid = || decision("shop", "visitor");
    let long = |n: usize| "x".repeat(n);

    type Breaks = fn(&mut RecordConsentRequest);
    let cases: Vec<(&str, Breaks)> = vec![
        ("action", |r| r.action = 0),
        ("action", |r| r.action = 42),
        ("regime", |r| r.regime = 0),
        ("regime", |r| r.regime = 9),
        ("site_id", |r| r.site_id.clear()),
        ("subject_id", |r| r.subject_id.clear()),
        ("subject_id", |r| r.subject_id = "has space".into()),
        ("user_id", |r| r.user_id = "x".repeat(129)),
        ("request_id", |r| r.request_id = "x".repeat(129)),
        ("denied_categories[0]", |r| {
            r.denied_categories = vec!["analytics".into()]
        }),
        ("granted_categories[2]", |r| {
            r.granted_categories.push("no spaces allowed".into())
        }),
        ("granted_categories[2]", |r| {
            r.granted_categories.push("necessary".into())
        }),
        ("granted_categories", |r| {
            r.granted_categories = (0..65).map(|i| format!("c{i}")).collect()
        }),
        ("denied_categories", |r| {
            r.action = ConsentAction::AcceptAll.into();
        }),
        ("services[1].category", |r| {
            r.services[1] = ServiceDecision {
                category: "unlisted".into(),
                service: "x".into(),
                granted: true,
            }
        }),
        ("services[1]", |r| r.services[1] = r.services[0].clone()),
        ("services", |r| {
            r.services = (0..257)
                .map(|i| ServiceDecision {
                    category: "analytics".into(),
                    service: format!("s{i}"),
                    granted: true,
                })
                .collect()
        }),
        ("country_code", |r| r.country_code = "de".into()),
        ("country_code", |r| r.country_code = "XX".into()),
        ("country_code", |r| r.country_code = "DEU".into()),
        ("language_code", |r| {
            r.language_code = "english please".into()
        }),
        ("page_url", |r| r.page_url = "ftp://shop.example/".into()),
        ("page_url", |r| r.page_url = "not a url".into()),
        ("page_url", |r| {
            r.page_url = format!("https://shop.example/{}", "x".repeat(2048))
        }),
        ("user_agent", |r| r.user_agent = "x".repeat(1025)),
        ("ip_address", |r| r.ip_address = "203.0.113.999".into()),
        ("banner_revision", |r| r.banner_revision = "x".repeat(65)),
        ("tcf_string", |r| r.tcf_string = "x".repeat(8193)),
        ("gpp_string", |r| r.gpp_string = "x".repeat(8193)),
        ("google_ac_string", |r| {
            r.google_ac_string = "x".repeat(4097)
        }),
        ("gpc_honoured", |r| r.gpc_detected = false),
        ("client_time", |r| {
            r.client_time = Some(prost_types::Timestamp {
                seconds: 0,
                nanos: -5,
            })
        }),
    ];
    for (field, breaks) in cases {
        let mut request = valid();
        breaks(&mut request);
        let fields = rejected_fields(&mut client, request).await;
        assert!(
            fields.contains(&field.to_string()),
            "expected {field} in {fields:?}"
        );
    }

    // Every bad field is reported at once.
    let mut many = valid();
    many.site_id.clear();
    many.country_code = "usa".into();
    many.ip_address = "nope".into();
    many.page_url = long(3000);
    let fields = rejected_fields(&mut client, many).await;
    assert_eq!(
        fields,
        vec!["site_id", "country_code", "page_url", "ip_address"]
    );

    let rows = app.stored_records().await;
    assert_eq!(rows, 0, "nothing written");
}

#[tokio::test]
async fn reads_and_erasures_validate_their_fields_too() {
    let app = TestApp::spawn().await;
    let mut client = app.tenant_client("acme").await;

    let request = GetConsentStatusRequest::default();
    let fields = invalid_fields(client.get_consent_status(request).await);
    assert_eq!(fields, vec!["site_id", "subject_id"]);

    let reversed_range = ConsentFilter {
        start_time: Some(prost_types::Timestamp {
            seconds: 2_000_000_000,
            nanos: 0,
        }),
        end_time: Some(prost_types::Timestamp {
            seconds: 1_000_000_000,
            nanos: 0,
        }),
        status: 17,
        ..Default::default()
    };
    let garbage_token = ListConsentsRequest {
        site_id: "shop".into(),
        page_token: "garbage".into(),
        ..Default::default()
    };
    let list = ListConsentsRequest {
        filter: Some(reversed_range),
        ..garbage_token.clone()
    };
    let fields = invalid_fields(client.list_consents(list).await);
    assert_eq!(fields, vec!["filter.end_time", "filter.status"]);
    let fields = invalid_fields(client.list_consents(garbage_token).await);
    assert_eq!(fields, vec!["page_token"]);

    let erase = EraseConsentsRequest {
        site_id: "shop".into(),
        ..Default::default()
    };
    assert_eq!(
        invalid_fields(client.erase_consents(erase).await),
        vec!["subject_id"]
    );
}
