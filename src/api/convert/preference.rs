//! PreferenceService: requests into domain commands, states and events
//! into messages.

use std::collections::HashSet;

use prost_types::Timestamp;
use uuid::Uuid;

use super::{
    duration,
    enums::{self, ChangeKind},
    page_start, parsed, present, required, text, time, timestamp,
};
use crate::{
    api::proto,
    domain::{
        command::{
            ErasePreferences, ExportPreferenceHistory, GetPreferences, ListPreferenceHistory,
        },
        ids::{OptionId, RequestId, TopicId, UserId, WidgetId},
        page::{PageSize, PageTokens},
        preference::{
            Change, HistoryFilter, MAX_CHANGES, MAX_OPTIONS_PER_CHANGE, OptionShown,
            PreferenceEvent, PreferenceState, PreferenceUpdate, TopicTitles, Unchanged,
            UpdateOutcome, title,
        },
        site::lifetime,
        validation::{Checked, Invalid, ValidationError, Violations},
        web::LanguageTag,
    },
};

conversions! {
    proto::GetPreferencesRequest => GetPreferences: get_preferences,
    proto::ErasePreferencesRequest => ErasePreferences: erase_preferences,
}

list_conversions! {
    proto::ListPreferenceHistoryRequest => ListPreferenceHistory: list_preference_history,
    proto::ExportPreferenceHistoryRequest => ExportPreferenceHistory: export_preference_history,
}

/// UpdatePreferences: the author of an API key is the caller's own key, so
/// the conversion takes it.
pub fn update_preferences(
    r: proto::UpdatePreferencesRequest,
    caller_key_id: Uuid,
) -> Result<PreferenceUpdate, ValidationError> {
    let mut v = Violations::new();
    let parsed = update(r, caller_key_id, &mut v);
    v.finish(parsed)
}

fn update(
    r: proto::UpdatePreferencesRequest,
    caller_key_id: Uuid,
    v: &mut Violations,
) -> Checked<PreferenceUpdate> {
    let request_id = v.check_optional("request_id", present(r.request_id).map(RequestId::parse));
    let widget_id = parsed(v, "widget_id", r.widget_id, WidgetId::parse);
    let user_id = parsed(v, "user_id", r.user_id, UserId::parse);
    let language = v.check_optional(
        "language_code",
        present(r.language_code).map(LanguageTag::parse),
    );
    let author = v.check("author_type", enums::author(r.author_type, caller_key_id));
    let selection_lifetime = v.check_optional(
        "selection_lifetime",
        r.selection_lifetime.map(|d| duration(d).and_then(lifetime)),
    );
    if r.changes.is_empty() || r.changes.len() > MAX_CHANGES {
        v.add("changes", format!("must hold 1 to {MAX_CHANGES} changes"));
    }
    let mut changes = Vec::with_capacity(r.changes.len());
    let mut touched = Vec::new();
    for (i, change) in r.changes.into_iter().take(MAX_CHANGES).enumerate() {
        changes.push(parse_change(i, change, &mut touched, v));
    }
    Ok(PreferenceUpdate {
        request_id: request_id?,
        widget_id: widget_id?,
        user_id: user_id?,
        language: language?,
        changes: changes.into_iter().collect::<Checked<_>>()?,
        author: author?,
        selection_lifetime: selection_lifetime?,
    })
}

/// A change's kind and topic, as far as they parsed.
enum Target {
    Add(Checked<TopicId>),
    Remove(Checked<TopicId>),
    RemoveAll(Checked<Option<TopicId>>),
    /// The type was refused.
    Refused(Invalid),
}

/// An option a request touches: its topic and id as sent, and whether it
/// is added. No option may be added and removed in one request.
type Touched = (String, String, bool);

