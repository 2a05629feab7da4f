//! Conversions without a server: what a request turns into, and what a bad
//! one reports.

use prost_types::Timestamp;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use uuid::Uuid;

use super::{list_command, update_preferences};
use crate::{
    api::proto,
    domain::{
        command::{ListConsents, UpdateSiteSettings, View},
        consent::{Action, ConsentDecision, Status},
        erasure::AuditKey,
        page::{Cursor, MAX_PAGE_SIZE, PageTokens},
        preference::{Author, Change},
        validation::ValidationError,
    },
};

fn violations<T>(converted: Result<T, ValidationError>) -> Vec<(String, String)> {
    match converted {
        Ok(_) => Vec::new(),
        Err(e) => e
            .violations
            .into_iter()
            .map(|v| (v.field, v.description))
            .collect(),
    }
}

fn tokens() -> PageTokens {
    PageTokens::new(&AuditKey::new(&[1; 32]).unwrap(), Uuid::nil())
}

fn decision() -> proto::RecordConsentRequest {
    proto::RecordConsentRequest {
        site_id: "shop".into(),
        subject_id: "visitor".into(),
        action: proto::ConsentAction::Custom.into(),
        regime: proto::Regime::Gdpr.into(),
        granted_categories: vec!["necessary".into(), "analytics".into()],
        denied_categories: vec!["marketing".into()],
        services: vec![proto::ServiceDecision {
            category: "analytics".into(),
            service: "matomo".into(),
            granted: true,
        }],
        ..Default::default()
    }
}

#[test]
fn a_decision_becomes_its_domain_value_with_enums_mapped_by_name() {
    let parsed = ConsentDecision::try_from(proto::RecordConsentRequest {
        action: proto::ConsentAction::RejectAll.into(),
        ..decision()
    })
    .unwrap();
    assert_eq!(parsed.action, Action::RejectAll);
    assert_eq!(parsed.choices.granted().len(), 2);
    assert_eq!(
        super::record::message(
            crate::domain::consent::ConsentRecord {
                id: Uuid::nil(),
                status: parsed.status(),
                decision: parsed,
                record_time: std::time::UNIX_EPOCH,
                expire_time: std::time::UNIX_EPOCH,
                seal: None,
            },
            crate::domain::auth::Disclosure::Raw
        )
        .status,
        i32::from(proto::ConsentStatus::Rejected)
    );
}

/// The domain reports what is wrong with the choices; the proto's field
/// names and enum values are added here.
#[test]
fn choice_problems_are_worded_with_the_proto_names() {
    let accept_all = proto::RecordConsentRequest {
        action: proto::ConsentAction::AcceptAll.into(),
        services: vec![proto::ServiceDecision {
            category: "unlisted".into(),
            service: "x".into(),
            granted: true,
        }],
        ..decision()
    };
    assert_eq!(
        violations(ConsentDecision::try_from(accept_all)),
        [
            (
                "denied_categories".into(),
                "must be empty when action is CONSENT_ACTION_ACCEPT_ALL".into()
            ),
            (
                "services[0].category".into(),
                "must be listed in granted_categories or denied_categories".into()
            ),
        ]
    );
    let twice = proto::RecordConsentRequest {
        denied_categories: vec!["necessary".into(), "x".into(), "x".into()],
        ..decision()
    };
    assert_eq!(
        violations(ConsentDecision::try_from(twice)),
        [
            ("denied_categories[2]".into(), "listed twice".into()),
            (
                "denied_categories[0]".into(),
                "category \"necessary\" is also granted".into()
            ),
        ]
    );
}

#[test]
fn a_list_request_becomes_one_command() {
    let request = |page_token: String| proto::ListConsentsRequest {
        site_id: "shop".into(),
        page_size: 5000,
        page_token,
        view: proto::ConsentView::Full.into(),
        filter: Some(proto::ConsentFilter {
            status: proto::ConsentStatus::Partial.into(),
            start_time: Some(Timestamp {
                seconds: 1_700_000_000,
                nanos: 1_234_567,
            }),
            ..Default::default()
        }),
    };
    let tokens = tokens();
    let first: ListConsents = list_command(request(String::new()), &tokens).unwrap();
    assert_eq!(first.filter.status, Some(Status::Partial));
    assert_eq!(first.view, View::Full);
    assert_eq!(first.page_size.get(), MAX_PAGE_SIZE);
    assert_eq!(first.after, None);
    let cursor = Cursor {
        time: std::time::UNIX_EPOCH,
        id: Uuid::now_v7(),
    };
    let next: ListConsents =
        list_command(request(tokens.seal(cursor, &first.filter)), &tokens).unwrap();
    assert_eq!(next.after, Some(cursor));
}

