//! Proto <-> domain. Requests are parsed here once, every bad field recorded
//! under its proto name; past this point the handlers hold valid types.
//! Proto enums meet domain enums only in [`enums`].

pub(super) mod enums;

use std::time::{Duration, SystemTime};

use prost_types::Timestamp;
use uuid::Uuid;

use super::proto;
use crate::domain::{
    consent::{
        Choices, ConsentDecision, ConsentRecord, MAX_BANNER_REVISION_CHARS, MAX_GOOGLE_AC_CHARS,
        MAX_GPP_CHARS, MAX_NOTICE_VERSION_CHARS, MAX_TCF_CHARS, NoticeHash, RawServiceDecision,
        optional_text,
    },
    erasure::EraseRequest,
    ids::{RequestId, SiteId, SubjectId, UserId},
    network::FullIp,
    page::{ConsentFilter, Cursor, PageSize},
    receipt::{self, Receipt},
    validation::{ValidationError, Violations},
    web::{CountryCode, LanguageTag, PageUrl, UserAgent},
};

/// Empty means "not set" for optional proto3 strings.
pub(super) fn present(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

pub(super) fn required(value: String) -> Result<String, String> {
    if value.is_empty() {
        Err("is required".into())
    } else {
        Ok(value)
    }
}

/// The earliest and latest instants a google.protobuf.Timestamp may hold
/// (0001-01-01 and 9999-12-31, as the type documents).
const TIMESTAMP_SECONDS: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;

pub(super) fn time(value: Timestamp) -> Result<SystemTime, String> {
    if !TIMESTAMP_SECONDS.contains(&value.seconds) || !(0..1_000_000_000).contains(&value.nanos) {
        return Err("must be a valid timestamp between years 1 and 9999".into());
    }
    // Postgres keeps microseconds: drop the rest here, so what is stored is
    // exactly what was parsed (and signed, for receipts).
    let value = Timestamp {
        nanos: value.nanos / 1000 * 1000,
        ..value
    };
    SystemTime::try_from(value).map_err(|_| "must be a valid timestamp".to_string())
}

/// A google.protobuf.Duration, not negative, cut to microseconds as it is
/// stored, so what is echoed back is what is kept.
pub(super) fn duration(value: prost_types::Duration) -> Result<Duration, String> {
    if value.seconds < 0 || !(0..1_000_000_000).contains(&value.nanos) {
        return Err("must be a duration that is not negative".into());
    }
    Ok(Duration::new(
        value.seconds as u64,
        value.nanos as u32 / 1000 * 1000,
    ))
}

pub(super) fn timestamp(value: SystemTime) -> Timestamp {
    value.into()
}

impl TryFrom<proto::RecordConsentRequest> for ConsentDecision {
    type Error = ValidationError;

    fn try_from(r: proto::RecordConsentRequest) -> Result<Self, ValidationError> {
        let mut v = Violations::new();
        let request_id =
            v.check_optional("request_id", present(r.request_id).map(RequestId::parse));
        let site_id = v.check("site_id", required(r.site_id).and_then(SiteId::parse));
        let subject_id = v.check(
            "subject_id",
            required(r.subject_id).and_then(SubjectId::parse),
        );
        let user_id = v.check_optional("user_id", present(r.user_id).map(UserId::parse));
        let action = v.check("action", enums::action(r.action));
        let regime = v.check("regime", enums::regime(r.regime));
        let services = r
            .services
            .into_iter()
            .map(|s| RawServiceDecision {
                category: s.category,
                service: s.service,
                granted: s.granted,
            })
            .collect();
        let choices = Choices::parse(
            action,
            r.granted_categories,
            r.denied_categories,
            services,
            &mut v,
        );
        if r.gpc_honoured && !r.gpc_detected {
            v.add("gpc_honoured", "cannot be true when gpc_detected is false");
        }
        let banner_revision = v.check_optional(
            "banner_revision",
            optional_text(r.banner_revision, MAX_BANNER_REVISION_CHARS),
        );
        let tcf_string = v.check_optional("tcf_string", optional_text(r.tcf_string, MAX_TCF_CHARS));
        let gpp_string = v.check_optional("gpp_string", optional_text(r.gpp_string, MAX_GPP_CHARS));
        let google_ac_string = v.check_optional(
            "google_ac_string",
            optional_text(r.google_ac_string, MAX_GOOGLE_AC_CHARS),
        );
        let country = v.check_optional(
            "country_code",
            present(r.country_code).map(CountryCode::parse),
        );
        let language = v.check_optional(
            "language_code",
            present(r.language_code).map(LanguageTag::parse),
        );
        let page_url = v.check_optional("page_url", present(r.page_url).map(PageUrl::parse));
        let user_agent =
            v.check_optional("user_agent", present(r.user_agent).map(UserAgent::parse));
        let ip = v.check_optional(
            "ip_address",
            present(r.ip_address).map(|ip| FullIp::parse(&ip)),
        );
        let client_time = v.check_optional("client_time", r.client_time.map(time));
        let notice_version = v.check_optional(
            "notice_version",
            optional_text(r.notice_version, MAX_NOTICE_VERSION_CHARS),
        );
        let notice_sha256 = v.check_optional(
            "notice_sha256",
            present(r.notice_sha256).map(|h| NoticeHash::parse(&h)),
        );
        v.finish(|| ConsentDecision {
            request_id,
            site_id: site_id.expect("checked"),
            subject_id: subject_id.expect("checked"),
            user_id,
            action: action.expect("checked"),
            choices: choices.expect("checked"),
            banner_revision,
            regime: regime.expect("checked"),
            gpc_detected: r.gpc_detected,
            gpc_honoured: r.gpc_honoured,
            ccpa_opt_out: r.ccpa_opt_out,
            tcf_string,
            gpp_string,
            google_ac_string,
            country,
            language,
            page_url,
            user_agent,
            anonymized_ip: ip.map(|(_, masked)| masked),
            full_ip: ip.map(|(full, _)| full),
            notice_version,
            notice_sha256,
            client_time,
        })
    }
}

/// The site and subject of a status request.
pub fn status_request(
    r: proto::GetConsentStatusRequest,
) -> Result<(SiteId, SubjectId), ValidationError> {
    let mut v = Violations::new();
    let site_id = v.check("site_id", required(r.site_id).and_then(SiteId::parse));
    let subject_id = v.check(
        "subject_id",
        required(r.subject_id).and_then(SubjectId::parse),
    );
    v.finish(|| (site_id.expect("checked"), subject_id.expect("checked")))
}

fn filter(
    site_id: String,
    f: Option<proto::ConsentFilter>,
    v: &mut Violations,
) -> Option<ConsentFilter> {
    let f = f.unwrap_or_default();
    let before = v.len();
    let site_id = v.check("site_id", required(site_id).and_then(SiteId::parse));
    let start_time = v.check_optional("filter.start_time", f.start_time.map(time));
    let end_time = v.check_optional("filter.end_time", f.end_time.map(time));
    if let (Some(start), Some(end)) = (start_time, end_time)
        && end <= start
    {
        v.add("filter.end_time", "must be after filter.start_time");
    }
    let subject_id = v.check_optional(
        "filter.subject_id",
        present(f.subject_id).map(SubjectId::parse),
    );
    let user_id = v.check_optional("filter.user_id", present(f.user_id).map(UserId::parse));
    let country = v.check_optional(
        "filter.country_code",
        present(f.country_code).map(CountryCode::parse),
    );
    let status = v.check("filter.status", enums::status_filter(f.status));
    (v.len() == before).then(|| ConsentFilter {
        site_id: site_id.expect("checked"),
        start_time,
        end_time,
        subject_id,
        user_id,
        country,
        status: status.flatten(),
    })
}

/// A list request: filter, where to start, how many, in which view.
pub fn list_request(
    r: proto::ListConsentsRequest,
) -> Result<(ConsentFilter, Option<Cursor>, PageSize, View), ValidationError> {
    let mut v = Violations::new();
    let filter = filter(r.site_id, r.filter, &mut v);
    let page_size = v.check("page_size", PageSize::parse(r.page_size));
    let view = v.check("view", enums::view(r.view));
    // A token can only be checked against a valid filter.
    let cursor = match (&filter, present(r.page_token)) {
        (Some(filter), Some(token)) => v.check("page_token", Cursor::from_token(&token, filter)),
        _ => None,
    };
    v.finish(|| {
        (
            filter.expect("checked"),
            cursor,
            page_size.expect("checked"),
            view.expect("checked"),
        )
    })
}

pub fn export_request(
    r: proto::ExportConsentsRequest,
) -> Result<(ConsentFilter, View), ValidationError> {
    let mut v = Violations::new();
    let filter = filter(r.site_id, r.filter, &mut v);
    let view = v.check("view", enums::view(r.view));
    v.finish(|| (filter.expect("checked"), view.expect("checked")))
}

pub fn erase_request(r: proto::EraseConsentsRequest) -> Result<EraseRequest, ValidationError> {
    let mut v = Violations::new();
    let site_id = v.check_optional("site_id", present(r.site_id).map(SiteId::parse));
    let subject_id = v.check_optional("subject_id", present(r.subject_id).map(SubjectId::parse));
    let user_id = v.check_optional("user_id", present(r.user_id).map(UserId::parse));
    if v.is_empty() && subject_id.is_none() && user_id.is_none() {
        v.add("subject_id", "subject_id or user_id is required");
    }
    v.finish(|| EraseRequest {
        site_id,
        subject_id,
        user_id,
    })
}

pub(super) fn text(value: Option<impl AsRef<str>>) -> String {
    value.map(|v| v.as_ref().to_string()).unwrap_or_default()
}

impl From<ConsentRecord> for proto::ConsentRecord {
    fn from(record: ConsentRecord) -> Self {
        let d = record.decision;
        let (device_type, os, browser) = d
            .user_agent
            .as_ref()
            .map(|ua| (ua.device_type.clone(), ua.os.clone(), ua.browser.clone()))
            .unwrap_or_default();
        proto::ConsentRecord {
            id: record.id.to_string(),
            request_id: text(d.request_id.as_ref()),
            site_id: d.site_id.into_inner(),
            subject_id: d.subject_id.into_inner(),
            user_id: text(d.user_id.as_ref()),
            action: enums::proto_action(d.action).into(),
            status: enums::proto_status(record.status).into(),
            granted_categories: d
                .choices
                .granted()
                .iter()
                .map(|n| n.as_ref().to_string())
                .collect(),
            denied_categories: d
                .choices
                .denied()
                .iter()
                .map(|n| n.as_ref().to_string())
                .collect(),
            services: d
                .choices
                .services()
                .iter()
                .map(|s| proto::ServiceDecision {
                    category: s.category.as_ref().to_string(),
                    service: s.service.as_ref().to_string(),
                    granted: s.granted,
                })
                .collect(),
            banner_revision: d.banner_revision.unwrap_or_default(),
            regime: enums::proto_regime(d.regime).into(),
            gpc_detected: d.gpc_detected,
            gpc_honoured: d.gpc_honoured,
            ccpa_opt_out: d.ccpa_opt_out,
            tcf_string: d.tcf_string.unwrap_or_default(),
            gpp_string: d.gpp_string.unwrap_or_default(),
            google_ac_string: d.google_ac_string.unwrap_or_default(),
            country_code: text(d.country.as_ref()),
            language_code: text(d.language.as_ref()),
            page_url: text(d.page_url.as_ref()),
            user_agent: text(d.user_agent.as_ref()),
            device_type,
            os,
            browser,
            anonymized_ip: d.anonymized_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            client_time: d.client_time.map(timestamp),
            record_time: Some(timestamp(record.record_time)),
            expire_time: Some(timestamp(record.expire_time)),
            notice_version: d.notice_version.unwrap_or_default(),
            notice_sha256: d.notice_sha256.map(NoticeHash::to_hex).unwrap_or_default(),
            // The basic view; `with_receipt` adds it.
            receipt: None,
        }
    }
}

/// How much of a record a list or an export returns (AIP-157).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Basic,
    Full,
}

