//! Preference selections and their history, written together.

use std::{
    collections::{BTreeMap, HashSet},
    time::SystemTime,
};

use tokio_postgres::{Row, Transaction};
use uuid::Uuid;

use super::{
    Error, Result, Store,
    audit::{AuditEntry, ErasedIdentifiers, Erasure, record_erasure},
    consent::{corrupt, micros},
    paging::{ExportChunks, Keyset, Page, Params},
};
use crate::domain::{
    audit::AuditAction,
    auth::{Caller, Scope},
    erasure::AuditKey,
    ids::{OptionId, TopicId, UserId, WidgetId},
    page::Cursor,
    preference::{
        Author, Change, ChangeType, HistoryFilter, OptionShown, PreferenceEvent, PreferenceState,
        PreferenceUpdate, Selection, TopicState, TopicTitles, Unchanged, UnchangedReason,
        UpdateOutcome,
    },
    web::LanguageTag,
};

/// The answer to a write that carries a request id: done now, or the
/// encoded response of the first call with that id.
pub enum Idempotent<T> {
    Fresh(T),
    Replayed(Vec<u8>),
}

const EVENT_KEYSET: Keyset<PreferenceEvent> = Keyset {
    sql: include_str!("sql/list_preference_events.sql"),
    from_row: event_from_row,
    cursor_of: |event| Cursor {
        time: event.time,
        id: event.id,
    },
};

/// One user on one widget: the key of every statement of an update.
struct Owner<'a> {
    tenant_id: Uuid,
    widget_id: &'a str,
    user_id: &'a str,
}

