//! Filters and keyset pagination (AIP-158).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    consent::Status,
    erasure::AuditKey,
    ids::{SiteId, SubjectId, UserId},
    time::{micros_since_epoch, time_from_micros},
    web::CountryCode,
};

pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Records per page: 0 means the default, above the maximum is clamped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageSize(u32);

impl PageSize {
    pub fn parse(requested: i32) -> Result<Self, String> {
        match requested {
            n if n < 0 => Err("must not be negative".into()),
            0 => Ok(Self(DEFAULT_PAGE_SIZE)),
            n => Ok(Self((n as u32).min(MAX_PAGE_SIZE))),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// Which records of a site a list or an export covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentFilter {
    pub site_id: SiteId,
    pub start_time: Option<SystemTime>,
    pub end_time: Option<SystemTime>,
    pub subject_id: Option<SubjectId>,
    pub user_id: Option<UserId>,
    pub country: Option<CountryCode>,
    pub status: Option<Status>,
}

/// A list's filter: a page token only continues the list whose filter has
/// the same fingerprint.
pub trait PageFilter {
    fn fingerprint(&self) -> [u8; 8];
}

/// Builds a fingerprint from a filter's fields. Each field is
/// length-prefixed so no two filters collide by concatenation.
pub struct Fingerprint(Sha256);

impl Fingerprint {
    /// `kind` separates lists, so a token of one list never continues another.
    pub fn of(kind: &str) -> Self {
        Self(Sha256::new()).field(Some(kind))
    }

    pub fn field(mut self, value: Option<&str>) -> Self {
        let bytes = value.unwrap_or_default().as_bytes();
        self.0.update([u8::from(value.is_some())]);
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
        self
    }

    pub fn time(self, value: Option<SystemTime>) -> Self {
        let micros = value.map(|t| micros_since_epoch(t).to_string());
        self.field(micros.as_deref())
    }

    pub fn finish(self) -> [u8; 8] {
        self.0.finalize()[..8]
            .try_into()
            .expect("8 bytes of a 32-byte digest")
    }
}

impl PageFilter for ConsentFilter {
    fn fingerprint(&self) -> [u8; 8] {
        Fingerprint::of("consents")
            .field(Some(self.site_id.as_ref()))
            .time(self.start_time)
            .time(self.end_time)
            .field(self.subject_id.as_ref().map(AsRef::as_ref))
            .field(self.user_id.as_ref().map(AsRef::as_ref))
            .field(self.country.as_ref().map(AsRef::as_ref))
            .field(self.status.map(status_in_token))
            .finish()
    }
}

/// A status as page tokens bind it. Written out, so that tokens pollers
/// already hold stay valid whatever happens to the enum.
fn status_in_token(status: Status) -> &'static str {
    match status {
        Status::Accepted => "1",
        Status::Partial => "2",
        Status::Rejected => "3",
    }
}

/// The last item a page returned (its time and id): the next page starts
/// after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub time: SystemTime,
    pub id: Uuid,
}

/// Version 1 tokens carried an unkeyed fingerprint of the filter only:
/// another tenant could replay them. They are refused, with a message
/// that says to start again.
const OLD_TOKEN_VERSION: u8 = 1;
const TOKEN_VERSION: u8 = 2;
/// 9999-12-31T23:59:59Z, the last instant a timestamp may hold.
const MAX_TOKEN_MICROS: i64 = 253_402_300_799_000_000;
const MAC_LEN: usize = 16;
const CURSOR_LEN: usize = 1 + 8 + 16;
const TOKEN_LEN: usize = CURSOR_LEN + MAC_LEN;
const NOT_A_TOKEN: &str = "is not a page token issued by this service";
const NOT_THIS_LIST: &str = "was not issued for this list and filter; send the same filter as the first page, with a key of the same tenant";

