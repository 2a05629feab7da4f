//! consent.v1.ConsentService.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{
    ApiContext, Authenticator, convert,
    convert::{in_view, record_message, with_receipt},
    convert::{present, required, timestamp},
    paging::{ExportStream, export_stream, page_tokens},
    proto::{self, consent_service_server::ConsentService},
};
use crate::{
    domain::{
        auth::Scope,
        consent::{ConsentDecision, NoticeHash},
        validation::Violations,
    },
    store::{ConsentWriter, Store},
};

/// Records per export message.
pub const EXPORT_CHUNK_RECORDS: usize = 1000;

#[derive(Clone)]
pub struct ConsentApi {
    store: Store,
    writer: ConsentWriter,
    auth: Authenticator,
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

/// The largest notice text PutNotice takes.
pub const MAX_NOTICE_BYTES: usize = 1 << 20;

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
            record: Some(record_message(recorded.record, recorded.receipt)),
        }))
    }

    #[tracing::instrument(name = "GetConsentStatus", skip_all, fields(tenant_id))]
    async fn get_consent_status(
        &self,
        request: Request<proto::GetConsentStatusRequest>,
    ) -> Result<Response<proto::GetConsentStatusResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::ConsentRead).await?;
        let (site_id, subject_id) = convert::status_request(request.into_inner())?;
        let record = self
            .store
            .consent_status(
                caller.tenant_id,
                &site_id,
                &subject_id,
                (self.context.clock)(),
            )
            .await?;
        Ok(Response::new(proto::GetConsentStatusResponse {
            record: Some(with_receipt(record, caller.tenant_id)),
        }))
    }

    #[tracing::instrument(name = "ListConsents", skip_all, fields(tenant_id))]
    async fn list_consents(
        &self,
        request: Request<proto::ListConsentsRequest>,
    ) -> Result<Response<proto::ListConsentsResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::ConsentRead).await?;
        let (filter, after, page_size, view) = convert::list_request(request.into_inner())?;
        let page = self
            .store
            .list_consents(caller.tenant_id, &filter, after, page_size.get())
            .await?;
        let (next_page_token, resume_page_token) = page_tokens(&page, &filter);
        Ok(Response::new(proto::ListConsentsResponse {
            records: page
                .items
                .into_iter()
                .map(|r| in_view(r, view, caller.tenant_id))
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
        let (filter, view) = convert::export_request(request.into_inner())?;
        let chunks = self
            .store
            .export_consents(&caller, &filter, EXPORT_CHUNK_RECORDS);
        let tenant_id = caller.tenant_id;
        Ok(Response::new(export_stream(chunks, move |records| {
            proto::ExportConsentsResponse {
                records: records
                    .into_iter()
                    .map(|r| in_view(r, view, tenant_id))
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
        let erase = convert::erase_request(request.into_inner())?;
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
        let mut v = Violations::new();
        let record_id = v.check(
            "record_id",
            required(request.into_inner().record_id).and_then(|id| {
                Uuid::parse_str(&id).map_err(|_| "must be a record id (a UUID)".to_string())
            }),
        );
        let record_id = v.finish(|| record_id.expect("checked"))?;
        let (record, notice_on_file) = self
            .store
            .consent_proof(caller.tenant_id, record_id)
            .await?;
        Ok(Response::new(proto::GetConsentProofResponse {
            notice_sha256: record
                .decision
                .notice_sha256
                .map(NoticeHash::to_hex)
                .unwrap_or_default(),
            notice_on_file,
            record: Some(with_receipt(record, caller.tenant_id)),
        }))
    }

    #[tracing::instrument(name = "PutNotice", skip_all, fields(tenant_id))]
    async fn put_notice(
        &self,
        request: Request<proto::PutNoticeRequest>,
    ) -> Result<Response<proto::PutNoticeResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::ConsentWrite).await?;
        let r = request.into_inner();
        let mut v = Violations::new();
        if r.text.is_empty() {
            v.add("text", "is required");
        } else if r.text.len() > MAX_NOTICE_BYTES {
            v.add("text", format!("must be at most {MAX_NOTICE_BYTES} bytes"));
        } else if r.text.contains('\0') {
            v.add("text", "must not contain NUL characters");
        }
        let hash = NoticeHash::of_text(&r.text);
        if let Some(expected) = v.check_optional(
            "expected_sha256",
            present(r.expected_sha256).map(|h| NoticeHash::parse(&h)),
        ) && expected != hash
        {
            v.add("expected_sha256", "does not match the SHA-256 of text");
        }
        v.finish(|| ())?;
        let created = self
            .store
            .put_notice(caller.tenant_id, &hash, &r.text)
            .await?;
        Ok(Response::new(proto::PutNoticeResponse {
            sha256: hash.to_hex(),
            created,
        }))
    }

    #[tracing::instrument(name = "GetNotice", skip_all, fields(tenant_id))]
    async fn get_notice(
        &self,
        request: Request<proto::GetNoticeRequest>,
    ) -> Result<Response<proto::GetNoticeResponse>, Status> {
        let caller = self.auth.authorize(&request, Scope::ConsentRead).await?;
        let mut v = Violations::new();
        let hash = v.check(
            "sha256",
            required(request.into_inner().sha256).and_then(|h| NoticeHash::parse(&h)),
        );
        let hash = v.finish(|| hash.expect("checked"))?;
        let (text, stored) = self.store.notice(caller.tenant_id, &hash).await?;
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
}
