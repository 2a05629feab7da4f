//! CookieConsent's own data (`getCookie()` and `getUserPreferences()`, as a
//! `logConsent()` posts them) into the domain's [`ConsentDecision`]: the
//! same checks as RecordConsent, with fields named as the page sent them.
//!
//! The body is read field by field from a JSON object rather than through a
//! derived struct, so every problem names its field and all are reported at
//! once.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::{
    consent::{
        Action, ChoiceViolation, ChoiceWords, Choices, ConsentDecision, MAX_BANNER_REVISION_CHARS,
        MAX_NOTICE_VERSION_CHARS, NoticeHash, RawServiceDecision, Regime, ServicePart,
        optional_text,
    },
    ids::{RequestId, SiteId, SubjectId},
    network::FullIp,
    validation::{Checked, FieldViolation, ValidationError, Violations},
    web::{LanguageTag, PageUrl, UserAgent},
};

/// How far ahead of the server's clock a client timestamp may be: clocks
/// of visitors' devices drift, a decision from the future does not exist.
pub const MAX_CLIENT_SKEW: Duration = Duration::from_secs(5 * 60);

/// Fields a page may send. `getCookie()` carries a few the record has no
/// place for (`categories` and `services` repeat the preferences, `data` is
/// the site's own); they are accepted and ignored, so a page may spread the
/// whole cookie into its payload. Anything else is refused by name, so a
/// typo does not silently drop a field.
const IGNORED: [&str; 4] = ["categories", "services", "data", "expirationTime"];
const KNOWN: [&str; 14] = [
    "consentId",
    "acceptType",
    "acceptedCategories",
    "rejectedCategories",
    "acceptedServices",
    "rejectedServices",
    "revision",
    "consentTimestamp",
    "lastConsentTimestamp",
    "language",
    "languageCode",
    "pageUrl",
    "noticeVersion",
    "noticeHash",
];

/// What the request says about the visit, outside the body.
pub struct Visit {
    pub site_id: SiteId,
    pub ip: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
    pub gpc: bool,
    pub now: SystemTime,
}

/// The decision a body describes, or every field at fault.
pub fn decision(body: &[u8], visit: Visit) -> Result<ConsentDecision, ValidationError> {
    let object = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err(one("body", "must be a JSON object")),
        Err(error) => return Err(one("body", format!("is not valid JSON: {error}"))),
    };
    let mut v = Violations::new();
    let parsed = parse(&object, visit, &mut v);
    v.finish(parsed)
}