impl Store {
    /// Applies `update` and writes its events in one transaction. With a
    /// request id, the response built by `encode` is kept for retries, which
    /// get it back instead of applying the changes again.
    pub async fn update_preferences(
        &self,
        tenant_id: Uuid,
        update: &PreferenceUpdate,
        now: SystemTime,
        encode: impl FnOnce(&UpdateOutcome) -> Vec<u8>,
    ) -> Result<Idempotent<UpdateOutcome>> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        transaction
            .batch_execute(include_str!("sql/mark_writer.sql"))
            .await?;
        if let Some(request_id) = &update.request_id {
            let request_id = request_id.as_ref();
            let claimed = transaction
                .query_opt(
                    include_str!("sql/claim_preference_request.sql"),
                    &[&tenant_id, &request_id],
                )
                .await?
                .is_some();
            if !claimed {
                let response: Option<Vec<u8>> = transaction
                    .query_one(
                        include_str!("sql/preference_response.sql"),
                        &[&tenant_id, &request_id],
                    )
                    .await?
                    .get("response");
                return response.map(Idempotent::Replayed).ok_or_else(|| {
                    Error::Internal("claimed request id without a response".into())
                });
            }
        }
        let owner = Owner {
            tenant_id,
            widget_id: update.widget_id.as_ref(),
            user_id: update.user_id.as_ref(),
        };
        // A selection past its expire time is gone for this user even if the
        // worker has not run yet: expire it here, with its event, first.
        expire_due(&transaction, now, i64::MAX, Some(&owner)).await?;
        let mut events = Vec::new();
        let mut unchanged = Vec::new();
        for (change_index, change) in update.changes.iter().enumerate() {
            let unchanged_option = |topic: &TopicId, option: &OptionShown, reason| Unchanged {
                change_index,
                topic_id: Some(topic.clone()),
                option_id: Some(option.id.clone()),
                reason,
            };
            match change {
                Change::Add {
                    topic,
                    titles,
                    options,
                }
                | Change::Remove {
                    topic,
                    titles,
                    options,
                } => {
                    let adding = matches!(change, Change::Add { .. });
                    // What the database actually changed: only that is history.
                    let changed: HashSet<String> = if adding {
                        add_selections(&transaction, &owner, update, topic, titles, options).await?
                    } else {
                        let ids: Vec<&str> = options.iter().map(|o| o.id.as_ref()).collect();
                        remove_selections(&transaction, &owner, Some(topic), Some(&ids))
                            .await?
                            .into_iter()
                            .map(|(_, _, option)| option.id.into_inner())
                            .collect()
                    };
                    let (kind, reason) = if adding {
                        (ChangeType::Added, UnchangedReason::AlreadySelected)
                    } else {
                        (ChangeType::Removed, UnchangedReason::NotSelected)
                    };
                    let (affected, untouched): (Vec<_>, Vec<_>) = options
                        .iter()
                        .cloned()
                        .partition(|option| changed.contains(option.id.as_ref()));
                    unchanged.extend(untouched.iter().map(|o| unchanged_option(topic, o, reason)));
                    if !affected.is_empty() {
                        events.push(
                            insert_event(
                                &transaction,
                                &owner,
                                update,
                                kind,
                                topic,
                                titles,
                                &affected,
                            )
                            .await?,
                        );
                    }
                }
                Change::RemoveAll { topic, titles } => {
                    let removed =
                        remove_selections(&transaction, &owner, topic.as_ref(), None).await?;
                    if removed.is_empty() {
                        unchanged.push(Unchanged {
                            change_index,
                            topic_id: topic.clone(),
                            option_id: None,
                            reason: UnchangedReason::NothingSelected,
                        });
                    }
                    let mut by_topic: BTreeMap<String, (TopicId, TopicTitles, Vec<OptionShown>)> =
                        BTreeMap::new();
                    for (topic_id, stored_titles, option) in removed {
                        by_topic
                            .entry(topic_id.as_ref().to_string())
                            .or_insert_with(|| {
                                // The titles sent now, when the request names
                                // the topic and sends them; else as last shown.
                                let shown = if topic.is_some() && *titles != TopicTitles::default()
                                {
                                    titles.clone()
                                } else {
                                    stored_titles
                                };
                                (topic_id, shown, Vec::new())
                            })
                            .2
                            .push(option);
                    }
                    for (topic_id, shown, mut options) in by_topic.into_values() {
                        options.sort_by(|a, b| a.id.as_ref().cmp(b.id.as_ref()));
                        events.push(
                            insert_event(
                                &transaction,
                                &owner,
                                update,
                                ChangeType::RemovedAll,
                                &topic_id,
                                &shown,
                                &options,
                            )
                            .await?,
                        );
                    }
                }
            }
        }
        let state = state_of(&*transaction, &owner, now).await?;
        let outcome = UpdateOutcome {
            state,
            events,
            unchanged,
        };
        if let Some(request_id) = &update.request_id {
            transaction
                .execute(
                    include_str!("sql/save_preference_response.sql"),
                    &[&tenant_id, &request_id.as_ref(), &encode(&outcome)],
                )
                .await?;
        }
        transaction.commit().await?;
        Ok(Idempotent::Fresh(outcome))
    }

    /// A user's unexpired selections on a widget.
    pub async fn preference_state(
        &self,
        tenant_id: Uuid,
        widget_id: &WidgetId,
        user_id: &UserId,
        now: SystemTime,
    ) -> Result<PreferenceState> {
        let owner = Owner {
            tenant_id,
            widget_id: widget_id.as_ref(),
            user_id: user_id.as_ref(),
        };
        // One statement reads one snapshot: no transaction around it.
        state_of(&**self.pool.get().await?, &owner, now).await
    }

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

    pub fn export_preference_history(
        &self,
        caller: &Caller,
        filter: &HistoryFilter,
        chunk_size: usize,
    ) -> ExportChunks<PreferenceEvent> {
        let audit = AuditEntry::by(
            caller,
            Scope::PreferenceExport,
            AuditAction::PreferenceExport,
            Some(filter.widget_id.as_ref()),
        );
        self.export(
            &EVENT_KEYSET,
            history_params(caller.tenant_id, filter, None),
            chunk_size,
            audit,
        )
    }

    /// Deletes a user's selections and history (on one widget or all) and
    /// writes the audit entry, atomically. The count is selections plus
    /// events.
    pub async fn erase_preferences(
        &self,
        caller: &Caller,
        widget_id: Option<&WidgetId>,
        user_id: &UserId,
        audit_key: &AuditKey,
    ) -> Result<(i64, i64, Erasure)> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let widget = widget_id.map(AsRef::<str>::as_ref);
        let row = transaction
            .query_one(
                include_str!("sql/erase_preferences.sql"),
                &[&caller.tenant_id, &widget, &user_id.as_ref()],
            )
            .await?;
        let (selections, events): (i64, i64) =
            (row.get("erased_selections"), row.get("erased_events"));
        let erased = ErasedIdentifiers {
            scope: Scope::PreferenceErase,
            action: AuditAction::PreferenceErase,
            place: widget,
            subject_id: None,
            user_id: Some(user_id.as_ref()),
        };
        let erasure =
            record_erasure(&transaction, caller, erased, selections + events, audit_key).await?;
        transaction.commit().await?;
        Ok((selections, events, erasure))
    }

    /// Removes up to `batch` selections whose expire time is at or before
    /// `now`, each with its EXPIRED event, in one transaction. Safe to run on
    /// every replica at once: each selection expires exactly once.
    pub async fn expire_preferences(&self, now: SystemTime, batch: i64) -> Result<i64> {
        let mut client = self.pool.get().await?;
        // Look before labelling as a writer: a labelled transaction holds
        // back every list page (see consentd_write_watermark), so a worker
        // with nothing to do must not take the label.
        let due: bool = client
            .query_one(include_str!("sql/any_due_selections.sql"), &[&now])
            .await?
            .get("due");
        if !due {
            return Ok(0);
        }
        let transaction = client.transaction().await?;
        transaction
            .batch_execute(include_str!("sql/mark_writer.sql"))
            .await?;
        let expired = expire_due(&transaction, now, batch, None).await?;
        transaction.commit().await?;
        Ok(expired)
    }
}

