//! Consent records: write, status, keyset pages, snapshot exports, erasure.

use std::time::{Duration, SystemTime};

use tokio_postgres::Row;
use uuid::Uuid;

use super::{
    Error, Result, Store,
    audit::{AuditEntry, ErasedIdentifiers, Erasure, record_erasure},
    paging::{ExportChunks, Keyset, Page, Params},
};
use crate::domain::{
    audit::AuditAction,
    auth::{Caller, Scope},
    consent::{
        Action, Choices, ConsentDecision, ConsentRecord, Name, NoticeHash, ReceiptSeal, Regime,
        ServiceDecision, Status,
    },
    erasure::{AuditKey, EraseRequest},
    ids::{RequestId, SiteId, SubjectId, UserId},
    network::AnonymizedIp,
    page::{ConsentFilter, Cursor},
    receipt::Inclusion,
    site::{ServerDefaults, SiteSettings},
    web::{CountryCode, LanguageTag, PageUrl, UserAgent},
};

/// Arbitrary, fixed: "retentio" in ASCII.
const RETENTION_LOCK: i64 = 0x7265_7465_6e74_696f;

pub(super) fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// A stored duration in microseconds; a negative one is corrupt.
pub(super) fn duration_of(column: &str, micros: i64) -> Result<Duration> {
    u64::try_from(micros)
        .map(Duration::from_micros)
        .map_err(|_| corrupt(column.to_string()))
}

pub(super) fn settings_from_row(row: &Row) -> Result<SiteSettings> {
    let duration = |column: &str| duration_of(column, row.try_get(column)?);
    Ok(SiteSettings {
        detailed_logging: row.try_get("detailed_logging")?,
        consent_lifetime: duration("consent_lifetime_micros")?,
        retention: duration("retention_micros")?,
    })
}

const CONSENT_KEYSET: Keyset<ConsentRecord> = Keyset {
    sql: include_str!("sql/list_consents.sql"),
    from_row: record_from_row,
    cursor_of,
};

