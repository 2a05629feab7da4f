//! Who is calling and what they may do.

use std::fmt;

use uuid::Uuid;

/// A permission an API key carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    ConsentWrite,
    ConsentRead,
    /// With `ConsentRead` or `ConsentExport`: records come back with the
    /// raw user agent and the full page URL (see [`Disclosure`]).
    ConsentReadRaw,
    ConsentExport,
    ConsentErase,
    PreferenceWrite,
    PreferenceRead,
    PreferenceExport,
    PreferenceErase,
    Admin,
    AuditRead,
}

impl Scope {
    pub const ALL: [Scope; 11] = [
        Scope::ConsentWrite,
        Scope::ConsentRead,
        Scope::ConsentReadRaw,
        Scope::ConsentExport,
        Scope::ConsentErase,
        Scope::PreferenceWrite,
        Scope::PreferenceRead,
        Scope::PreferenceExport,
        Scope::PreferenceErase,
        Scope::Admin,
        Scope::AuditRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ConsentWrite => "consent:write",
            Scope::ConsentRead => "consent:read",
            Scope::ConsentReadRaw => "consent:read_raw",
            Scope::ConsentExport => "consent:export",
            Scope::ConsentErase => "consent:erase",
            Scope::PreferenceWrite => "preference:write",
            Scope::PreferenceRead => "preference:read",
            Scope::PreferenceExport => "preference:export",
            Scope::PreferenceErase => "preference:erase",
            Scope::Admin => "admin",
            Scope::AuditRead => "audit:read",
        }
    }

    pub fn parse(value: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == value)
            .ok_or_else(|| {
                let known: Vec<_> = Self::ALL.iter().map(|s| s.as_str()).collect();
                format!(
                    "unknown scope {value:?}; known scopes: {}",
                    known.join(", ")
                )
            })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller: the tenant every query is scoped to, and the key
/// used (for audit entries).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub tenant_id: Uuid,
    pub key_id: Uuid,
    pub scopes: Vec<Scope>,
}

impl Caller {
    pub fn may(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// How much of the browser's own words this caller's responses show.
    pub fn disclosure(&self) -> Disclosure {
        if self.may(Scope::ConsentReadRaw) {
            Disclosure::Raw
        } else {
            Disclosure::Parsed
        }
    }
}

/// How much of what a browser said about itself a record in a response
/// shows. A raw user agent is precise enough to help tell visitors apart,
/// and a query string often carries an e-mail address or a token; reading
/// a record seldom needs either. Neither is in a receipt's claims, so a
/// record verifies the same in both forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disclosure {
    /// The default: the device type, OS and browser parsed from the user
    /// agent but not the agent itself, and the page URL without its query.
    Parsed,
    /// With `consent:read_raw`: the user agent and page URL as stored.
    Raw,
}

/// An API key as presented by a caller or just generated. Only its SHA-256
/// digest is ever stored; `Debug` does not print it.
pub struct ApiKey(String);

/// Prefix that makes keys recognisable to secret scanners.
const KEY_PREFIX: &str = "cdk_";
/// Prefix of publishable keys, which are meant to be seen: scanners can
/// tell them from secrets.
const PUBLISHABLE_PREFIX: &str = "cdp_";

impl ApiKey {
    /// A new key: 32 random bytes from the OS generator.
    pub fn generate() -> Self {
        Self::with_prefix(KEY_PREFIX)
    }

    /// A new publishable site key.
    pub fn generate_publishable() -> Self {
        Self::with_prefix(PUBLISHABLE_PREFIX)
    }

    fn with_prefix(prefix: &str) -> Self {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let bytes: [u8; 32] = rand::random();
        Self(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    pub fn presented(value: &str) -> Self {
        Self(value.to_string())
    }

    pub fn digest(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// The key itself, for showing once to whoever created it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// A publishable site key's holder, as the public listener sees it: it may
/// record consent for `site_id` only, from `origins` only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteKey {
    pub tenant_id: Uuid,
    pub key_id: Uuid,
    pub site_id: super::ids::SiteId,
    pub origins: Vec<Origin>,
}

impl SiteKey {
    pub fn allows(&self, origin: &Origin) -> bool {
        self.origins.contains(origin)
    }
}

/// A web origin as browsers send it in `Origin`: scheme, host and a port
/// only when not the scheme's default, lower case, no path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin(String);

impl Origin {
    pub fn parse(value: &str) -> Result<Self, String> {
        const WRONG: &str = "must be an origin such as https://shop.example";
        let url = url::Url::parse(value).map_err(|_| WRONG.to_string())?;
        let plain = url.path() == "/"
            && !value.ends_with('/')
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
            && url.password().is_none();
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || !plain {
            return Err(WRONG.into());
        }
        Ok(Self(url.origin().ascii_serialization()))
    }
}

impl AsRef<str> for Origin {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_is_read_back_from_its_name_and_only_raw_readers_see_raw_values() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Ok(scope));
        }
        assert_eq!(Scope::parse("consent:read_raw"), Ok(Scope::ConsentReadRaw));
        let caller = |scopes: Vec<Scope>| Caller {
            tenant_id: Uuid::nil(),
            key_id: Uuid::nil(),
            scopes,
        };
        let reader = caller(vec![Scope::ConsentRead, Scope::ConsentExport, Scope::Admin]);
        assert_eq!(reader.disclosure(), Disclosure::Parsed);
        let raw = caller(vec![Scope::ConsentRead, Scope::ConsentReadRaw]);
        assert_eq!(raw.disclosure(), Disclosure::Raw);
    }

    #[test]
    fn origins_are_read_as_browsers_send_them() {
        let origin = |s: &str| Origin::parse(s).map(|o| o.0);
        assert_eq!(
            origin("https://Shop.Example"),
            Ok("https://shop.example".into())
        );
        assert_eq!(
            origin("https://shop.example:443"),
            Ok("https://shop.example".into())
        );
        assert_eq!(
            origin("http://localhost:8080"),
            Ok("http://localhost:8080".into())
        );
        for wrong in [
            "https://shop.example/",
            "https://shop.example/a",
            "ftp://x",
            "shop",
            "null",
        ] {
            assert!(origin(wrong).is_err(), "{wrong}");
        }
    }
}
