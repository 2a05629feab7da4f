//! ConsentService: requests into domain commands, records and receipts
//! into messages.

use uuid::Uuid;

use super::{enums, page_start, parsed, present, required, time};
use crate::{
    api::proto,
    domain::{
        command::{
            ExportConsents, GetConsentProof, GetConsentStatus, GetNotice, ListConsents, PutNotice,
        },
        consent::{
            ChoiceViolation, ChoiceWords, Choices, ConsentDecision, MAX_BANNER_REVISION_CHARS,
            MAX_GOOGLE_AC_CHARS, MAX_GPP_CHARS, MAX_NOTICE_VERSION_CHARS, MAX_TCF_CHARS,
            NoticeHash, NoticeText, RawServiceDecision, ServicePart, optional_text,
        },
        erasure::EraseRequest,
        ids::{RequestId, SiteId, SubjectId, UserId},
        network::FullIp,
        page::{ConsentFilter, PageSize, PageTokens},
        validation::{Checked, FieldViolation, Violations},
        web::{CountryCode, LanguageTag, PageUrl, UserAgent},
    },
};

conversions! {
    proto::RecordConsentRequest => ConsentDecision: record_consent,
    proto::GetConsentStatusRequest => GetConsentStatus: get_consent_status,
    proto::EraseConsentsRequest => EraseRequest: erase_consents,
    proto::GetConsentProofRequest => GetConsentProof: get_consent_proof,
    proto::PutNoticeRequest => PutNotice: put_notice,
    proto::GetNoticeRequest => GetNotice: get_notice,
}

list_conversions! {
    proto::ListConsentsRequest => ListConsents: list_consents,
    proto::ExportConsentsRequest => ExportConsents: export_consents,
}

fn record_consent(r: proto::RecordConsentRequest, v: &mut Violations) -> Checked<ConsentDecision> {
    let request_id = v.check_optional("request_id", present(r.request_id).map(RequestId::parse));
    let site_id = parsed(v, "site_id", r.site_id, SiteId::parse);
    let subject_id = parsed(v, "subject_id", r.subject_id, SubjectId::parse);
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
    let mut problems = Violations::default();
    let choices = Choices::parse(
        action.ok(),
        r.granted_categories,
        r.denied_categories,
        services,
        &mut problems,
    );
    v.merge(problems, choice_violation);
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
    let user_agent = v.check_optional("user_agent", present(r.user_agent).map(UserAgent::parse));
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
    let (full_ip, anonymized_ip) = ip?.unzip();
    Ok(ConsentDecision {
        request_id: request_id?,
        site_id: site_id?,
        subject_id: subject_id?,
        user_id: user_id?,
        action: action?,
        choices: choices?,
        banner_revision: banner_revision?,
        regime: regime?,
        gpc_detected: r.gpc_detected,
        gpc_honoured: r.gpc_honoured,
        ccpa_opt_out: r.ccpa_opt_out,
        tcf_string: tcf_string?,
        gpp_string: gpp_string?,
        google_ac_string: google_ac_string?,
        country: country?,
        language: language?,
        page_url: page_url?,
        user_agent: user_agent?,
        anonymized_ip,
        full_ip,
        notice_version: notice_version?,
        notice_sha256: notice_sha256?,
        client_time: client_time?,
    })
}

/// A problem of a decision's choices, under its proto field and in the
/// proto's words.
pub fn choice_violation(violation: ChoiceViolation) -> FieldViolation {
    let services = |at| match at {
        None => "services".to_string(),
        Some((i, ServicePart::Entry)) => format!("services[{i}]"),
        Some((i, ServicePart::Category)) => format!("services[{i}].category"),
        Some((i, ServicePart::Name)) => format!("services[{i}].service"),
    };
    let field = (violation.field).path("granted_categories", "denied_categories", services);
    FieldViolation {
        field,
        description: violation.problem.describe(&ChoiceWords {
            granted: "granted",
            denied: "denied",
            accept_all: "action is CONSENT_ACTION_ACCEPT_ALL",
            reject_all: "action is CONSENT_ACTION_REJECT_ALL",
            category_lists: "granted_categories or denied_categories",
        }),
    }
}