fn parse_change(
    i: usize,
    change: proto::PreferenceChange,
    touched: &mut Vec<Touched>,
    v: &mut Violations,
) -> Checked<Change> {
    let mark = v.mark();
    let field = |name: &str| format!("changes[{i}].{name}");
    let kind = v.check(field("type"), enums::change_kind(change.r#type));
    let titles = TopicTitles {
        en: v
            .check(field("topic_title_en"), title(change.topic_title_en))
            .unwrap_or_default(),
        translated: v
            .check(
                field("topic_title_translated"),
                title(change.topic_title_translated),
            )
            .unwrap_or_default(),
    };
    let topic_id = change.topic_id;
    let one_topic = |v: &mut Violations| {
        v.check(
            field("topic_id"),
            required(topic_id.clone()).and_then(TopicId::parse),
        )
    };
    let target = match kind {
        Ok(ChangeKind::Add) => Target::Add(one_topic(v)),
        Ok(ChangeKind::Remove) => Target::Remove(one_topic(v)),
        Ok(ChangeKind::RemoveAll) => Target::RemoveAll(v.check_optional(
            field("topic_id"),
            present(topic_id.clone()).map(TopicId::parse),
        )),
        Err(invalid) => {
            // Checked all the same, so every bad field is reported at once.
            let _ = one_topic(v);
            Target::Refused(invalid)
        }
    };
    let count = change.options.len();
    match target {
        Target::RemoveAll(_) if count > 0 => {
            v.add(
                field("options"),
                "must be empty for PREFERENCE_CHANGE_TYPE_REMOVED_ALL",
            );
        }
        Target::Add(_) | Target::Remove(_) if count == 0 || count > MAX_OPTIONS_PER_CHANGE => {
            v.add(
                field("options"),
                format!("must hold 1 to {MAX_OPTIONS_PER_CHANGE} options"),
            );
        }
        _ => {}
    }
    let added = matches!(target, Target::Add(_));
    let mut options = Vec::with_capacity(count);
    let mut seen = HashSet::new();
    for (j, option) in change
        .options
        .into_iter()
        .take(MAX_OPTIONS_PER_CHANGE)
        .enumerate()
    {
        let option_field = |name: &str| format!("changes[{i}].options[{j}].{name}");
        let id = v.check(
            option_field("option_id"),
            required(option.option_id).and_then(OptionId::parse),
        );
        let title_en = v.check(option_field("title_en"), title(option.title_en));
        let title_translated = v.check(
            option_field("title_translated"),
            title(option.title_translated),
        );
        let (Ok(id), Ok(title_en), Ok(title_translated)) = (id, title_en, title_translated) else {
            continue;
        };
        if !seen.insert(id.clone()) {
            v.add(option_field("option_id"), "listed twice in this change");
        }
        let key = (topic_id.clone(), id.as_ref().to_string());
        if touched
            .iter()
            .any(|(t, o, was_added)| (t, o) == (&key.0, &key.1) && *was_added != added)
        {
            v.add(
                option_field("option_id"),
                "this option is both added and removed in one request",
            );
        }
        touched.push((key.0, key.1, added));
        options.push(OptionShown {
            id,
            title_en,
            title_translated,
        });
    }
    v.failed_since(mark)?;
    Ok(match target {
        Target::Add(topic) => Change::Add {
            topic: topic?,
            titles,
            options,
        },
        Target::Remove(topic) => Change::Remove {
            topic: topic?,
            titles,
            options,
        },
        Target::RemoveAll(topic) => Change::RemoveAll {
            topic: topic?,
            titles,
        },
        Target::Refused(invalid) => return Err(invalid),
    })
}

fn get_preferences(r: proto::GetPreferencesRequest, v: &mut Violations) -> Checked<GetPreferences> {
    let widget_id = parsed(v, "widget_id", r.widget_id, WidgetId::parse);
    let user_id = parsed(v, "user_id", r.user_id, UserId::parse);
    let as_of = v.check_optional("as_of", r.as_of.map(time));
    Ok(GetPreferences {
        widget_id: widget_id?,
        user_id: user_id?,
        as_of: as_of?,
    })
}

/// The filter of a history list or export; it fails as a whole when the
/// widget or a time does. The user is parsed by the caller, apart.
fn history_filter(
    widget_id: String,
    user_id: Option<UserId>,
    start_time: Option<Timestamp>,
    end_time: Option<Timestamp>,
    v: &mut Violations,
) -> Checked<HistoryFilter> {
    let mark = v.mark();
    let widget_id = v.check("widget_id", required(widget_id).and_then(WidgetId::parse));
    let start_time = v.check_optional("start_time", start_time.map(time));
    let end_time = v.check_optional("end_time", end_time.map(time));
    if let (Ok(Some(start)), Ok(Some(end))) = (start_time, end_time)
        && end <= start
    {
        v.add("end_time", "must be after start_time");
    }
    v.failed_since(mark)?;
    Ok(HistoryFilter {
        widget_id: widget_id?,
        user_id,
        start_time: start_time?,
        end_time: end_time?,
    })
}

fn list_preference_history(
    r: proto::ListPreferenceHistoryRequest,
    tokens: &PageTokens,
    v: &mut Violations,
) -> Checked<ListPreferenceHistory> {
    let user_id = parsed(v, "user_id", r.user_id, UserId::parse);
    let filter = history_filter(
        r.widget_id,
        user_id.as_ref().ok().cloned(),
        r.start_time,
        r.end_time,
        v,
    );
    let page_size = v.check("page_size", PageSize::parse(r.page_size));
    let after = page_start(r.page_token, filter.as_ref().ok(), tokens, v);
    Ok(ListPreferenceHistory {
        filter: HistoryFilter {
            user_id: Some(user_id?),
            ..filter?
        },
        after: after?,
        page_size: page_size?,
    })
}

fn export_preference_history(
    r: proto::ExportPreferenceHistoryRequest,
    tokens: &PageTokens,
    v: &mut Violations,
) -> Checked<ExportPreferenceHistory> {
    let filter = history_filter(r.widget_id, None, r.start_time, r.end_time, v);
    let after = page_start(r.page_token, filter.as_ref().ok(), tokens, v);
    Ok(ExportPreferenceHistory {
        filter: filter?,
        after: after?,
    })
}

fn erase_preferences(
    r: proto::ErasePreferencesRequest,
    v: &mut Violations,
) -> Checked<ErasePreferences> {
    let widget_id = v.check_optional("widget_id", present(r.widget_id).map(WidgetId::parse));
    let user_id = parsed(v, "user_id", r.user_id, UserId::parse);
    Ok(ErasePreferences {
        widget_id: widget_id?,
        user_id: user_id?,
    })
}

/// What a save did, as the response carries it (and a replay repeats).
pub fn update_response(outcome: UpdateOutcome) -> proto::UpdatePreferencesResponse {
    proto::UpdatePreferencesResponse {
        state: Some(outcome.state.into()),
        events: outcome.events.into_iter().map(Into::into).collect(),
        unchanged: outcome.unchanged.into_iter().map(Into::into).collect(),
    }
}

impl From<OptionShown> for proto::PreferenceOption {
    fn from(option: OptionShown) -> Self {
        proto::PreferenceOption {
            option_id: option.id.into_inner(),
            title_en: option.title_en,
            title_translated: option.title_translated,
        }
    }
}

impl From<PreferenceState> for proto::PreferenceState {
    fn from(state: PreferenceState) -> Self {
        proto::PreferenceState {
            widget_id: state.widget_id.into_inner(),
            user_id: state.user_id.into_inner(),
            topics: state
                .topics
                .into_iter()
                .map(|topic| proto::TopicState {
                    topic_id: topic.topic_id.into_inner(),
                    title_en: topic.titles.en,
                    title_translated: topic.titles.translated,
                    options: topic
                        .options
                        .into_iter()
                        .map(|selected| proto::SelectedOption {
                            language_code: text(selected.language.as_ref()),
                            option: Some(selected.option.into()),
                            add_time: Some(timestamp(selected.add_time)),
                            expire_time: selected.expire_time.map(timestamp),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

impl From<PreferenceEvent> for proto::PreferenceEvent {
    fn from(event: PreferenceEvent) -> Self {
        proto::PreferenceEvent {
            id: event.id.to_string(),
            widget_id: event.widget_id.into_inner(),
            user_id: event.user_id.into_inner(),
            topic_id: event.topic_id.into_inner(),
            r#type: enums::proto_change_type(event.change).into(),
            author_type: enums::proto_author_type(event.author).into(),
            author_key_id: event
                .author
                .key_id()
                .map(|id| id.to_string())
                .unwrap_or_default(),
            language_code: text(event.language.as_ref()),
            topic_title_en: event.topic_titles.en,
            topic_title_translated: event.topic_titles.translated,
            options: event.options.into_iter().map(Into::into).collect(),
            event_time: Some(timestamp(event.time)),
        }
    }
}

impl From<Unchanged> for proto::UnchangedOption {
    fn from(unchanged: Unchanged) -> Self {
        proto::UnchangedOption {
            change_index: unchanged.change_index as i32,
            topic_id: text(unchanged.topic_id.as_ref()),
            option_id: text(unchanged.option_id.as_ref()),
            reason: enums::proto_unchanged_reason(unchanged.reason).into(),
        }
    }
}
