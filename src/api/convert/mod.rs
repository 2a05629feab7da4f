//! Proto <-> domain. Every request is parsed here, once, by one conversion
//! per request type into its domain command; every bad field is recorded
//! under its proto name, and past this point the handlers hold valid types.
//! Proto enums meet domain enums only in [`enums`].

/// `TryFrom<request> for command` through a parse function, one per
/// request type: it checks every field into the collector, then builds the
/// command from what parsed with `?`. The request is refused when any check
/// failed, with every violation.
macro_rules! conversions {
    ($($request:ty => $command:ty: $parse:ident,)+) => {$(
        impl TryFrom<$request> for $command {
            type Error = crate::domain::validation::ValidationError;

            fn try_from(request: $request) -> Result<Self, Self::Error> {
                let mut v = crate::domain::validation::Violations::new();
                let parsed = $parse(request, &mut v);
                v.finish(parsed)
            }
        }

        impl super::UnaryRequest for $request {
            type Command = $command;
        }
    )+};
}

/// As [`conversions!`], for lists: their parse functions also take the
/// caller's page tokens, and [`list_command`] runs them.
macro_rules! list_conversions {
    ($($request:ty => $command:ty: $parse:ident,)+) => {$(
        impl super::ListRequest for $request {
            type Command = $command;

            fn parse(
                self,
                tokens: &crate::domain::page::PageTokens,
                v: &mut crate::domain::validation::Violations,
            ) -> crate::domain::validation::Checked<$command> {
                $parse(self, tokens, v)
            }
        }
    )+};
}

mod admin;
mod consent;
mod enums;
mod preference;
#[cfg(test)]
mod properties;
mod record;
#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime};

use prost_types::Timestamp;

pub use admin::{site_settings, widget_settings};
pub use consent::choice_violation;
pub use preference::{update_preferences, update_response};
pub use record::{in_view, record_message, with_receipt};

use crate::domain::{
    page::{Cursor, PageFilter, PageTokens},
    validation::{Checked, ValidationError, Violations},
};

/// Empty means "not set" for optional proto3 strings.
fn present(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

fn required(value: String) -> Result<String, String> {
    if value.is_empty() {
        Err("is required".into())
    } else {
        Ok(value)
    }
}

/// A required string field parsed into its domain type, checked into `v`.
fn parsed<T>(
    v: &mut Violations,
    field: &str,
    value: String,
    parse: impl FnOnce(String) -> Result<T, String>,
) -> Checked<T> {
    v.check(field, required(value).and_then(parse))
}

/// The earliest and latest instants a google.protobuf.Timestamp may hold
/// (0001-01-01 and 9999-12-31, as the type documents).
const TIMESTAMP_SECONDS: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;

fn time(value: Timestamp) -> Result<SystemTime, String> {
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
fn duration(value: prost_types::Duration) -> Result<Duration, String> {
    if value.seconds < 0 || !(0..1_000_000_000).contains(&value.nanos) {
        return Err("must be a duration that is not negative".into());
    }
    Ok(Duration::new(
        value.seconds as u64,
        value.nanos as u32 / 1000 * 1000,
    ))
}

pub fn timestamp(value: SystemTime) -> Timestamp {
    value.into()
}

fn proto_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

fn text(value: Option<impl AsRef<str>>) -> String {
    value.map(|v| v.as_ref().to_string()).unwrap_or_default()
}

/// A request that parses on its own into one command, so a handler that
/// names the request gets the command's type with it.
pub trait UnaryRequest: Sized {
    type Command: TryFrom<Self, Error = ValidationError>;
}

/// A list request: its page token is bound to the caller's tenant, so its
/// conversion takes the caller's [`PageTokens`] besides the request.
pub trait ListRequest {
    type Command;
    fn parse(self, tokens: &PageTokens, v: &mut Violations) -> Checked<Self::Command>;
}

/// A list request's command, or every violation, as [`conversions!`] gives.
pub fn list_command<R: ListRequest>(
    request: R,
    tokens: &PageTokens,
) -> Result<R::Command, ValidationError> {
    let mut v = Violations::new();
    let parsed = request.parse(tokens, &mut v);
    v.finish(parsed)
}

/// Where a list continues. A token is bound to its filter, so it is only
/// checked against a filter that parsed.
fn page_start<F: PageFilter>(
    page_token: String,
    filter: Option<&F>,
    tokens: &PageTokens,
    v: &mut Violations,
) -> Checked<Option<Cursor>> {
    match (filter, present(page_token)) {
        (Some(filter), Some(token)) => v.check("page_token", tokens.open(&token, filter)).map(Some),
        _ => Ok(None),
    }
}
