//! GetConsentStatus and GetPreferences `as_of`: the decision in force at
//! any instant, over the wire.

use std::time::{Duration, SystemTime};

use consentd::{
    api::proto::{
        ConsentRecord, EraseConsentsRequest, ErasePreferencesRequest, GetConsentStatusRequest,
        GetPreferencesRequest, PreferenceChange, PreferenceChangeType, PreferenceOption,
        UpdatePreferencesRequest, UpdateSiteSettingsRequest,
    },
    domain::auth::Scope,
};
use prost_types::Timestamp;
use tonic::Code;

use crate::helpers::{
    ConsentClient, TestApp, cluster_url, decision, recorded, settings_with_clock, violated_fields,
};

const SITE: &str = "as-of-shop";

/// consentd whose clock reads a day ahead, so every instant of the test is
/// in its past and may be asked about.
async fn app_a_day_ahead() -> TestApp {
    let (settings, clock) = settings_with_clock();
    clock.advance(Duration::from_secs(86_400));
    TestApp::spawn_with(&cluster_url(), settings).await
}

async fn set_lifetime(app: &TestApp, key: &str, seconds: i64) {
    app.admin_client(key)
        .await
        .update_site_settings(UpdateSiteSettingsRequest {
            site_id: SITE.into(),
            consent_lifetime: Some(prost_types::Duration { seconds, nanos: 0 }),
            ..Default::default()
        })
        .await
        .unwrap();
}

fn at(time: Timestamp, micros: i64) -> Timestamp {
    let total = time.seconds * 1_000_000 + i64::from(time.nanos / 1000) + micros;
    Timestamp {
        seconds: total.div_euclid(1_000_000),
        nanos: (total.rem_euclid(1_000_000) * 1000) as i32,
    }
}

/// The id of the record in force at `as_of`, or the status code.
async fn in_force(
    client: &mut ConsentClient,
    subject: &str,
    as_of: Timestamp,
) -> Result<String, Code> {
    client
        .get_consent_status(GetConsentStatusRequest {
            site_id: SITE.into(),
            subject_id: subject.into(),
            as_of: Some(as_of),
        })
        .await
        .map(|r| {
            let record = r.into_inner().record.unwrap();
            assert!(
                record.receipt.is_some(),
                "a status answer carries its receipt"
            );
            record.id
        })
        .map_err(|status| status.code())
}

fn times(record: &ConsentRecord) -> (Timestamp, Timestamp) {
    (record.record_time.unwrap(), record.expire_time.unwrap())
}

