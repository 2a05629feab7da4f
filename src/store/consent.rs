//! Consent records: write, status, keyset pages, snapshot exports, erasure.

use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio_postgres::{IsolationLevel, Row, types::ToSql};
use uuid::Uuid;

use super::{Error, Result, Store};
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

/// Chunks of an export, in order; the export stops when this is dropped.
pub type ExportChunks = mpsc::Receiver<Result<Vec<ConsentRecord>>>;

/// What an erasure did.
#[derive(Debug)]
pub struct Erasure {
    pub erased_count: i64,
    pub audit_id: Uuid,
}

/// One page of a list, and where to go on from.
#[derive(Debug)]
pub struct ConsentPage {
    pub records: Vec<ConsentRecord>,
    /// Set when the page is full: more records may follow now.
    pub next: Option<Cursor>,
    /// Where a poller resumes later: after the last record returned, or where
    /// the caller started when the page is empty.
    pub resume: Option<Cursor>,
}

/// Chunks buffered between the database and a slow client.
const EXPORT_CHANNEL_CHUNKS: usize = 2;

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
    ) -> Result<ConsentPage> {
        let client = self.pool.get().await?;
        let watermark: SystemTime = client
            .query_one(
                &client
                    .prepare_cached(include_str!("sql/list_watermark.sql"))
                    .await?,
                &[],
            )
            .await?
            .get("watermark");
        let statement = client
            .prepare_cached(include_str!("sql/list_consents.sql"))
            .await?;
        let limit = i64::from(page_size);
        let rows = client
            .query(
                &statement,
                &FilterParams::new(tenant_id, filter, after)
                    .with(Some(watermark), Some(limit))
                    .as_params(),
            )
            .await?;
        let records = rows
            .iter()
            .map(record_from_row)
            .collect::<Result<Vec<_>>>()?;
        let last = records.last().map(cursor_of);
        let next = if records.len() == page_size as usize {
            last
        } else {
            None
        };
        Ok(ConsentPage {
            next,
            resume: last.or(after),
            records,
        })
    }

    /// Streams every matching record from one REPEATABLE READ snapshot, in
    /// chunks, through a bounded channel: the database is read only as fast
    /// as the client takes chunks, and the connection is freed as soon as
    /// the receiver is dropped.
    pub fn export_consents(
        &self,
        tenant_id: Uuid,
        filter: ConsentFilter,
        chunk_size: usize,
    ) -> ExportChunks {
        let (sender, receiver) = mpsc::channel(EXPORT_CHANNEL_CHUNKS);
        let store = self.clone();
        tokio::spawn(async move {
            let failed = sender.clone();
            if let Err(error) = store
                .export_into(tenant_id, &filter, chunk_size, sender)
                .await
            {
                let _ = failed.send(Err(error)).await;
            }
        });
        receiver
    }

    async fn export_into(
        &self,
        tenant_id: Uuid,
        filter: &ConsentFilter,
        chunk_size: usize,
        sender: mpsc::Sender<Result<Vec<ConsentRecord>>>,
    ) -> Result<()> {
        let mut client = self.pool.get().await?;
        let statement = client
            .prepare_cached(include_str!("sql/list_consents.sql"))
            .await?;
        let transaction = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let params = FilterParams::new(tenant_id, filter, None).with(None, None);
        let portal = transaction.bind(&statement, &params.as_params()).await?;
        loop {
            let rows = transaction.query_portal(&portal, chunk_size as i32).await?;
            if rows.is_empty() {
                break;
            }
            let chunk = rows
                .iter()
                .map(record_from_row)
                .collect::<Result<Vec<_>>>()?;
            if sender.send(Ok(chunk)).await.is_err() {
                // The client went away; dropping the transaction rolls back
                // and the connection returns to the pool.
                break;
            }
        }
        Ok(())
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
        let audit_id = Uuid::now_v7();
        let subject_hmac = subject.map(|id| audit_key.digest("subject_id", id).to_vec());
        let user_hmac = user.map(|id| audit_key.digest("user_id", id).to_vec());
        transaction
            .execute(
                include_str!("sql/insert_erasure_audit.sql"),
                &[
                    &caller.tenant_id,
                    &audit_id,
                    &caller.key_id,
                    &Scope::ConsentErase.as_str(),
                    &site,
                    &subject_hmac,
                    &user_hmac,
                    &erased_count,
                ],
            )
            .await?;
        transaction.commit().await?;
        Ok(Erasure {
            erased_count,
            audit_id,
        })
    }
}

/// The bound values of list_consents.sql, in its parameter order.
struct FilterParams<'a> {
    tenant_id: Uuid,
    site_id: &'a str,
    start_time: Option<SystemTime>,
    end_time: Option<SystemTime>,
    subject_id: Option<&'a str>,
    user_id: Option<&'a str>,
    country: Option<&'a str>,
    status: Option<i16>,
    after_time: SystemTime,
    after_id: Uuid,
    watermark: Option<SystemTime>,
    limit: Option<i64>,
}

impl<'a> FilterParams<'a> {
    fn new(tenant_id: Uuid, filter: &'a ConsentFilter, after: Option<Cursor>) -> Self {
        let after = after.unwrap_or(Cursor::START);
        Self {
            tenant_id,
            site_id: filter.site_id.as_ref(),
            start_time: filter.start_time,
            end_time: filter.end_time,
            subject_id: filter.subject_id.as_ref().map(AsRef::as_ref),
            user_id: filter.user_id.as_ref().map(AsRef::as_ref),
            country: filter.country.as_ref().map(AsRef::as_ref),
            status: filter.status.map(|status| status.number() as i16),
            after_time: after.record_time,
            after_id: after.id,
            watermark: None,
            limit: None,
        }
    }

    fn with(mut self, watermark: Option<SystemTime>, limit: Option<i64>) -> Self {
        self.watermark = watermark;
        self.limit = limit;
        self
    }

    fn as_params(&self) -> [&(dyn ToSql + Sync); 12] {
        [
            &self.tenant_id,
            &self.site_id,
            &self.start_time,
            &self.end_time,
            &self.subject_id,
            &self.user_id,
            &self.country,
            &self.status,
            &self.after_time,
            &self.after_id,
            &self.watermark,
            &self.limit,
        ]
    }
}

fn cursor_of(record: &ConsentRecord) -> Cursor {
    Cursor {
        record_time: record.record_time,
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

fn corrupt(what: impl Into<String>) -> Error {
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
