//! Domain enums as the database keeps them: `smallint` columns. Each
//! mapping is written out per variant, with the numbers rows have held
//! since the first migration, so renaming, reordering or renumbering an
//! enum in the domain or in the proto changes nothing stored. A number that
//! no variant owns makes the row corrupt (`StoredRow::parse`), not a guess.

use uuid::Uuid;

use crate::domain::{
    consent::{Action, Regime, Status},
    preference::{Author, ChangeType},
    tlog::LeafKind,
};

/// An enum kept in one `smallint` column.
pub(super) trait StoredEnum: Sized + Copy {
    fn to_db(self) -> i16;
    /// The variant a stored value means, or why there is none.
    fn from_db(value: i16) -> Result<Self, &'static str>;
}

/// Implements [`StoredEnum`] from one table of variant => number; `$not`
/// says what a value no variant owns is not.
macro_rules! stored_enum {
    ($enum:ident, $not:literal { $($variant:ident => $value:literal),+ $(,)? }) => {
        impl StoredEnum for $enum {
            fn to_db(self) -> i16 {
                match self {
                    $($enum::$variant => $value,)+
                }
            }

            fn from_db(value: i16) -> Result<Self, &'static str> {
                match value {
                    $($value => Ok($enum::$variant),)+
                    _ => Err($not),
                }
            }
        }
    };
}

stored_enum!(Action, "not an action" {
    AcceptAll => 1,
    RejectAll => 2,
    Custom => 3,
});

stored_enum!(Status, "not a status" {
    Accepted => 1,
    Partial => 2,
    Rejected => 3,
});

stored_enum!(Regime, "not a regime" {
    Gdpr => 1,
    Ccpa => 2,
    IabTcf => 3,
    Basic => 4,
});

stored_enum!(ChangeType, "not a change type" {
    Added => 1,
    Removed => 2,
    RemovedAll => 3,
    Expired => 4,
});

stored_enum!(LeafKind, "not a leaf kind" {
    ConsentRecord => 1,
    PreferenceEvent => 2,
});

/// `preference_events.author_type`; the key of an API key author goes to
/// `author_key_id` ([`Author::key_id`]).
pub(super) fn author_type_to_db(author: Author) -> i16 {
    match author {
        Author::EndUser => 1,
        Author::ApiKey(_) => 2,
        Author::System => 3,
    }
}

/// An author from `author_type` and `author_key_id`, which must agree.
pub(super) fn author_from_db(
    author_type: i16,
    key_id: Option<Uuid>,
) -> Result<Author, &'static str> {
    match (author_type, key_id) {
        (1, None) => Ok(Author::EndUser),
        (2, Some(key_id)) => Ok(Author::ApiKey(key_id)),
        (3, None) => Ok(Author::System),
        _ => Err("not an author with its key"),
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use super::*;

    /// Every variant round-trips, and the stored numbers are exactly
    /// `stored`: what rows written by any earlier build hold. A number
    /// outside it is refused.
    fn holds<E: StoredEnum + PartialEq + Debug>(all: &[E], stored: &[(i16, E)]) {
        for &variant in all {
            assert_eq!(E::from_db(variant.to_db()).unwrap(), variant);
        }
        assert_eq!(stored.len(), all.len(), "one stored value per variant");
        for &(value, variant) in stored {
            assert_eq!(E::from_db(value).unwrap(), variant, "stored {value}");
            assert_eq!(variant.to_db(), value, "{variant:?}");
        }
        for value in [i16::MIN, -1, 0, 5, 100, i16::MAX] {
            if stored.iter().all(|&(v, _)| v != value) {
                assert!(E::from_db(value).is_err(), "stored {value}");
            }
        }
    }

    #[test]
    fn consent_enums_read_back_as_stored() {
        use Action::*;
        holds(&Action::ALL, &[(1, AcceptAll), (2, RejectAll), (3, Custom)]);
        use Status::*;
        holds(&Status::ALL, &[(1, Accepted), (2, Partial), (3, Rejected)]);
        use Regime::*;
        holds(
            &Regime::ALL,
            &[(1, Gdpr), (2, Ccpa), (3, IabTcf), (4, Basic)],
        );
    }

    #[test]
    fn change_types_read_back_as_stored() {
        use ChangeType::*;
        holds(
            &ChangeType::ALL,
            &[(1, Added), (2, Removed), (3, RemovedAll), (4, Expired)],
        );
    }

    #[test]
    fn leaf_kinds_read_back_as_stored() {
        use LeafKind::*;
        holds(&LeafKind::ALL, &[(1, ConsentRecord), (2, PreferenceEvent)]);
    }

    #[test]
    fn authors_read_back_as_stored_and_need_their_key_exactly_when_an_api_key() {
        let key = Uuid::now_v7();
        let stored = [
            (1, None, Author::EndUser),
            (2, Some(key), Author::ApiKey(key)),
            (3, None, Author::System),
        ];
        for (author_type, key_id, author) in stored {
            assert_eq!(author_from_db(author_type, key_id).unwrap(), author);
            assert_eq!(author_type_to_db(author), author_type);
            assert_eq!(author.key_id(), key_id);
        }
        for (author_type, key_id) in [
            (1, Some(key)),
            (2, None),
            (3, Some(key)),
            (0, None),
            (4, None),
        ] {
            assert!(author_from_db(author_type, key_id).is_err());
        }
    }
}
