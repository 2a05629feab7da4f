//! What the browser tells about the visitor: country, language, page, agent.

use std::{
    hash::{BuildHasher, RandomState},
    sync::LazyLock,
};

use quick_cache::sync::Cache;

use super::validation::bounded_text;

pub const MAX_LANGUAGE_CHARS: usize = 35;
pub const MAX_PAGE_URL_CHARS: usize = 2048;
pub const MAX_USER_AGENT_CHARS: usize = 1024;

/// ISO 3166-1 alpha-2 codes officially assigned (249, from the ISO 3166
/// Maintenance Agency list as packaged by pycountry 26.2.16).
const ISO_3166_ALPHA_2: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// An assigned ISO 3166-1 alpha-2 country code, upper case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountryCode(String);

impl CountryCode {
    pub fn parse(value: String) -> Result<Self, String> {
        let assigned = value.len() == 2
            && value.bytes().all(|b| b.is_ascii_uppercase())
            && ISO_3166_ALPHA_2.split(' ').any(|code| code == value);
        if assigned {
            Ok(Self(value))
        } else {
            Err("must be an assigned ISO 3166-1 alpha-2 code in upper case, like \"DE\"".into())
        }
    }
}

impl AsRef<str> for CountryCode {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A BCP 47 language tag, checked for its shape (RFC 5646 syntax: a 2-3 or
/// 5-8 letter primary language, then subtags of 1-8 letters or digits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LanguageTag(String);

impl LanguageTag {
    pub fn parse(value: String) -> Result<Self, String> {
        const WRONG: &str = "must be a BCP 47 language tag, like \"en\" or \"pt-BR\"";
        if value.len() > MAX_LANGUAGE_CHARS {
            return Err(format!("must be at most {MAX_LANGUAGE_CHARS} characters"));
        }
        let mut subtags = value.split('-');
        let primary = subtags.next().unwrap_or_default();
        let primary_ok = matches!(primary.len(), 2 | 3 | 5..=8)
            && primary.bytes().all(|b| b.is_ascii_alphabetic());
        let rest_ok = subtags.all(|subtag| {
            (1..=8).contains(&subtag.len()) && subtag.bytes().all(|b| b.is_ascii_alphanumeric())
        });
        if primary_ok && rest_ok {
            Ok(Self(value))
        } else {
            Err(WRONG.into())
        }
    }
}

impl AsRef<str> for LanguageTag {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// An absolute http(s) URL without user info or fragment: what a browser
/// sends as `https://user:pass@host/path?query#fragment` is kept as
/// `https://host/path?query`. Credentials never describe the page, and a
/// fragment often carries a token. The query string is kept as sent; a
/// site setting drops it at sealing, and responses leave it out unless
/// the caller may read raw values ([`PageUrl::without_query`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageUrl(String);

impl PageUrl {
    pub fn parse(value: String) -> Result<Self, String> {
        bounded_text(&value, MAX_PAGE_URL_CHARS)?;
        let mut parsed = match url::Url::parse(&value) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {
                parsed
            }
            _ => return Err("must be an absolute http or https URL".into()),
        };
        if parsed.username().is_empty()
            && parsed.password().is_none()
            && parsed.fragment().is_none()
        {
            // As sent: nothing to strip, so no normalising either.
            return Ok(Self(value));
        }
        // Cannot fail: an http(s) URL has a host.
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        parsed.set_fragment(None);
        // Serialising percent-encodes what the input left raw.
        let stripped = String::from(parsed);
        bounded_text(&stripped, MAX_PAGE_URL_CHARS)?;
        Ok(Self(stripped))
    }
}

#[cfg(test)]
mod page_url_tests {
    use super::PageUrl;

    fn kept(sent: &str) -> String {
        PageUrl::parse(sent.into()).unwrap().as_ref().to_string()
    }

    #[test]
    fn user_info_and_fragment_are_stripped_and_the_query_kept() {
        for (sent, stored) in [
            (
                "https://user:secret@shop.example/checkout?step=2#token=abc",
                "https://shop.example/checkout?step=2",
            ),
            ("https://user@shop.example/", "https://shop.example/"),
            ("https://:secret@shop.example/a", "https://shop.example/a"),
            ("http://shop.example:8080/a#", "http://shop.example:8080/a"),
            (
                "https://shop.example/?email=a%40b.example#x",
                "https://shop.example/?email=a%40b.example",
            ),
        ] {
            assert_eq!(kept(sent), stored, "{sent}");
            assert_eq!(kept(stored), stored, "stable when read back");
        }
    }

    #[test]
    fn a_url_with_nothing_to_strip_is_kept_as_sent() {
        for sent in [
            "https://shop.example/checkout?step=2",
            "https://Shop.Example",
            "https://shop.example/a b?q=ä",
        ] {
            assert_eq!(kept(sent), sent);
        }
    }

    #[test]
    fn without_its_query_a_url_keeps_the_rest_as_stored() {
        let bare = |sent: &str| {
            PageUrl::parse(sent.into())
                .unwrap()
                .without_query()
                .as_ref()
                .to_string()
        };
        assert_eq!(
            bare("https://shop.example/checkout?email=a%40b.example&step=2"),
            "https://shop.example/checkout"
        );
        assert_eq!(bare("https://shop.example/?"), "https://shop.example/");
        assert_eq!(
            bare("https://u:p@shop.example/a?t=1#f"),
            "https://shop.example/a"
        );
        assert_eq!(bare("https://Shop.Example/a b"), "https://Shop.Example/a b");
        assert!(PageUrl::parse(bare("https://shop.example/a?q=1")).is_ok());
    }

    #[test]
    fn other_urls_are_refused() {
        for sent in [
            "ftp://user:pw@shop.example/",
            "mailto:a@b.example",
            "/relative",
        ] {
            assert!(PageUrl::parse(sent.into()).is_err(), "{sent}");
        }
    }
}

impl PageUrl {
    /// The URL without its query string (`https://host/p?q` is
    /// `https://host/p`), otherwise as stored. User info and fragment are
    /// gone already, so the first `?` is where the query starts.
    pub fn without_query(&self) -> PageUrl {
        match self.0.split_once('?') {
            Some((page, _query)) => Self(page.to_string()),
            None => self.clone(),
        }
    }
}

impl AsRef<str> for PageUrl {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A User-Agent header with what it says about the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserAgent {
    raw: String,
    pub device_type: String,
    pub os: String,
    pub browser: String,
}

impl UserAgent {
    pub fn parse(raw: String) -> Result<Self, String> {
        bounded_text(&raw, MAX_USER_AGENT_CHARS)?;
        let (device_type, os, browser) = recently_parsed(&raw);
        Ok(Self {
            raw,
            device_type,
            os,
            browser,
        })
    }

    /// Rebuilds an agent read back from the store, without parsing it again.
    pub fn from_stored(raw: String, device_type: String, os: String, browser: String) -> Self {
        Self {
            raw,
            device_type,
            os,
            browser,
        }
    }
}

/// What woothee found in the agents seen lately. A site's visitors send few
/// distinct agents, and parsing one is a visible share of a RecordConsent's
/// CPU. Agents are kept only as a 128-bit keyed hash: a site that does not
/// log agents must not have them linger here.
type Found = (String, String, String);
/// Bounds the cache at a few hundred KiB; the least used agents go first.
const RECENTLY_PARSED_AGENTS: usize = 4096;
static RECENTLY_PARSED: LazyLock<Cache<u128, Found>> =
    LazyLock::new(|| Cache::new(RECENTLY_PARSED_AGENTS));
static AGENT_HASHERS: LazyLock<(RandomState, RandomState)> =
    LazyLock::new(|| (RandomState::new(), RandomState::new()));

fn agent_key(raw: &str) -> u128 {
    let (high, low) = &*AGENT_HASHERS;
    (u128::from(high.hash_one(raw)) << 64) | u128::from(low.hash_one(raw))
}

fn recently_parsed(raw: &str) -> Found {
    let key = agent_key(raw);
    if let Some(found) = RECENTLY_PARSED.get(&key) {
        return found;
    }
    let found = match woothee::parser::Parser::new().parse(raw) {
        Some(found) => (
            found.category.to_string(),
            known(found.os),
            known(found.name),
        ),
        None => ("unknown".to_string(), String::new(), String::new()),
    };
    RECENTLY_PARSED.insert(key, found.clone());
    found
}

fn known(value: &str) -> String {
    if value == woothee::woothee::VALUE_UNKNOWN {
        String::new()
    } else {
        value.to_string()
    }
}

impl AsRef<str> for UserAgent {
    fn as_ref(&self) -> &str {
        &self.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The only test that parses agents in this binary: it owns the cache.
    #[test]
    fn agents_seen_lately_are_not_parsed_again_and_the_cache_stays_bounded() {
        let phone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 \
                     (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        let first = UserAgent::parse(phone.into()).unwrap();
        assert_eq!(
            (
                first.device_type.as_str(),
                first.os.as_str(),
                first.browser.as_str()
            ),
            ("smartphone", "iPhone", "Safari")
        );
        assert_eq!(UserAgent::parse(phone.into()).unwrap(), first);

        // A planted answer proves the second parse reads the cache.
        let planted = ("planted".to_string(), String::new(), String::new());
        RECENTLY_PARSED.insert(agent_key(phone), planted.clone());
        assert_eq!(
            UserAgent::parse(phone.into()).unwrap().device_type,
            "planted"
        );
        RECENTLY_PARSED.remove(&agent_key(phone));
        assert_eq!(UserAgent::parse(phone.into()).unwrap(), first);

        for n in 0..2 * RECENTLY_PARSED_AGENTS {
            UserAgent::parse(format!("probe/{n}")).unwrap();
        }
        let kept = RECENTLY_PARSED.len();
        assert!(
            kept > 0 && kept <= RECENTLY_PARSED_AGENTS,
            "twice as many agents as it holds, and it kept {kept}"
        );
        assert_eq!(UserAgent::parse(phone.into()).unwrap(), first);
    }
}
