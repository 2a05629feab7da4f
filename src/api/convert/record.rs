//! Consent records and receipts into messages.

use super::{enums, text, timestamp};
use crate::{
    api::proto,
    domain::{
        auth::{Caller, Disclosure},
        command::View,
        consent::{ConsentRecord, NoticeHash},
        receipt::{self, Receipt},
    },
};

/// A record as `disclosure` lets it out: every path a record takes into a
/// response comes through here.
pub(super) fn message(record: ConsentRecord, disclosure: Disclosure) -> proto::ConsentRecord {
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
        page_url: match disclosure {
            Disclosure::Raw => text(d.page_url.as_ref()),
            Disclosure::Parsed => text(d.page_url.map(|url| url.without_query()).as_ref()),
        },
        user_agent: match disclosure {
            Disclosure::Raw => text(d.user_agent.as_ref()),
            Disclosure::Parsed => String::new(),
        },
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

/// A record with its signed receipt, rebuilt from the record and its seal.
pub fn with_receipt(record: ConsentRecord, caller: &Caller) -> proto::ConsentRecord {
    let receipt = receipt::receipt(caller.tenant_id, &record);
    record_message(record, receipt, caller.disclosure())
}

/// A record with a receipt already at hand.
pub fn record_message(
    record: ConsentRecord,
    receipt: Option<Receipt>,
    disclosure: Disclosure,
) -> proto::ConsentRecord {
    let mut message = message(record, disclosure);
    message.receipt = receipt.map(Into::into);
    message
}

/// A record in the view asked for.
pub fn in_view(record: ConsentRecord, view: View, caller: &Caller) -> proto::ConsentRecord {
    match view {
        View::Basic => message(record, caller.disclosure()),
        View::Full => with_receipt(record, caller),
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
