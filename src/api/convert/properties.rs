//! Properties of the request-to-domain conversion of every RPC: whatever a
//! request holds, its conversion never panics, and it either gives a
//! command or refuses with violations that each name a field of the
//! request. Cases per property: `PROPTEST_CASES` (a few dozen by default,
//! so `scripts/test` stays quick; `scripts/soak` runs thousands).

use std::collections::BTreeSet;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use proptest::{
    collection::vec,
    prelude::*,
    test_runner::{Config, TestCaseError},
};
use prost::Message;
use prost_types::{Duration, FileDescriptorSet, Timestamp};
use uuid::Uuid;

use super::{list_command, update_preferences};
use crate::{
    api::proto::{self, FILE_DESCRIPTOR_SET},
    domain::{
        command::{
            ErasePreferences, ExportConsents, ExportPreferenceHistory, GetConsentProof,
            GetConsentStatus, GetNotice, GetPreferences, GetSiteSettings, GetWidgetSettings,
            ListAuditEvents, ListConsents, ListPreferenceHistory, PutNotice, UpdateSiteSettings,
            UpdateWidgetSettings,
        },
        consent::ConsentDecision,
        erasure::{AuditKey, EraseRequest},
        page::PageTokens,
        validation::ValidationError,
    },
};

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(48);
    Config {
        cases,
        // A failure prints its minimal case; no files are left in src/.
        failure_persistence: None,
        ..Config::default()
    }
}

/// Strings as clients send them, and as attackers do: empty, plausible
/// ids, any Unicode (NUL included), SQL metacharacters, and long runs.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z][a-z0-9_-]{0,20}",
        any::<String>(),
        "[\\x00-\\x7f]{0,80}",
        Just("'; DROP TABLE consent_records; --".to_string()),
        Just("a\0b".to_string()),
        Just("%_\\'\"$1".to_string()),
        (1usize..5000).prop_map(|n| "x".repeat(n)),
    ]
}

fn texts() -> impl Strategy<Value = Vec<String>> {
    vec(text(), 0..6)
}

/// Enum numbers: the defined ones, and any other.
fn number() -> impl Strategy<Value = i32> {
    prop_oneof![-1..6, any::<i32>()]
}

fn page_size() -> impl Strategy<Value = i32> {
    prop_oneof![
        Just(0),
        Just(-1),
        Just(i32::MAX),
        Just(i32::MIN),
        any::<i32>()
    ]
}

fn timestamp() -> impl Strategy<Value = Option<Timestamp>> {
    let seconds = prop_oneof![
        -62_135_596_800i64..253_402_300_800,
        any::<i64>(),
        Just(i64::MIN),
        Just(i64::MAX)
    ];
    proptest::option::of(
        (seconds, any::<i32>()).prop_map(|(seconds, nanos)| Timestamp {
            seconds,
            nanos: if nanos % 2 == 0 {
                nanos.rem_euclid(1_000_000_000)
            } else {
                nanos
            },
        }),
    )
}

fn duration() -> impl Strategy<Value = Option<Duration>> {
    let seconds = prop_oneof![0i64..100_000_000_000, any::<i64>()];
    proptest::option::of(
        (seconds, any::<i32>()).prop_map(|(seconds, nanos)| Duration {
            seconds,
            nanos: if nanos % 2 == 0 {
                nanos.rem_euclid(1_000_000_000)
            } else {
                nanos
            },
        }),
    )
}

/// Page tokens: any text, any bytes, and well-formed ones of either
/// version whose MAC is not this tenant's.
fn page_token() -> impl Strategy<Value = String> {
    prop_oneof![
        text(),
        vec(any::<u8>(), 0..64).prop_map(|bytes| URL_SAFE_NO_PAD.encode(bytes)),
        (1u8..=2, vec(any::<u8>(), 40))
            .prop_map(|(version, rest)| { URL_SAFE_NO_PAD.encode([vec![version], rest].concat()) }),
    ]
}

fn tokens() -> PageTokens {
    PageTokens::new(&AuditKey::new(&[5; 32]).unwrap(), Uuid::nil())
}

