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

mod admin;
mod consent;
mod log;
mod preference;

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

/// Nanoseconds: in range half the time, any number the other.
fn nanos() -> impl Strategy<Value = i32> {
    any::<i32>().prop_map(|nanos| {
        if nanos % 2 == 0 {
            nanos.rem_euclid(1_000_000_000)
        } else {
            nanos
        }
    })
}

fn timestamp() -> impl Strategy<Value = Option<Timestamp>> {
    let seconds = prop_oneof![
        -62_135_596_800i64..253_402_300_800,
        any::<i64>(),
        Just(i64::MIN),
        Just(i64::MAX)
    ];
    proptest::option::of(
        (seconds, nanos()).prop_map(|(seconds, nanos)| Timestamp { seconds, nanos }),
    )
}

fn duration() -> impl Strategy<Value = Option<Duration>> {
    let seconds = prop_oneof![0i64..100_000_000_000, any::<i64>()];
    proptest::option::of(
        (seconds, nanos()).prop_map(|(seconds, nanos)| Duration { seconds, nanos }),
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
        "request types without a property in src/api/convert/properties/: {missing:?}"
    );
}
