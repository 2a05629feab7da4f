//! Sites that declare their categories: RecordConsent and the public
//! listener refuse decisions that disagree, naming the field, and store
//! nothing.

use std::time::Duration;

use consentd::api::proto::{
    ConsentAction, DeclaredCategories, DeclaredCategory, GetSiteSettingsRequest,
    RecordConsentRequest, ServiceDecision, UpdateSiteSettingsRequest,
};
use consentd::domain::auth::Scope;
use futures::future::join_all;
use hyper::StatusCode;
use serde_json::json;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::{
    cli::{consentd, stdout},
    helpers::{TestApp, decision, invalid_fields, violated_fields},
    public::{DEFAULT, LAST, json_bytes, payload, spawn},
    writer::{close_commit_gate, single_writer_app},
};

pub(crate) fn category(name: &str, necessary: bool, services: &[&str]) -> DeclaredCategory {
    DeclaredCategory {
        name: name.into(),
        necessary,
        services: services.iter().map(|s| s.to_string()).collect(),
    }
}

/// necessary (necessary), analytics (ga, matomo), marketing (ads, google-ads).
fn shop_categories() -> DeclaredCategories {
    DeclaredCategories {
        categories: vec![
            category("necessary", true, &[]),
            category("analytics", false, &["ga", "matomo"]),
            category("marketing", false, &["ads", "google-ads"]),
        ],
        ..Default::default()
    }
}

pub(crate) async fn declare(app: &TestApp, key: &str, site: &str, categories: DeclaredCategories) {
    try_declare(app, key, site, categories).await.unwrap();
}

/// UpdateSiteSettings with `categories` only; the refusal, if any.
async fn try_declare(
    app: &TestApp,
    key: &str,
    site: &str,
    categories: DeclaredCategories,
) -> Result<(), Status> {
    app.admin_client(key)
        .await
        .update_site_settings(UpdateSiteSettingsRequest {
            site_id: site.into(),
            categories: Some(categories),
            ..Default::default()
        })
        .await
        .map(drop)
}

