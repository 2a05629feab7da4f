//! consent.v1.ConsentService.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{
    ApiContext, Authenticator, Error,
    convert::{in_view, list_command, record_message, timestamp, with_receipt},
    paging::{ExportStream, export_stream, page_tokens, resume_token},
    proof_document,
    proto::{self, consent_service_server::ConsentService},
};
use crate::{
    domain::{
        auth::Scope,
        command::{
            ExportConsents, GetConsentProof, GetConsentStatus, GetNotice, ListConsents, PutNotice,
        },
        consent::{ConsentDecision, NoticeHash},
        erasure::EraseRequest,
        page::PageTokens,
        time::as_of_or_now,
    },
    store::{ConsentWriter, Store, consent_cursor},
};

/// Records per export message.
pub const EXPORT_CHUNK_RECORDS: usize = 1000;

#[derive(Clone)]
pub struct ConsentApi {
    pub(super) store: Store,
    writer: ConsentWriter,
    pub(super) auth: Authenticator,
    context: Arc<ApiContext>,
}

impl ConsentApi {
    pub fn new(
        store: Store,
        writer: ConsentWriter,
        auth: Authenticator,
        context: Arc<ApiContext>,
    ) -> Self {
        Self {
            auth,
            store,
            writer,
            context,
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
        let decision = ConsentDecision::try_from(request.into_inner())?;
        let recorded = self.writer.record(caller.tenant_id, decision).await?;
        Ok(Response::new(proto::RecordConsentResponse {
            record: Some(record_message(
                recorded.record,
                recorded.receipt,
                caller.disclosure(),
            )),
        }))
    }

    #[tracing::instrument(name = "GetConsentStatus", skip_all, fields(tenant_id))]
    async fn get_consent_status(
        &self,
        request: Request<proto::GetConsentStatusRequest>,
    ) -> Result<Response<proto::GetConsentStatusResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::ConsentRead).await?;
        let query = GetConsentStatus::try_from(request.into_inner())?;
        let now = (self.context.clock)();
        let (tenant_id, site_id, subject_id) =
            (caller.tenant_id, &query.site_id, &query.subject_id);
        let record = match query.as_of {
            None => {
                self.store
                    .consent_status(tenant_id, site_id, subject_id, now)
                    .await
            }
            Some(_) => {
                let as_of = as_of_or_now(query.as_of, now)?;
                self.store
                    .consent_status_as_of(tenant_id, site_id, subject_id, as_of)
                    .await
            }
        }?;
        Ok(Response::new(proto::GetConsentStatusResponse {
            record: Some(with_receipt(record, &caller)),
        }))
    }

    #[tracing::instrument(name = "ListConsents", skip_all, fields(tenant_id))]
    async fn list_consents(
        &self,
        request: Request<proto::ListConsentsRequest>,
    ) -> Result<Response<proto::ListConsentsResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::ConsentRead).await?;
        let tokens = PageTokens::new(&self.context.audit_key, caller.tenant_id);
        let ListConsents {
            filter,
            after,
            page_size,
            view,
        } = list_command(request.into_inner(), &tokens)?;
        let page = self
            .store
            .list_consents(caller.tenant_id, &filter, after, page_size.get())
            .await?;
        let (next_page_token, resume_page_token) = page_tokens(&page, &filter, &tokens);
        Ok(Response::new(proto::ListConsentsResponse {
            records: page
                .items
                .into_iter()
                .map(|r| in_view(r, view, &caller))
                .collect(),
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
        let tokens = PageTokens::new(&self.context.audit_key, caller.tenant_id);
        let export: ExportConsents = list_command(request.into_inner(), &tokens)?;
        let chunks = self
            .store
            .export_consents(&caller, &export.filter, export.after, EXPORT_CHUNK_RECORDS)
            .await?;
        let (view, filter) = (export.view, export.filter);
        Ok(Response::new(export_stream(chunks, move |records| {
            proto::ExportConsentsResponse {
                resume_page_token: resume_token(
                    records.last().map(consent_cursor),
                    &filter,
                    &tokens,
                ),
                records: records
                    .into_iter()
                    .map(|r| in_view(r, view, &caller))
                    .collect(),
            }
        })))
    }

    #[tracing::instrument(name = "EraseConsents", skip_all, fields(tenant_id))]
    async fn erase_consents(
        &self,
        request: Request<proto::EraseConsentsRequest>,
    ) -> Result<Response<proto::EraseConsentsResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::ConsentErase).await?;
        let erase = EraseRequest::try_from(request.into_inner())?;
        let erasure = self
            .store
            .erase_consents(&caller, &erase, &self.context.audit_key)
            .await?;
        tracing::info!(erased_count = erasure.erased_count, audit_id = %erasure.audit_id, "erased consents");
        Ok(Response::new(proto::EraseConsentsResponse {
            erased_count: erasure.erased_count,
            audit_id: erasure.audit_id.to_string(),
        }))
    }

    #[tracing::instrument(name = "GetConsentProof", skip_all, fields(tenant_id))]
    async fn get_consent_proof(
        &self,
        request: Request<proto::GetConsentProofRequest>,
    ) -> Result<Response<proto::GetConsentProofResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::ConsentRead).await?;
        let proof = GetConsentProof::try_from(request.into_inner())?;
        let (record, notice_on_file) = self
            .store
            .consent_proof(caller.tenant_id, proof.record_id)
            .await?;
        let mut response = proto::GetConsentProofResponse {
            notice_sha256: record
                .decision
                .notice_sha256
                .map(NoticeHash::to_hex)
                .unwrap_or_default(),
            notice_on_file,
            record: Some(with_receipt(record, &caller)),
            document_pdf: Vec::new(),
        };
        if proof.include_document {
            let inclusion = self
                .logged_inclusion(caller.tenant_id, proof.record_id)
                .await?;
            response.document_pdf = proof_document::render(&response, inclusion.as_ref())
                .map_err(|error| Error::from(crate::store::Error::Internal(error.into())))?;
        }
        Ok(Response::new(response))
    }

    #[tracing::instrument(name = "PutNotice", skip_all, fields(tenant_id))]
    async fn put_notice(
        &self,
        request: Request<proto::PutNoticeRequest>,
    ) -> Result<Response<proto::PutNoticeResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::ConsentWrite).await?;
        let notice = PutNotice::try_from(request.into_inner())?;
        let created = self
            .store
            .put_notice(caller.tenant_id, &notice.sha256, notice.text.as_ref())
            .await?;
        Ok(Response::new(proto::PutNoticeResponse {
            sha256: notice.sha256.to_hex(),
            created,
        }))
    }

    #[tracing::instrument(name = "GetNotice", skip_all, fields(tenant_id))]
    async fn get_notice(
        &self,
        request: Request<proto::GetNoticeRequest>,
    ) -> Result<Response<proto::GetNoticeResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::ConsentRead).await?;
        let notice = GetNotice::try_from(request.into_inner())?;
        let (text, stored) = self.store.notice(caller.tenant_id, &notice.sha256).await?;
        Ok(Response::new(proto::GetNoticeResponse {
            text,
            create_time: Some(timestamp(stored)),
        }))
    }

    #[tracing::instrument(name = "ListSigningKeys", skip_all, fields(tenant_id))]
    async fn list_signing_keys(
        &self,
        request: Request<proto::ListSigningKeysRequest>,
    ) -> Result<Response<proto::ListSigningKeysResponse>, Status> {
        self.auth.authorize(&request, Scope::ConsentRead).await?;
        let keys = self
            .context
            .sealing
            .signing
            .public_keys()
            .into_iter()
            .map(|key| proto::SigningKey {
                key_id: key.key_id,
                algorithm: "Ed25519".into(),
                public_key: key.public_key.to_vec(),
                active: key.active,
            })
            .collect();
        Ok(Response::new(proto::ListSigningKeysResponse { keys }))
    }

    #[tracing::instrument(name = "GetCheckpoint", skip_all, fields(tenant_id))]
    async fn get_checkpoint(
        &self,
        request: Request<proto::GetCheckpointRequest>,
    ) -> Result<Response<proto::GetCheckpointResponse>, Status> {
        self.log_checkpoint(request).await
    }

    #[tracing::instrument(name = "GetInclusionProof", skip_all, fields(tenant_id))]
    async fn get_inclusion_proof(
        &self,
        request: Request<proto::GetInclusionProofRequest>,
    ) -> Result<Response<proto::GetInclusionProofResponse>, Status> {
        self.log_inclusion_proof(request).await
    }

    #[tracing::instrument(name = "GetConsistencyProof", skip_all, fields(tenant_id))]
    async fn get_consistency_proof(
        &self,
        request: Request<proto::GetConsistencyProofRequest>,
    ) -> Result<Response<proto::GetConsistencyProofResponse>, Status> {
        self.log_consistency_proof(request).await
    }
}
