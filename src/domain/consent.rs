//! A consent decision and the record it becomes.

use std::{collections::HashSet, time::SystemTime};

use uuid::Uuid;

use super::{
    ids::{RequestId, SiteId, SubjectId, UserId},
    network::{AnonymizedIp, FullIp},
    validation::{Violations, bounded_text},
    web::{CountryCode, LanguageTag, PageUrl, UserAgent},
};

pub const MAX_CATEGORIES: usize = 64;
pub const MAX_SERVICES: usize = 256;
pub const MAX_NAME_CHARS: usize = 64;
pub const MAX_BANNER_REVISION_CHARS: usize = 64;
pub const MAX_TCF_CHARS: usize = 8192;
pub const MAX_GPP_CHARS: usize = 8192;
pub const MAX_GOOGLE_AC_CHARS: usize = 4096;

/// What the visitor did on the banner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    AcceptAll,
    RejectAll,
    Custom,
}

impl Action {
    pub const ALL: [Self; 3] = [Self::AcceptAll, Self::RejectAll, Self::Custom];
}

/// The outcome, derived from the action and the categories.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Accepted,
    Partial,
    Rejected,
}

impl Status {
    pub const ALL: [Self; 3] = [Self::Accepted, Self::Partial, Self::Rejected];
}

/// The legal framework the banner ran under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Regime {
    Gdpr,
    Ccpa,
    IabTcf,
    Basic,
}

impl Regime {
    pub const ALL: [Self; 4] = [Self::Gdpr, Self::Ccpa, Self::IabTcf, Self::Basic];
}

/// A consent category or service name: 1-64 of `[A-Za-z0-9_.-]`. The charset
/// keeps `/` free, which the store uses to join a category to its service.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Name(String);

impl Name {
    pub fn parse(value: String) -> Result<Self, String> {
        if value.is_empty() {
            return Err("must not be empty".into());
        }
        if value.len() > MAX_NAME_CHARS {
            return Err(format!("must be at most {MAX_NAME_CHARS} characters"));
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err("may only contain letters, digits, '_', '.' and '-'".into());
        }
        Ok(Self(value))
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The decision on one service of a category.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceDecision {
    pub category: Name,
    pub service: Name,
    pub granted: bool,
}

/// Unvalidated service decision, as the caller sent it.
pub struct RawServiceDecision {
    pub category: String,
    pub service: String,
    pub granted: bool,
}

/// The categories and services of one decision, consistent with each other
/// and with the action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choices {
    granted: Vec<Name>,
    denied: Vec<Name>,
    services: Vec<ServiceDecision>,
}

impl Choices {
    /// Parses the caller's lists, recording violations under the proto's
    /// field names.
    pub fn parse(
        action: Option<Action>,
        granted: Vec<String>,
        denied: Vec<String>,
        services: Vec<RawServiceDecision>,
        violations: &mut Violations,
    ) -> Option<Self> {
        let before = violations.len();
        let granted = parse_names("granted_categories", granted, violations);
        let denied = parse_names("denied_categories", denied, violations);
        let granted_set: HashSet<&Name> = granted.iter().collect();
        for (i, name) in denied.iter().enumerate() {
            if granted_set.contains(name) {
                violations.add(
                    format!("denied_categories[{i}]"),
                    format!("category {:?} is also granted", name.as_ref()),
                );
            }
        }
        if action == Some(Action::AcceptAll) && !denied.is_empty() {
            violations.add(
                "denied_categories",
                "must be empty when action is CONSENT_ACTION_ACCEPT_ALL",
            );
        }
        if services.len() > MAX_SERVICES {
            violations.add("services", format!("at most {MAX_SERVICES} entries"));
        }
        let known: HashSet<&Name> = granted.iter().chain(&denied).collect();
        let mut seen = HashSet::new();
        let mut parsed_services = Vec::with_capacity(services.len());
        for (i, raw) in services.into_iter().take(MAX_SERVICES).enumerate() {
            let category =
                violations.check(format!("services[{i}].category"), Name::parse(raw.category));
            let service =
                violations.check(format!("services[{i}].service"), Name::parse(raw.service));
            let (Some(category), Some(service)) = (category, service) else {
                continue;
            };
            if !known.contains(&category) {
                violations.add(
                    format!("services[{i}].category"),
                    "must be listed in granted_categories or denied_categories",
                );
            }
            if !seen.insert((category.clone(), service.clone())) {
                violations.add(format!("services[{i}]"), "service listed twice");
            }
            parsed_services.push(ServiceDecision {
                category,
                service,
                granted: raw.granted,
            });
        }
        if violations.len() > before {
            return None;
        }
        Some(Self {
            granted,
            denied,
            services: parsed_services,
        })
    }

