//! What a save did, and the state it leaves, decided from what the store
//! changed: which changes had no effect and why, which events to write, and
//! which titles a topic shows.

use std::collections::{BTreeMap, HashSet};

use super::{
    ChangeType, OptionShown, Selection, TopicState, TopicTitles, Unchanged, UnchangedReason,
};
use crate::domain::ids::TopicId;

/// An event a save writes: what one change did to one topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    pub change: ChangeType,
    pub topic: TopicId,
    pub titles: TopicTitles,
    pub options: Vec<OptionShown>,
}

/// A selection as the store holds it: its topic with the titles last shown,
/// and the option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredOption {
    pub topic: TopicId,
    pub titles: TopicTitles,
    pub option: OptionShown,
}

/// What one change did, once applied: the events to write, and what had no
/// effect. Only what the store actually changed is history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effect {
    pub events: Vec<NewEvent>,
    pub unchanged: Vec<Unchanged>,
}

/// An Add of `options`, given the ids of those the store added: one ADDED
/// event for them; the others were already selected.
pub fn added(
    change_index: usize,
    topic: &TopicId,
    titles: &TopicTitles,
    options: &[OptionShown],
    added_ids: &HashSet<String>,
) -> Effect {
    options_effect(
        (
            change_index,
            ChangeType::Added,
            UnchangedReason::AlreadySelected,
        ),
        topic,
        titles,
        options,
        added_ids,
    )
}

/// A Remove of `options`, given the ids of those the store removed: one
/// REMOVED event for them; the others were not selected.
pub fn removed(
    change_index: usize,
    topic: &TopicId,
    titles: &TopicTitles,
    options: &[OptionShown],
    removed_ids: &HashSet<String>,
) -> Effect {
    options_effect(
        (
            change_index,
            ChangeType::Removed,
            UnchangedReason::NotSelected,
        ),
        topic,
        titles,
        options,
        removed_ids,
    )
}

fn options_effect(
    (change_index, change, reason): (usize, ChangeType, UnchangedReason),
    topic: &TopicId,
    titles: &TopicTitles,
    options: &[OptionShown],
    changed_ids: &HashSet<String>,
) -> Effect {
    let (affected, untouched): (Vec<_>, Vec<_>) = options
        .iter()
        .cloned()
        .partition(|option| changed_ids.contains(option.id.as_ref()));
    let unchanged = untouched
        .into_iter()
        .map(|option| Unchanged {
            change_index,
            topic_id: Some(topic.clone()),
            option_id: Some(option.id),
            reason,
        })
        .collect();
    let events = if affected.is_empty() {
        Vec::new()
    } else {
        vec![NewEvent {
            change,
            topic: topic.clone(),
            titles: titles.clone(),
            options: affected,
        }]
    };
    Effect { events, unchanged }
}

/// A RemoveAll (of `topic`, or of the whole widget), given what the store
/// removed: one REMOVED_ALL event per topic, in topic order, its options in
/// id order. Its titles are the ones the request sends when it names the
/// topic and sends them, else the ones last shown.
pub fn removed_all(
    change_index: usize,
    topic: Option<&TopicId>,
    titles: &TopicTitles,
    removed: Vec<StoredOption>,
) -> Effect {
    let mut effect = Effect::default();
    if removed.is_empty() {
        effect.unchanged.push(Unchanged {
            change_index,
            topic_id: topic.cloned(),
            option_id: None,
            reason: UnchangedReason::NothingSelected,
        });
    }
    let sent_titles = (topic.is_some() && *titles != TopicTitles::default()).then_some(titles);
    let mut by_topic: BTreeMap<String, NewEvent> = BTreeMap::new();
    for stored in removed {
        by_topic
            .entry(stored.topic.as_ref().to_string())
            .or_insert_with(|| NewEvent {
                change: ChangeType::RemovedAll,
                titles: sent_titles.cloned().unwrap_or(stored.titles),
                topic: stored.topic,
                options: Vec::new(),
            })
            .options
            .push(stored.option);
    }
    effect.events = by_topic
        .into_values()
        .map(|mut event| {
            event
                .options
                .sort_by(|a, b| a.id.as_ref().cmp(b.id.as_ref()));
            event
        })
        .collect();
    effect
}