impl Store {
    /// The latest record of a subject on a site that has not expired at `now`.
    pub async fn consent_status(
        &self,
        tenant_id: Uuid,
        site_id: &SiteId,
        subject_id: &SubjectId,
        now: SystemTime,
    ) -> Result<ConsentRecord> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(include_str!("sql/consent_status.sql"))
            .await?;
        let row = client
            .query_opt(
                &statement,
                &[&tenant_id, &subject_id.as_ref(), &site_id.as_ref(), &now],
            )
            .await?
            .ok_or(Error::NotFound)?;
        record_from_row(&row)
    }

    /// A record and whether the notice it names is on file.
    pub async fn consent_proof(
        &self,
        tenant_id: Uuid,
        record_id: Uuid,
    ) -> Result<(ConsentRecord, bool)> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                include_str!("sql/consent_proof.sql"),
                &[&tenant_id, &record_id],
            )
            .await?
            .ok_or(Error::NotFound)?;
        Ok((record_from_row(&row)?, row.try_get("notice_on_file")?))
    }

    /// Stores a notice text under its hash; false when it was on file.
    pub async fn put_notice(&self, tenant_id: Uuid, hash: &NoticeHash, text: &str) -> Result<bool> {
        let client = self.pool.get().await?;
        let created = client
            .query_opt(
                include_str!("sql/put_notice.sql"),
                &[&tenant_id, &hash.as_bytes().as_slice(), &text],
            )
            .await?;
        Ok(created.is_some())
    }

    /// A notice text and when it was stored.
    pub async fn notice(&self, tenant_id: Uuid, hash: &NoticeHash) -> Result<(String, SystemTime)> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                include_str!("sql/get_notice.sql"),
                &[&tenant_id, &hash.as_bytes().as_slice()],
            )
            .await?
            .ok_or(Error::NotFound)?;
        Ok((row.try_get("text")?, row.try_get("create_time")?))
    }

    /// Deletes up to `batch` records past their expire time plus retention
    /// at `now`. One replica at a time: `None` when another holds the turn.
    pub async fn delete_retired_consents(
        &self,
        now: SystemTime,
        batch: i64,
        defaults: ServerDefaults,
    ) -> Result<Option<u64>> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let turn: bool = transaction
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&RETENTION_LOCK])
            .await?
            .get(0);
        if !turn {
            return Ok(None);
        }
        let deleted = transaction
            .execute(
                include_str!("sql/delete_retired_consents.sql"),
                &[
                    &now,
                    &batch,
                    &micros(defaults.consent_lifetime),
                    &micros(defaults.retention),
                ],
            )
            .await?;
        transaction.commit().await?;
        Ok(Some(deleted))
    }

    /// One page of records after `after`, in keyset order.
    pub async fn list_consents(
        &self,
        tenant_id: Uuid,
        filter: &ConsentFilter,
        after: Option<Cursor>,
        page_size: u32,
    ) -> Result<Page<ConsentRecord>> {
        self.keyset_page(
            &CONSENT_KEYSET,
            filter_params(tenant_id, filter, after),
            after,
            page_size,
        )
        .await
    }

    /// Every matching record, from one snapshot, in chunks; audited.
    pub fn export_consents(
        &self,
        caller: &Caller,
        filter: &ConsentFilter,
        chunk_size: usize,
    ) -> ExportChunks<ConsentRecord> {
        let audit = AuditEntry::by(
            caller,
            Scope::ConsentExport,
            AuditAction::ConsentExport,
            Some(filter.site_id.as_ref()),
        );
        self.export(
            &CONSENT_KEYSET,
            filter_params(caller.tenant_id, filter, None),
            chunk_size,
            audit,
        )
    }

    /// Deletes a subject's records and writes the audit entry, atomically.
    pub async fn erase_consents(
        &self,
        caller: &Caller,
        request: &EraseRequest,
        audit_key: &AuditKey,
    ) -> Result<Erasure> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let site = request.site_id.as_ref().map(AsRef::<str>::as_ref);
        let subject = request.subject_id.as_ref().map(AsRef::<str>::as_ref);
        let user = request.user_id.as_ref().map(AsRef::<str>::as_ref);
        let erased_count: i64 = transaction
            .query_one(
                include_str!("sql/erase_consents.sql"),
                &[&caller.tenant_id, &site, &subject, &user],
            )
            .await?
            .get("erased_count");
        let erased = ErasedIdentifiers {
            scope: Scope::ConsentErase,
            action: AuditAction::ConsentErase,
            place: site,
            subject_id: subject,
            user_id: user,
        };
        let erasure = record_erasure(&transaction, caller, erased, erased_count, audit_key).await?;
        transaction.commit().await?;
        Ok(erasure)
    }
}

/// The bound values of list_consents.sql before watermark and limit.
fn filter_params(tenant_id: Uuid, filter: &ConsentFilter, after: Option<Cursor>) -> Params {
    let after = after.unwrap_or(Cursor::START);
    let text = |value: Option<&str>| value.map(str::to_string);
    vec![
        Box::new(tenant_id),
        Box::new(filter.site_id.as_ref().to_string()),
        Box::new(filter.start_time),
        Box::new(filter.end_time),
        Box::new(text(filter.subject_id.as_ref().map(AsRef::as_ref))),
        Box::new(text(filter.user_id.as_ref().map(AsRef::as_ref))),
        Box::new(text(filter.country.as_ref().map(AsRef::as_ref))),
        Box::new(filter.status.map(|status| status.number() as i16)),
        Box::new(after.time),
        Box::new(after.id),
    ]
}

fn cursor_of(record: &ConsentRecord) -> Cursor {
    Cursor {
        time: record.record_time,
        id: record.id,
    }
}

/// "category/service" strings, split by decision.
pub(super) fn joined_services(services: &[ServiceDecision]) -> (Vec<String>, Vec<String>) {
    let joined = |granted: bool| {
        services
            .iter()
            .filter(|s| s.granted == granted)
            .map(|s| format!("{}/{}", s.category.as_ref(), s.service.as_ref()))
            .collect()
    };
    (joined(true), joined(false))
}

fn split_services(joined: Vec<String>, granted: bool) -> Result<Vec<ServiceDecision>> {
    joined
        .into_iter()
        .map(|entry| {
            let (category, service) = entry
                .split_once('/')
                .ok_or_else(|| corrupt("service entry without '/'"))?;
            Ok(ServiceDecision {
                category: Name::parse(category.to_string()).map_err(corrupt)?,
                service: Name::parse(service.to_string()).map_err(corrupt)?,
                granted,
            })
        })
        .collect()
}