    /// Rebuilds choices read back from the store, which only holds valid ones.
    pub fn from_stored(
        granted: Vec<String>,
        denied: Vec<String>,
        services: Vec<ServiceDecision>,
    ) -> Self {
        Self {
            granted: granted.into_iter().map(Name).collect(),
            denied: denied.into_iter().map(Name).collect(),
            services,
        }
    }

    pub fn granted(&self) -> &[Name] {
        &self.granted
    }

    pub fn denied(&self) -> &[Name] {
        &self.denied
    }

    pub fn services(&self) -> &[ServiceDecision] {
        &self.services
    }
}

fn parse_names(field: &str, values: Vec<String>, violations: &mut Violations) -> Vec<Name> {
    if values.len() > MAX_CATEGORIES {
        violations.add(field, format!("at most {MAX_CATEGORIES} entries"));
    }
    let mut names: Vec<Name> = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().take(MAX_CATEGORIES).enumerate() {
        let Some(name) = violations.check(format!("{field}[{i}]"), Name::parse(value)) else {
            continue;
        };
        if names.contains(&name) {
            violations.add(format!("{field}[{i}]"), "listed twice");
            continue;
        }
        names.push(name);
    }
    names
}

/// Free text with a length limit, such as a TCF string; empty means absent.
pub fn optional_text(value: String, max_chars: usize) -> Option<Result<String, String>> {
    if value.is_empty() {
        None
    } else {
        Some(bounded_text(&value, max_chars).map(|()| value))
    }
}

/// Everything a caller says about one decision, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentDecision {
    pub request_id: Option<RequestId>,
    pub site_id: SiteId,
    pub subject_id: SubjectId,
    pub user_id: Option<UserId>,
    pub action: Action,
    pub choices: Choices,
    pub banner_revision: Option<String>,
    pub regime: Regime,
    pub gpc_detected: bool,
    pub gpc_honoured: bool,
    pub ccpa_opt_out: bool,
    pub tcf_string: Option<String>,
    pub gpp_string: Option<String>,
    pub google_ac_string: Option<String>,
    pub country: Option<CountryCode>,
    pub language: Option<LanguageTag>,
    pub page_url: Option<PageUrl>,
    pub user_agent: Option<UserAgent>,
    pub anonymized_ip: Option<AnonymizedIp>,
    /// Kept only to be encrypted on write (detailed logging); never read back.
    pub full_ip: Option<FullIp>,
    pub notice_version: Option<String>,
    pub notice_sha256: Option<NoticeHash>,
    pub client_time: Option<SystemTime>,
}

impl ConsentDecision {
    /// The minimal record, for sites without detailed logging: no user
    /// agent, page URL or IP of any form.
    pub fn minimized(self) -> Self {
        Self {
            user_agent: None,
            page_url: None,
            anonymized_ip: None,
            full_ip: None,
            ..self
        }
    }

    pub fn status(&self) -> Status {
        match self.action {
            Action::AcceptAll => Status::Accepted,
            Action::RejectAll => Status::Rejected,
            Action::Custom if self.choices.denied.is_empty() => Status::Accepted,
            Action::Custom if self.choices.granted.is_empty() => Status::Rejected,
            Action::Custom => Status::Partial,
        }
    }
}

/// A stored decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentRecord {
    pub id: Uuid,
    pub decision: ConsentDecision,
    pub status: Status,
    pub record_time: SystemTime,
    pub expire_time: SystemTime,
    /// The receipt's key and signature; the token is rebuilt from the
    /// record when a response carries it (see `receipt::receipt`).
    pub seal: Option<ReceiptSeal>,
}

/// What signs a record: the key id and the Ed25519 signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptSeal {
    pub key_id: String,
    pub signature: [u8; 64],
    /// Batch receipts (cr2) only: where the record sits in the signed tree.
    pub inclusion: Option<super::receipt::Inclusion>,
}

pub const MAX_NOTICE_VERSION_CHARS: usize = 64;

/// The SHA-256 of a notice text, as shown to the visitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NoticeHash([u8; 32]);

impl NoticeHash {
    pub fn parse(hex_digest: &str) -> Result<Self, String> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_digest, &mut bytes)
            .map_err(|_| "must be a SHA-256 digest: 64 hexadecimal characters".to_string())?;
        Ok(Self(bytes))
    }

    pub fn of_text(text: &str) -> Self {
        use sha2::{Digest, Sha256};
        Self(Sha256::digest(text.as_bytes()).into())
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}
