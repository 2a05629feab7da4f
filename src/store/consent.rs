//! Consent records: write, status, keyset pages, snapshot exports, erasure.

use std::time::Duration;

use tokio_postgres::{Row, types::ToSql};
use uuid::Uuid;

use super::{
    Error, Result, Store,
    audit::{ErasedIdentifiers, Erasure, record_erasure},
    paging::{ExportChunks, Keyset, Page, Params},
};
use crate::domain::{
    auth::{Caller, Scope},
    consent::{
        Action, Choices, ConsentDecision, ConsentRecord, Name, Regime, ServiceDecision, Status,
    },
    erasure::{AuditKey, EraseRequest},
    ids::{RequestId, SiteId, SubjectId, UserId},
    network::AnonymizedIp,
    page::{ConsentFilter, Cursor},
    web::{CountryCode, LanguageTag, PageUrl, UserAgent},
};

const CONSENT_KEYSET: Keyset<ConsentRecord> = Keyset {
    sql: include_str!("sql/list_consents.sql"),
    from_row: record_from_row,
    cursor_of,
};

impl Store {
    /// Stores a decision, or returns the record stored earlier under the same
    /// request id.
    pub async fn record_consent(
        &self,
        tenant_id: Uuid,
        decision: &ConsentDecision,
        lifetime: Duration,
    ) -> Result<ConsentRecord> {
        let mut client = self.pool.get().await?;
        let insert = client
            .prepare_cached(include_str!("sql/insert_consent.sql"))
            .await?;
        let transaction = client.transaction().await?;
        transaction
            .batch_execute(include_str!("sql/mark_writer.sql"))
            .await?;
        let (granted_services, denied_services) = joined_services(decision.choices.services());
        let lifetime_micros = lifetime.as_micros() as i64;
        let d = decision;
        let params: [&(dyn ToSql + Sync); 30] = [
            &tenant_id,
            &Uuid::now_v7(),
            &d.request_id.as_ref().map(AsRef::<str>::as_ref),
            &d.site_id.as_ref(),
            &d.subject_id.as_ref(),
            &d.user_id.as_ref().map(AsRef::<str>::as_ref),
            &(d.action.number() as i16),
            &(d.status().number() as i16),
            &names(d.choices.granted()),
            &names(d.choices.denied()),
            &granted_services,
            &denied_services,
            &d.banner_revision,
            &(d.regime.number() as i16),
            &d.gpc_detected,
            &d.gpc_honoured,
            &d.ccpa_opt_out,
            &d.tcf_string,
            &d.gpp_string,
            &d.google_ac_string,
            &d.country.as_ref().map(AsRef::<str>::as_ref),
            &d.language.as_ref().map(AsRef::<str>::as_ref),
            &d.page_url.as_ref().map(AsRef::<str>::as_ref),
            &d.user_agent.as_ref().map(AsRef::<str>::as_ref),
            &d.user_agent
                .as_ref()
                .map(|agent| agent.device_type.as_str()),
            &d.user_agent.as_ref().map(|agent| agent.os.as_str()),
            &d.user_agent.as_ref().map(|agent| agent.browser.as_str()),
            &d.anonymized_ip.map(|ip| ip.to_string()),
            &d.client_time,
            &lifetime_micros,
        ];
        let inserted = transaction.query_opt(&insert, &params).await?;
        let row = match (inserted, &d.request_id) {
            (Some(row), _) => row,
            // The request id was taken: the insert waited for that
            // transaction to commit, so this statement sees its record.
            (None, Some(request_id)) => {
                transaction
                    .query_one(
                        include_str!("sql/consent_by_request_id.sql"),
                        &[&tenant_id, &request_id.as_ref()],
                    )
                    .await?
            }
            (None, None) => return Err(Error::Internal("insert returned no row".into())),
        };
        transaction.commit().await?;
        record_from_row(&row)
    }

    /// The latest unexpired record of a subject on a site.
    pub async fn consent_status(
        &self,
        tenant_id: Uuid,
        site_id: &SiteId,
        subject_id: &SubjectId,
    ) -> Result<ConsentRecord> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(include_str!("sql/consent_status.sql"))
            .await?;
        let row = client
            .query_opt(
                &statement,
                &[&tenant_id, &subject_id.as_ref(), &site_id.as_ref()],
            )
            .await?
            .ok_or(Error::NotFound)?;
        record_from_row(&row)
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

    /// Every matching record, from one snapshot, in chunks.
    pub fn export_consents(
        &self,
        tenant_id: Uuid,
        filter: &ConsentFilter,
        chunk_size: usize,
    ) -> ExportChunks<ConsentRecord> {
        self.export(
            &CONSENT_KEYSET,
            filter_params(tenant_id, filter, None),
            chunk_size,
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

fn names(names: &[Name]) -> Vec<&str> {
    names.iter().map(AsRef::as_ref).collect()
}

/// "category/service" strings, split by decision.
fn joined_services(services: &[ServiceDecision]) -> (Vec<String>, Vec<String>) {
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
fn record_from_row(row: &Row) -> Result<ConsentRecord> {
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
        client_time: row.try_get("client_time")?,
    };
    Ok(ConsentRecord {
        id: row.try_get("record_id")?,
        decision,
        status: Status::from_number(status.into()).ok_or_else(|| corrupt("status"))?,
        record_time: row.try_get("record_time")?,
        expire_time: row.try_get("expire_time")?,
    })
}
