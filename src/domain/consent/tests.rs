use super::{choices::violation, *};
use crate::domain::validation::Violations;

fn names(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

#[test]
fn choices_report_typed_problems_in_the_order_found() {
    let mut problems = Violations::default();
    let service = RawServiceDecision {
        category: "z".into(),
        service: "s".into(),
        granted: true,
    };
    let parsed = Choices::parse(
        Some(Action::AcceptAll),
        names(&["a", "a"]),
        names(&["a", "b c"]),
        vec![service],
        &mut problems,
    );
    assert!(parsed.is_err());
    use {ChoiceField as F, ChoiceProblem as P};
    let not_a_name = "may only contain letters, digits, '_', '.' and '-'";
    let a = Name::parse("a".into()).unwrap();
    assert_eq!(
        problems.as_slice(),
        [
            violation(F::GrantedEntry(1), P::ListedTwice),
            violation(F::DeniedEntry(1), P::NotAName(not_a_name.into())),
            violation(F::DeniedEntry(0), P::AlsoGranted(a)),
            violation(F::Denied, P::DeniedWhileAcceptingAll),
            violation(F::ServiceCategory(0), P::CategoryNotListed),
        ]
    );
}
