//! consent.v1.ConsentService.

use std::time::Duration;

use tonic::{Request, Response, Status};

use super::{
    Authenticator, Error, convert,
    paging::{ExportStream, export_stream, page_tokens},
    proto::{self, consent_service_server::ConsentService},
};
use crate::{
    domain::{auth::Scope, consent::ConsentDecision, erasure::AuditKey},
    store::Store,
};

/// Records per export message.
pub const EXPORT_CHUNK_RECORDS: usize = 1000;

#[derive(Clone)]
pub struct ConsentApi {
    store: Store,
    auth: Authenticator,
    audit_key: AuditKey,
    consent_lifetime: Duration,
}

impl ConsentApi {
    pub fn new(store: Store, audit_key: AuditKey, consent_lifetime: Duration) -> Self {
        Self {
            auth: Authenticator::new(store.clone()),
            store,
            audit_key,
            consent_lifetime,
        }
    }
}

#[tonic::async_trait]
impl ConsentService for ConsentApi {
    #[tracing::instrument(name = "RecordConsent", skip_all, fields(tenant_id))]
    async fn record_consent(
        &self,
        request: Request<proto::RecordConsentRequest>,
    ) -> Result<Response<proto::RecordConsentResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::ConsentWrite).await?;
        let decision = ConsentDecision::try_from(request.into_inner()).map_err(Error::from)?;
        let record = self
            .store
            .record_consent(caller.tenant_id, &decision, self.consent_lifetime)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(proto::RecordConsentResponse {
            record: Some(record.into()),
        }))
    }

    #[tracing::instrument(name = "GetConsentStatus", skip_all, fields(tenant_id))]
    async fn get_consent_status(
        &self,
        request: Request<proto::GetConsentStatusRequest>,
    ) -> Result<Response<proto::GetConsentStatusResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::ConsentRead).await?;
        let (site_id, subject_id) =
            convert::status_request(request.into_inner()).map_err(Error::from)?;
        let record = self
            .store
            .consent_status(caller.tenant_id, &site_id, &subject_id)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(proto::GetConsentStatusResponse {
            record: Some(record.into()),
        }))
    }

    #[tracing::instrument(name = "ListConsents", skip_all, fields(tenant_id))]
    async fn list_consents(
        &self,
        request: Request<proto::ListConsentsRequest>,
    ) -> Result<Response<proto::ListConsentsResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::ConsentRead).await?;
        let (filter, after, page_size) =
            convert::list_request(request.into_inner()).map_err(Error::from)?;
        let page = self
            .store
            .list_consents(caller.tenant_id, &filter, after, page_size.get())
            .await
            .map_err(Error::from)?;
        let (next_page_token, resume_page_token) = page_tokens(&page, &filter);
        Ok(Response::new(proto::ListConsentsResponse {
            records: page.items.into_iter().map(Into::into).collect(),
            next_page_token,
            resume_page_token,
        }))
    }

    type ExportConsentsStream = ExportStream<proto::ExportConsentsResponse>;

    #[tracing::instrument(name = "ExportConsents", skip_all, fields(tenant_id))]
    async fn export_consents(
        &self,
        request: Request<proto::ExportConsentsRequest>,
    ) -> Result<Response<Self::ExportConsentsStream>, Status> {
        let caller = self.auth.authorize(&request, Scope::ConsentExport).await?;
        let filter = convert::export_request(request.into_inner()).map_err(Error::from)?;
        let chunks = self
            .store
            .export_consents(caller.tenant_id, &filter, EXPORT_CHUNK_RECORDS);
        Ok(Response::new(export_stream(chunks, |records| {
            proto::ExportConsentsResponse {
                records: records.into_iter().map(Into::into).collect(),
            }
        })))
    }

    #[tracing::instrument(name = "EraseConsents", skip_all, fields(tenant_id))]
    async fn erase_consents(
        &self,
        request: Request<proto::EraseConsentsRequest>,
    ) -> Result<Response<proto::EraseConsentsResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::ConsentErase).await?;
        let erase = convert::erase_request(request.into_inner()).map_err(Error::from)?;
        let erasure = self
            .store
            .erase_consents(&caller, &erase, &self.audit_key)
            .await
            .map_err(Error::from)?;
        tracing::info!(erased_count = erasure.erased_count, audit_id = %erasure.audit_id, "erased consents");
        Ok(Response::new(proto::EraseConsentsResponse {
            erased_count: erasure.erased_count,
            audit_id: erasure.audit_id.to_string(),
        }))
    }
}
