//! A consent decision and the record it becomes.

use std::time::SystemTime;

use uuid::Uuid;

use super::{
    ids::{RequestId, SiteId, SubjectId, UserId},
    network::{AnonymizedIp, FullIp},
    validation::bounded_text,
    web::{CountryCode, LanguageTag, PageUrl, UserAgent},
};

mod choices;

pub use choices::{
    ChoiceField, ChoiceProblem, ChoiceViolation, ChoiceWords, Choices, RawServiceDecision,
    ServiceDecision, ServicePart,
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
    /// The minimal record, for sites without detailed logging: the
    /// decision (action, categories, services, banner revision, regime and
    /// the GPC / CCPA signals it was taken under, notice), its times and
    /// the visitor's subject id. Nothing about the person or their browser:
    /// no user id, country, language, page URL, user agent, IP of any form,
    /// nor the TCF / GPP / Google AC strings (which carry more than the
    /// choice). The request id stays until its retry window ends.
    pub fn minimized(mut self) -> Self {
        // Every field named: one added later must be placed on a side. The
        // kept are `_`; the dropped are bound, to be cleared below.
        let Self {
            request_id: _,
            site_id: _,
            subject_id: _,
            user_id,
            action: _,
            choices: _,
            banner_revision: _,
            regime: _,
            gpc_detected: _,
            gpc_honoured: _,
            ccpa_opt_out: _,
            tcf_string,
            gpp_string,
            google_ac_string,
            country,
            language,
            page_url,
            user_agent,
            anonymized_ip,
            full_ip,
            notice_version: _,
            notice_sha256: _,
            client_time: _,
        } = &mut self;
        *user_id = None;
        *tcf_string = None;
        *gpp_string = None;
        *google_ac_string = None;
        *country = None;
        *language = None;
        *page_url = None;
        *user_agent = None;
        *anonymized_ip = None;
        *full_ip = None;
        self
    }

    pub fn status(&self) -> Status {
        match self.action {
            Action::AcceptAll => Status::Accepted,
            Action::RejectAll => Status::Rejected,
            Action::Custom if self.choices.denied().is_empty() => Status::Accepted,
            Action::Custom if self.choices.granted().is_empty() => Status::Rejected,
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
    pub inclusion: Option<super::merkle::Inclusion>,
}

pub const MAX_NOTICE_VERSION_CHARS: usize = 64;
/// The largest notice text PutNotice takes.
pub const MAX_NOTICE_BYTES: usize = 1 << 20;

/// A notice text as shown to visitors: not empty, at most
/// [`MAX_NOTICE_BYTES`], and without NUL, which Postgres text cannot hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeText(String);

impl NoticeText {
    pub fn parse(text: String) -> Result<Self, String> {
        if text.is_empty() {
            Err("is required".into())
        } else if text.len() > MAX_NOTICE_BYTES {
            Err(format!("must be at most {MAX_NOTICE_BYTES} bytes"))
        } else if text.contains('\0') {
            Err("must not contain NUL characters".into())
        } else {
            Ok(Self(text))
        }
    }
}

impl AsRef<str> for NoticeText {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

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

#[cfg(test)]
mod tests;