fn parse(
    object: &Map<String, Value>,
    visit: Visit,
    v: &mut Violations,
) -> Checked<ConsentDecision> {
    let mut known = Ok(());
    for field in object.keys() {
        if !KNOWN.contains(&field.as_str()) && !IGNORED.contains(&field.as_str()) {
            known = Err(v.add(field.clone(), "unknown field"));
        }
    }

    let consent_id = v.check(
        "consentId",
        required_string(object, "consentId").and_then(consent_id),
    );
    let action = v.check(
        "acceptType",
        required_string(object, "acceptType").and_then(|t| match t.as_str() {
            "all" => Ok(Action::AcceptAll),
            "necessary" => Ok(Action::RejectAll),
            "custom" => Ok(Action::Custom),
            _ => Err("must be \"all\", \"necessary\" or \"custom\"".into()),
        }),
    );
    let granted = v.check("acceptedCategories", strings(object, "acceptedCategories"));
    let denied = v.check("rejectedCategories", strings(object, "rejectedCategories"));
    // The page's path of each service, by its index in the flat list the
    // domain checks.
    let mut service_paths = Vec::new();
    let mut services = Vec::new();
    let mut maps = Ok(());
    for (field, granted) in [("acceptedServices", true), ("rejectedServices", false)] {
        match v.check(field, service_map(object, field)) {
            Ok(by_category) => {
                for (category, index, service) in by_category {
                    service_paths.push(service_path(granted, &category, index));
                    services.push(RawServiceDecision {
                        category,
                        service,
                        granted,
                    });
                }
            }
            Err(invalid) => maps = Err(invalid),
        }
    }
    let mut problems = Violations::default();
    let choices = Choices::parse(
        action.ok(),
        granted.clone().unwrap_or_default(),
        denied.clone().unwrap_or_default(),
        services,
        &mut problems,
    );
    v.merge(problems, |problem| {
        choice_violation(problem, &service_paths)
    });

    let revision = match optional(object, "revision") {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(v.add("revision", "must be a number")),
    }
    .and_then(|revision| capped(v, "revision", revision, MAX_BANNER_REVISION_CHARS));
    let consent_time = v.check_optional(
        "consentTimestamp",
        optional_string(object, "consentTimestamp").map(|t| client_time(&t?, visit.now)),
    );
    let last_time = v.check(
        "lastConsentTimestamp",
        required_string(object, "lastConsentTimestamp")
            .and_then(|text| client_time(&text, visit.now).map(|time| (text, time))),
    );
    let mut order = Ok(());
    if let (Ok(Some(first)), Ok((_, last))) = (&consent_time, &last_time)
        && first > last
    {
        order = Err(v.add("consentTimestamp", "must not be after lastConsentTimestamp"));
    }
    let language_field = if object.contains_key("language") {
        "language"
    } else {
        "languageCode"
    };
    let language = v.check_optional(
        language_field,
        optional_string(object, language_field).map(|l| l.and_then(LanguageTag::parse)),
    );
    let page_url = v.check_optional(
        "pageUrl",
        optional_string(object, "pageUrl").map(|u| u.and_then(PageUrl::parse)),
    );
    let notice_version = v
        .check_optional("noticeVersion", optional_string(object, "noticeVersion"))
        .and_then(|version| capped(v, "noticeVersion", version, MAX_NOTICE_VERSION_CHARS));
    let notice_sha256 = v.check_optional(
        "noticeHash",
        optional_string(object, "noticeHash").map(|h| NoticeHash::parse(&h?)),
    );
    let user_agent = v.check_optional(
        "User-Agent",
        visit
            .user_agent
            .filter(|ua| !ua.is_empty())
            .map(UserAgent::parse),
    );
    let (full_ip, anonymized_ip) = visit
        .ip
        .map(|ip| FullIp::parse(&ip.to_string()).expect("an address parses as its own text"))
        .unzip();

    known?;
    maps?;
    order?;
    granted?;
    denied?;
    let consent_id = consent_id?;
    let (last_text, last_time) = last_time?;
    consent_time?;
    Ok(ConsentDecision {
        // What the connection tells: the site of the key, the browser's
        // headers and the address it came from.
        request_id: Some(request_id(&visit.site_id, &consent_id, &last_text)),
        site_id: visit.site_id,
        gpc_detected: visit.gpc,
        user_agent: user_agent?,
        anonymized_ip,
        full_ip,
        // What the page sent, and what a banner never sends.
        subject_id: consent_id,
        user_id: None,
        action: action?,
        choices: choices?,
        banner_revision: revision?,
        regime: Regime::Gdpr,
        gpc_honoured: false,
        ccpa_opt_out: false,
        tcf_string: None,
        gpp_string: None,
        google_ac_string: None,
        country: None,
        language: language?,
        page_url: page_url?,
        notice_version: notice_version?,
        notice_sha256: notice_sha256?,
        client_time: Some(last_time),
    })
}

/// A text the page may leave out, checked against its longest.
fn capped(
    v: &mut Violations,
    field: &str,
    text: Option<String>,
    max_chars: usize,
) -> Checked<Option<String>> {
    v.check_optional(field, text.and_then(|text| optional_text(text, max_chars)))
}

/// Where the page sent the `index`th service of `category`.
fn service_path(granted: bool, category: &str, index: usize) -> String {
    let field = if granted {
        "acceptedServices"
    } else {
        "rejectedServices"
    };
    format!("{field}.{category}[{index}]")
}

/// The problems the site's declared categories found in a decision this
/// module parsed, under the fields the page sent.
pub fn declined(problems: Vec<ChoiceViolation>, choices: &Choices) -> ValidationError {
    // The services are in the order the page sent them: accepted, then
    // rejected, each category's in its array's order.
    let mut seen: std::collections::HashMap<(bool, &str), usize> = Default::default();
    let service_paths: Vec<String> = choices
        .services()
        .iter()
        .map(|s| {
            let index = seen.entry((s.granted, s.category.as_ref())).or_default();
            *index += 1;
            service_path(s.granted, s.category.as_ref(), *index - 1)
        })
        .collect();
    ValidationError {
        violations: problems
            .into_iter()
            .map(|problem| choice_violation(problem, &service_paths))
            .collect(),
    }
}

