//! consent.v1.PreferenceService.

use std::{collections::HashSet, sync::Arc};

use prost::Message;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{
    ApiContext, Authenticator, Error,
    consent::EXPORT_CHUNK_RECORDS,
    convert::{
        duration,
        enums::{self, ChangeKind},
        present, required, text, time, timestamp,
    },
    paging::{ExportStream, export_stream, page_tokens},
    proto::{self, preference_service_server::PreferenceService},
};
use crate::{
    domain::{
        auth::Scope,
        ids::{OptionId, RequestId, TopicId, UserId, WidgetId},
        page::{Cursor, PageSize},
        preference::{
            Change, HistoryFilter, MAX_CHANGES, MAX_OPTIONS_PER_CHANGE, OptionShown,
            PreferenceEvent, PreferenceState, PreferenceUpdate, TopicTitles, Unchanged,
            UpdateOutcome, title,
        },
        site::lifetime,
        validation::{ValidationError, Violations},
        web::LanguageTag,
    },
    store::{Idempotent, Store},
};

#[derive(Clone)]
pub struct PreferenceApi {
    store: Store,
    auth: Authenticator,
    context: Arc<ApiContext>,
}

impl PreferenceApi {
    pub fn new(store: Store, auth: Authenticator, context: Arc<ApiContext>) -> Self {
        Self {
            auth,
            store,
            context,
        }
    }
}

#[tonic::async_trait]
impl PreferenceService for PreferenceApi {
    #[tracing::instrument(name = "UpdatePreferences", skip_all, fields(tenant_id))]
    async fn update_preferences(
        &self,
        request: Request<proto::UpdatePreferencesRequest>,
    ) -> Result<Response<proto::UpdatePreferencesResponse>, Status> {
        let caller = self
            .auth
            .authorize(&request, Scope::PreferenceWrite)
            .await?;
        let update = update_request(request.into_inner(), caller.key_id)?;
        let outcome = self
            .store
            .update_preferences(
                caller.tenant_id,
                &update,
                (self.context.clock)(),
                |outcome| update_response(outcome.clone()).encode_to_vec(),
            )
            .await?;
        let response = match outcome {
            Idempotent::Fresh(outcome) => update_response(outcome),
            Idempotent::Replayed(encoded) => {
                proto::UpdatePreferencesResponse::decode(encoded.as_slice())
                    .map_err(|error| Error::from(crate::store::Error::Internal(error.into())))?
            }
        };
        Ok(Response::new(response))
    }

    #[tracing::instrument(name = "GetPreferences", skip_all, fields(tenant_id))]
    async fn get_preferences(
        &self,
        request: Request<proto::GetPreferencesRequest>,
    ) -> Result<Response<proto::GetPreferencesResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::PreferenceRead).await?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let widget_id = v.check("widget_id", required(r.widget_id).and_then(WidgetId::parse));
        let user_id = v.check("user_id", required(r.user_id).and_then(UserId::parse));
        let (widget_id, user_id) =
            v.finish(|| (widget_id.expect("checked"), user_id.expect("checked")))?;
        let state = self
            .store
            .preference_state(
                caller.tenant_id,
                &widget_id,
                &user_id,
                (self.context.clock)(),
            )
            .await?;
        Ok(Response::new(proto::GetPreferencesResponse {
            state: Some(state.into()),
        }))
    }

    #[tracing::instrument(name = "ListPreferenceHistory", skip_all, fields(tenant_id))]
    async fn list_preference_history(
        &self,
        request: Request<proto::ListPreferenceHistoryRequest>,
    ) -> Result<Response<proto::ListPreferenceHistoryResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::PreferenceRead).await?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let user_id = v.check("user_id", required(r.user_id).and_then(UserId::parse));
        let filter = history_filter(r.widget_id, user_id, r.start_time, r.end_time, &mut v);
        let page_size = v.check("page_size", PageSize::parse(r.page_size));
        let after = match (&filter, present(r.page_token)) {
            (Some(filter), Some(token)) => {
                v.check("page_token", Cursor::from_token(&token, filter))
            }
            _ => None,
        };
        let (filter, page_size) =
            v.finish(|| (filter.expect("checked"), page_size.expect("checked")))?;
        let page = self
            .store
            .list_preference_history(caller.tenant_id, &filter, after, page_size.get())
            .await?;
        let (next_page_token, resume_page_token) = page_tokens(&page, &filter);
        Ok(Response::new(proto::ListPreferenceHistoryResponse {
            events: page.items.into_iter().map(Into::into).collect(),
            next_page_token,
            resume_page_token,
        }))
    }

    type ExportPreferenceHistoryStream = ExportStream<proto::ExportPreferenceHistoryResponse>;

    #[tracing::instrument(name = "ExportPreferenceHistory", skip_all, fields(tenant_id))]
    async fn export_preference_history(
        &self,
        request: Request<proto::ExportPreferenceHistoryRequest>,
    ) -> Result<Response<Self::ExportPreferenceHistoryStream>, Status> {
        let caller = self
            .auth
            .authorize(&request, Scope::PreferenceExport)
            .await?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let filter = history_filter(r.widget_id, None, r.start_time, r.end_time, &mut v);
        let filter = v.finish(|| filter.expect("checked"))?;
        let chunks = self
            .store
            .export_preference_history(&caller, &filter, EXPORT_CHUNK_RECORDS);
        Ok(Response::new(export_stream(chunks, |events| {
            proto::ExportPreferenceHistoryResponse {
                events: events.into_iter().map(Into::into).collect(),
            }
        })))
    }

    #[tracing::instrument(name = "ErasePreferences", skip_all, fields(tenant_id))]
    async fn erase_preferences(
        &self,
        request: Request<proto::ErasePreferencesRequest>,
    ) -> Result<Response<proto::ErasePreferencesResponse>, Status> {
        let caller = self
            .auth
            .authorize(&request, Scope::PreferenceErase)
            .await?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let widget_id = v.check_optional("widget_id", present(r.widget_id).map(WidgetId::parse));
        let user_id = v.check("user_id", required(r.user_id).and_then(UserId::parse));
        let user_id = v.finish(|| user_id.expect("checked"))?;
        let (erased_selections, erased_events, erasure) = self
            .store
            .erase_preferences(
                &caller,
                widget_id.as_ref(),
                &user_id,
                &self.context.audit_key,
            )
            .await?;
        tracing::info!(erased_selections, erased_events, audit_id = %erasure.audit_id, "erased preferences");
        Ok(Response::new(proto::ErasePreferencesResponse {
            erased_selections,
            erased_events,
            audit_id: erasure.audit_id.to_string(),
        }))
    }
}