fn consent_filter() -> impl Strategy<Value = Option<proto::ConsentFilter>> {
    proptest::option::of(
        (timestamp(), timestamp(), text(), text(), text(), number()).prop_map(
            |(start_time, end_time, subject_id, user_id, country_code, status)| {
                proto::ConsentFilter {
                    start_time,
                    end_time,
                    subject_id,
                    user_id,
                    country_code,
                    status,
                }
            },
        ),
    )
}

fn record_consent() -> impl Strategy<Value = proto::RecordConsentRequest> {
    let ids = (text(), text(), text(), text(), number(), number());
    let choices = (
        texts(),
        texts(),
        vec((text(), text(), any::<bool>()), 0..5),
        text(),
        any::<[bool; 3]>(),
    );
    let strings = (
        text(),
        text(),
        text(),
        text(),
        text(),
        text(),
        text(),
        text(),
    );
    let notice = (timestamp(), text(), text());
    (ids, choices, strings, notice).prop_map(
        |(
            (request_id, site_id, subject_id, user_id, action, regime),
            (granted, denied, services, banner_revision, [gpc_detected, gpc_honoured, ccpa]),
            (tcf, gpp, google_ac, country, language, page_url, user_agent, ip),
            (client_time, notice_version, notice_sha256),
        )| proto::RecordConsentRequest {
            request_id,
            site_id,
            subject_id,
            user_id,
            action,
            granted_categories: granted,
            denied_categories: denied,
            services: services
                .into_iter()
                .map(|(category, service, granted)| proto::ServiceDecision {
                    category,
                    service,
                    granted,
                })
                .collect(),
            banner_revision,
            regime,
            gpc_detected,
            gpc_honoured,
            ccpa_opt_out: ccpa,
            tcf_string: tcf,
            gpp_string: gpp,
            google_ac_string: google_ac,
            country_code: country,
            language_code: language,
            page_url,
            user_agent,
            ip_address: ip,
            client_time,
            notice_version,
            notice_sha256,
        },
    )
}

fn update_request() -> impl Strategy<Value = proto::UpdatePreferencesRequest> {
    let option = (text(), text(), text()).prop_map(|(option_id, title_en, title_translated)| {
        proto::PreferenceOption {
            option_id,
            title_en,
            title_translated,
        }
    });
    let change = (number(), text(), text(), text(), vec(option, 0..4)).prop_map(
        |(r#type, topic_id, topic_title_en, topic_title_translated, options)| {
            proto::PreferenceChange {
                r#type,
                topic_id,
                topic_title_en,
                topic_title_translated,
                options,
            }
        },
    );
    (
        (text(), text(), text(), text()),
        vec(change, 0..5),
        number(),
        duration(),
    )
        .prop_map(
            |((request_id, widget_id, user_id, language_code), changes, author_type, lifetime)| {
                proto::UpdatePreferencesRequest {
                    request_id,
                    widget_id,
                    user_id,
                    language_code,
                    changes,
                    author_type,
                    selection_lifetime: lifetime,
                }
            },
        )
}

/// The fields of a request message, from the compiled descriptors.
fn fields_of(message: &str) -> BTreeSet<String> {
    let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
    set.file
        .iter()
        .filter(|file| file.package() == "consent.v1")
        .flat_map(|file| &file.message_type)
        .find(|m| m.name() == message)
        .unwrap_or_else(|| panic!("no message {message} in consent.v1"))
        .field
        .iter()
        .map(|field| field.name().to_string())
        .collect()
}

/// A command, or a refusal whose every violation names a field of
/// `message` (`field`, `field[3]` or `field.sub`) and says what is wrong.
fn judged<T>(message: &str, converted: Result<T, ValidationError>) -> Result<(), TestCaseError> {
    let Err(refused) = converted else {
        return Ok(());
    };
    prop_assert!(
        !refused.violations.is_empty(),
        "{message}: refused without a reason"
    );
    let fields = fields_of(message);
    for violation in &refused.violations {
        let top = violation.field.split(['.', '[']).next().unwrap_or_default();
        prop_assert!(
            fields.contains(top),
            "{message}: {:?} names no field of the request",
            violation.field
        );
        prop_assert!(!violation.description.is_empty(), "{violation:?}");
    }
    Ok(())
}

