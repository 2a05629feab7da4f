//! Instants as Postgres and receipts keep them: microseconds since the Unix
//! epoch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::validation::{FieldViolation, ValidationError};

/// Microseconds since the Unix epoch (negative before it).
pub fn micros_since_epoch(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_micros() as i64,
        Err(before) => -(before.duration().as_micros() as i64),
    }
}

pub fn time_from_micros(micros: i64) -> SystemTime {
    if micros >= 0 {
        UNIX_EPOCH + Duration::from_micros(micros as u64)
    } else {
        UNIX_EPOCH - Duration::from_micros(micros.unsigned_abs())
    }
}

/// What a read answers with: what is in force now, or what was in force
/// at an earlier instant (`as_of`). The two read different rows (the
/// current state, or history replayed up to the instant).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    Now(SystemTime),
    AsOf(SystemTime),
}

impl Reading {
    /// `Now` when no instant was asked. The future is refused: what will
    /// be in force then is not on record yet, and an answer would read as
    /// a promise.
    pub fn of(as_of: Option<SystemTime>, now: SystemTime) -> Result<Self, ValidationError> {
        match as_of {
            None => Ok(Self::Now(now)),
            Some(instant) if instant <= now => Ok(Self::AsOf(instant)),
            Some(_) => Err(ValidationError {
                violations: vec![FieldViolation {
                    field: "as_of".into(),
                    description: "must not be after the server's current time".into(),
                }],
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_defaults_to_now_and_refuses_the_future() {
        let now = time_from_micros(1_700_000_000_000_000);
        assert_eq!(Reading::of(None, now), Ok(Reading::Now(now)));
        let before_1970 = time_from_micros(-1_000_000);
        assert_eq!(
            Reading::of(Some(before_1970), now),
            Ok(Reading::AsOf(before_1970))
        );
        let later = now + Duration::from_micros(1);
        let refused = Reading::of(Some(later), now).unwrap_err();
        assert_eq!(refused.violations[0].field, "as_of");
    }

    #[test]
    fn micros_round_trip_on_both_sides_of_the_epoch() {
        for micros in [0, 1, -1, 1_700_000_000_123_456, -62_135_596_800_000_000] {
            assert_eq!(micros_since_epoch(time_from_micros(micros)), micros);
        }
    }
}