/// A problem of the choices, under the page's field and in its words.
fn choice_violation(violation: ChoiceViolation, service_paths: &[String]) -> FieldViolation {
    let service = |i: usize| {
        service_paths
            .get(i)
            .cloned()
            .unwrap_or_else(|| "acceptedServices".into())
    };
    let services = |at| match at {
        None => "acceptedServices".to_string(),
        Some((i, ServicePart::Entry | ServicePart::Name)) => service(i),
        // The category is the key the service sits under.
        Some((i, ServicePart::Category)) => {
            let path = service(i);
            path.split_once('[')
                .map_or(path.clone(), |(key, _)| key.to_string())
        }
    };
    let field = (violation.field).path("acceptedCategories", "rejectedCategories", services);
    FieldViolation {
        field,
        description: violation.problem.describe(&ChoiceWords {
            granted: "accepted",
            denied: "rejected",
            accept_all: "acceptType is \"all\"",
            reject_all: "acceptType is \"necessary\"",
            category_lists: "acceptedCategories or rejectedCategories",
        }),
    }
}

fn one(field: &str, description: impl Into<String>) -> ValidationError {
    ValidationError {
        violations: vec![FieldViolation {
            field: field.into(),
            description: description.into(),
        }],
    }
}

/// The idempotency key of a decision: a page that logs the same change
/// twice (a retry, a second tab, `onChange` and `onFirstConsent` both)
/// sends the same consent id and last consent time, so it stores one
/// record. Per site, so two sites' banners never collide.
pub fn request_id(site: &SiteId, subject: &SubjectId, last_consent: &str) -> RequestId {
    const NAMESPACE: Uuid = Uuid::from_u128(0x5b8a_1c1e_6f0e_4c55_9a43_6b8e_0f2c_c0de);
    let name = [site.as_ref(), subject.as_ref(), last_consent].join("\n");
    RequestId::parse(format!(
        "cc-{}",
        Uuid::new_v5(&NAMESPACE, name.as_bytes()).simple()
    ))
    .expect("a prefixed UUID is a valid request id")
}

/// CookieConsent's consent id is a UUID it generates in the browser;
/// anything else did not come from it.
fn consent_id(value: String) -> Result<SubjectId, String> {
    Uuid::try_parse(&value)
        .map_err(|_| "must be a UUID, as CookieConsent generates".to_string())?;
    SubjectId::parse(value)
}

/// An ISO 8601 timestamp as `Date.toISOString()` writes it, to the
/// microsecond Postgres keeps; not later than the server's clock allows.
fn client_time(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    let time = humantime::parse_rfc3339(text).map_err(|_| {
        "must be an ISO 8601 UTC timestamp such as 2026-01-31T12:00:00.000Z".to_string()
    })?;
    if time > now + MAX_CLIENT_SKEW {
        return Err("is in the future".into());
    }
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| "must be after 1970".to_string())?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_micros(since.as_micros() as u64))
}

fn optional<'a>(object: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    object.get(field).filter(|value| !value.is_null())
}

fn optional_string(object: &Map<String, Value>, field: &str) -> Option<Result<String, String>> {
    optional(object, field).map(|value| match value {
        Value::String(s) if s.is_empty() => Err("must not be empty".into()),
        Value::String(s) => Ok(s.clone()),
        _ => Err("must be a string".into()),
    })
}

fn required_string(object: &Map<String, Value>, field: &str) -> Result<String, String> {
    optional_string(object, field).unwrap_or_else(|| Err("is required".into()))
}

fn strings(object: &Map<String, Value>, field: &str) -> Result<Vec<String>, String> {
    match optional(object, field) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err("must be an array of strings".to_string()),
            })
            .collect(),
        Some(_) => Err("must be an array of strings".into()),
    }
}

/// `{"analytics": ["ga", "hotjar"]}` as (category, service) pairs.
fn service_map(
    object: &Map<String, Value>,
    field: &str,
) -> Result<Vec<(String, usize, String)>, String> {
    const WRONG: &str = "must be an object of category names to arrays of service names";
    match optional(object, field) {
        None => Ok(Vec::new()),
        Some(Value::Object(categories)) => {
            let mut pairs = Vec::new();
            for (category, services) in categories {
                let Value::Array(services) = services else {
                    return Err(WRONG.into());
                };
                for (index, service) in services.iter().enumerate() {
                    let Value::String(service) = service else {
                        return Err(WRONG.into());
                    };
                    pairs.push((category.clone(), index, service.clone()));
                }
            }
            Ok(pairs)
        }
        Some(_) => Err(WRONG.into()),
    }
}

#[cfg(test)]
mod tests;
