//! consent.v1.PreferenceService.

use std::sync::Arc;

use prost::Message;
use tonic::{Request, Response, Status};

use super::{
    ApiContext, Authenticator, Error,
    consent::EXPORT_CHUNK_RECORDS,
    convert::{update_preferences, update_response},
    handler::Rpc,
    paging::{ExportStream, export_stream, page_tokens, resume_token},
    proto::{self, preference_service_server::PreferenceService},
};
use crate::{
    domain::{auth::Scope, time::Reading},
    store::{Idempotent, Store, event_cursor},
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
        let update = update_preferences(request.into_inner(), caller.key_id)?;
        let outcome = self
            .store
            .update_preferences(
                caller.tenant_id,
                &update,
                (self.context.clock)(),
                &self.context.audit_key,
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
        self.unary(request, Scope::PreferenceRead, async |caller, query| {
            let reading = Reading::of(query.as_of, (self.context.clock)())?;
            let (widget_id, user_id) = (&query.widget_id, &query.user_id);
            let state = self
                .store
                .preference_state(caller.tenant_id, widget_id, user_id, reading)
                .await?;
            Ok(proto::GetPreferencesResponse {
                state: Some(state.into()),
            })
        })
        .await
    }

    #[tracing::instrument(name = "ListPreferenceHistory", skip_all, fields(tenant_id))]
    async fn list_preference_history(
        &self,
        request: Request<proto::ListPreferenceHistoryRequest>,
    ) -> Result<Response<proto::ListPreferenceHistoryResponse>, Status> {
        self.paged(
            request,
            Scope::PreferenceRead,
            async |caller, tokens, list| {
                let (filter, size) = (&list.filter, list.page_size.get());
                let page = self
                    .store
                    .list_preference_history(caller.tenant_id, filter, list.after, size)
                    .await?;
                let (next_page_token, resume_page_token) = page_tokens(&page, filter, &tokens);
                Ok(proto::ListPreferenceHistoryResponse {
                    events: page.items.into_iter().map(Into::into).collect(),
                    next_page_token,
                    resume_page_token,
                })
            },
        )
        .await
    }

    type ExportPreferenceHistoryStream = ExportStream<proto::ExportPreferenceHistoryResponse>;

    #[tracing::instrument(name = "ExportPreferenceHistory", skip_all, fields(tenant_id))]
    async fn export_preference_history(
        &self,
        request: Request<proto::ExportPreferenceHistoryRequest>,
    ) -> Result<Response<Self::ExportPreferenceHistoryStream>, Status> {
        self.paged(
            request,
            Scope::PreferenceExport,
            async |caller, tokens, export| {
                let (filter, after) = (export.filter, export.after);
                let chunks = self
                    .store
                    .export_preference_history(&caller, &filter, after, EXPORT_CHUNK_RECORDS)
                    .await?;
                Ok(export_stream(chunks, move |events| {
                    let last = events.last().map(event_cursor);
                    proto::ExportPreferenceHistoryResponse {
                        resume_page_token: resume_token(last, &filter, &tokens),
                        events: events.into_iter().map(Into::into).collect(),
                    }
                }))
            },
        )
        .await
    }

    #[tracing::instrument(name = "ErasePreferences", skip_all, fields(tenant_id))]
    async fn erase_preferences(
        &self,
        request: Request<proto::ErasePreferencesRequest>,
    ) -> Result<Response<proto::ErasePreferencesResponse>, Status> {
        self.unary(request, Scope::PreferenceErase, async |caller, erase| {
            let (widget_id, key) = (erase.widget_id.as_ref(), &self.context.audit_key);
            let (erased_selections, erased_events, erasure) = self
                .store
                .erase_preferences(&caller, widget_id, &erase.user_id, key)
                .await?;
            tracing::info!(erased_selections, erased_events, audit_id = %erasure.audit_id, "erased preferences");
            Ok(proto::ErasePreferencesResponse {
                erased_selections,
                erased_events,
                audit_id: erasure.audit_id.to_string(),
            })
        })
        .await
    }
}

impl Rpc for PreferenceApi {
    fn parts(&self) -> (&Authenticator, &ApiContext) {
        (&self.auth, &self.context)
    }
}