/// A user's selections, ordered by topic, grouped into topics. A topic's
/// titles are the ones shown with its latest selection.
pub fn topics(selections: impl IntoIterator<Item = (StoredOption, Selection)>) -> Vec<TopicState> {
    let mut topics: Vec<TopicState> = Vec::new();
    for (stored, selection) in selections {
        match topics.last_mut() {
            Some(topic) if topic.topic_id == stored.topic => {
                if topic
                    .options
                    .iter()
                    .all(|o| o.add_time <= selection.add_time)
                {
                    topic.titles = stored.titles;
                }
                topic.options.push(selection);
            }
            _ => topics.push(TopicState {
                topic_id: stored.topic,
                titles: stored.titles,
                options: vec![selection],
            }),
        }
    }
    topics
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::domain::ids::OptionId;

    fn topic(id: &str) -> TopicId {
        TopicId::parse(id.into()).unwrap()
    }

    fn option(id: &str) -> OptionShown {
        OptionShown {
            id: OptionId::parse(id.into()).unwrap(),
            title_en: format!("{id} (en)"),
            title_translated: format!("{id} (de)"),
        }
    }

    fn titles(en: &str) -> TopicTitles {
        TopicTitles {
            en: en.into(),
            translated: String::new(),
        }
    }

    fn ids(values: &[&str]) -> HashSet<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    fn stored(topic_id: &str, shown: &str, option_id: &str) -> StoredOption {
        StoredOption {
            topic: topic(topic_id),
            titles: titles(shown),
            option: option(option_id),
        }
    }

    #[test]
    fn an_add_records_only_what_was_added_and_why_the_rest_was_not() {
        let options = [option("a"), option("b"), option("c")];
        let effect = added(
            4,
            &topic("news"),
            &titles("News"),
            &options,
            &ids(&["c", "a"]),
        );
        assert_eq!(
            effect.events,
            vec![NewEvent {
                change: ChangeType::Added,
                topic: topic("news"),
                titles: titles("News"),
                options: vec![option("a"), option("c")],
            }]
        );
        assert_eq!(
            effect.unchanged,
            vec![Unchanged {
                change_index: 4,
                topic_id: Some(topic("news")),
                option_id: Some(option("b").id),
                reason: UnchangedReason::AlreadySelected,
            }]
        );
    }

    #[test]
    fn a_remove_of_nothing_selected_writes_no_event() {
        let options = [option("a"), option("b")];
        let effect = removed(0, &topic("news"), &titles("News"), &options, &ids(&[]));
        assert!(effect.events.is_empty());
        assert_eq!(effect.unchanged.len(), 2);
        assert!(
            effect
                .unchanged
                .iter()
                .all(|u| u.reason == UnchangedReason::NotSelected)
        );
    }

    #[test]
    fn a_remove_all_of_nothing_is_unchanged_and_writes_no_event() {
        let effect = removed_all(2, None, &TopicTitles::default(), Vec::new());
        assert!(effect.events.is_empty());
        assert_eq!(
            effect.unchanged,
            vec![Unchanged {
                change_index: 2,
                topic_id: None,
                option_id: None,
                reason: UnchangedReason::NothingSelected,
            }]
        );
    }

    #[test]
    fn a_remove_all_writes_one_event_per_topic_in_order_with_titles_as_last_shown() {
        let removed = vec![
            stored("sports", "Sports", "z"),
            stored("news", "News", "b"),
            stored("sports", "Sports", "a"),
            stored("news", "News", "a"),
        ];
        let effect = removed_all(0, None, &titles("ignored"), removed);
        assert!(effect.unchanged.is_empty());
        let events: Vec<(&str, &str, Vec<&str>)> = effect
            .events
            .iter()
            .map(|e| {
                assert_eq!(e.change, ChangeType::RemovedAll);
                let options = e.options.iter().map(|o| o.id.as_ref()).collect();
                (e.topic.as_ref(), e.titles.en.as_str(), options)
            })
            .collect();
        assert_eq!(
            events,
            vec![
                ("news", "News", vec!["a", "b"]),
                ("sports", "Sports", vec!["a", "z"])
            ]
        );
    }

    #[test]
    fn a_remove_all_of_a_named_topic_shows_the_titles_sent_if_any() {
        let removed = || vec![stored("news", "News (old)", "a")];
        let sent = removed_all(0, Some(&topic("news")), &titles("News (now)"), removed());
        assert_eq!(sent.events[0].titles, titles("News (now)"));
        let none_sent = removed_all(0, Some(&topic("news")), &TopicTitles::default(), removed());
        assert_eq!(none_sent.events[0].titles, titles("News (old)"));
    }

    #[test]
    fn a_topic_shows_the_titles_of_its_latest_selection() {
        let at = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let selection = |id: &str, added| Selection {
            option: option(id),
            language: None,
            add_time: at(added),
            expire_time: None,
        };
        let topics = topics(vec![
            (stored("news", "News (new)", "a"), selection("a", 20)),
            (stored("news", "News (old)", "b"), selection("b", 10)),
            (stored("sports", "Sports", "c"), selection("c", 5)),
        ]);
        assert_eq!(topics.len(), 2);
        assert_eq!(topics[0].titles, titles("News (new)"));
        assert_eq!(topics[0].options.len(), 2);
        assert_eq!(topics[1].topic_id, topic("sports"));
        assert_eq!(topics[1].titles, titles("Sports"));
    }
}
