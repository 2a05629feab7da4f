//! The preference history: events written with the changes they record,
//! and read back in keyset pages and snapshot exports.

use std::time::SystemTime;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{
    Result, Store,
    audit::AuditEntry,
    paging::{ExportChunks, Keyset, Page, Params},
    row::StoredRow,
    run,
    stored::{StoredEnum, author_from_db, author_type_to_db},
};
use crate::domain::{
    audit::AuditAction,
    auth::{Caller, Scope},
    ids::{OptionId, TopicId, UserId, WidgetId},
    page::Cursor,
    preference::{
        ChangeType, HistoryFilter, OptionShown, PreferenceEvent, PreferenceState, PreferenceUpdate,
        TopicTitles, effect::NewEvent, replay::replay,
    },
    web::LanguageTag,
};

const EVENTS: &str = "preference_events";

const EVENT_KEYSET: Keyset<PreferenceEvent> = Keyset {
    sql: include_str!("sql/list_preference_events.sql"),
    from_row: event_from_row,
    cursor_of: event_cursor,
};

/// Where a list or an export continues after `event`.
pub fn event_cursor(event: &PreferenceEvent) -> Cursor {
    Cursor {
        time: event.time,
        id: event.id,
    }
}

impl Store {
    pub async fn list_preference_history(
        &self,
        tenant_id: Uuid,
        filter: &HistoryFilter,
        after: Option<Cursor>,
        page_size: u32,
    ) -> Result<Page<PreferenceEvent>> {
        self.keyset_page(
            &EVENT_KEYSET,
            history_params(tenant_id, filter, after),
            after,
            page_size,
        )
        .await
    }

    /// A user's state at `as_of`, replayed from their events up to it.
    pub(super) async fn preference_state_as_of(
        &self,
        tenant_id: Uuid,
        widget_id: &WidgetId,
        user_id: &UserId,
        as_of: SystemTime,
    ) -> Result<PreferenceState> {
        let client = self.connection().await?;
        let rows = run::query(
            &*client,
            include_str!("sql/preference_events_until.sql"),
            &[&tenant_id, &widget_id.as_ref(), &user_id.as_ref(), &as_of],
        )
        .await?;
        let events = rows
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(PreferenceState {
            widget_id: widget_id.clone(),
            user_id: user_id.clone(),
            topics: replay(events),
        })
    }

    pub async fn export_preference_history(
        &self,
        caller: &Caller,
        filter: &HistoryFilter,
        after: Option<Cursor>,
        chunk_size: usize,
    ) -> Result<ExportChunks<PreferenceEvent>> {
        let audit = AuditEntry::by(
            caller,
            Scope::PreferenceExport,
            AuditAction::PreferenceExport,
            Some(filter.widget_id.as_ref()),
        );
        self.export(
            &EVENT_KEYSET,
            history_params(caller.tenant_id, filter, after),
            chunk_size,
            audit,
        )
        .await
    }
}

/// Options as the three parallel arrays the SQL takes.
pub(super) fn option_columns(options: &[OptionShown]) -> (Vec<&str>, Vec<&str>, Vec<&str>) {
    let ids = options.iter().map(|o| o.id.as_ref()).collect();
    let titles_en = options.iter().map(|o| o.title_en.as_str()).collect();
    let titles_translated = options
        .iter()
        .map(|o| o.title_translated.as_str())
        .collect();
    (ids, titles_en, titles_translated)
}

/// Writes one event of an update by the user `(tenant, widget, user)`.
pub(super) async fn insert_event(
    client: &impl GenericClient,
    (tenant_id, widget_id, user_id): (Uuid, &str, &str),
    update: &PreferenceUpdate,
    event: &NewEvent,
) -> Result<PreferenceEvent> {
    let (ids, titles_en, titles_translated) = option_columns(&event.options);
    let row = run::query_one(
        client,
        include_str!("sql/insert_preference_event.sql"),
        &[
            &tenant_id,
            &Uuid::now_v7(),
            &widget_id,
            &user_id,
            &event.topic.as_ref(),
            &event.change.to_db(),
            &author_type_to_db(update.author),
            &update.author.key_id(),
            &update.language.as_ref().map(AsRef::<str>::as_ref),
            &event.titles.en,
            &event.titles.translated,
            &ids,
            &titles_en,
            &titles_translated,
        ],
    )
    .await?;
    event_from_row(&row)
}

fn history_params(tenant_id: Uuid, filter: &HistoryFilter, after: Option<Cursor>) -> Params {
    let after = after.unwrap_or(Cursor::START);
    vec![
        Box::new(tenant_id),
        Box::new(filter.widget_id.as_ref().to_string()),
        Box::new(filter.user_id.as_ref().map(|u| u.as_ref().to_string())),
        Box::new(filter.start_time),
        Box::new(filter.end_time),
        Box::new(after.time),
        Box::new(after.id),
    ]
}

pub(super) fn event_from_row(row: &Row) -> Result<PreferenceEvent> {
    let row = StoredRow::of(EVENTS, row);
    let ids: Vec<String> = row.get("option_ids")?;
    let titles_en: Vec<String> = row.get("option_titles_en")?;
    let titles_translated: Vec<String> = row.get("option_titles_translated")?;
    if ids.len() != titles_en.len() || ids.len() != titles_translated.len() {
        return Err(row.corrupt("option_ids", "option arrays of different lengths"));
    }
    let options = ids
        .into_iter()
        .zip(titles_en)
        .zip(titles_translated)
        .map(|((id, title_en), title_translated)| {
            Ok(OptionShown {
                id: OptionId::parse(id).map_err(|why| row.corrupt("option_ids", why))?,
                title_en,
                title_translated,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let author: i16 = row.get("author_type")?;
    Ok(PreferenceEvent {
        id: row.get("event_id")?,
        widget_id: row.parse("widget_id", WidgetId::parse)?,
        user_id: row.parse("user_id", UserId::parse)?,
        topic_id: row.parse("topic_id", TopicId::parse)?,
        change: row.parse("change_type", ChangeType::from_db)?,
        author: row.parse("author_key_id", |key_id| author_from_db(author, key_id))?,
        language: row.parse_opt("language_code", LanguageTag::parse)?,
        topic_titles: TopicTitles {
            en: row.get("topic_title_en")?,
            translated: row.get("topic_title_translated")?,
        },
        options,
        time: row.get("event_time")?,
    })
}
