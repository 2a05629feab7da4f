use std::{
    collections::BTreeSet,
    time::{Duration, SystemTime},
};

use consentd::{
    api::proto::{
        ErasePreferencesRequest, ExportPreferenceHistoryRequest, GetPreferencesRequest,
        ListPreferenceHistoryRequest, PreferenceAuthorType, PreferenceChange, PreferenceChangeType,
        PreferenceEvent, PreferenceOption, PreferenceState, UnchangedReason,
        UpdatePreferencesRequest,
    },
    domain::{auth::Scope, erasure::AuditKey},
    store::Store,
};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use tonic::Code;

use crate::helpers::{
    AUDIT_KEY, PreferenceClient, TestApp, answer, cluster_url, count, invalid_fields,
    settings_with_clock, streamed, violated_fields,
};

const WIDGET: &str = "newsletter-centre";

fn option(id: &str) -> PreferenceOption {
    PreferenceOption {
        option_id: id.into(),
        title_en: format!("{id} (en)"),
        title_translated: format!("{id} (de)"),
    }
}

pub fn change(kind: PreferenceChangeType, topic: &str, options: &[&str]) -> PreferenceChange {
    PreferenceChange {
        r#type: kind.into(),
        topic_id: topic.into(),
        topic_title_en: format!("{topic} title"),
        topic_title_translated: format!("{topic} Titel"),
        options: options.iter().map(|id| option(id)).collect(),
    }
}

pub fn update(user: &str, changes: Vec<PreferenceChange>) -> UpdatePreferencesRequest {
    UpdatePreferencesRequest {
        widget_id: WIDGET.into(),
        user_id: user.into(),
        language_code: "de".into(),
        changes,
        ..Default::default()
    }
}

/// Adds option "weekly" to topic "frequency" for `user`.
pub fn add_weekly(user: &str) -> UpdatePreferencesRequest {
    update(
        user,
        vec![change(
            PreferenceChangeType::Added,
            "frequency",
            &["weekly"],
        )],
    )
}

pub async fn preference_client(app: &TestApp, tenant: &str) -> PreferenceClient {
    let key = app.key(tenant, &Scope::ALL).await;
    app.preference_client(Some(&key)).await
}

fn get_request(user: &str) -> GetPreferencesRequest {
    GetPreferencesRequest {
        as_of: None,
        widget_id: WIDGET.into(),
        user_id: user.into(),
    }
}

/// A page of up to 100 of `user`'s events, at `page_token`.
fn history_request(user: &str, page_token: String) -> ListPreferenceHistoryRequest {
    ListPreferenceHistoryRequest {
        widget_id: WIDGET.into(),
        user_id: user.into(),
        page_size: 100,
        page_token,
        ..Default::default()
    }
}

/// Every event of the widget.
fn export_request() -> ExportPreferenceHistoryRequest {
    ExportPreferenceHistoryRequest {
        widget_id: WIDGET.into(),
        ..Default::default()
    }
}

fn erase_request(user: &str) -> ErasePreferencesRequest {
    ErasePreferencesRequest {
        widget_id: WIDGET.into(),
        user_id: user.into(),
    }
}

async fn state(client: &mut PreferenceClient, user: &str) -> PreferenceState {
    answer(client.get_preferences(get_request(user)))
        .await
        .state
        .unwrap()
}

async fn history(client: &mut PreferenceClient, user: &str) -> Vec<PreferenceEvent> {
    let mut events = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = answer(client.list_preference_history(history_request(user, page_token))).await;
        events.extend(page.events);
        if page.next_page_token.is_empty() {
            return events;
        }
        page_token = page.next_page_token;
    }
}

/// (topic, option) pairs a state holds.
fn selected(state: &PreferenceState) -> BTreeSet<(String, String)> {
    state
        .topics
        .iter()
        .flat_map(|t| {
            t.options.iter().map(|o| {
                (
                    t.topic_id.clone(),
                    o.option.as_ref().unwrap().option_id.clone(),
                )
            })
        })
        .collect()
}

