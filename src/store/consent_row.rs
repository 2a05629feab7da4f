//! A `consent_records` row and the record it reads back as.

use tokio_postgres::Row;

use super::{Result, row::StoredRow};
use crate::domain::{
    consent::{
        Action, Choices, ConsentDecision, ConsentRecord, Name, NoticeHash, ReceiptSeal, Regime,
        ServiceDecision, Status,
    },
    ids::{RequestId, SiteId, SubjectId, UserId},
    network::AnonymizedIp,
    receipt::Inclusion,
    web::{CountryCode, LanguageTag, PageUrl, UserAgent},
};

const TABLE: &str = "consent_records";

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

/// How a status is stored, for the row and for a filter on it alike.
pub(super) fn stored_status(status: Status) -> i16 {
    status.number() as i16
}

fn split_services(
    row: &StoredRow,
    column: &str,
    granted: bool,
) -> Result<impl Iterator<Item = Result<ServiceDecision>>> {
    let joined: Vec<String> = row.get(column)?;
    let corrupt = move |why: String| row.corrupt(column, why);
    Ok(joined.into_iter().map(move |entry| {
        let (category, service) = entry
            .split_once('/')
            .ok_or_else(|| corrupt("a service entry without '/'".into()))?;
        Ok(ServiceDecision {
            category: Name::parse(category.to_string()).map_err(corrupt)?,
            service: Name::parse(service.to_string()).map_err(corrupt)?,
            granted,
        })
    }))
}

/// Rebuilds a record. Values were validated before they were written, so a
/// value that no longer parses is a corrupt row, not an input error.
pub(super) fn record_from_row(row: &Row) -> Result<ConsentRecord> {
    let row = StoredRow::of(TABLE, row);
    let services = split_services(&row, "granted_services", true)?
        .chain(split_services(&row, "denied_services", false)?)
        .collect::<Result<Vec<_>>>()?;
    let user_agent = match row.get::<Option<String>>("user_agent")? {
        Some(raw) => Some(UserAgent::from_stored(
            raw,
            row.get::<Option<String>>("device_type")?
                .unwrap_or_default(),
            row.get::<Option<String>>("os")?.unwrap_or_default(),
            row.get::<Option<String>>("browser")?.unwrap_or_default(),
        )),
        None => None,
    };
    let decision = ConsentDecision {
        request_id: row.parse_opt("request_id", RequestId::parse)?,
        site_id: row.parse("site_id", SiteId::parse)?,
        subject_id: row.parse("subject_id", SubjectId::parse)?,
        user_id: row.parse_opt("user_id", UserId::parse)?,
        action: row.parse("action", |n: i16| {
            Action::from_number(n.into()).ok_or("not an action")
        })?,
        choices: Choices::from_stored(
            row.get("granted_categories")?,
            row.get("denied_categories")?,
            services,
        ),
        banner_revision: row.get("banner_revision")?,
        regime: row.parse("regime", |n: i16| {
            Regime::from_number(n.into()).ok_or("not a regime")
        })?,
        gpc_detected: row.get("gpc_detected")?,
        gpc_honoured: row.get("gpc_honoured")?,
        ccpa_opt_out: row.get("ccpa_opt_out")?,
        tcf_string: row.get("tcf_string")?,
        gpp_string: row.get("gpp_string")?,
        google_ac_string: row.get("google_ac_string")?,
        country: row.parse_opt("country_code", CountryCode::parse)?,
        language: row.parse_opt("language_code", LanguageTag::parse)?,
        page_url: row.parse_opt("page_url", PageUrl::parse)?,
        user_agent,
        anonymized_ip: row.parse_opt("anonymized_ip", |cidr: String| {
            AnonymizedIp::from_stored(&cidr).ok_or("not a network")
        })?,
        // Never read back: the encrypted form stays in the database.
        full_ip: None,
        notice_version: row.get("notice_version")?,
        notice_sha256: row.parse_opt("notice_sha256", |bytes: Vec<u8>| {
            NoticeHash::from_bytes(&bytes).ok_or("not a SHA-256 digest")
        })?,
        client_time: row.get("client_time")?,
    };
    let key_id: Option<String> = row.get("receipt_key_id")?;
    let signature: Option<[u8; 64]> = row.parse_opt("receipt_signature", |bytes: Vec<u8>| {
        <[u8; 64]>::try_from(bytes).map_err(|_| "not 64 bytes")
    })?;
    let seal = match (key_id, signature) {
        (Some(key_id), Some(signature)) => Some(ReceiptSeal {
            key_id,
            signature,
            inclusion: row.parse_opt("receipt_proof", |bytes: Vec<u8>| {
                Inclusion::from_bytes(&bytes)
            })?,
        }),
        _ => None,
    };
    Ok(ConsentRecord {
        id: row.get("record_id")?,
        decision,
        status: row.parse("status", |n: i16| {
            Status::from_number(n.into()).ok_or("not a status")
        })?,
        record_time: row.get("record_time")?,
        expire_time: row.get("expire_time")?,
        seal,
    })
}