/// A record with its signed receipt, rebuilt from the record and its seal.
pub(super) fn with_receipt(record: ConsentRecord, tenant_id: Uuid) -> proto::ConsentRecord {
    let receipt = receipt::receipt(tenant_id, &record);
    record_message(record, receipt)
}

/// A record with a receipt already at hand.
pub(super) fn record_message(
    record: ConsentRecord,
    receipt: Option<Receipt>,
) -> proto::ConsentRecord {
    let mut message = proto::ConsentRecord::from(record);
    message.receipt = receipt.map(Into::into);
    message
}

/// A record in the view asked for.
pub(super) fn in_view(record: ConsentRecord, view: View, tenant_id: Uuid) -> proto::ConsentRecord {
    match view {
        View::Basic => record.into(),
        View::Full => with_receipt(record, tenant_id),
    }
}

impl From<Receipt> for proto::ConsentReceipt {
    fn from(receipt: Receipt) -> Self {
        proto::ConsentReceipt {
            token: receipt.token(),
            signature: receipt.signature.to_vec(),
            proof: receipt
                .inclusion
                .as_ref()
                .map(|inclusion| inclusion.to_bytes())
                .unwrap_or_default(),
            // Claims are serde_json's output, so always UTF-8: moved, not
            // copied.
            claims_json: String::from_utf8(receipt.claims_json)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            key_id: receipt.key_id,
        }
    }
}