fn get_consent_status(
    r: proto::GetConsentStatusRequest,
    v: &mut Violations,
) -> Checked<GetConsentStatus> {
    let site_id = parsed(v, "site_id", r.site_id, SiteId::parse);
    let subject_id = parsed(v, "subject_id", r.subject_id, SubjectId::parse);
    let as_of = v.check_optional("as_of", r.as_of.map(time));
    Ok(GetConsentStatus {
        site_id: site_id?,
        subject_id: subject_id?,
        as_of: as_of?,
    })
}

/// The filter of a list or an export; it fails as a whole when any of its
/// fields does.
fn consent_filter(
    site_id: String,
    f: Option<proto::ConsentFilter>,
    v: &mut Violations,
) -> Checked<ConsentFilter> {
    let f = f.unwrap_or_default();
    let mark = v.mark();
    let site_id = v.check("site_id", required(site_id).and_then(SiteId::parse));
    let start_time = v.check_optional("filter.start_time", f.start_time.map(time));
    let end_time = v.check_optional("filter.end_time", f.end_time.map(time));
    if let (Ok(Some(start)), Ok(Some(end))) = (start_time, end_time)
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
    v.failed_since(mark)?;
    Ok(ConsentFilter {
        site_id: site_id?,
        start_time: start_time?,
        end_time: end_time?,
        subject_id: subject_id?,
        user_id: user_id?,
        country: country?,
        status: status?,
    })
}

fn list_consents(
    r: proto::ListConsentsRequest,
    tokens: &PageTokens,
    v: &mut Violations,
) -> Checked<ListConsents> {
    let filter = consent_filter(r.site_id, r.filter, v);
    let page_size = v.check("page_size", PageSize::parse(r.page_size));
    let view = v.check("view", enums::view(r.view));
    let after = page_start(r.page_token, filter.as_ref().ok(), tokens, v);
    Ok(ListConsents {
        filter: filter?,
        after: after?,
        page_size: page_size?,
        view: view?,
    })
}

fn export_consents(
    r: proto::ExportConsentsRequest,
    tokens: &PageTokens,
    v: &mut Violations,
) -> Checked<ExportConsents> {
    let filter = consent_filter(r.site_id, r.filter, v);
    let view = v.check("view", enums::view(r.view));
    let after = page_start(r.page_token, filter.as_ref().ok(), tokens, v);
    Ok(ExportConsents {
        filter: filter?,
        view: view?,
        after: after?,
    })
}

fn erase_consents(r: proto::EraseConsentsRequest, v: &mut Violations) -> Checked<EraseRequest> {
    let site_id = v.check_optional("site_id", present(r.site_id).map(SiteId::parse));
    let subject_id = v.check_optional("subject_id", present(r.subject_id).map(SubjectId::parse));
    let user_id = v.check_optional("user_id", present(r.user_id).map(UserId::parse));
    if matches!((&subject_id, &user_id), (Ok(None), Ok(None))) && v.is_empty() {
        v.add("subject_id", "subject_id or user_id is required");
    }
    Ok(EraseRequest {
        site_id: site_id?,
        subject_id: subject_id?,
        user_id: user_id?,
    })
}

fn get_consent_proof(
    r: proto::GetConsentProofRequest,
    v: &mut Violations,
) -> Checked<GetConsentProof> {
    let record_id = v.check(
        "record_id",
        required(r.record_id).and_then(|id| {
            Uuid::parse_str(&id).map_err(|_| "must be a record id (a UUID)".to_string())
        }),
    );
    Ok(GetConsentProof {
        record_id: record_id?,
        include_document: r.include_document,
    })
}

fn put_notice(r: proto::PutNoticeRequest, v: &mut Violations) -> Checked<PutNotice> {
    // Of the text as sent, so a mismatch shows even when the text is
    // refused too.
    let sha256 = NoticeHash::of_text(&r.text);
    let text = v.check("text", NoticeText::parse(r.text));
    let expected = v.check_optional(
        "expected_sha256",
        present(r.expected_sha256).map(|h| NoticeHash::parse(&h)),
    );
    if let Ok(Some(expected)) = expected
        && expected != sha256
    {
        v.add("expected_sha256", "does not match the SHA-256 of text");
    }
    Ok(PutNotice {
        sha256,
        text: text?,
    })
}

fn get_notice(r: proto::GetNoticeRequest, v: &mut Violations) -> Checked<GetNotice> {
    let sha256 = v.check(
        "sha256",
        required(r.sha256).and_then(|h| NoticeHash::parse(&h)),
    );
    Ok(GetNotice { sha256: sha256? })
}
