//! The site setting `drop_query_strings`: page URLs stored without their
//! query string, set through AdminService or `consentd sites set`.

use consentd::api::proto::{GetSiteSettingsRequest, SiteSettings, UpdateSiteSettingsRequest};

use crate::{
    cli_limits::consentd_line,
    helpers::{AdminClient, TestApp, decision, recorded},
};

const SENT: &str = "https://shop.example/welcome?email=x@y.example&token=t-81kq";

async fn stored_url(app: &TestApp, subject: &str) -> String {
    app.sql()
        .await
        .query_one(
            "SELECT page_url FROM consent_records WHERE subject_id = $1",
            &[&subject],
        )
        .await
        .unwrap()
        .get(0)
}

/// Site "shop"'s settings after `change` to an update that sets nothing else.
async fn update_shop(
    admin: &mut AdminClient,
    change: impl FnOnce(&mut UpdateSiteSettingsRequest),
) -> SiteSettings {
    let mut request = UpdateSiteSettingsRequest {
        site_id: "shop".into(),
        ..Default::default()
    };
    change(&mut request);
    admin
        .update_site_settings(request)
        .await
        .unwrap()
        .into_inner()
        .settings
        .unwrap()
}

#[tokio::test]
async fn a_site_that_drops_query_strings_stores_and_returns_urls_without_them() {
    let (app, key) = TestApp::spawn_with_key("acme").await;
    let mut admin = app.admin_client(&key).await;
    let settings = admin
        .get_site_settings(GetSiteSettingsRequest {
            site_id: "shop".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .settings
        .unwrap();
    assert!(!settings.drop_query_strings, "off by default");
    let settings = update_shop(&mut admin, |r| r.drop_query_strings = Some(true)).await;
    assert!(settings.drop_query_strings);
    assert!(
        settings.detailed_logging,
        "the other settings keep their value"
    );

    // Even a key that may read raw values sees no query: none was stored.
    let mut client = app.client(Some(&key)).await;
    let mut sent = decision("shop", "visitor-q");
    sent.page_url = SENT.into();
    let stored = recorded(&mut client, sent).await;
    assert_eq!(stored.page_url, "https://shop.example/welcome");
    assert_eq!(
        stored_url(&app, "visitor-q").await,
        "https://shop.example/welcome"
    );
    let whole_row: String = app
        .sql()
        .await
        .query_one(
            "SELECT t::text FROM consent_records t WHERE subject_id = 'visitor-q'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    for secret in ["x@y.example", "t-81kq", "email"] {
        assert!(!whole_row.contains(secret), "{secret}: {whole_row}");
    }

    // Another site keeps the query as sent, and a raw key sees it.
    let mut elsewhere = decision("blog", "visitor-b");
    elsewhere.page_url = SENT.into();
    assert_eq!(recorded(&mut client, elsewhere).await.page_url, SENT);
    assert_eq!(stored_url(&app, "visitor-b").await, SENT);

    // An update that leaves it unset keeps it on.
    let settings = update_shop(&mut admin, |r| r.detailed_logging = Some(true)).await;
    assert!(settings.drop_query_strings);
}

#[tokio::test]
async fn the_command_line_sets_drop_query_strings_and_tenant_defaults_inherit_it() {
    let app = TestApp::spawn().await;
    let url = app.database_url.clone();
    let set = app.cli("sites|set|--tenant|acme|--site||--drop-query-strings|true");
    assert!(set.contains("drop_query_strings: true"), "{set}");
    let got = app.cli("sites|get|--tenant|acme|--site|shop");
    assert!(got.contains("drop_query_strings: true"), "inherited: {got}");

    let mut client = app.tenant_client("acme").await;
    let mut sent = decision("shop", "visitor-cli");
    sent.page_url = SENT.into();
    recorded(&mut client, sent).await;
    assert_eq!(
        stored_url(&app, "visitor-cli").await,
        "https://shop.example/welcome"
    );

    let refused = consentd_line(
        &url,
        "sites|set|--tenant|acme|--site|shop|--drop-query-strings|maybe",
    );
    assert!(!refused.status.success());
}
