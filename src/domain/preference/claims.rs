//! The canonical claims of a preference event: what its leaf in the
//! tenant's log commits to (SHA-256(0x00 || salt || claims), as a record's
//! leaf does; see `tlog`).
//!
//! UTF-8 JSON, no whitespace, the keys in exactly the order of `Claims`.
//! `type` comes first, so an event's claims never read as a record's
//! receipt claims (which open with `receipt_version`). Absent values are
//! `null`, enums their upper-case names, times integer microseconds since
//! the Unix epoch, options sorted by id. The user id is the one the event
//! names, as a record's claims name their subject: erasure deletes the
//! event and its salt, so the leaf left behind cannot be matched by
//! hashing guesses.

use serde::Serialize;
use uuid::Uuid;

use super::{Author, ChangeType, PreferenceEvent};
use crate::domain::time::micros_since_epoch;

/// The value of `type`.
pub const CLAIMS_TYPE: &str = "consentd.preference_event";

/// The signed fields, in canonical order.
#[derive(Serialize)]
struct Claims<'a> {
    #[serde(rename = "type")]
    claims_type: &'static str,
    version: u32,
    event_id: String,
    tenant_id: String,
    widget_id: &'a str,
    user_id: &'a str,
    topic_id: &'a str,
    change_type: &'static str,
    author_type: &'static str,
    author_key_id: Option<String>,
    language_code: Option<&'a str>,
    topic_title_en: &'a str,
    topic_title_translated: &'a str,
    options: Vec<OptionClaim<'a>>,
    event_time_us: i64,
}

#[derive(Serialize)]
struct OptionClaim<'a> {
    option_id: &'a str,
    title_en: &'a str,
    title_translated: &'a str,
}

fn change_name(change: ChangeType) -> &'static str {
    match change {
        ChangeType::Added => "ADDED",
        ChangeType::Removed => "REMOVED",
        ChangeType::RemovedAll => "REMOVED_ALL",
        ChangeType::Expired => "EXPIRED",
    }
}

fn author_name(author: Author) -> &'static str {
    match author {
        Author::EndUser => "END_USER",
        Author::ApiKey(_) => "API_KEY",
        Author::System => "SYSTEM",
    }
}

/// The canonical claims of an event of `tenant_id`.
pub fn event_claims(tenant_id: Uuid, event: &PreferenceEvent) -> Vec<u8> {
    // Sorted, so the claims do not depend on the order the store keeps
    // options in.
    let mut options: Vec<OptionClaim> = event
        .options
        .iter()
        .map(|o| OptionClaim {
            option_id: o.id.as_ref(),
            title_en: &o.title_en,
            title_translated: &o.title_translated,
        })
        .collect();
    options.sort_by_key(|o| (o.option_id, o.title_en, o.title_translated));
    let claims = Claims {
        claims_type: CLAIMS_TYPE,
        version: 1,
        event_id: event.id.to_string(),
        tenant_id: tenant_id.to_string(),
        widget_id: event.widget_id.as_ref(),
        user_id: event.user_id.as_ref(),
        topic_id: event.topic_id.as_ref(),
        change_type: change_name(event.change),
        author_type: author_name(event.author),
        author_key_id: event.author.key_id().map(|id| id.to_string()),
        language_code: event.language.as_ref().map(AsRef::as_ref),
        topic_title_en: &event.topic_titles.en,
        topic_title_translated: &event.topic_titles.translated,
        options,
        event_time_us: micros_since_epoch(event.time),
    };
    serde_json::to_vec(&claims).expect("claims serialize")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::domain::{
        ids::{OptionId, TopicId, UserId, WidgetId},
        preference::{OptionShown, TopicTitles},
        web::LanguageTag,
    };

    fn option(id: &str, en: &str) -> OptionShown {
        OptionShown {
            id: OptionId::parse(id.into()).unwrap(),
            title_en: en.into(),
            title_translated: String::new(),
        }
    }

    fn event() -> PreferenceEvent {
        PreferenceEvent {
            id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
            widget_id: WidgetId::parse("centre".into()).unwrap(),
            user_id: UserId::parse("user-1".into()).unwrap(),
            topic_id: TopicId::parse("news".into()).unwrap(),
            change: ChangeType::Added,
            author: Author::EndUser,
            language: Some(LanguageTag::parse("de".into()).unwrap()),
            topic_titles: TopicTitles {
                en: "News \"weekly\"".into(),
                translated: "Neuigkeiten".into(),
            },
            options: vec![option("weekly", "Weekly"), option("daily", "Daily")],
            time: UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
        }
    }

    const TENANT: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_00aa);

    #[test]
    fn the_claims_are_the_documented_bytes() {
        let claims = String::from_utf8(event_claims(TENANT, &event())).unwrap();
        assert_eq!(
            claims,
            concat!(
                r#"{"type":"consentd.preference_event","version":1,"#,
                r#""event_id":"01900000-0000-7000-8000-000000000001","#,
                r#""tenant_id":"01900000-0000-7000-8000-0000000000aa","#,
                r#""widget_id":"centre","user_id":"user-1","topic_id":"news","#,
                r#""change_type":"ADDED","author_type":"END_USER","author_key_id":null,"#,
                r#""language_code":"de","topic_title_en":"News \"weekly\"","#,
                r#""topic_title_translated":"Neuigkeiten","#,
                r#""options":[{"option_id":"daily","title_en":"Daily","title_translated":""},"#,
                r#"{"option_id":"weekly","title_en":"Weekly","title_translated":""}],"#,
                r#""event_time_us":1700000000123456}"#
            )
        );
    }

    #[test]
    fn every_change_and_author_has_its_name_and_an_absent_language_is_null() {
        let key = Uuid::from_u128(7);
        let mut names = Vec::new();
        for change in ChangeType::ALL {
            for author in [Author::EndUser, Author::ApiKey(key), Author::System] {
                let mut e = event();
                e.change = change;
                e.author = author;
                e.language = None;
                let claims: serde_json::Value =
                    serde_json::from_slice(&event_claims(TENANT, &e)).unwrap();
                assert_eq!(claims["language_code"], serde_json::Value::Null);
                let key_id = claims["author_key_id"].as_str().map(str::to_string);
                assert_eq!(key_id, author.key_id().map(|k| k.to_string()));
                names.push(format!(
                    "{} {}",
                    claims["change_type"], claims["author_type"]
                ));
            }
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 12, "every pair its own names: {names:?}");
    }

    #[test]
    fn the_order_options_are_kept_in_does_not_change_the_claims_and_any_field_does() {
        let base = event_claims(TENANT, &event());
        let mut reordered = event();
        reordered.options.reverse();
        assert_eq!(event_claims(TENANT, &reordered), base);
        let mut other_user = event();
        other_user.user_id = UserId::parse("user-2".into()).unwrap();
        assert_ne!(event_claims(TENANT, &other_user), base);
        assert_ne!(event_claims(Uuid::from_u128(1), &event()), base);
        let mut later = event();
        later.time += Duration::from_micros(1);
        assert_ne!(event_claims(TENANT, &later), base);
    }
}
