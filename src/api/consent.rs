//! consent.v1.ConsentService.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{
    ApiContext, Authenticator,
    convert::{in_view, record_message, timestamp, with_receipt},
    handler::Rpc,
    paging::{ExportStream, export_stream, page_tokens, resume_token},
    proof_document,
    proto::{self, consent_service_server::ConsentService},
};
use crate::{
    domain::{auth::Scope, consent::NoticeHash, time::Reading},
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
        self.unary(request, Scope::ConsentWrite, async |caller, decision| {
            let recorded = self.writer.record(caller.tenant_id, decision).await?;
            let (record, receipt) = (recorded.record, recorded.receipt);
            Ok(proto::RecordConsentResponse {
                record: Some(record_message(record, receipt, caller.disclosure())),
            })
        })
        .await
    }

    #[tracing::instrument(name = "GetConsentStatus", skip_all, fields(tenant_id))]
    async fn get_consent_status(
        &self,
        request: Request<proto::GetConsentStatusRequest>,
    ) -> Result<Response<proto::GetConsentStatusResponse>, Status> {
        self.unary(request, Scope::ConsentRead, async |caller, query| {
            let reading = Reading::of(query.as_of, (self.context.clock)())?;
            let (site_id, subject_id) = (&query.site_id, &query.subject_id);
            let record = self
                .store
                .consent_status(caller.tenant_id, site_id, subject_id, reading)
                .await?;
            Ok(proto::GetConsentStatusResponse {
                record: Some(with_receipt(record, &caller)),
            })
        })
        .await
    }

    #[tracing::instrument(name = "ListConsents", skip_all, fields(tenant_id))]
    async fn list_consents(
        &self,
        request: Request<proto::ListConsentsRequest>,
    ) -> Result<Response<proto::ListConsentsResponse>, Status> {
        self.paged(request, Scope::ConsentRead, async |caller, tokens, list| {
            let (filter, size) = (&list.filter, list.page_size.get());
            let page = self
                .store
                .list_consents(caller.tenant_id, filter, list.after, size)
                .await?;
            let (next_page_token, resume_page_token) = page_tokens(&page, filter, &tokens);
            let in_view = |r| in_view(r, list.view, &caller);
            Ok(proto::ListConsentsResponse {
                records: page.items.into_iter().map(in_view).collect(),
                next_page_token,
                resume_page_token,
            })
        })
        .await
    }

    type ExportConsentsStream = ExportStream<proto::ExportConsentsResponse>;

    #[tracing::instrument(name = "ExportConsents", skip_all, fields(tenant_id))]
    async fn export_consents(
        &self,
        request: Request<proto::ExportConsentsRequest>,
    ) -> Result<Response<Self::ExportConsentsStream>, Status> {
        self.paged(
            request,
            Scope::ConsentExport,
            async |caller, tokens, export| {
                let chunks = self
                    .store
                    .export_consents(&caller, &export.filter, export.after, EXPORT_CHUNK_RECORDS)
                    .await?;
                let (view, filter) = (export.view, export.filter);
                Ok(export_stream(chunks, move |records| {
                    let last = records.last().map(consent_cursor);
                    proto::ExportConsentsResponse {
                        resume_page_token: resume_token(last, &filter, &tokens),
                        records: records
                            .into_iter()
                            .map(|r| in_view(r, view, &caller))
                            .collect(),
                    }
                }))
            },
        )
        .await
    }

    #[tracing::instrument(name = "EraseConsents", skip_all, fields(tenant_id))]
    async fn erase_consents(
        &self,
        request: Request<proto::EraseConsentsRequest>,
    ) -> Result<Response<proto::EraseConsentsResponse>, Status> {
        self.unary(request, Scope::ConsentErase, async |caller, erase| {
            let key = &self.context.audit_key;
            let erasure = self.store.erase_consents(&caller, &erase, key).await?;
            tracing::info!(erased_count = erasure.erased_count, audit_id = %erasure.audit_id, "erased consents");
            Ok(proto::EraseConsentsResponse {
                erased_count: erasure.erased_count,
                audit_id: erasure.audit_id.to_string(),
            })
        })
        .await
    }

    #[tracing::instrument(name = "GetConsentProof", skip_all, fields(tenant_id))]
    async fn get_consent_proof(
        &self,
        request: Request<proto::GetConsentProofRequest>,
    ) -> Result<Response<proto::GetConsentProofResponse>, Status> {
        self.unary(request, Scope::ConsentRead, async |caller, proof| {
            let (tenant_id, record_id) = (caller.tenant_id, proof.record_id);
            let (record, notice_on_file) = self.store.consent_proof(tenant_id, record_id).await?;
            let notice = record.decision.notice_sha256;
            let mut response = proto::GetConsentProofResponse {
                notice_sha256: notice.map(NoticeHash::to_hex).unwrap_or_default(),
                notice_on_file,
                record: Some(with_receipt(record, &caller)),
                document_pdf: Vec::new(),
            };
            if proof.include_document {
                let inclusion = self.logged_inclusion(tenant_id, record_id).await?;
                response.document_pdf = proof_document::render(&response, inclusion.as_ref())
                    .map_err(|error| crate::store::Error::Internal(error.into()))?;
            }
            Ok(response)
        })
        .await
    }

    #[tracing::instrument(name = "PutNotice", skip_all, fields(tenant_id))]
    async fn put_notice(
        &self,
        request: Request<proto::PutNoticeRequest>,
    ) -> Result<Response<proto::PutNoticeResponse>, Status> {
        self.unary(request, Scope::ConsentWrite, async |caller, notice| {
            let (sha256, text) = (notice.sha256, notice.text.as_ref());
            let created = self
                .store
                .put_notice(caller.tenant_id, &sha256, text)
                .await?;
            Ok(proto::PutNoticeResponse {
                sha256: sha256.to_hex(),
                created,
            })
        })
        .await
    }

    #[tracing::instrument(name = "GetNotice", skip_all, fields(tenant_id))]
    async fn get_notice(
        &self,
        request: Request<proto::GetNoticeRequest>,
    ) -> Result<Response<proto::GetNoticeResponse>, Status> {
        self.unary(request, Scope::ConsentRead, async |caller, notice| {
            let (text, stored) = self.store.notice(caller.tenant_id, &notice.sha256).await?;
            Ok(proto::GetNoticeResponse {
                text,
                create_time: Some(timestamp(stored)),
            })
        })
        .await
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

impl Rpc for ConsentApi {
    fn parts(&self) -> (&Authenticator, &ApiContext) {
        (&self.auth, &self.context)
    }
}