/// The input type of every RPC that a property below covers.
const COVERED: [&str; 22] = [
    "RecordConsentRequest",
    "GetConsentStatusRequest",
    "ListConsentsRequest",
    "ExportConsentsRequest",
    "EraseConsentsRequest",
    "GetConsentProofRequest",
    "PutNoticeRequest",
    "GetNoticeRequest",
    // No fields: nothing to convert.
    "ListSigningKeysRequest",
    "UpdatePreferencesRequest",
    "GetPreferencesRequest",
    "ListPreferenceHistoryRequest",
    "ExportPreferenceHistoryRequest",
    "ErasePreferencesRequest",
    "GetSiteSettingsRequest",
    "UpdateSiteSettingsRequest",
    "ListAuditEventsRequest",
    "GetWidgetSettingsRequest",
    "UpdateWidgetSettingsRequest",
    "GetCheckpointRequest",
    "GetInclusionProofRequest",
    "GetConsistencyProofRequest",
];

#[test]
fn every_rpc_has_a_conversion_property() {
    let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
    let inputs: BTreeSet<String> = set
        .file
        .iter()
        .filter(|file| file.package() == "consent.v1")
        .flat_map(|file| &file.service)
        .flat_map(|service| &service.method)
        .map(|method| {
            method
                .input_type()
                .trim_start_matches(".consent.v1.")
                .to_string()
        })
        .collect();
    let covered: BTreeSet<String> = COVERED.iter().map(|name| name.to_string()).collect();
    let missing: Vec<_> = inputs.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "request types without a property in src/api/convert/properties.rs: {missing:?}"
    );
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn record_consent_converts_or_names_fields(r in record_consent()) {
        judged("RecordConsentRequest", ConsentDecision::try_from(r))?;
    }

    #[test]
    fn get_consent_status_converts_or_names_fields(
        site_id in text(),
        subject_id in text(),
        as_of in timestamp(),
    ) {
        let r = proto::GetConsentStatusRequest { site_id, subject_id, as_of };
        judged("GetConsentStatusRequest", GetConsentStatus::try_from(r))?;
    }

    #[test]
    fn list_consents_converts_or_names_fields(
        site_id in text(),
        filter in consent_filter(),
        page_size in page_size(),
        page_token in page_token(),
        view in number(),
    ) {
        let r = proto::ListConsentsRequest { site_id, filter, page_size, page_token, view };
        judged::<ListConsents>("ListConsentsRequest", list_command(r, &tokens()))?;
    }

    #[test]
    fn export_consents_converts_or_names_fields(
        site_id in text(),
        filter in consent_filter(),
        view in number(),
        page_token in page_token(),
    ) {
        let r = proto::ExportConsentsRequest { site_id, filter, view, page_token };
        judged::<ExportConsents>("ExportConsentsRequest", list_command(r, &tokens()))?;
    }

    #[test]
    fn erase_consents_converts_or_names_fields(
        site_id in text(),
        subject_id in text(),
        user_id in text(),
    ) {
        let r = proto::EraseConsentsRequest { site_id, subject_id, user_id };
        judged("EraseConsentsRequest", EraseRequest::try_from(r))?;
    }

    #[test]
    fn single_id_requests_convert_or_name_fields(
        id in text(),
        text_ in text(),
        include_document in any::<bool>(),
    ) {
        let proof = proto::GetConsentProofRequest { record_id: id.clone(), include_document };
        judged("GetConsentProofRequest", GetConsentProof::try_from(proof))?;
        let put = proto::PutNoticeRequest { text: text_, expected_sha256: id.clone() };
        judged("PutNoticeRequest", PutNotice::try_from(put))?;
        let notice = proto::GetNoticeRequest { sha256: id.clone() };
        judged("GetNoticeRequest", GetNotice::try_from(notice))?;
        let site = proto::GetSiteSettingsRequest { site_id: id.clone() };
        judged("GetSiteSettingsRequest", GetSiteSettings::try_from(site))?;
        let widget = proto::GetWidgetSettingsRequest { widget_id: id };
        judged("GetWidgetSettingsRequest", GetWidgetSettings::try_from(widget))?;
    }

    #[test]
    fn log_requests_convert_or_name_fields(
        id in text(),
        a in prop_oneof![Just(0i64), Just(-1), any::<i64>()],
        b in prop_oneof![Just(0i64), Just(-1), any::<i64>()],
        by_index in any::<bool>(),
    ) {
        use crate::domain::tlog::{GetCheckpoint, GetConsistencyProof, GetInclusionProof};
        use proto::get_inclusion_proof_request::Leaf;
        let checkpoint = proto::GetCheckpointRequest { tree_size: a };
        judged("GetCheckpointRequest", GetCheckpoint::try_from(checkpoint))?;
        let leaf = match by_index {
            true => Some(Leaf::LeafIndex(b)),
            false if id.is_empty() => None,
            false => Some(Leaf::RecordId(id)),
        };
        let inclusion = proto::GetInclusionProofRequest { leaf, tree_size: a };
        judged("GetInclusionProofRequest", GetInclusionProof::try_from(inclusion))?;
        let consistency = proto::GetConsistencyProofRequest { old_size: a, new_size: b };
        judged("GetConsistencyProofRequest", GetConsistencyProof::try_from(consistency))?;
    }

    #[test]
    fn update_preferences_converts_or_names_fields(r in update_request()) {
        judged("UpdatePreferencesRequest", update_preferences(r, Uuid::nil()))?;
    }

    #[test]
    fn preference_reads_convert_or_name_fields(
        widget_id in text(),
        user_id in text(),
        times in (timestamp(), timestamp()),
        page_size in page_size(),
        page_token in page_token(),
    ) {
        let get = proto::GetPreferencesRequest {
            widget_id: widget_id.clone(),
            user_id: user_id.clone(),
            as_of: times.0,
        };
        judged("GetPreferencesRequest", GetPreferences::try_from(get))?;
        let list = proto::ListPreferenceHistoryRequest {
            widget_id: widget_id.clone(),
            user_id: user_id.clone(),
            start_time: times.0,
            end_time: times.1,
            page_size,
            page_token,
        };
        let listed = list_command::<_>(list, &tokens());
        judged::<ListPreferenceHistory>("ListPreferenceHistoryRequest", listed)?;
        let export = proto::ExportPreferenceHistoryRequest {
            widget_id: widget_id.clone(),
            start_time: times.0,
            end_time: times.1,
            page_token: String::new(),
        };
        let exported = list_command::<_>(export, &tokens());
        judged::<ExportPreferenceHistory>("ExportPreferenceHistoryRequest", exported)?;
        let erase = proto::ErasePreferencesRequest { widget_id, user_id };
        judged("ErasePreferencesRequest", ErasePreferences::try_from(erase))?;
    }

    #[test]
    fn admin_requests_convert_or_name_fields(
        id in text(),
        detailed_logging in proptest::option::of(any::<bool>()),
        drop_query_strings in proptest::option::of(any::<bool>()),
        lifetimes in (duration(), duration()),
        times in (timestamp(), timestamp()),
        page_size in page_size(),
        page_token in page_token(),
        declared in proptest::option::of((proptest::collection::vec(
            (text(), any::<bool>(), proptest::collection::vec(text(), 0..3)),
            0..4,
        ), any::<bool>())),
    ) {
        let categories = declared.map(|(categories, inherit)| proto::DeclaredCategories {
            inherit,
            categories: categories
                .into_iter()
                .map(|(name, necessary, services)| proto::DeclaredCategory {
                    name,
                    necessary,
                    services,
                })
                .collect(),
        });
        let site = proto::UpdateSiteSettingsRequest {
            site_id: id.clone(),
            detailed_logging,
            consent_lifetime: lifetimes.0,
            retention: lifetimes.1,
            drop_query_strings,
            categories,
        };
        judged("UpdateSiteSettingsRequest", UpdateSiteSettings::try_from(site))?;
        let widget = proto::UpdateWidgetSettingsRequest {
            widget_id: id,
            settings: detailed_logging.map(|_| proto::WidgetSettings {
                selection_lifetime: lifetimes.0,
            }),
        };
        judged("UpdateWidgetSettingsRequest", UpdateWidgetSettings::try_from(widget))?;
        let audit = proto::ListAuditEventsRequest {
            start_time: times.0,
            end_time: times.1,
            page_size,
            page_token,
        };
        judged::<ListAuditEvents>("ListAuditEventsRequest", list_command(audit, &tokens()))?;
    }
}
