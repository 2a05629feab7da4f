//! Preference selections and their history, written together.

use std::{collections::HashSet, time::SystemTime};

use deadpool_postgres::{GenericClient, Transaction};
use uuid::Uuid;

use super::{
    Error, Result, Store,
    audit::{ErasedIdentifiers, Erasure, mark_writer, record_erasure},
    preference_history::{insert_event, option_columns},
    row::{StoredRow, micros},
    run,
    stored::{StoredEnum, author_type_to_db},
    tlog,
};
use crate::domain::{
    audit::AuditAction,
    auth::{Caller, Scope},
    erasure::AuditKey,
    ids::{OptionId, TopicId, UserId, WidgetId},
    preference::{
        Author, Change, ChangeType, OptionShown, PreferenceState, PreferenceUpdate, Selection,
        TopicTitles, UpdateOutcome,
        effect::{self, StoredOption},
    },
    time::Reading,
    tlog::LeafKind,
    web::LanguageTag,
};

const SELECTIONS: &str = "preference_selections";

/// The kind under which a stored response names its user, keyed (see
/// [`AuditKey::digest`]): erasure finds the responses without any table
/// holding the raw id for it. Another kind than the audit trail's, so the
/// two digests of one user never match.
const RESPONSE_USER: &str = "preference_request.user_id";

/// The answer to a write that carries a request id: done now, or the
/// encoded response of the first call with that id.
pub enum Idempotent<T> {
    Fresh(T),
    Replayed(Vec<u8>),
}

/// One user on one widget: the key of every statement of an update.
struct Owner<'a> {
    tenant_id: Uuid,
    widget: &'a WidgetId,
    user: &'a UserId,
}

impl<'a> Owner<'a> {
    fn widget_id(&self) -> &'a str {
        self.widget.as_ref()
    }

    fn user_id(&self) -> &'a str {
        self.user.as_ref()
    }
}

impl Store {
    /// Applies `update` and writes its events in one transaction. With a
    /// request id, the response built by `encode` is kept for retries, which
    /// get it back instead of applying the changes again, until the id is
    /// forgotten (see [`Store::forget_request_ids`]). The response is filed
    /// under the user's digest by `audit_key`, for erasure.
    pub async fn update_preferences(
        &self,
        tenant_id: Uuid,
        update: &PreferenceUpdate,
        now: SystemTime,
        audit_key: &AuditKey,
        encode: impl FnOnce(&UpdateOutcome) -> Vec<u8>,
    ) -> Result<Idempotent<UpdateOutcome>> {
        let mut client = self.connection().await?;
        let transaction = client.transaction().await?;
        mark_writer(&transaction).await?;
        if let Some(request_id) = &update.request_id {
            let request_id = request_id.as_ref();
            let user_digest = audit_key
                .digest(RESPONSE_USER, update.user_id.as_ref())
                .to_vec();
            let claimed = run::query_opt(
                &transaction,
                include_str!("sql/claim_preference_request.sql"),
                &[
                    &tenant_id,
                    &request_id,
                    &update.widget_id.as_ref(),
                    &user_digest,
                ],
            )
            .await?
            .is_some();
            if !claimed {
                let row = run::query_one(
                    &transaction,
                    include_str!("sql/preference_response.sql"),
                    &[&tenant_id, &request_id],
                )
                .await?;
                let response: Option<Vec<u8>> =
                    StoredRow::of("preference_requests", &row).get("response")?;
                return response.map(Idempotent::Replayed).ok_or_else(|| {
                    Error::Internal("claimed request id without a response".into())
                });
            }
        }
        let owner = Owner {
            tenant_id,
            widget: &update.widget_id,
            user: &update.user_id,
        };
        // A selection past its expire time is gone for this user even if the
        // worker has not run yet: expire it here, with its event, first.
        expire_due(&transaction, now, i64::MAX, Some(&owner)).await?;
        let mut events = Vec::new();
        let mut unchanged = Vec::new();
        for (change_index, change) in update.changes.iter().enumerate() {
            let done = match change {
                Change::Add {
                    topic,
                    titles,
                    options,
                } => {
                    let added =
                        add_selections(&transaction, &owner, update, topic, titles, options)
                            .await?;
                    effect::added(change_index, topic, titles, options, &added)
                }
                Change::Remove {
                    topic,
                    titles,
                    options,
                } => {
                    let ids: Vec<&str> = options.iter().map(|o| o.id.as_ref()).collect();
                    let removed: HashSet<String> =
                        remove_selections(&transaction, &owner, Some(topic), Some(&ids))
                            .await?
                            .into_iter()
                            .map(|stored| stored.option.id.into_inner())
                            .collect();
                    effect::removed(change_index, topic, titles, options, &removed)
                }
                Change::RemoveAll { topic, titles } => {
                    let removed =
                        remove_selections(&transaction, &owner, topic.as_ref(), None).await?;
                    effect::removed_all(change_index, topic.as_ref(), titles, removed)
                }
            };
            for event in &done.events {
                let key = (owner.tenant_id, owner.widget_id(), owner.user_id());
                events.push(insert_event(&transaction, key, update, event).await?);
            }
            unchanged.extend(done.unchanged);
        }
        let state = state_of(&transaction, &owner, now).await?;
        let outcome = UpdateOutcome {
            state,
            events,
            unchanged,
        };
        if let Some(request_id) = &update.request_id {
            run::execute(
                &transaction,
                include_str!("sql/save_preference_response.sql"),
                &[&tenant_id, &request_id.as_ref(), &encode(&outcome)],
            )
            .await?;
        }
        transaction.commit().await?;
        Ok(Idempotent::Fresh(outcome))
    }

