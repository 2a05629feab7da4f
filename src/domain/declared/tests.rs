use super::*;
use crate::domain::{
    consent::RawServiceDecision,
    validation::{Checked, Violations},
};

fn declaration() -> Declaration {
    Declaration::parse(vec![
        RawDeclaredCategory {
            name: "necessary".into(),
            necessary: true,
            services: vec![],
        },
        RawDeclaredCategory {
            name: "analytics".into(),
            necessary: false,
            services: vec!["ga".into(), "hotjar".into()],
        },
        RawDeclaredCategory {
            name: "marketing".into(),
            necessary: false,
            services: vec![],
        },
    ])
    .expect("valid")
    .expect("declared")
}

fn choices(
    action: Action,
    granted: &[&str],
    denied: &[&str],
    services: &[(&str, &str, bool)],
) -> Checked<Choices> {
    let mut problems = Violations::default();
    Choices::parse(
        Some(action),
        granted.iter().map(|s| s.to_string()).collect(),
        denied.iter().map(|s| s.to_string()).collect(),
        services
            .iter()
            .map(|(category, service, granted)| RawServiceDecision {
                category: category.to_string(),
                service: service.to_string(),
                granted: *granted,
            })
            .collect(),
        &mut problems,
    )
}

fn problems(action: Action, choices: Choices) -> Vec<(ChoiceField, ChoiceProblem)> {
    declaration()
        .check(action, &choices)
        .into_iter()
        .map(|v| (v.field, v.problem))
        .collect()
}

fn name(s: &str) -> Name {
    Name::parse(s.into()).unwrap()
}

#[test]
fn reject_all_may_grant_only_necessary_categories() {
    let c = choices(
        Action::RejectAll,
        &["necessary", "analytics", "marketing"],
        &[],
        &[("analytics", "ga", true)],
    )
    .unwrap();
    assert_eq!(
        problems(Action::RejectAll, c),
        [
            (
                ChoiceField::GrantedEntry(1),
                ChoiceProblem::GrantedWhileRejectingAll(name("analytics"))
            ),
            (
                ChoiceField::GrantedEntry(2),
                ChoiceProblem::GrantedWhileRejectingAll(name("marketing"))
            ),
            (
                ChoiceField::Service(0),
                ChoiceProblem::GrantedWhileRejectingAll(name("analytics"))
            ),
        ]
    );
    let c = choices(
        Action::RejectAll,
        &["necessary"],
        &["analytics", "marketing"],
        &[],
    )
    .unwrap();
    assert_eq!(problems(Action::RejectAll, c), []);
}

#[test]
fn accept_all_must_grant_every_declared_category_and_service() {
    // "hotjar" left out: omitting a declared service does not grant it.
    let c = choices(
        Action::AcceptAll,
        &["necessary", "analytics"],
        &[],
        &[("analytics", "ga", false)],
    )
    .unwrap();
    assert_eq!(
        problems(Action::AcceptAll, c),
        [
            (
                ChoiceField::Granted,
                ChoiceProblem::MissingFromAcceptAll(name("marketing"))
            ),
            (
                ChoiceField::Service(0),
                ChoiceProblem::ServiceDeniedWhileAcceptingAll
            ),
            (
                ChoiceField::Services,
                ChoiceProblem::ServiceMissingFromAcceptAll(name("analytics"), name("hotjar"))
            ),
        ]
    );
    let every = choices(
        Action::AcceptAll,
        &["necessary", "analytics", "marketing"],
        &[],
        &[("analytics", "ga", true), ("analytics", "hotjar", true)],
    )
    .unwrap();
    assert_eq!(problems(Action::AcceptAll, every), []);
}

#[test]
fn a_service_of_a_necessary_category_may_not_be_denied() {
    let declared = Declaration::parse(vec![RawDeclaredCategory {
        name: "necessary".into(),
        necessary: true,
        services: vec!["session".into()],
    }])
    .unwrap()
    .unwrap();
    let found = |granted: bool| -> Vec<_> {
        let c = choices(
            Action::Custom,
            &["necessary"],
            &[],
            &[("necessary", "session", granted)],
        )
        .unwrap();
        declared
            .check(Action::Custom, &c)
            .into_iter()
            .map(|v| (v.field, v.problem))
            .collect()
    };
    assert_eq!(
        found(false),
        [(
            ChoiceField::Service(0),
            ChoiceProblem::NecessaryServiceDenied(name("necessary"))
        )]
    );
    assert_eq!(found(true), []);
}

#[test]
fn unknown_categories_and_services_and_denied_necessary_are_named() {
    let c = choices(
        Action::Custom,
        &["analytics", "social"],
        &["necessary"],
        &[("analytics", "mixpanel", true), ("social", "x", true)],
    )
    .unwrap();
    assert_eq!(
        problems(Action::Custom, c),
        [
            (
                ChoiceField::GrantedEntry(1),
                ChoiceProblem::UnknownCategory(name("social"))
            ),
            (
                ChoiceField::DeniedEntry(0),
                ChoiceProblem::NecessaryDenied(name("necessary"))
            ),
            (
                ChoiceField::ServiceName(0),
                ChoiceProblem::UnknownService(name("mixpanel"))
            ),
            (
                ChoiceField::ServiceCategory(1),
                ChoiceProblem::UnknownCategory(name("social"))
            ),
        ]
    );
}

#[test]
fn a_declaration_round_trips_through_its_stored_lists() {
    let declared = declaration();
    let (categories, necessary, services) = declared.to_stored();
    assert_eq!(services, ["analytics/ga", "analytics/hotjar"]);
    assert_eq!(
        Declaration::from_stored(categories, necessary, services),
        Some(declared)
    );
    assert_eq!(Declaration::from_stored(vec![], vec![], vec![]), None);
}

#[test]
fn a_declaration_names_its_bad_fields() {
    let bad = Declaration::parse(vec![
        RawDeclaredCategory {
            name: "analytics".into(),
            necessary: false,
            services: vec!["ga".into(), "ga".into()],
        },
        RawDeclaredCategory {
            name: "analytics".into(),
            necessary: false,
            services: vec!["a/b".into()],
        },
    ])
    .unwrap_err();
    let fields: Vec<&str> = bad.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "categories[0].services[1]",
            "categories[1].name",
            "categories[1].services[0]"
        ]
    );
    assert_eq!(Declaration::parse(vec![]), Ok(None));
}
