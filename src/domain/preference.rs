//! Preference-centre choices: changes, the state they lead to, and the
//! history that records them.

pub mod claims;
pub mod effect;
pub mod replay;

use std::time::{Duration, SystemTime};

use uuid::Uuid;

use super::{
    ids::{OptionId, RequestId, TopicId, UserId, WidgetId},
    page::{Fingerprint, PageFilter},
    validation::bounded_text,
    web::LanguageTag,
};

pub const MAX_CHANGES: usize = 100;
pub const MAX_OPTIONS_PER_CHANGE: usize = 100;
pub const MAX_TITLE_CHARS: usize = 512;

/// What a change or an event does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeType {
    Added,
    Removed,
    RemovedAll,
    /// Written by consentd when a selection's lifetime ends.
    Expired,
}

impl ChangeType {
    pub const ALL: [Self; 4] = [Self::Added, Self::Removed, Self::RemovedAll, Self::Expired];
}

/// Who made a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Author {
    EndUser,
    /// A service acting for the user, with this API key.
    ApiKey(Uuid),
    /// consentd itself: expiry.
    System,
}

impl Author {
    pub fn key_id(self) -> Option<Uuid> {
        match self {
            Author::ApiKey(key_id) => Some(key_id),
            _ => None,
        }
    }
}

/// A title as shown to the user; empty when none was sent.
pub fn title(value: String) -> Result<String, String> {
    bounded_text(&value, MAX_TITLE_CHARS).map(|()| value)
}

/// An option with its titles as the user saw them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionShown {
    pub id: OptionId,
    pub title_en: String,
    pub title_translated: String,
}

/// A topic's titles as the user saw them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicTitles {
    pub en: String,
    pub translated: String,
}

/// One validated change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Add {
        topic: TopicId,
        titles: TopicTitles,
        options: Vec<OptionShown>,
    },
    Remove {
        topic: TopicId,
        titles: TopicTitles,
        options: Vec<OptionShown>,
    },
    /// Every option of `topic`, or of the whole widget without one.
    RemoveAll {
        topic: Option<TopicId>,
        titles: TopicTitles,
    },
}

/// One save of the preference centre, validated.
#[derive(Clone, Debug)]
pub struct PreferenceUpdate {
    pub request_id: Option<RequestId>,
    pub widget_id: WidgetId,
    pub user_id: UserId,
    pub language: Option<LanguageTag>,
    pub changes: Vec<Change>,
    pub author: Author,
    pub selection_lifetime: Option<Duration>,
}

/// One selected option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    pub option: OptionShown,
    pub language: Option<LanguageTag>,
    pub add_time: SystemTime,
    pub expire_time: Option<SystemTime>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicState {
    pub topic_id: TopicId,
    pub titles: TopicTitles,
    pub options: Vec<Selection>,
}

/// A user's selections on a widget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreferenceState {
    pub widget_id: WidgetId,
    pub user_id: UserId,
    pub topics: Vec<TopicState>,
}

/// One entry of the history log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreferenceEvent {
    pub id: Uuid,
    pub widget_id: WidgetId,
    pub user_id: UserId,
    pub topic_id: TopicId,
    pub change: ChangeType,
    pub author: Author,
    pub language: Option<LanguageTag>,
    pub topic_titles: TopicTitles,
    pub options: Vec<OptionShown>,
    pub time: SystemTime,
}

/// Why a change had no effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnchangedReason {
    AlreadySelected,
    NotSelected,
    NothingSelected,
}

impl UnchangedReason {
    pub const ALL: [Self; 3] = [
        Self::AlreadySelected,
        Self::NotSelected,
        Self::NothingSelected,
    ];
}

/// A change, or one option of it, that wrote no event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unchanged {
    pub change_index: usize,
    pub topic_id: Option<TopicId>,
    pub option_id: Option<OptionId>,
    pub reason: UnchangedReason,
}

/// What a save did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateOutcome {
    pub state: PreferenceState,
    pub events: Vec<PreferenceEvent>,
    pub unchanged: Vec<Unchanged>,
}

/// Which events a history list or export covers.
#[derive(Clone, Debug)]
pub struct HistoryFilter {
    pub widget_id: WidgetId,
    /// One user for a list; every user of the widget for an export.
    pub user_id: Option<UserId>,
    pub start_time: Option<SystemTime>,
    pub end_time: Option<SystemTime>,
}

impl PageFilter for HistoryFilter {
    fn fingerprint(&self) -> [u8; 8] {
        Fingerprint::of("preference-history")
            .field(Some(self.widget_id.as_ref()))
            .field(self.user_id.as_ref().map(AsRef::as_ref))
            .time(self.start_time)
            .time(self.end_time)
            .finish()
    }
}
