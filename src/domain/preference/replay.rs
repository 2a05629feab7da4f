//! A user's selections at an instant, rebuilt from the history: what
//! GetPreferences answers for an `as_of` time.

use std::collections::BTreeMap;

use super::{
    ChangeType, PreferenceEvent, Selection, TopicState,
    effect::{StoredOption, topics},
};

/// Applies `events` (oldest first) to an empty state. ADDED selects its
/// options (a re-add counts from the later event), REMOVED and EXPIRED drop
/// theirs, REMOVED_ALL drops the topic. The history keeps no expire time,
/// so replayed selections have none: one counts until its EXPIRED event.
pub fn replay(events: impl IntoIterator<Item = PreferenceEvent>) -> Vec<TopicState> {
    let mut selected: BTreeMap<(String, String), (StoredOption, Selection)> = BTreeMap::new();
    for event in events {
        let topic = event.topic_id.as_ref().to_string();
        match event.change {
            ChangeType::Added => {
                for option in event.options {
                    let key = (topic.clone(), option.id.as_ref().to_string());
                    let stored = StoredOption {
                        topic: event.topic_id.clone(),
                        titles: event.topic_titles.clone(),
                        option: option.clone(),
                    };
                    let selection = Selection {
                        option,
                        language: event.language.clone(),
                        add_time: event.time,
                        expire_time: None,
                    };
                    selected.insert(key, (stored, selection));
                }
            }
            ChangeType::Removed | ChangeType::Expired => {
                for option in &event.options {
                    selected.remove(&(topic.clone(), option.id.as_ref().to_string()));
                }
            }
            ChangeType::RemovedAll => selected.retain(|(t, _), _| *t != topic),
        }
    }
    topics(selected.into_values())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use uuid::Uuid;

    use super::*;
    use crate::domain::{
        ids::{OptionId, TopicId, UserId, WidgetId},
        preference::{Author, OptionShown, TopicTitles},
    };

    fn event(second: u64, topic: &str, change: ChangeType, options: &[&str]) -> PreferenceEvent {
        PreferenceEvent {
            id: Uuid::now_v7(),
            widget_id: WidgetId::parse("w".into()).unwrap(),
            user_id: UserId::parse("u".into()).unwrap(),
            topic_id: TopicId::parse(topic.into()).unwrap(),
            change,
            author: Author::System,
            language: None,
            topic_titles: TopicTitles::default(),
            options: options
                .iter()
                .map(|id| OptionShown {
                    id: OptionId::parse(id.to_string()).unwrap(),
                    title_en: id.to_string(),
                    title_translated: String::new(),
                })
                .collect(),
            time: UNIX_EPOCH + Duration::from_secs(second),
        }
    }

    fn selected(state: &[TopicState]) -> Vec<(String, String)> {
        state
            .iter()
            .flat_map(|t| {
                t.options
                    .iter()
                    .map(|o| (t.topic_id.as_ref().into(), o.option.id.as_ref().into()))
            })
            .collect()
    }

    #[test]
    fn every_change_type_moves_the_state() {
        use ChangeType::*;
        let history = [
            event(1, "news", Added, &["daily", "weekly"]),
            event(2, "offers", Added, &["sms"]),
            event(3, "news", Removed, &["daily"]),
            event(4, "offers", Expired, &["sms"]),
            event(5, "offers", Added, &["mail"]),
            event(6, "news", RemovedAll, &[]),
        ];
        let at = |n: usize| selected(&replay(history[..n].iter().cloned()));
        let pair = |t: &str, o: &str| (t.to_string(), o.to_string());
        assert!(at(0).is_empty());
        assert_eq!(
            at(2),
            [
                pair("news", "daily"),
                pair("news", "weekly"),
                pair("offers", "sms")
            ]
        );
        assert_eq!(at(4), [pair("news", "weekly")]);
        assert_eq!(at(6), [pair("offers", "mail")]);
    }
}
