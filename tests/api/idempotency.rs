use std::time::Duration;

use consentd::{
    api::proto::{
        PreferenceChange, PreferenceChangeType, PreferenceOption, UpdatePreferencesRequest,
    },
    domain::auth::Scope,
};
use futures::future::join_all;

use crate::helpers::{TestApp, answer, cluster_url, decision, recorded, settings_with_clock};

#[tokio::test]
async fn a_request_id_sent_twice_and_twenty_times_concurrently_writes_one_row() {
    let app = TestApp::spawn().await;
    let client = app.tenant_client("acme").await;

    let mut request = decision("shop", "visitor-1");
    request.request_id = "3f1c8e2a-7d4b-4c1e-9a55-1b2f3c4d5e6f".into();
    let first = answer(client.clone().record_consent(request.clone()))
        .await
        .record
        .unwrap();
    let again = answer(client.clone().record_consent(request.clone()))
        .await
        .record
        .unwrap();
    assert_eq!(again, first);

    request.request_id = "concurrent-retries".into();
    let answers = join_all((0..20).map(|_| {
        let mut client = client.clone();
        let request = request.clone();
        async move { recorded(&mut client, request).await }
    }))
    .await;
    assert!(
        answers.iter().all(|answer| *answer == answers[0]),
        "every retry gets the first record"
    );
    assert_eq!(answers[0].request_id, "concurrent-retries");

    let rows = app.stored_records().await;
    assert_eq!(rows, 2, "one row per request id");
}

/// Polls `query` (one count) until it gives `expected`, for up to 5 s.
async fn eventually_count(sql: &tokio_postgres::Client, query: &str, expected: i64) {
    let mut count = -1;
    for _ in 0..100 {
        count = sql.query_one(query, &[]).await.unwrap().get(0);
        if count == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{query}: {count}, expected {expected}");
}

#[tokio::test]
async fn request_ids_are_forgotten_after_the_window_and_a_retry_is_then_new() {
    let (settings, clock) = settings_with_clock();
    assert_eq!(settings.request_id_ttl, Duration::from_secs(24 * 3600));
    let app = TestApp::spawn_with(&cluster_url(), settings).await;
    let key = app.key("acme", &Scope::ALL).await;
    let mut consents = app.client(Some(&key)).await;
    let mut preferences = app.preference_client(Some(&key)).await;
    let mut consent = decision("shop", "visitor");
    consent.request_id = "consent-retry".into();
    let save = UpdatePreferencesRequest {
        request_id: "save-retry".into(),
        widget_id: "centre".into(),
        user_id: "user".into(),
        changes: vec![PreferenceChange {
            r#type: PreferenceChangeType::Added.into(),
            topic_id: "news".into(),
            topic_title_en: "News".into(),
            topic_title_translated: "Neuigkeiten".into(),
            options: vec![PreferenceOption {
                option_id: "weekly".into(),
                title_en: "Weekly".into(),
                title_translated: "Wöchentlich".into(),
            }],
        }],
        ..Default::default()
    };
    let first = recorded(&mut consents, consent.clone()).await;
    let first_save = answer(preferences.update_preferences(save.clone())).await;
    assert_eq!(first_save.events.len(), 1);

    // Within the window, the workers having run many times: the first
    // answers come back.
    clock.advance(Duration::from_secs(23 * 3600));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(recorded(&mut consents, consent.clone()).await, first);
    let replayed = answer(preferences.update_preferences(save.clone())).await;
    assert_eq!(replayed, first_save);

    // Past it: forgotten, the record kept without its request id.
    clock.advance(Duration::from_secs(2 * 3600));
    let sql = app.sql().await;
    eventually_count(
        &sql,
        "SELECT count(*) FROM consent_records WHERE request_id IS NOT NULL",
        0,
    )
    .await;
    eventually_count(&sql, "SELECT count(*) FROM preference_requests", 0).await;
    assert_eq!(app.stored_records().await, 1);
    let again = recorded(&mut consents, consent).await;
    assert_ne!(again.id, first.id, "a new record");
    assert_eq!(again.request_id, "consent-retry");
    assert_eq!(app.stored_records().await, 2);
    // Applied again: the option is selected already, so nothing changes and
    // no event is written, unlike the first answer.
    let resaved = answer(preferences.update_preferences(save)).await;
    assert!(resaved.events.is_empty(), "{resaved:?}");
    assert_eq!(resaved.unchanged.len(), 1);
}
