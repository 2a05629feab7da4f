//! Proto enums <-> domain enums, one `match` per direction. The proto's
//! numbers are the wire's contract and stay here: the domain's enums have
//! none, and the store keeps its own (`store::stored`).

use crate::{
    api::proto,
    domain::{
        command::View,
        consent::{Action, Regime, Status},
        preference::{Author, ChangeType, UnchangedReason},
    },
};

/// A request's enum field that must be set.
fn required_value<P, D>(number: i32, to_domain: impl FnOnce(P) -> Option<D>) -> Result<D, String>
where
    P: TryFrom<i32>,
{
    match P::try_from(number) {
        Ok(value) => to_domain(value).ok_or_else(|| "is required".to_string()),
        Err(_) => Err(format!("unknown value {number}")),
    }
}

pub fn action(number: i32) -> Result<Action, String> {
    required_value(number, |action| match action {
        proto::ConsentAction::Unspecified => None,
        proto::ConsentAction::AcceptAll => Some(Action::AcceptAll),
        proto::ConsentAction::RejectAll => Some(Action::RejectAll),
        proto::ConsentAction::Custom => Some(Action::Custom),
    })
}

pub fn proto_action(action: Action) -> proto::ConsentAction {
    match action {
        Action::AcceptAll => proto::ConsentAction::AcceptAll,
        Action::RejectAll => proto::ConsentAction::RejectAll,
        Action::Custom => proto::ConsentAction::Custom,
    }
}

pub fn regime(number: i32) -> Result<Regime, String> {
    required_value(number, |regime| match regime {
        proto::Regime::Unspecified => None,
        proto::Regime::Gdpr => Some(Regime::Gdpr),
        proto::Regime::Ccpa => Some(Regime::Ccpa),
        proto::Regime::IabTcf => Some(Regime::IabTcf),
        proto::Regime::Basic => Some(Regime::Basic),
    })
}

pub fn proto_regime(regime: Regime) -> proto::Regime {
    match regime {
        Regime::Gdpr => proto::Regime::Gdpr,
        Regime::Ccpa => proto::Regime::Ccpa,
        Regime::IabTcf => proto::Regime::IabTcf,
        Regime::Basic => proto::Regime::Basic,
    }
}

/// A status filter: unspecified means any status.
pub fn status_filter(number: i32) -> Result<Option<Status>, String> {
    match proto::ConsentStatus::try_from(number) {
        Ok(proto::ConsentStatus::Unspecified) => Ok(None),
        Ok(proto::ConsentStatus::Accepted) => Ok(Some(Status::Accepted)),
        Ok(proto::ConsentStatus::Partial) => Ok(Some(Status::Partial)),
        Ok(proto::ConsentStatus::Rejected) => Ok(Some(Status::Rejected)),
        Err(_) => Err(format!("unknown value {number}")),
    }
}

pub fn proto_status(status: Status) -> proto::ConsentStatus {
    match status {
        Status::Accepted => proto::ConsentStatus::Accepted,
        Status::Partial => proto::ConsentStatus::Partial,
        Status::Rejected => proto::ConsentStatus::Rejected,
    }
}

/// Unspecified means the basic view.
pub fn view(number: i32) -> Result<View, String> {
    match proto::ConsentView::try_from(number) {
        Ok(proto::ConsentView::Unspecified | proto::ConsentView::Basic) => Ok(View::Basic),
        Ok(proto::ConsentView::Full) => Ok(View::Full),
        Err(_) => Err(format!("unknown value {number}")),
    }
}

/// The kinds of change a caller may send: EXPIRED is the server's alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Add,
    Remove,
    RemoveAll,
}

pub fn change_kind(number: i32) -> Result<ChangeKind, String> {
    required_value(number, |change| match change {
        proto::PreferenceChangeType::Unspecified => None,
        proto::PreferenceChangeType::Added => Some(Ok(ChangeKind::Add)),
        proto::PreferenceChangeType::Removed => Some(Ok(ChangeKind::Remove)),
        proto::PreferenceChangeType::RemovedAll => Some(Ok(ChangeKind::RemoveAll)),
        proto::PreferenceChangeType::Expired => Some(Err(
            "PREFERENCE_CHANGE_TYPE_EXPIRED is written by the server only".to_string(),
        )),
    })?
}

pub fn proto_change_type(change: ChangeType) -> proto::PreferenceChangeType {
    match change {
        ChangeType::Added => proto::PreferenceChangeType::Added,
        ChangeType::Removed => proto::PreferenceChangeType::Removed,
        ChangeType::RemovedAll => proto::PreferenceChangeType::RemovedAll,
        ChangeType::Expired => proto::PreferenceChangeType::Expired,
    }
}