#[test]
fn an_update_names_its_author_and_changes() {
    let caller = Uuid::now_v7();
    let request = |author_type: proto::PreferenceAuthorType| proto::UpdatePreferencesRequest {
        widget_id: "w".into(),
        user_id: "u".into(),
        author_type: author_type.into(),
        changes: vec![proto::PreferenceChange {
            r#type: proto::PreferenceChangeType::RemovedAll.into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let by_key = update_preferences(request(proto::PreferenceAuthorType::ApiKey), caller).unwrap();
    assert_eq!(by_key.author, Author::ApiKey(caller));
    assert!(matches!(
        by_key.changes[..],
        [Change::RemoveAll { topic: None, .. }]
    ));
    let unspecified = update_preferences(request(proto::PreferenceAuthorType::Unspecified), caller);
    assert_eq!(unspecified.unwrap().author, Author::EndUser);
    assert_eq!(
        violations(update_preferences(
            request(proto::PreferenceAuthorType::System),
            caller
        )),
        [(
            "author_type".into(),
            "PREFERENCE_AUTHOR_TYPE_SYSTEM is reserved for the server".into()
        )]
    );
}

#[test]
fn site_settings_name_the_setting_out_of_range() {
    let request = |seconds| proto::UpdateSiteSettingsRequest {
        site_id: String::new(),
        detailed_logging: Some(true),
        consent_lifetime: Some(prost_types::Duration { seconds, nanos: 0 }),
        retention: None,
        ..Default::default()
    };
    let defaults = UpdateSiteSettings::try_from(request(60)).unwrap();
    assert_eq!(defaults.site_id, None, "the tenant's defaults");
    assert_eq!(
        defaults.update.consent_lifetime,
        Some(std::time::Duration::from_secs(60))
    );
    let fields: Vec<_> = violations(UpdateSiteSettings::try_from(request(0)))
        .into_iter()
        .map(|(field, _)| field)
        .collect();
    assert_eq!(fields, ["consent_lifetime"]);
}

fn garbage(rng: &mut StdRng) -> String {
    const PIECES: [&str; 8] = ["", " ", "a", "shop", "a b", "\u{7}", "DE", "x/y"];
    match rng.random_range(0..10) {
        0 => "x".repeat(rng.random_range(60..300)),
        1 => PIECES.concat(),
        n => PIECES[n % PIECES.len()].to_string(),
    }
}

fn list(rng: &mut StdRng, n: usize) -> Vec<String> {
    (0..rng.random_range(0..n)).map(|_| garbage(rng)).collect()
}

fn timestamp(rng: &mut StdRng) -> Option<Timestamp> {
    rng.random_bool(0.5).then(|| Timestamp {
        seconds: rng.random_range(-70_000_000_000..300_000_000_000),
        nanos: rng.random_range(-2..1_000_000_002),
    })
}

/// Whatever arrives, a conversion answers: a command, or a refusal with at
/// least one violation. None panics, and none refuses without saying why.
#[test]
fn garbage_is_refused_with_reasons_and_never_panics() {
    let mut rng = StdRng::seed_from_u64(13);
    let refused = |e: &ValidationError| !e.violations.is_empty();
    for _ in 0..2000 {
        let record = proto::RecordConsentRequest {
            request_id: garbage(&mut rng),
            site_id: garbage(&mut rng),
            subject_id: garbage(&mut rng),
            action: rng.random_range(-1..5),
            regime: rng.random_range(-1..6),
            granted_categories: list(&mut rng, 4),
            denied_categories: list(&mut rng, 4),
            services: (0..rng.random_range(0..3))
                .map(|_| proto::ServiceDecision {
                    category: garbage(&mut rng),
                    service: garbage(&mut rng),
                    granted: rng.random_bool(0.5),
                })
                .collect(),
            gpc_honoured: rng.random_bool(0.3),
            country_code: garbage(&mut rng),
            client_time: timestamp(&mut rng),
            ..decision()
        };
        if let Err(e) = ConsentDecision::try_from(record) {
            assert!(refused(&e));
        }
        let consents = proto::ListConsentsRequest {
            site_id: garbage(&mut rng),
            page_size: rng.random_range(-2..2000),
            page_token: garbage(&mut rng),
            view: rng.random_range(-1..4),
            filter: Some(proto::ConsentFilter {
                start_time: timestamp(&mut rng),
                end_time: timestamp(&mut rng),
                subject_id: garbage(&mut rng),
                status: rng.random_range(-1..5),
                ..Default::default()
            }),
        };
        if let Err(e) = list_command(consents, &tokens()) {
            assert!(refused(&e));
        }
        let update = proto::UpdatePreferencesRequest {
            widget_id: garbage(&mut rng),
            user_id: garbage(&mut rng),
            author_type: rng.random_range(-1..5),
            changes: (0..rng.random_range(0..4))
                .map(|_| proto::PreferenceChange {
                    r#type: rng.random_range(-1..6),
                    topic_id: garbage(&mut rng),
                    options: (0..rng.random_range(0..3))
                        .map(|_| proto::PreferenceOption {
                            option_id: garbage(&mut rng),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        if let Err(e) = update_preferences(update, Uuid::nil()) {
            assert!(refused(&e));
        }
        let audit = proto::ListAuditEventsRequest {
            start_time: timestamp(&mut rng),
            end_time: timestamp(&mut rng),
            page_size: rng.random_range(-2..2000),
            page_token: garbage(&mut rng),
        };
        if let Err(e) = list_command(audit, &tokens()) {
            assert!(refused(&e));
        }
    }
}