pub(super) fn corrupt(what: impl Into<String>) -> Error {
    Error::Internal(format!("stored consent record is invalid: {}", what.into()).into())
}

/// Rebuilds a record. Values were validated before they were written, so a
/// value that no longer parses is reported as corruption, not as input error.
pub(super) fn record_from_row(row: &Row) -> Result<ConsentRecord> {
    fn parsed<T>(
        value: Option<String>,
        parse: fn(String) -> Result<T, String>,
    ) -> Result<Option<T>> {
        value.map(parse).transpose().map_err(corrupt)
    }
    let action: i16 = row.try_get("action")?;
    let status: i16 = row.try_get("status")?;
    let regime: i16 = row.try_get("regime")?;
    let user_agent: Option<String> = row.try_get("user_agent")?;
    let mut services = split_services(row.try_get("granted_services")?, true)?;
    services.extend(split_services(row.try_get("denied_services")?, false)?);
    let anonymized_ip: Option<String> = row.try_get("anonymized_ip")?;
    let decision = ConsentDecision {
        request_id: parsed(row.try_get("request_id")?, RequestId::parse)?,
        site_id: SiteId::parse(row.try_get("site_id")?).map_err(corrupt)?,
        subject_id: SubjectId::parse(row.try_get("subject_id")?).map_err(corrupt)?,
        user_id: parsed(row.try_get("user_id")?, UserId::parse)?,
        action: Action::from_number(action.into()).ok_or_else(|| corrupt("action"))?,
        choices: Choices::from_stored(
            row.try_get("granted_categories")?,
            row.try_get("denied_categories")?,
            services,
        ),
        banner_revision: row.try_get("banner_revision")?,
        regime: Regime::from_number(regime.into()).ok_or_else(|| corrupt("regime"))?,
        gpc_detected: row.try_get("gpc_detected")?,
        gpc_honoured: row.try_get("gpc_honoured")?,
        ccpa_opt_out: row.try_get("ccpa_opt_out")?,
        tcf_string: row.try_get("tcf_string")?,
        gpp_string: row.try_get("gpp_string")?,
        google_ac_string: row.try_get("google_ac_string")?,
        country: parsed(row.try_get("country_code")?, CountryCode::parse)?,
        language: parsed(row.try_get("language_code")?, LanguageTag::parse)?,
        page_url: parsed(row.try_get("page_url")?, PageUrl::parse)?,
        user_agent: match user_agent {
            Some(raw) => Some(UserAgent::from_stored(
                raw,
                row.try_get::<_, Option<String>>("device_type")?
                    .unwrap_or_default(),
                row.try_get::<_, Option<String>>("os")?.unwrap_or_default(),
                row.try_get::<_, Option<String>>("browser")?
                    .unwrap_or_default(),
            )),
            None => None,
        },
        anonymized_ip: anonymized_ip
            .map(|cidr| AnonymizedIp::from_stored(&cidr).ok_or_else(|| corrupt("anonymized_ip")))
            .transpose()?,
        // Never read back: the encrypted form stays in the database.
        full_ip: None,
        notice_version: row.try_get("notice_version")?,
        notice_sha256: row
            .try_get::<_, Option<Vec<u8>>>("notice_sha256")?
            .map(|bytes| NoticeHash::from_bytes(&bytes).ok_or_else(|| corrupt("notice_sha256")))
            .transpose()?,
        client_time: row.try_get("client_time")?,
    };
    let key_id: Option<String> = row.try_get("receipt_key_id")?;
    let signature: Option<Vec<u8>> = row.try_get("receipt_signature")?;
    let proof: Option<Vec<u8>> = row.try_get("receipt_proof")?;
    let seal = match (key_id, signature) {
        (Some(key_id), Some(signature)) => Some(ReceiptSeal {
            key_id,
            signature: signature
                .try_into()
                .map_err(|_| corrupt("receipt_signature"))?,
            inclusion: proof
                .map(|bytes| Inclusion::from_bytes(&bytes).map_err(|_| corrupt("receipt_proof")))
                .transpose()?,
        }),
        _ => None,
    };
    Ok(ConsentRecord {
        id: row.try_get("record_id")?,
        decision,
        status: Status::from_number(status.into()).ok_or_else(|| corrupt("status"))?,
        record_time: row.try_get("record_time")?,
        expire_time: row.try_get("expire_time")?,
        seal,
    })
}