/// The author a caller names: unspecified is the end user, an API key is
/// the caller's own, the system is the server's alone.
pub fn author(number: i32, caller_key_id: uuid::Uuid) -> Result<Author, String> {
    match proto::PreferenceAuthorType::try_from(number) {
        Ok(proto::PreferenceAuthorType::Unspecified | proto::PreferenceAuthorType::EndUser) => {
            Ok(Author::EndUser)
        }
        Ok(proto::PreferenceAuthorType::ApiKey) => Ok(Author::ApiKey(caller_key_id)),
        Ok(proto::PreferenceAuthorType::System) => {
            Err("PREFERENCE_AUTHOR_TYPE_SYSTEM is reserved for the server".into())
        }
        Err(_) => Err(format!("unknown value {number}")),
    }
}

pub fn proto_author_type(author: Author) -> proto::PreferenceAuthorType {
    match author {
        Author::EndUser => proto::PreferenceAuthorType::EndUser,
        Author::ApiKey(_) => proto::PreferenceAuthorType::ApiKey,
        Author::System => proto::PreferenceAuthorType::System,
    }
}

pub fn proto_unchanged_reason(reason: UnchangedReason) -> proto::UnchangedReason {
    match reason {
        UnchangedReason::AlreadySelected => proto::UnchangedReason::AlreadySelected,
        UnchangedReason::NotSelected => proto::UnchangedReason::NotSelected,
        UnchangedReason::NothingSelected => proto::UnchangedReason::NothingSelected,
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    /// The proto numbers a test walks: every defined value and some that
    /// are not.
    const NUMBERS: std::ops::RangeInclusive<i32> = -2..=8;

    #[test]
    fn every_consent_enum_variant_round_trips_through_the_proto() {
        for variant in Action::ALL {
            assert_eq!(action(proto_action(variant).into()), Ok(variant));
        }
        for variant in Regime::ALL {
            assert_eq!(regime(proto_regime(variant).into()), Ok(variant));
        }
        for variant in Status::ALL {
            assert_eq!(
                status_filter(proto_status(variant).into()),
                Ok(Some(variant))
            );
        }
    }

    #[test]
    fn every_preference_enum_variant_round_trips_through_the_proto() {
        for variant in ChangeType::ALL {
            let number = proto_change_type(variant).into();
            let sent = match variant {
                ChangeType::Added => Ok(ChangeKind::Add),
                ChangeType::Removed => Ok(ChangeKind::Remove),
                ChangeType::RemovedAll => Ok(ChangeKind::RemoveAll),
                ChangeType::Expired => {
                    Err("PREFERENCE_CHANGE_TYPE_EXPIRED is written by the server only".into())
                }
            };
            assert_eq!(change_kind(number), sent, "{variant:?}");
        }
        let key = Uuid::now_v7();
        for variant in [Author::EndUser, Author::ApiKey(key), Author::System] {
            let number = proto_author_type(variant).into();
            match variant {
                Author::System => assert!(author(number, key).is_err()),
                _ => assert_eq!(author(number, key), Ok(variant)),
            }
        }
        let reasons: std::collections::BTreeSet<i32> = UnchangedReason::ALL
            .into_iter()
            .map(|reason| proto_unchanged_reason(reason).into())
            .collect();
        assert_eq!(reasons.len(), UnchangedReason::ALL.len());
        assert!(!reasons.contains(&0), "no reason is unspecified");
    }

    /// Each defined proto value means something or is refused as required;
    /// an undefined one is refused as unknown.
    #[test]
    fn proto_numbers_are_taken_or_refused_by_name() {
        for n in NUMBERS {
            let defined = proto::ConsentAction::try_from(n).is_ok();
            match action(n) {
                Ok(variant) => assert_eq!(i32::from(proto_action(variant)), n),
                Err(e) if n == 0 => assert_eq!(e, "is required"),
                Err(e) => {
                    assert!(!defined);
                    assert_eq!(e, format!("unknown value {n}"));
                }
            }
            if let Ok(Some(status)) = status_filter(n) {
                assert_eq!(i32::from(proto_status(status)), n);
            }
            if let Ok(variant) = regime(n) {
                assert_eq!(i32::from(proto_regime(variant)), n);
            }
            if n == 0 || proto::PreferenceChangeType::try_from(n).is_err() {
                assert!(change_kind(n).is_err());
            }
        }
        assert_eq!(status_filter(0), Ok(None));
        assert_eq!(view(0), Ok(View::Basic));
        assert_eq!(view(proto::ConsentView::Full.into()), Ok(View::Full));
        assert!(view(3).is_err());
    }
}