impl Cursor {
    /// Before every record: every record time is after the Unix epoch.
    pub const START: Cursor = Cursor {
        time: UNIX_EPOCH,
        id: Uuid::nil(),
    };
}

/// Seals and opens the page tokens of one tenant. A token holds its
/// cursor and an HMAC over the tenant, the list and filter
/// ([`PageFilter::fingerprint`]) and the cursor, keyed by the server's
/// secret: any other tenant, list or filter, and any change to a byte, is
/// refused. Every replica derives the same key, so tokens survive a
/// restart and move between replicas.
#[derive(Clone)]
pub struct PageTokens {
    key: [u8; 32],
    tenant_id: Uuid,
}

impl PageTokens {
    /// The tokens of `tenant_id`, keyed from the audit key (a stable server
    /// secret), domain-separated so no audit digest is ever a token key.
    pub fn new(secret: &AuditKey, tenant_id: Uuid) -> Self {
        Self {
            key: secret.digest("page_token_key", ""),
            tenant_id,
        }
    }

    fn mac(&self, filter: &impl PageFilter, cursor: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(self.tenant_id.as_bytes());
        mac.update(&filter.fingerprint());
        mac.update(cursor);
        mac
    }

    /// Encodes the cursor as an opaque token bound to this tenant and
    /// `filter`.
    pub fn seal(&self, cursor: Cursor, filter: &impl PageFilter) -> String {
        let mut bytes = Vec::with_capacity(TOKEN_LEN);
        bytes.push(TOKEN_VERSION);
        bytes.extend_from_slice(&micros_since_epoch(cursor.time).to_be_bytes());
        bytes.extend_from_slice(cursor.id.as_bytes());
        let mac = self.mac(filter, &bytes).finalize().into_bytes();
        bytes.extend_from_slice(&mac[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Decodes a token; it must have been sealed for this tenant and the
    /// same filter, and not changed since.
    pub fn open(&self, token: &str, filter: &impl PageFilter) -> Result<Cursor, String> {
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| NOT_A_TOKEN)?;
        match bytes.first() {
            Some(&OLD_TOKEN_VERSION) => {
                return Err(
                    "was issued by an earlier version of consentd; start again from the first page"
                        .into(),
                );
            }
            Some(&TOKEN_VERSION) if bytes.len() == TOKEN_LEN => {}
            _ => return Err(NOT_A_TOKEN.into()),
        }
        let (cursor, mac) = bytes.split_at(CURSOR_LEN);
        // Compared in constant time, so a forger learns nothing byte by byte.
        self.mac(filter, cursor)
            .verify_truncated_left(mac)
            .map_err(|_| NOT_THIS_LIST)?;
        let micros = i64::from_be_bytes(cursor[1..9].try_into().expect("8 bytes"));
        // Only a token this service sealed gets here; its time is still
        // checked, so a leaked key cannot make the database compare an
        // instant it cannot hold.
        if !(0..=MAX_TOKEN_MICROS).contains(&micros) {
            return Err(NOT_A_TOKEN.into());
        }
        let id = Uuid::from_slice(&cursor[9..]).expect("16 bytes");
        Ok(Cursor {
            time: time_from_micros(micros),
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(site: &str) -> ConsentFilter {
        ConsentFilter {
            site_id: SiteId::parse(site.into()).unwrap(),
            start_time: None,
            end_time: None,
            subject_id: None,
            user_id: None,
            country: None,
            status: None,
        }
    }

    fn tokens(tenant: Uuid) -> PageTokens {
        PageTokens::new(&AuditKey::new(&[7; 32]).unwrap(), tenant)
    }

    #[test]
    fn token_round_trips_and_is_bound_to_its_tenant_and_filter() {
        let cursor = Cursor {
            time: time_from_micros(1_700_000_000_123_456),
            id: Uuid::now_v7(),
        };
        let (a, b) = (tokens(Uuid::now_v7()), tokens(Uuid::now_v7()));
        let token = a.seal(cursor, &filter("a"));
        assert_eq!(a.open(&token, &filter("a")), Ok(cursor));
        assert_eq!(b.open(&token, &filter("a")), Err(NOT_THIS_LIST.into()));
        assert_eq!(a.open(&token, &filter("b")), Err(NOT_THIS_LIST.into()));
        assert_eq!(a.open("garbage", &filter("a")), Err(NOT_A_TOKEN.into()));
        let other_key = PageTokens::new(&AuditKey::new(&[8; 32]).unwrap(), a.tenant_id);
        assert!(other_key.open(&token, &filter("a")).is_err());
    }

    #[test]
    fn a_changed_byte_anywhere_in_a_token_is_refused() {
        let a = tokens(Uuid::now_v7());
        let token = a.seal(Cursor::START, &filter("a"));
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for i in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[i] ^= 1;
            let changed = URL_SAFE_NO_PAD.encode(changed);
            assert!(a.open(&changed, &filter("a")).is_err(), "byte {i}");
        }
        assert!(a.open(&token[..token.len() - 1], &filter("a")).is_err());
        let mut old = bytes[..25].to_vec();
        old[0] = OLD_TOKEN_VERSION;
        old.extend_from_slice(&filter("a").fingerprint());
        let refused = a.open(&URL_SAFE_NO_PAD.encode(old), &filter("a"));
        assert!(refused.unwrap_err().contains("earlier version"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            failure_persistence: None,
            ..Default::default()
        })]

        /// Whatever the cursor, tenants and sites: a token opens for its
        /// own tenant and filter only, and no flipped bit gets past.
        #[test]
        fn a_token_opens_only_where_it_was_sealed(
            sites in ("[a-z0-9-]{1,12}", "[a-z0-9-]{1,12}"),
            tenants in (proptest::prelude::any::<u128>(), proptest::prelude::any::<u128>()),
            micros in 0..=MAX_TOKEN_MICROS,
            id in proptest::prelude::any::<u128>(),
            bit in 0..TOKEN_LEN * 8,
        ) {
            let (a, b) = (Uuid::from_u128(tenants.0), Uuid::from_u128(tenants.1));
            let cursor = Cursor { time: time_from_micros(micros), id: Uuid::from_u128(id) };
            let token = tokens(a).seal(cursor, &filter(&sites.0));
            proptest::prop_assert_eq!(tokens(a).open(&token, &filter(&sites.0)), Ok(cursor));
            if a != b {
                proptest::prop_assert!(tokens(b).open(&token, &filter(&sites.0)).is_err());
            }
            if sites.0 != sites.1 {
                proptest::prop_assert!(tokens(a).open(&token, &filter(&sites.1)).is_err());
            }
            let mut flipped = URL_SAFE_NO_PAD.decode(&token).unwrap();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let flipped = URL_SAFE_NO_PAD.encode(flipped);
            proptest::prop_assert!(tokens(a).open(&flipped, &filter(&sites.0)).is_err());
        }
    }

    #[test]
    fn a_status_filter_binds_tokens_as_it_always_has() {
        let with = |status| ConsentFilter {
            status,
            ..filter("shop")
        };
        let pinned = [
            (None, "1362fe34c53d65b6"),
            (Some(Status::Accepted), "ca523c2b4b3b6511"),
            (Some(Status::Partial), "0dbd3075eea910b5"),
            (Some(Status::Rejected), "aa774e002e4e7084"),
        ];
        for (status, fingerprint) in pinned {
            assert_eq!(hex::encode(with(status).fingerprint()), fingerprint);
        }
    }

    #[test]
    fn page_size_defaults_clamps_and_refuses_negative() {
        assert_eq!(PageSize::parse(0).unwrap().get(), DEFAULT_PAGE_SIZE);
        assert_eq!(PageSize::parse(5000).unwrap().get(), MAX_PAGE_SIZE);
        assert!(PageSize::parse(-1).is_err());
    }
}