/// The state the history leads to.
fn replay(events: &[PreferenceEvent]) -> BTreeSet<(String, String)> {
    let mut state = BTreeSet::new();
    for event in events {
        for option in &event.options {
            let key = (event.topic_id.clone(), option.option_id.clone());
            if event.r#type == PreferenceChangeType::Added as i32 {
                assert!(state.insert(key), "ADDED an option already selected");
            } else {
                assert!(state.remove(&key), "removed an option not selected");
            }
        }
    }
    state
}

#[tokio::test]
async fn add_remove_and_remove_all_keep_state_and_history_in_agreement() {
    let app = TestApp::spawn().await;
    let created = app.store.create_key("acme", &Scope::ALL).await.unwrap();
    let mut client = app.preference_client(Some(created.secret.expose())).await;
    use PreferenceChangeType::*;

    let first = answer(client.update_preferences(update(
        "user-1",
        vec![
            change(Added, "frequency", &["weekly"]),
            change(Added, "channels", &["email", "sms"]),
        ],
    )))
    .await;
    assert_eq!(first.events.len(), 2);
    let added = &first.events[0];
    assert_eq!(added.r#type, Added as i32);
    assert_eq!(added.topic_id, "frequency");
    assert_eq!(added.author_type, PreferenceAuthorType::EndUser as i32);
    assert_eq!(added.language_code, "de");
    assert_eq!(added.topic_title_en, "frequency title");
    assert_eq!(added.topic_title_translated, "frequency Titel");
    assert_eq!(added.options, vec![option("weekly")]);
    assert!(first.unchanged.is_empty());

    // On the user's behalf: the event names the key. Re-adding an option
    // already selected writes no event and says so.
    let mut on_behalf = update(
        "user-1",
        vec![
            change(Removed, "channels", &["sms"]),
            change(Added, "frequency", &["weekly", "monthly"]),
        ],
    );
    on_behalf.author_type = PreferenceAuthorType::ApiKey.into();
    let second = answer(client.update_preferences(on_behalf)).await;
    assert_eq!(second.events.len(), 2);
    assert_eq!(second.events[0].r#type, Removed as i32);
    assert_eq!(second.events[0].options, vec![option("sms")]);
    assert_eq!(
        second.events[1].options,
        vec![option("monthly")],
        "only what changed"
    );
    assert!(
        second
            .events
            .iter()
            .all(|e| e.author_type == PreferenceAuthorType::ApiKey as i32)
    );
    assert!(
        second
            .events
            .iter()
            .all(|e| e.author_key_id == created.key_id.to_string())
    );
    assert_eq!(second.unchanged.len(), 1);
    assert_eq!(second.unchanged[0].option_id, "weekly");
    assert_eq!(
        second.unchanged[0].reason,
        UnchangedReason::AlreadySelected as i32
    );

    let now = state(&mut client, "user-1").await;
    assert_eq!(Some(&now), second.state.as_ref());
    let expected: BTreeSet<_> = [
        ("channels", "email"),
        ("frequency", "monthly"),
        ("frequency", "weekly"),
    ]
    .iter()
    .map(|(t, o)| (t.to_string(), o.to_string()))
    .collect();
    assert_eq!(selected(&now), expected);
    let weekly = &now.topics[1].options[1];
    assert_eq!(weekly.option, Some(option("weekly")));
    assert_eq!(weekly.language_code, "de");
    assert!(weekly.add_time.is_some() && weekly.expire_time.is_none());

    // Remove all on one topic, then on the whole widget.
    let third = answer(
        client.update_preferences(update("user-1", vec![change(RemovedAll, "frequency", &[])])),
    )
    .await;
    assert_eq!(third.events.len(), 1);
    assert_eq!(third.events[0].r#type, RemovedAll as i32);
    assert_eq!(
        third.events[0].options,
        vec![option("monthly"), option("weekly")],
        "titles as shown when added"
    );
    let mut everything = change(RemovedAll, "", &[]);
    everything.topic_title_en.clear();
    everything.topic_title_translated.clear();
    let fourth =
        answer(client.update_preferences(update("user-1", vec![everything.clone()]))).await;
    assert_eq!(fourth.events.len(), 1);
    assert_eq!(fourth.events[0].topic_id, "channels");
    assert_eq!(
        fourth.events[0].topic_title_en, "channels title",
        "stored titles for a widget-wide removal"
    );
    assert!(fourth.state.unwrap().topics.is_empty());
    let nothing = answer(client.update_preferences(update("user-1", vec![everything]))).await;
    assert!(nothing.events.is_empty());
    assert_eq!(
        nothing.unchanged[0].reason,
        UnchangedReason::NothingSelected as i32
    );

    let events = history(&mut client, "user-1").await;
    let written: Vec<_> = [first.events, second.events, third.events, fourth.events].concat();
    assert_eq!(
        events, written,
        "the history is exactly the events returned"
    );
    assert!(replay(&events).is_empty());
}

#[tokio::test]
async fn replaying_the_history_of_200_random_change_sequences_reproduces_the_state() {
    let app = TestApp::spawn().await;
    let mut client = preference_client(&app, "acme").await;
    let topics = ["frequency", "channels", "topics"];
    let options = ["a", "b", "c", "d"];
    let mut rng = StdRng::seed_from_u64(0x00c0_115e);
    for sequence in 0..200 {
        let user = format!("user-{sequence}");
        for _ in 0..rng.random_range(1..6) {
            let mut changes = Vec::new();
            let mut touched: Vec<(&str, &str, bool)> = Vec::new();
            for _ in 0..rng.random_range(1..4) {
                let topic = topics[rng.random_range(0..topics.len())];
                let kind = match rng.random_range(0..10) {
                    0..=4 => PreferenceChangeType::Added,
                    5..=8 => PreferenceChangeType::Removed,
                    _ => PreferenceChangeType::RemovedAll,
                };
                if kind == PreferenceChangeType::RemovedAll {
                    let topic = if rng.random_bool(0.5) { topic } else { "" };
                    changes.push(change(kind, topic, &[]));
                    continue;
                }
                let added = kind == PreferenceChangeType::Added;
                let picked: Vec<&str> = options
                    .iter()
                    .copied()
                    .filter(|_| rng.random_bool(0.4))
                    // A request may not add and remove the same option.
                    .filter(|o| {
                        !touched
                            .iter()
                            .any(|(t, p, a)| (*t, *p) == (topic, *o) && *a != added)
                    })
                    .collect();
                if picked.is_empty() {
                    continue;
                }
                touched.extend(picked.iter().map(|o| (topic, *o, added)));
                changes.push(change(kind, topic, &picked));
            }
            if changes.is_empty() {
                continue;
            }
            client
                .update_preferences(update(&user, changes))
                .await
                .unwrap();
        }
        let events = history(&mut client, &user).await;
        assert_eq!(
            replay(&events),
            selected(&state(&mut client, &user).await),
            "sequence {sequence}"
        );
    }
}

#[tokio::test]
async fn a_request_id_applies_once_and_retries_get_the_first_response() {
    let app = TestApp::spawn().await;
    let mut client = preference_client(&app, "acme").await;
    let mut request = add_weekly("user-1");
    request.request_id = "save-1".into();
    let first = answer(client.update_preferences(request.clone())).await;
    let retries = futures::future::join_all((0..10).map(|_| {
        let mut client = client.clone();
        let request = request.clone();
        async move { answer(client.update_preferences(request)).await }
    }))
    .await;
    assert!(retries.iter().all(|r| *r == first));
    assert_eq!(history(&mut client, "user-1").await.len(), 1);
}

#[tokio::test]
async fn expiry_follows_the_clock_and_writes_each_expired_event_once() {
    let (settings, clock) = settings_with_clock();
    let app = TestApp::spawn_with(&cluster_url(), settings).await;
    let mut client = preference_client(&app, "acme").await;

    let mut request = add_weekly("user-1");
    request.selection_lifetime = Some(prost_types::Duration {
        seconds: 3600,
        nanos: 0,
    });
    let added = answer(client.update_preferences(request)).await;
    let selection = &added.state.unwrap().topics[0].options[0];
    let lifetime = selection.expire_time.unwrap().seconds - selection.add_time.unwrap().seconds;
    assert_eq!(lifetime, 3600);
    client
        .update_preferences(update(
            "user-1",
            vec![change(PreferenceChangeType::Added, "channels", &["email"])],
        ))
        .await
        .unwrap();

    // The worker runs every 50 ms; before the clock moves nothing expires.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(history(&mut client, "user-1").await.len(), 2);

    clock.advance(Duration::from_secs(3601));
    let mut events = Vec::new();
    // Up to 20 s, as the suite's other waits for a worker: on a loaded
    // machine 5 s was not always enough.
    for _ in 0..400 {
        events = history(&mut client, "user-1").await;
        if events.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let expired = events.last().unwrap();
    assert_eq!(expired.r#type, PreferenceChangeType::Expired as i32);
    assert_eq!(expired.author_type, PreferenceAuthorType::System as i32);
    assert_eq!(expired.options, vec![option("weekly")]);
    let left = state(&mut client, "user-1").await;
    assert_eq!(
        selected(&left),
        BTreeSet::from([("channels".to_string(), "email".to_string())])
    );
    assert_eq!(replay(&events), selected(&left));
}

#[tokio::test]
async fn two_expiry_workers_at_once_expire_each_selection_exactly_once() {
    let app = TestApp::spawn().await;
    let mut client = preference_client(&app, "acme").await;
    let options: Vec<String> = (0..60).map(|i| format!("o{i}")).collect();
    let option_refs: Vec<&str> = options.iter().map(String::as_str).collect();
    for user in 0..5 {
        let mut request = update(
            &format!("user-{user}"),
            vec![change(PreferenceChangeType::Added, "t", &option_refs)],
        );
        request.selection_lifetime = Some(prost_types::Duration {
            seconds: 60,
            nanos: 0,
        });
        client.update_preferences(request).await.unwrap();
    }
    let later = SystemTime::now() + Duration::from_secs(120);
    let worker = || {
        let store = Store::new(&app.database_url, 2).unwrap();
        async move {
            let mut total = 0;
            loop {
                let expired = store.expire_preferences(later, 7).await.unwrap();
                total += expired;
                if expired == 0 {
                    return total;
                }
            }
        }
    };
    let (a, b) = tokio::join!(worker(), worker());
    assert_eq!(a + b, 300);
    let sql = app.sql().await;
    let row = sql
        .query_one(
            "SELECT count(*) AS events, count(DISTINCT (user_id, topic_id, option_ids)) AS distinct_events \
             FROM preference_events WHERE change_type = 4",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>("events"), 300);
    assert_eq!(row.get::<_, i64>("distinct_events"), 300);
    let left = count(&sql, "SELECT count(*) FROM preference_selections", &[]).await;
    assert_eq!(left, 0);
}

#[tokio::test]
async fn history_pages_and_exports_every_event_once_in_order() {
    let app = TestApp::spawn().await;
    let mut client = preference_client(&app, "acme").await;
    // 100 changes of one option each, on distinct topics: 100 events a call.
    let adds = |round: usize| -> Vec<PreferenceChange> {
        (0..100)
            .map(|t| {
                change(
                    PreferenceChangeType::Added,
                    &format!("topic-{t}"),
                    &[&format!("o{round}")],
                )
            })
            .collect()
    };
    let mut written = Vec::new();
    for round in 0..12 {
        let user = if round % 4 == 0 { "user-2" } else { "user-1" };
        written.extend(
            answer(client.update_preferences(update(user, adds(round))))
                .await
                .events,
        );
    }
    let ids = |events: &[PreferenceEvent]| events.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
    let user_1: Vec<_> = written
        .iter()
        .filter(|e| e.user_id == "user-1")
        .cloned()
        .collect();
    assert_eq!(ids(&history(&mut client, "user-1").await), ids(&user_1));

    let first = history_request("user-1", String::new());
    let first = answer(client.list_preference_history(first)).await;
    let misused = history_request("user-2", first.next_page_token);
    let misused = client.list_preference_history(misused).await;
    assert_eq!(invalid_fields(misused), vec!["page_token"]);

    let messages = streamed(client.export_preference_history(export_request())).await;
    assert!(messages.len() > 1);
    let exported: Vec<_> = messages.into_iter().flat_map(|m| m.events).collect();
    assert_eq!(ids(&exported), ids(&written), "all users' events, in order");
}

#[tokio::test]
async fn erase_removes_state_and_history_and_audits_without_the_user_id() {
    let app = TestApp::spawn().await;
    let mut client = preference_client(&app, "acme").await;
    for user in ["user-gone", "user-kept"] {
        client
            .update_preferences(update(
                user,
                vec![change(
                    PreferenceChangeType::Added,
                    "frequency",
                    &["weekly", "daily"],
                )],
            ))
            .await
            .unwrap();
    }
    let erased = answer(client.erase_preferences(ErasePreferencesRequest {
        widget_id: String::new(),
        user_id: "user-gone".into(),
    }))
    .await;
    assert_eq!((erased.erased_selections, erased.erased_events), (2, 1));
    assert!(state(&mut client, "user-gone").await.topics.is_empty());
    assert!(history(&mut client, "user-gone").await.is_empty());
    assert_eq!(selected(&state(&mut client, "user-kept").await).len(), 2);

    let audit = app
        .sql()
        .await
        .query_one(
            "SELECT scope, user_hmac, t::text AS whole_row FROM audit_events t WHERE action = 'preference.erase'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(audit.get::<_, String>("scope"), "preference:erase");
    let digest = AuditKey::new(AUDIT_KEY)
        .unwrap()
        .digest("user_id", "user-gone");
    assert_eq!(audit.get::<_, Vec<u8>>("user_hmac"), digest.to_vec());
    assert!(!audit.get::<_, String>("whole_row").contains("user-gone"));
}

#[tokio::test]
async fn other_tenants_and_keys_without_the_scope_are_refused() {
    let app = TestApp::spawn().await;
    let mut owner = preference_client(&app, "tenant-a").await;
    let mut stranger = preference_client(&app, "tenant-b").await;
    owner
        .update_preferences(add_weekly("user-1"))
        .await
        .unwrap();

    assert!(state(&mut stranger, "user-1").await.topics.is_empty());
    assert!(history(&mut stranger, "user-1").await.is_empty());
    let mut stream = answer(stranger.export_preference_history(export_request())).await;
    assert!(stream.message().await.unwrap().is_none());
    let erased = answer(stranger.erase_preferences(erase_request("user-1"))).await;
    assert_eq!((erased.erased_selections, erased.erased_events), (0, 0));
    assert_eq!(history(&mut owner, "user-1").await.len(), 1);

    let consent_only = app
        .key("tenant-a", &[Scope::ConsentWrite, Scope::ConsentRead])
        .await;
    let mut unscoped = app.preference_client(Some(&consent_only)).await;
    let denied = [
        unscoped
            .update_preferences(update(
                "user-1",
                vec![change(PreferenceChangeType::Added, "t", &["o"])],
            ))
            .await
            .unwrap_err(),
        unscoped
            .get_preferences(get_request("user-1"))
            .await
            .unwrap_err(),
        unscoped
            .list_preference_history(history_request("user-1", String::new()))
            .await
            .unwrap_err(),
        unscoped
            .export_preference_history(export_request())
            .await
            .unwrap_err(),
        unscoped
            .erase_preferences(erase_request("user-1"))
            .await
            .unwrap_err(),
    ];
    assert!(
        denied
            .iter()
            .all(|status| status.code() == Code::PermissionDenied),
        "{denied:?}"
    );
    let unknown = app
        .preference_client(Some("cdk_unknown"))
        .await
        .get_preferences(GetPreferencesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn invalid_updates_name_their_fields_and_write_nothing() {
    let app = TestApp::spawn().await;
    let mut client = preference_client(&app, "acme").await;
    use PreferenceChangeType::*;
    let valid = || update("user-1", vec![change(Added, "frequency", &["weekly"])]);
    type Breaks = fn(&mut UpdatePreferencesRequest);
    let cases: Vec<(&str, Breaks)> = vec![
        ("changes[0].type", |r| r.changes[0].r#type = 9),
        ("changes[0].type", |r| r.changes[0].r#type = 0),
        ("changes[0].type", |r| r.changes[0].r#type = Expired.into()),
        ("widget_id", |r| r.widget_id.clear()),
        ("user_id", |r| r.user_id.clear()),
        ("changes[0].topic_id", |r| r.changes[0].topic_id.clear()),
        ("changes[0].options[0].option_id", |r| {
            r.changes[0].options[0].option_id.clear()
        }),
        ("changes[1].options[0].option_id", |r| {
            r.changes.push(change(Removed, "frequency", &["weekly"]))
        }),
        ("changes[0].options[1].option_id", |r| {
            r.changes[0].options.push(option("weekly"))
        }),
        ("changes[0].topic_title_en", |r| {
            r.changes[0].topic_title_en = "x".repeat(513)
        }),
        ("changes[0].topic_title_translated", |r| {
            r.changes[0].topic_title_translated = "x".repeat(513)
        }),
        ("changes[0].options[0].title_en", |r| {
            r.changes[0].options[0].title_en = "x".repeat(513)
        }),
        ("changes[0].options[0].title_translated", |r| {
            r.changes[0].options[0].title_translated = "x".repeat(513)
        }),
        ("changes[0].options", |r| r.changes[0].options.clear()),
        ("changes", |r| r.changes.clear()),
        ("language_code", |r| {
            r.language_code = "not a language".into()
        }),
        ("author_type", |r| {
            r.author_type = PreferenceAuthorType::System.into()
        }),
        ("selection_lifetime", |r| {
            r.selection_lifetime = Some(prost_types::Duration {
                seconds: 0,
                nanos: 0,
            })
        }),
    ];
    for (field, breaks) in cases {
        let mut request = valid();
        breaks(&mut request);
        let status = client.update_preferences(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        let fields = violated_fields(&status);
        assert!(
            fields.contains(&field.to_string()),
            "expected {field} in {fields:?}"
        );
    }
    let sql = app.sql().await;
    for table in [
        "preference_selections",
        "preference_events",
        "preference_requests",
    ] {
        let rows = count(&sql, &format!("SELECT count(*) FROM {table}"), &[]).await;
        assert_eq!(rows, 0, "{table}");
    }
}

#[tokio::test]
async fn a_widget_setting_gives_selections_a_lifetime_unless_the_update_does() {
    use consentd::api::proto::{
        UpdateWidgetSettingsRequest, WidgetSettings, admin_service_client::AdminServiceClient,
    };
    let (app, key) = TestApp::spawn_with_key("acme").await;
    let mut admin = AdminServiceClient::with_interceptor(
        app.channel().await,
        crate::helpers::WithKey(Some(key.parse().unwrap())),
    );
    let hour = prost_types::Duration {
        seconds: 3600,
        nanos: 0,
    };
    admin
        .update_widget_settings(UpdateWidgetSettingsRequest {
            widget_id: WIDGET.into(),
            settings: Some(WidgetSettings {
                selection_lifetime: Some(hour),
            }),
        })
        .await
        .unwrap();
    let mut client = app.preference_client(Some(&key)).await;
    let lifetime_of = |state: PreferenceState, topic: &str| {
        let option = &state
            .topics
            .iter()
            .find(|t| t.topic_id == topic)
            .unwrap()
            .options[0];
        option.expire_time.unwrap().seconds - option.add_time.unwrap().seconds
    };
    let by_widget = answer(client.update_preferences(add_weekly("user-1"))).await;
    assert_eq!(lifetime_of(by_widget.state.unwrap(), "frequency"), 3600);
    let mut own = update(
        "user-1",
        vec![change(PreferenceChangeType::Added, "channels", &["email"])],
    );
    own.selection_lifetime = Some(prost_types::Duration {
        seconds: 60,
        nanos: 0,
    });
    let by_request = client.update_preferences(own).await.unwrap().into_inner();
    assert_eq!(lifetime_of(by_request.state.unwrap(), "channels"), 60);

    let invalid = admin
        .update_widget_settings(UpdateWidgetSettingsRequest {
            widget_id: WIDGET.into(),
            settings: Some(WidgetSettings {
                selection_lifetime: Some(prost_types::Duration {
                    seconds: 0,
                    nanos: 0,
                }),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&invalid),
        vec!["settings.selection_lifetime"]
    );
}