/// Removes due selections (of one owner, or all) with their EXPIRED events,
/// in a transaction already labelled as a writer.
async fn expire_due(
    transaction: &Transaction<'_>,
    now: SystemTime,
    batch: i64,
    owner: Option<&Owner<'_>>,
) -> Result<i64> {
    if let Some(owner) = owner {
        transaction
            .execute(
                include_str!("sql/lock_due_selections.sql"),
                &[&owner.tenant_id, &owner.widget_id, &owner.user_id, &now],
            )
            .await?;
    }
    Ok(transaction
        .query_one(
            include_str!("sql/expire_preferences.sql"),
            &[
                &now,
                &batch,
                &(ChangeType::Expired.number() as i16),
                &(Author::System.number() as i16),
                &owner.map(|o| o.tenant_id),
                &owner.map(|o| o.widget_id),
                &owner.map(|o| o.user_id),
            ],
        )
        .await?
        .get("expired"))
}

/// Options as the three parallel arrays the SQL takes.
fn option_columns(options: &[OptionShown]) -> (Vec<&str>, Vec<&str>, Vec<&str>) {
    let ids = options.iter().map(|o| o.id.as_ref()).collect();
    let titles_en = options.iter().map(|o| o.title_en.as_str()).collect();
    let titles_translated = options
        .iter()
        .map(|o| o.title_translated.as_str())
        .collect();
    (ids, titles_en, titles_translated)
}

async fn add_selections(
    transaction: &Transaction<'_>,
    owner: &Owner<'_>,
    update: &PreferenceUpdate,
    topic: &TopicId,
    titles: &TopicTitles,
    options: &[OptionShown],
) -> Result<HashSet<String>> {
    let (ids, titles_en, titles_translated) = option_columns(options);
    let lifetime = update.selection_lifetime.map(micros);
    let language = update.language.as_ref().map(AsRef::<str>::as_ref);
    let rows = transaction
        .query(
            include_str!("sql/add_selections.sql"),
            &[
                &owner.tenant_id,
                &owner.widget_id,
                &owner.user_id,
                &topic.as_ref(),
                &titles.en,
                &titles.translated,
                &language,
                &lifetime,
                &ids,
                &titles_en,
                &titles_translated,
            ],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get("option_id")).collect())
}

/// Deletes selections and returns what was deleted, with stored titles.
async fn remove_selections(
    transaction: &Transaction<'_>,
    owner: &Owner<'_>,
    topic: Option<&TopicId>,
    options: Option<&[&str]>,
) -> Result<Vec<(TopicId, TopicTitles, OptionShown)>> {
    let topic = topic.map(AsRef::<str>::as_ref);
    let rows = transaction
        .query(
            include_str!("sql/remove_selections.sql"),
            &[
                &owner.tenant_id,
                &owner.widget_id,
                &owner.user_id,
                &topic,
                &options,
            ],
        )
        .await?;
    rows.iter().map(selection_of).collect()
}

/// The topic, its titles and the option of a `preference_selections` row.
fn selection_of(row: &Row) -> Result<(TopicId, TopicTitles, OptionShown)> {
    Ok((
        TopicId::parse(row.try_get("topic_id")?).map_err(corrupt)?,
        TopicTitles {
            en: row.try_get("topic_title_en")?,
            translated: row.try_get("topic_title_translated")?,
        },
        OptionShown {
            id: OptionId::parse(row.try_get("option_id")?).map_err(corrupt)?,
            title_en: row.try_get("option_title_en")?,
            title_translated: row.try_get("option_title_translated")?,
        },
    ))
}