fn history_filter(
    widget_id: String,
    user_id: Option<UserId>,
    start_time: Option<prost_types::Timestamp>,
    end_time: Option<prost_types::Timestamp>,
    v: &mut Violations,
) -> Option<HistoryFilter> {
    let before = v.len();
    let widget_id = v.check("widget_id", required(widget_id).and_then(WidgetId::parse));
    let start_time = v.check_optional("start_time", start_time.map(time));
    let end_time = v.check_optional("end_time", end_time.map(time));
    if let (Some(start), Some(end)) = (start_time, end_time)
        && end <= start
    {
        v.add("end_time", "must be after start_time");
    }
    (v.len() == before).then(|| HistoryFilter {
        widget_id: widget_id.expect("checked"),
        user_id,
        start_time,
        end_time,
    })
}

fn update_request(
    r: proto::UpdatePreferencesRequest,
    key_id: Uuid,
) -> Result<PreferenceUpdate, ValidationError> {
    let mut v = Violations::new();
    let request_id = v.check_optional("request_id", present(r.request_id).map(RequestId::parse));
    let widget_id = v.check("widget_id", required(r.widget_id).and_then(WidgetId::parse));
    let user_id = v.check("user_id", required(r.user_id).and_then(UserId::parse));
    let language = v.check_optional(
        "language_code",
        present(r.language_code).map(LanguageTag::parse),
    );
    let author = v.check("author_type", enums::author(r.author_type, key_id));
    let selection_lifetime = v.check_optional(
        "selection_lifetime",
        r.selection_lifetime.map(|d| duration(d).and_then(lifetime)),
    );
    if r.changes.is_empty() || r.changes.len() > MAX_CHANGES {
        v.add("changes", format!("must hold 1 to {MAX_CHANGES} changes"));
    }
    let mut changes = Vec::with_capacity(r.changes.len());
    // (topic, option) -> whether it was added, to refuse add-and-remove.
    let mut touched: Vec<(String, String, bool)> = Vec::new();
    for (i, change) in r.changes.into_iter().take(MAX_CHANGES).enumerate() {
        if let Some(change) = parse_change(i, change, &mut touched, &mut v) {
            changes.push(change);
        }
    }
    v.finish(|| PreferenceUpdate {
        request_id,
        widget_id: widget_id.expect("checked"),
        user_id: user_id.expect("checked"),
        language,
        changes,
        author: author.expect("checked"),
        selection_lifetime,
    })
}

fn parse_change(
    i: usize,
    change: proto::PreferenceChange,
    touched: &mut Vec<(String, String, bool)>,
    v: &mut Violations,
) -> Option<Change> {
    let before = v.len();
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
    let topic = match kind {
        Some(ChangeKind::RemoveAll) => v.check_optional(
            field("topic_id"),
            present(change.topic_id.clone()).map(TopicId::parse),
        ),
        _ => v.check(
            field("topic_id"),
            required(change.topic_id.clone()).and_then(TopicId::parse),
        ),
    };
    let mut options = Vec::with_capacity(change.options.len());
    match kind {
        Some(ChangeKind::RemoveAll) if !change.options.is_empty() => {
            v.add(
                field("options"),
                "must be empty for PREFERENCE_CHANGE_TYPE_REMOVED_ALL",
            );
        }
        Some(ChangeKind::Add | ChangeKind::Remove)
            if change.options.is_empty() || change.options.len() > MAX_OPTIONS_PER_CHANGE =>
        {
            v.add(
                field("options"),
                format!("must hold 1 to {MAX_OPTIONS_PER_CHANGE} options"),
            );
        }
        _ => {}
    }
    let added = kind == Some(ChangeKind::Add);
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
        let (Some(id), Some(title_en), Some(title_translated)) = (id, title_en, title_translated)
        else {
            continue;
        };
        if !seen.insert(id.clone()) {
            v.add(option_field("option_id"), "listed twice in this change");
        }
        let key = (change.topic_id.clone(), id.as_ref().to_string());
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
    if v.len() > before {
        return None;
    }
    Some(match kind.expect("checked") {
        ChangeKind::Add => Change::Add {
            topic: topic.expect("checked"),
            titles,
            options,
        },
        ChangeKind::Remove => Change::Remove {
            topic: topic.expect("checked"),
            titles,
            options,
        },
        ChangeKind::RemoveAll => Change::RemoveAll { topic, titles },
    })
}

fn update_response(outcome: UpdateOutcome) -> proto::UpdatePreferencesResponse {
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
