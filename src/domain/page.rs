//! Filters and keyset pagination (AIP-158).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    consent::Status,
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

const TOKEN_VERSION: u8 = 1;
/// 9999-12-31T23:59:59Z, the last instant a timestamp may hold.
const MAX_TOKEN_MICROS: i64 = 253_402_300_799_000_000;
const TOKEN_LEN: usize = 1 + 8 + 16 + 8;

impl Cursor {
    /// Before every record: every record time is after the Unix epoch.
    pub const START: Cursor = Cursor {
        time: UNIX_EPOCH,
        id: Uuid::nil(),
    };

    /// Encodes the cursor as an opaque token bound to `filter`.
    pub fn to_token(self, filter: &impl PageFilter) -> String {
        let mut bytes = Vec::with_capacity(TOKEN_LEN);
        bytes.push(TOKEN_VERSION);
        bytes.extend_from_slice(&micros_since_epoch(self.time).to_be_bytes());
        bytes.extend_from_slice(self.id.as_bytes());
        bytes.extend_from_slice(&filter.fingerprint());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Decodes a token; it must have been made for the same filter.
    pub fn from_token(token: &str, filter: &impl PageFilter) -> Result<Self, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .filter(|bytes| bytes.len() == TOKEN_LEN && bytes[0] == TOKEN_VERSION)
            .ok_or("is not a page token issued by this service")?;
        if bytes[25..] != filter.fingerprint() {
            return Err(
                "was issued for another site or filter; send the same filter as the first page"
                    .into(),
            );
        }
        let micros = i64::from_be_bytes(bytes[1..9].try_into().expect("8 bytes"));
        // Tokens are not secret: refuse times no record can have, which
        // the database could not even compare.
        if !(0..=MAX_TOKEN_MICROS).contains(&micros) {
            return Err("is not a page token issued by this service".into());
        }
        let id = Uuid::from_slice(&bytes[9..25]).expect("16 bytes");
        Ok(Self {
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

    #[test]
    fn token_round_trips_and_is_bound_to_its_filter() {
        let cursor = Cursor {
            time: time_from_micros(1_700_000_000_123_456),
            id: Uuid::now_v7(),
        };
        let token = cursor.to_token(&filter("a"));
        assert_eq!(Cursor::from_token(&token, &filter("a")), Ok(cursor));
        assert!(Cursor::from_token(&token, &filter("b")).is_err());
        assert!(Cursor::from_token("garbage", &filter("a")).is_err());
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