async fn insert_event(
    transaction: &Transaction<'_>,
    owner: &Owner<'_>,
    update: &PreferenceUpdate,
    change: ChangeType,
    topic: &TopicId,
    titles: &TopicTitles,
    options: &[OptionShown],
) -> Result<PreferenceEvent> {
    let (ids, titles_en, titles_translated) = option_columns(options);
    let row = transaction
        .query_one(
            include_str!("sql/insert_preference_event.sql"),
            &[
                &owner.tenant_id,
                &Uuid::now_v7(),
                &owner.widget_id,
                &owner.user_id,
                &topic.as_ref(),
                &(change.number() as i16),
                &(update.author.number() as i16),
                &update.author.key_id(),
                &update.language.as_ref().map(AsRef::<str>::as_ref),
                &titles.en,
                &titles.translated,
                &ids,
                &titles_en,
                &titles_translated,
            ],
        )
        .await?;
    event_from_row(&row)
}

async fn state_of(
    client: &impl tokio_postgres::GenericClient,
    owner: &Owner<'_>,
    now: SystemTime,
) -> Result<PreferenceState> {
    let rows = client
        .query(
            include_str!("sql/preference_state.sql"),
            &[&owner.tenant_id, &owner.widget_id, &owner.user_id, &now],
        )
        .await?;
    let mut topics: Vec<TopicState> = Vec::new();
    // Rows come ordered by topic, then option.
    for row in &rows {
        let (topic_id, titles, option) = selection_of(row)?;
        let selection = Selection {
            option,
            language: language(row.try_get("language_code")?)?,
            add_time: row.try_get("add_time")?,
            expire_time: row.try_get("expire_time")?,
        };
        match topics.last_mut() {
            Some(topic) if topic.topic_id == topic_id => {
                // The topic's titles as shown with its latest selection.
                if topic
                    .options
                    .iter()
                    .all(|o| o.add_time <= selection.add_time)
                {
                    topic.titles = titles;
                }
                topic.options.push(selection);
            }
            _ => topics.push(TopicState {
                topic_id,
                titles,
                options: vec![selection],
            }),
        }
    }
    Ok(PreferenceState {
        widget_id: WidgetId::parse(owner.widget_id.to_string()).map_err(corrupt)?,
        user_id: UserId::parse(owner.user_id.to_string()).map_err(corrupt)?,
        topics,
    })
}

fn language(value: Option<String>) -> Result<Option<LanguageTag>> {
    value.map(LanguageTag::parse).transpose().map_err(corrupt)
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

fn event_from_row(row: &Row) -> Result<PreferenceEvent> {
    let ids: Vec<String> = row.try_get("option_ids")?;
    let titles_en: Vec<String> = row.try_get("option_titles_en")?;
    let titles_translated: Vec<String> = row.try_get("option_titles_translated")?;
    if ids.len() != titles_en.len() || ids.len() != titles_translated.len() {
        return Err(corrupt("option arrays of different lengths"));
    }
    let options = ids
        .into_iter()
        .zip(titles_en)
        .zip(titles_translated)
        .map(|((id, title_en), title_translated)| {
            Ok(OptionShown {
                id: OptionId::parse(id).map_err(corrupt)?,
                title_en,
                title_translated,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let change: i16 = row.try_get("change_type")?;
    let author: i16 = row.try_get("author_type")?;
    Ok(PreferenceEvent {
        id: row.try_get("event_id")?,
        widget_id: WidgetId::parse(row.try_get("widget_id")?).map_err(corrupt)?,
        user_id: UserId::parse(row.try_get("user_id")?).map_err(corrupt)?,
        topic_id: TopicId::parse(row.try_get("topic_id")?).map_err(corrupt)?,
        change: ChangeType::from_number(change.into()).ok_or_else(|| corrupt("change_type"))?,
        author: Author::from_stored(author.into(), row.try_get("author_key_id")?)
            .ok_or_else(|| corrupt("author"))?,
        language: language(row.try_get("language_code")?)?,
        topic_titles: TopicTitles {
            en: row.try_get("topic_title_en")?,
            translated: row.try_get("topic_title_translated")?,
        },
        options,
        time: row.try_get("event_time")?,
    })
}
