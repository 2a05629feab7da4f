//! consent.v1.PreferenceService.

use std::sync::Arc;

use prost::Message;
use tonic::{Request, Response, Status};

use super::{
    ApiContext, Authenticator, Error,
    consent::EXPORT_CHUNK_RECORDS,
    convert::{list_command, update_preferences, update_response},
    paging::{ExportStream, export_stream, page_tokens, resume_token},
    proto::{self, preference_service_server::PreferenceService},
};
use crate::{
    domain::{
        auth::Scope,
        command::{
            ErasePreferences, ExportPreferenceHistory, GetPreferences, ListPreferenceHistory,
        },
        page::PageTokens,
        time::as_of_or_now,
    },
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
        let caller = self.auth.authorize(&request, Scope::PreferenceRead).await?;
        let query = GetPreferences::try_from(request.into_inner())?;
        let now = (self.context.clock)();
        let (tenant_id, widget_id, user_id) = (caller.tenant_id, &query.widget_id, &query.user_id);
        let state = match query.as_of {
            None => {
                self.store
                    .preference_state(tenant_id, widget_id, user_id, now)
                    .await
            }
            Some(_) => {
                let as_of = as_of_or_now(query.as_of, now)?;
                self.store
                    .preference_state_as_of(tenant_id, widget_id, user_id, as_of)
                    .await
            }
        }?;
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
        let tokens = PageTokens::new(&self.context.audit_key, caller.tenant_id);
        let ListPreferenceHistory {
            filter,
            after,
            page_size,
        } = list_command(request.into_inner(), &tokens)?;
        let page = self
            .store
            .list_preference_history(caller.tenant_id, &filter, after, page_size.get())
            .await?;
        let (next_page_token, resume_page_token) = page_tokens(&page, &filter, &tokens);
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
        let tokens = PageTokens::new(&self.context.audit_key, caller.tenant_id);
        let export: ExportPreferenceHistory = list_command(request.into_inner(), &tokens)?;
        let chunks = self
            .store
            .export_preference_history(&caller, &export.filter, export.after, EXPORT_CHUNK_RECORDS)
            .await?;
        let filter = export.filter;
        Ok(Response::new(export_stream(chunks, move |events| {
            proto::ExportPreferenceHistoryResponse {
                resume_page_token: resume_token(events.last().map(event_cursor), &filter, &tokens),
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
        let erase = ErasePreferences::try_from(request.into_inner())?;
        let (erased_selections, erased_events, erasure) = self
            .store
            .erase_preferences(
                &caller,
                erase.widget_id.as_ref(),
                &erase.user_id,
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