/// The categories GetSiteSettings says `site` declares.
async fn declared_categories(app: &TestApp, key: &str, site: &str) -> Vec<DeclaredCategory> {
    app.admin_client(key)
        .await
        .get_site_settings(GetSiteSettingsRequest {
            site_id: site.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .settings
        .unwrap()
        .categories
}

#[tokio::test]
async fn record_consent_is_checked_against_the_sites_declared_categories() {
    let (app, key) = TestApp::spawn_with_key("acme").await;
    declare(&app, &key, "shop", shop_categories()).await;
    assert_eq!(
        declared_categories(&app, &key, "shop").await,
        shop_categories().categories
    );

    let mut client = app.client(Some(&key)).await;
    // The fixture's decision names only declared categories and services.
    client
        .record_consent(decision("shop", "visitor-ok"))
        .await
        .unwrap();

    // Today's problem: REJECT_ALL stored as REJECTED with both granted.
    let mut reject_all = decision("shop", "visitor-1");
    reject_all.action = ConsentAction::RejectAll.into();
    reject_all.granted_categories =
        vec!["necessary".into(), "analytics".into(), "marketing".into()];
    reject_all.denied_categories = vec![];
    reject_all.services = vec![];
    let mut accept_all = decision("shop", "visitor-2");
    accept_all.action = ConsentAction::AcceptAll.into();
    accept_all.granted_categories = vec!["necessary".into(), "analytics".into()];
    accept_all.denied_categories = vec![];
    accept_all.services = vec![];
    let mut unknown = decision("shop", "visitor-3");
    unknown.granted_categories.push("social".into());
    unknown.services.push(ServiceDecision {
        category: "analytics".into(),
        service: "hotjar".into(),
        granted: true,
    });
    let mut necessary_denied = decision("shop", "visitor-4");
    necessary_denied.granted_categories = vec!["analytics".into()];
    necessary_denied.denied_categories = vec!["marketing".into(), "necessary".into()];
    for (request, fields) in [
        (
            reject_all,
            vec!["granted_categories[1]", "granted_categories[2]"],
        ),
        (
            accept_all,
            vec!["granted_categories", "services", "services"],
        ),
        (
            unknown,
            vec!["granted_categories[2]", "services[2].service"],
        ),
        (necessary_denied, vec!["denied_categories[1]"]),
    ] {
        let refused = client.record_consent(request).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert_eq!(violated_fields(&refused), fields, "{}", refused.message());
    }
    let refused = {
        let mut reject_all = decision("shop", "visitor-5");
        reject_all.action = ConsentAction::RejectAll.into();
        reject_all.granted_categories = vec!["necessary".into(), "marketing".into()];
        reject_all.denied_categories = vec!["analytics".into()];
        reject_all.services = vec![];
        client.record_consent(reject_all).await.unwrap_err()
    };
    let details = refused.get_error_details();
    let description = &details.bad_request().unwrap().field_violations[0].description;
    assert!(
        description.contains("\"marketing\" is not necessary")
            && description.contains("CONSENT_ACTION_REJECT_ALL"),
        "{description}"
    );
    assert_eq!(app.stored_records().await, 1, "only the valid decision");

    // A site without a declaration of its own inherits the tenant's; with
    // neither, decisions are not checked.
    let mut elsewhere = decision("blog", "visitor-6");
    elsewhere.granted_categories.push("social".into());
    client.record_consent(elsewhere.clone()).await.unwrap();
    declare(&app, &key, "", shop_categories()).await;
    elsewhere.subject_id = "visitor-7".into();
    let refused = client.record_consent(elsewhere).await.unwrap_err();
    assert_eq!(violated_fields(&refused), ["granted_categories[2]"]);
    // Declaring no categories ends the checks of a site's own declaration.
    declare(&app, &key, "", DeclaredCategories::default()).await;
    let mut social = decision("blog", "visitor-8");
    social.granted_categories.push("social".into());
    client.record_consent(social).await.unwrap();
    assert_eq!(app.stored_records().await, 3);
    app.stop().await;
}

#[tokio::test]
async fn a_site_that_declares_none_is_not_checked_where_its_tenant_declares() {
    let (app, key) = TestApp::spawn_with_key("acme").await;
    declare(&app, &key, "", shop_categories()).await;
    declare(&app, &key, "blog", DeclaredCategories::default()).await;
    let mut client = app.client(Some(&key)).await;
    let social = |site: &str, subject: &str| {
        let mut request = decision(site, subject);
        request.granted_categories.push("social".into());
        request
    };
    client
        .record_consent(social("blog", "visitor-1"))
        .await
        .expect("the site opted out of its tenant's declaration");
    assert_eq!(declared_categories(&app, &key, "blog").await, []);
    // A site that never declared inherits the tenant's.
    assert_eq!(
        invalid_fields(client.record_consent(social("shop", "visitor-2")).await),
        ["granted_categories[2]"]
    );

    // Back to the tenant's, from the command line.
    let inherit = ["sites", "set", "--tenant", "acme", "--site", "blog"];
    stdout(&consentd(
        &app.database_url,
        &[&inherit[..], &["--inherit-categories"]].concat(),
    ));
    assert_eq!(
        invalid_fields(client.record_consent(social("blog", "visitor-3")).await),
        ["granted_categories[2]"]
    );
    let both = DeclaredCategories {
        inherit: true,
        ..shop_categories()
    };
    assert_eq!(
        invalid_fields(try_declare(&app, &key, "blog", both).await),
        ["categories.inherit"]
    );
    assert_eq!(app.stored_records().await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_declaration_with_bad_names_is_refused_by_field() {
    let (app, key) = TestApp::spawn_with_key("acme").await;
    let mut categories = shop_categories();
    categories.categories[1].services.push("ga".into());
    categories.categories[2].name = "necessary".into();
    let refused = try_declare(&app, &key, "shop", categories)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&refused),
        [
            "categories.categories[1].services[2]",
            "categories.categories[2].name"
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn the_public_listener_refuses_what_the_declaration_does_not_allow() {
    let app = spawn(DEFAULT).await;
    let admin = app.app.key("acme", &Scope::ALL).await;
    let mut categories = shop_categories();
    categories.categories[2].services = vec!["ads".into()];
    declare(&app.app, &admin, "shop", categories).await;

    let ok = app.fetch(json_bytes(&payload(LAST)), &[]).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);

    let mut reject_all = payload("2026-01-03T10:00:00.000Z");
    reject_all["acceptType"] = json!("necessary");
    reject_all["acceptedCategories"] = json!(["necessary", "analytics", "marketing"]);
    reject_all["rejectedCategories"] = json!([]);
    reject_all["acceptedServices"] = json!({"marketing": ["ads"]});
    reject_all["rejectedServices"] = json!({});
    let mut unknown = payload("2026-01-04T10:00:00.000Z");
    unknown["acceptedCategories"] = json!(["necessary", "marketing", "social"]);
    unknown["acceptedServices"] = json!({"necessary": [], "marketing": ["ads", "tiktok"]});
    let mut accept_all = payload("2026-01-05T10:00:00.000Z");
    accept_all["acceptType"] = json!("all");
    accept_all["acceptedCategories"] = json!(["necessary", "analytics", "marketing"]);
    accept_all["rejectedCategories"] = json!([]);
    accept_all["acceptedServices"] = json!({"analytics": ["ga"], "marketing": ["ads"]});
    accept_all["rejectedServices"] = json!({"analytics": ["matomo"]});
    for (body, fields) in [
        (
            reject_all,
            vec![
                "acceptedCategories[1]",
                "acceptedCategories[2]",
                "acceptedServices.marketing[0]",
            ],
        ),
        (
            unknown,
            vec!["acceptedCategories[2]", "acceptedServices.marketing[1]"],
        ),
        (accept_all, vec!["rejectedServices.analytics[0]"]),
    ] {
        let answer = app.fetch(json_bytes(&body), &[]).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
        assert_eq!(answer.body["error"]["code"], "INVALID_ARGUMENT");
        assert_eq!(answer.fields(), fields, "{}", answer.body);
    }
    assert_eq!(app.listed("shop").await.len(), 1);
    assert_eq!(app.app.stored_records().await, 1);
    app.app.stop().await;
}

#[tokio::test]
async fn sites_set_declares_categories_from_the_command_line() {
    let app = TestApp::spawn().await;
    let url = app.database_url.clone();
    let site = ["sites", "set", "--tenant", "acme", "--site", "shop"];
    let flags = [
        "--category",
        "necessary",
        "--category",
        "analytics=ga,matomo",
        "--category",
        "marketing=ads,google-ads",
        "--necessary",
        "necessary",
    ];
    let set = stdout(&consentd(&url, &[&site[..], &flags[..]].concat()));
    assert!(
        set.contains("category: necessary (necessary)\n")
            && set.contains("category: analytics: ga,matomo\n"),
        "{set}"
    );
    let key = app.key("acme", &Scope::ALL).await;
    assert_eq!(
        declared_categories(&app, &key, "shop").await,
        shop_categories().categories
    );

    let refused = consentd(
        &url,
        &[
            &site[..],
            &["--category", "analytics", "--necessary", "ads"],
        ]
        .concat(),
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--necessary ads: not a --category"));
    let cleared = stdout(&consentd(&url, &[&site[..], &["--no-categories"]].concat()));
    assert!(!cleared.contains("category:"), "{cleared}");
    app.stop().await;
}

#[tokio::test]
async fn refused_and_valid_decisions_in_one_batch_each_get_their_own_answer() {
    let app = single_writer_app().await;
    let key = app.key("acme", &Scope::ALL).await;
    declare(&app, &key, "shop", shop_categories()).await;
    let client = app.client(Some(&key)).await;
    let record = |request: RecordConsentRequest| {
        let mut client = client.clone();
        tokio::spawn(async move { client.record_consent(request).await })
    };
    // The one writer is held at this call's COMMIT while the others queue
    // behind it: they are then written as one batch.
    let gate = close_commit_gate(&app).await;
    let first = record(decision("shop", "first"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls: Vec<_> = (0..10)
        .map(|n| {
            let mut request = decision("shop", &format!("visitor-{n}"));
            if n % 2 == 1 {
                request.granted_categories.push("social".into());
            }
            record(request)
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    gate.execute("SELECT pg_advisory_unlock(4242)", &[])
        .await
        .unwrap();
    first.await.unwrap().unwrap();

    let mut stored = Vec::new();
    for (n, answer) in join_all(calls).await.into_iter().enumerate() {
        match answer.unwrap() {
            Ok(answer) if n % 2 == 0 => {
                let record = answer.into_inner().record.unwrap();
                assert_eq!(record.subject_id, format!("visitor-{n}"));
                stored.push(record);
            }
            Err(refused) if n % 2 == 1 => {
                assert_eq!(refused.code(), Code::InvalidArgument);
                assert_eq!(violated_fields(&refused), ["granted_categories[2]"]);
            }
            other => panic!("call {n}: {other:?}"),
        }
    }
    assert!(
        stored
            .iter()
            .all(|r| r.record_time == stored[0].record_time),
        "the valid ones were written in one batch"
    );
    assert_eq!(app.stored_records().await, 1 + 5);
    app.stop().await;
}

#[tokio::test]
async fn a_retry_stored_before_the_declaration_changed_gets_its_first_answer() {
    let app = spawn(DEFAULT).await;
    let key = app.app.key("acme", &Scope::ALL).await;
    let mut client = app.app.client(Some(&key)).await;
    let mut request = decision("shop", "visitor");
    request.request_id = "first-try".into();
    let first = client.record_consent(request.clone()).await.unwrap();
    let logged = app.fetch(json_bytes(&payload(LAST)), &[]).await;
    assert_eq!(logged.status, StatusCode::OK, "{}", logged.body);

    // Now the site declares categories neither decision agrees with.
    declare(
        &app.app,
        &key,
        "shop",
        DeclaredCategories {
            categories: vec![category("necessary", true, &[])],
            ..Default::default()
        },
    )
    .await;
    let retried = client.record_consent(request.clone()).await.unwrap();
    assert_eq!(retried.into_inner().record, first.into_inner().record);
    let again = app.fetch(json_bytes(&payload(LAST)), &[]).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["id"], logged.body["id"]);

    // A new request is refused as before.
    request.request_id = "second-try".into();
    let refused = client.record_consent(request).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let changed = app
        .fetch(json_bytes(&payload("2026-01-03T10:00:00.000Z")), &[])
        .await;
    assert_eq!(changed.status, StatusCode::BAD_REQUEST, "{}", changed.body);
    assert_eq!(app.app.stored_records().await, 2);
    app.app.stop().await;
}