#[tokio::test]
async fn consent_status_as_of_follows_records_expiries_and_erasure() {
    let app = app_a_day_ahead().await;
    let key = app.key("acme", &Scope::ALL).await;
    let mut client = app.client(Some(&key)).await;
    let subject = "visitor-as-of";
    // r1 holds a day; r2 and r3 a second each, r3 after r2 lapsed.
    set_lifetime(&app, &key, 86_400).await;
    let r1 = recorded(&mut client, decision(SITE, subject)).await;
    set_lifetime(&app, &key, 1).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r2 = recorded(&mut client, decision(SITE, subject)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r3 = recorded(&mut client, decision(SITE, subject)).await;
    let ((t1, _), (t2, e2), (t3, e3)) = (times(&r1), times(&r2), times(&r3));

    let expected = [
        ("before the first record", at(t1, -1), Err(Code::NotFound)),
        ("at the first record", t1, Ok(r1.id.as_str())),
        ("just before the second", at(t2, -1), Ok(r1.id.as_str())),
        ("at the second", t2, Ok(r2.id.as_str())),
        ("while the second holds", at(e2, -1), Ok(r2.id.as_str())),
        // The newest record had lapsed: the older, unexpired one does not
        // stand in for it.
        ("when the second lapsed", e2, Err(Code::NotFound)),
        ("just before the third", at(t3, -1), Err(Code::NotFound)),
        ("at the third", t3, Ok(r3.id.as_str())),
        ("when the third lapsed", e3, Err(Code::NotFound)),
    ];
    for (when, instant, want) in &expected {
        let got = in_force(&mut client, subject, *instant).await;
        assert_eq!(got.as_deref().map_err(|c| *c), *want, "{when}");
    }

    // Another tenant sees nothing at any instant.
    let other = app.key("globex", &Scope::ALL).await;
    let mut other = app.client(Some(&other)).await;
    assert_eq!(in_force(&mut other, subject, t1).await, Err(Code::NotFound));

    client
        .erase_consents(EraseConsentsRequest {
            site_id: SITE.into(),
            subject_id: subject.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    for (when, instant, _) in &expected {
        assert_eq!(
            in_force(&mut client, subject, *instant).await,
            Err(Code::NotFound),
            "erased, {when}"
        );
    }
}

#[tokio::test]
async fn as_of_far_in_the_past_is_not_found_and_the_future_is_refused() {
    let app = app_a_day_ahead().await;
    let key = app.key("acme", &Scope::ALL).await;
    let mut client = app.client(Some(&key)).await;
    recorded(&mut client, decision(SITE, "visitor-edges")).await;
    let before_1970 = Timestamp {
        seconds: -86_400 * 365 * 30,
        nanos: 0,
    };
    assert_eq!(
        in_force(&mut client, "visitor-edges", before_1970).await,
        Err(Code::NotFound)
    );
    let beyond_the_clock = Timestamp {
        seconds: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            + 2 * 86_400,
        nanos: 0,
    };
    let year_10000 = Timestamp {
        seconds: 253_402_300_800,
        nanos: 0,
    };
    let before_year_1 = Timestamp {
        seconds: -62_135_596_801,
        nanos: 0,
    };
    for refused in [beyond_the_clock, year_10000, before_year_1] {
        let status = client
            .get_consent_status(GetConsentStatusRequest {
                site_id: SITE.into(),
                subject_id: "visitor-edges".into(),
                as_of: Some(refused),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{refused:?}");
        assert_eq!(violated_fields(&status), ["as_of"]);
    }
    let mut preferences = app.preference_client(Some(&key)).await;
    let status = preferences
        .get_preferences(GetPreferencesRequest {
            widget_id: "w".into(),
            user_id: "u".into(),
            as_of: Some(beyond_the_clock),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["as_of"]);
}

const WIDGET: &str = "as-of-centre";

fn change(kind: PreferenceChangeType, topic: &str, options: &[&str]) -> PreferenceChange {
    PreferenceChange {
        r#type: kind.into(),
        topic_id: topic.into(),
        topic_title_en: format!("{topic} title"),
        topic_title_translated: String::new(),
        options: options
            .iter()
            .map(|id| PreferenceOption {
                option_id: id.to_string(),
                title_en: id.to_string(),
                title_translated: String::new(),
            })
            .collect(),
    }
}

#[tokio::test]
async fn preferences_as_of_are_replayed_from_the_history() {
    use PreferenceChangeType::{Added, Removed, RemovedAll};
    let app = app_a_day_ahead().await;
    let mut client = app.tenant_preference_client("acme").await;
    let user = "user-as-of";
    let steps = [
        vec![change(Added, "news", &["daily", "weekly"])],
        vec![change(Added, "offers", &["sms"])],
        vec![change(Removed, "news", &["daily"])],
        vec![change(RemovedAll, "offers", &[])],
    ];
    let mut states = Vec::new();
    let mut instants = Vec::new();
    for changes in steps {
        let response = client
            .update_preferences(UpdatePreferencesRequest {
                widget_id: WIDGET.into(),
                user_id: user.into(),
                changes,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        instants.push(response.events[0].event_time.unwrap());
        states.push(response.state.unwrap());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let as_of = |instant| GetPreferencesRequest {
        widget_id: WIDGET.into(),
        user_id: user.into(),
        as_of: Some(instant),
    };
    let selected = |state: &consentd::api::proto::PreferenceState| {
        state
            .topics
            .iter()
            .flat_map(|t| {
                let topic = t.topic_id.clone();
                t.options
                    .iter()
                    .map(move |o| format!("{topic}/{}", o.option.as_ref().unwrap().option_id))
            })
            .collect::<Vec<_>>()
    };
    let state_at = async |client: &mut crate::helpers::PreferenceClient, instant| {
        let state = client
            .get_preferences(as_of(instant))
            .await
            .unwrap()
            .into_inner()
            .state
            .unwrap();
        selected(&state)
    };
    assert!(
        state_at(&mut client, at(instants[0], -1)).await.is_empty(),
        "nothing before the first event"
    );
    for (instant, state) in instants.iter().zip(&states) {
        assert_eq!(state_at(&mut client, *instant).await, selected(state));
    }
    assert_eq!(
        state_at(&mut client, at(instants[1], 1)).await,
        ["news/daily", "news/weekly", "offers/sms"]
    );
    client
        .erase_preferences(ErasePreferencesRequest {
            widget_id: WIDGET.into(),
            user_id: user.into(),
        })
        .await
        .unwrap();
    for instant in &instants {
        assert!(state_at(&mut client, *instant).await.is_empty(), "erased");
    }
}