    /// A user's unexpired selections on a widget, now or as of an instant.
    pub async fn preference_state(
        &self,
        tenant_id: Uuid,
        widget_id: &WidgetId,
        user_id: &UserId,
        reading: Reading,
    ) -> Result<PreferenceState> {
        let now = match reading {
            Reading::Now(now) => now,
            Reading::AsOf(as_of) => {
                return self
                    .preference_state_as_of(tenant_id, widget_id, user_id, as_of)
                    .await;
            }
        };
        let owner = Owner {
            tenant_id,
            widget: widget_id,
            user: user_id,
        };
        // One statement reads one snapshot: no transaction around it.
        state_of(&*self.connection().await?, &owner, now).await
    }

    /// Deletes a user's selections, history and stored responses (on one
    /// widget or all) and writes the audit entry, atomically. The count is
    /// selections plus events.
    pub async fn erase_preferences(
        &self,
        caller: &Caller,
        widget_id: Option<&WidgetId>,
        user_id: &UserId,
        audit_key: &AuditKey,
    ) -> Result<(i64, i64, Erasure)> {
        let mut client = self.connection().await?;
        let transaction = client.transaction().await?;
        let widget = widget_id.map(AsRef::<str>::as_ref);
        let row = run::query_one(
            &transaction,
            include_str!("sql/erase_preferences.sql"),
            &[
                &caller.tenant_id,
                &widget,
                &user_id.as_ref(),
                &audit_key.digest(RESPONSE_USER, user_id.as_ref()).to_vec(),
            ],
        )
        .await?;
        let row = StoredRow::of("preference_selections", &row);
        let (selections, events): (i64, i64) =
            (row.get("erased_selections")?, row.get("erased_events")?);
        let event_ids: Vec<Uuid> = row.get("event_ids")?;
        let kind = LeafKind::PreferenceEvent;
        tlog::mark_leaves_erased(&transaction, caller.tenant_id, kind, &event_ids).await?;
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
        let mut client = self.connection().await?;
        // Look before labelling as a writer: a labelled transaction holds
        // back every list page (see consentd_write_watermark), so a worker
        // with nothing to do must not take the label.
        let due = run::query_one(
            &*client,
            include_str!("sql/any_due_selections.sql"),
            &[&now],
        )
        .await?;
        if !StoredRow::of("preference_selections", &due).get::<bool>("due")? {
            return Ok(0);
        }
        let transaction = client.transaction().await?;
        mark_writer(&transaction).await?;
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
        run::execute(
            transaction,
            include_str!("sql/lock_due_selections.sql"),
            &[&owner.tenant_id, &owner.widget_id(), &owner.user_id(), &now],
        )
        .await?;
    }
    let row = run::query_one(
        transaction,
        include_str!("sql/expire_preferences.sql"),
        &[
            &now,
            &batch,
            &ChangeType::Expired.to_db(),
            &author_type_to_db(Author::System),
            &owner.map(|o| o.tenant_id),
            &owner.map(|o| o.widget_id()),
            &owner.map(|o| o.user_id()),
        ],
    )
    .await?;
    StoredRow::of("preference_events", &row).get("expired")
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
    let rows = run::query(
        transaction,
        include_str!("sql/add_selections.sql"),
        &[
            &owner.tenant_id,
            &owner.widget_id(),
            &owner.user_id(),
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
    rows.iter()
        .map(|row| StoredRow::of(SELECTIONS, row).get("option_id"))
        .collect()
}

/// Deletes selections and returns what was deleted, with stored titles.
async fn remove_selections(
    transaction: &Transaction<'_>,
    owner: &Owner<'_>,
    topic: Option<&TopicId>,
    options: Option<&[&str]>,
) -> Result<Vec<StoredOption>> {
    let topic = topic.map(AsRef::<str>::as_ref);
    let rows = run::query(
        transaction,
        include_str!("sql/remove_selections.sql"),
        &[
            &owner.tenant_id,
            &owner.widget_id(),
            &owner.user_id(),
            &topic,
            &options,
        ],
    )
    .await?;
    rows.iter()
        .map(|row| selection_of(&StoredRow::of(SELECTIONS, row)))
        .collect()
}

/// The topic, its titles and the option of a `preference_selections` row.
fn selection_of(row: &StoredRow) -> Result<StoredOption> {
    Ok(StoredOption {
        topic: row.parse("topic_id", TopicId::parse)?,
        titles: TopicTitles {
            en: row.get("topic_title_en")?,
            translated: row.get("topic_title_translated")?,
        },
        option: OptionShown {
            id: row.parse("option_id", OptionId::parse)?,
            title_en: row.get("option_title_en")?,
            title_translated: row.get("option_title_translated")?,
        },
    })
}

async fn state_of(
    client: &impl GenericClient,
    owner: &Owner<'_>,
    now: SystemTime,
) -> Result<PreferenceState> {
    let rows = run::query(
        client,
        include_str!("sql/preference_state.sql"),
        &[&owner.tenant_id, &owner.widget_id(), &owner.user_id(), &now],
    )
    .await?;
    // Rows come ordered by topic, then option.
    let selections = rows
        .iter()
        .map(|row| {
            let row = StoredRow::of(SELECTIONS, row);
            let stored = selection_of(&row)?;
            let selection = Selection {
                option: stored.option.clone(),
                language: row.parse_opt("language_code", LanguageTag::parse)?,
                add_time: row.get("add_time")?,
                expire_time: row.get("expire_time")?,
            };
            Ok((stored, selection))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(PreferenceState {
        widget_id: owner.widget.clone(),
        user_id: owner.user.clone(),
        topics: effect::topics(selections),
    })
}
