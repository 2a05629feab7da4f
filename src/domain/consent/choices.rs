//! A decision's categories and services: parsed against each other and
//! the action, and the problems found, worded by each edge through
//! [`ChoiceWords`].

use std::collections::HashSet;

use super::{Action, MAX_CATEGORIES, MAX_SERVICES, Name};
use crate::domain::validation::{Checked, Violations};

/// The decision on one service of a category.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceDecision {
    pub category: Name,
    pub service: Name,
    pub granted: bool,
}

/// Unvalidated service decision, as the caller sent it.
pub struct RawServiceDecision {
    pub category: String,
    pub service: String,
    pub granted: bool,
}

/// The categories and services of one decision, consistent with each other
/// and with the action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choices {
    granted: Vec<Name>,
    denied: Vec<Name>,
    services: Vec<ServiceDecision>,
}

/// Where in a decision's choices a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChoiceField {
    Granted,
    Denied,
    Services,
    GrantedEntry(usize),
    DeniedEntry(usize),
    Service(usize),
    ServiceCategory(usize),
    ServiceName(usize),
}

/// Which part of a service entry a problem is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServicePart {
    Entry,
    Category,
    Name,
}

impl ChoiceField {
    /// The field's path where the category lists are named `granted` and
    /// `denied`. How services are sent differs from one edge to the other,
    /// so `service` names theirs: the list (`None`) or a part of an entry.
    pub fn path(
        self,
        granted: &str,
        denied: &str,
        service: impl FnOnce(Option<(usize, ServicePart)>) -> String,
    ) -> String {
        match self {
            Self::Granted => granted.to_string(),
            Self::Denied => denied.to_string(),
            Self::GrantedEntry(i) => format!("{granted}[{i}]"),
            Self::DeniedEntry(i) => format!("{denied}[{i}]"),
            Self::Services => service(None),
            Self::Service(i) => service(Some((i, ServicePart::Entry))),
            Self::ServiceCategory(i) => service(Some((i, ServicePart::Category))),
            Self::ServiceName(i) => service(Some((i, ServicePart::Name))),
        }
    }
}

/// What is wrong there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChoiceProblem {
    /// Not a [`Name`], and why.
    NotAName(String),
    /// More entries than the limit.
    TooMany(usize),
    /// A category listed twice in one list.
    ListedTwice,
    /// A denied category that is granted too.
    AlsoGranted(Name),
    /// Denied categories when every category is accepted.
    DeniedWhileAcceptingAll,
    /// A service of a category neither granted nor denied.
    CategoryNotListed,
    /// The same service of the same category twice.
    ServiceListedTwice,
    /// A category the site has not declared (see `declared`).
    UnknownCategory(Name),
    /// A service its category does not declare.
    UnknownService(Name),
    /// A granted category, or a granted service of one, that is not
    /// necessary while rejecting all.
    GrantedWhileRejectingAll(Name),
    /// A necessary category denied.
    NecessaryDenied(Name),
    /// A declared category missing while accepting all.
    MissingFromAcceptAll(Name),
    /// A denied service while accepting all.
    ServiceDeniedWhileAcceptingAll,
    /// A declared service (category, service) not granted while
    /// accepting all.
    ServiceMissingFromAcceptAll(Name, Name),
    /// A denied service of a necessary category (named).
    NecessaryServiceDenied(Name),
}

/// The words of an edge that a problem's description uses: each edge
/// names fields and actions as its callers write them.
pub struct ChoiceWords {
    /// A granted category: "granted", "accepted".
    pub granted: &'static str,
    /// A denied one: "denied", "rejected".
    pub denied: &'static str,
    /// The condition of accepting all, e.g. `action is ..._ACCEPT_ALL`.
    pub accept_all: &'static str,
    pub reject_all: &'static str,
    /// The lists a service's category must be in.
    pub category_lists: &'static str,
}

impl ChoiceProblem {
    /// The problem in the words of an edge.
    pub fn describe(self, words: &ChoiceWords) -> String {
        match self {
            ChoiceProblem::NotAName(problem) => problem,
            ChoiceProblem::TooMany(max) => format!("at most {max} entries"),
            ChoiceProblem::ListedTwice => "listed twice".to_string(),
            ChoiceProblem::AlsoGranted(name) => {
                format!("category {:?} is also {}", name.as_ref(), words.granted)
            }
            ChoiceProblem::DeniedWhileAcceptingAll => {
                format!("must be empty when {}", words.accept_all)
            }
            ChoiceProblem::CategoryNotListed => {
                format!("must be listed in {}", words.category_lists)
            }
            ChoiceProblem::ServiceListedTwice => "service listed twice".to_string(),
            ChoiceProblem::UnknownCategory(name) => {
                format!("category {:?} is not declared for this site", name.as_ref())
            }
            ChoiceProblem::UnknownService(name) => format!(
                "service {:?} is not declared in its category for this site",
                name.as_ref()
            ),
            ChoiceProblem::GrantedWhileRejectingAll(name) => format!(
                "category {:?} is not necessary: only necessary categories may be {} when {}",
                name.as_ref(),
                words.granted,
                words.reject_all
            ),
            ChoiceProblem::NecessaryDenied(name) => format!(
                "category {:?} is necessary and may not be {}",
                name.as_ref(),
                words.denied
            ),
            ChoiceProblem::MissingFromAcceptAll(name) => format!(
                "must hold every declared category when {}; {:?} is missing",
                words.accept_all,
                name.as_ref()
            ),
            ChoiceProblem::ServiceDeniedWhileAcceptingAll => {
                format!("may not be {} when {}", words.denied, words.accept_all)
            }
            ChoiceProblem::ServiceMissingFromAcceptAll(category, service) => format!(
                "must hold every declared service, {}, when {}; {:?} of {:?} is missing",
                words.granted,
                words.accept_all,
                service.as_ref(),
                category.as_ref()
            ),
            ChoiceProblem::NecessaryServiceDenied(category) => format!(
                "a service of necessary category {:?} may not be {}",
                category.as_ref(),
                words.denied
            ),
        }
    }
}

/// One problem of a decision's choices; `api` words it for the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChoiceViolation {
    pub field: ChoiceField,
    pub problem: ChoiceProblem,
}

pub(super) fn violation(field: ChoiceField, problem: ChoiceProblem) -> ChoiceViolation {
    ChoiceViolation { field, problem }
}

impl Choices {
    /// Parses the caller's lists, recording every problem. Without an
    /// action (the caller's did not parse), the rules that depend on it
    /// are not checked.
    pub fn parse(
        action: Option<Action>,
        granted: Vec<String>,
        denied: Vec<String>,
        services: Vec<RawServiceDecision>,
        violations: &mut Violations<ChoiceViolation>,
    ) -> Checked<Self> {
        use ChoiceField as F;
        use ChoiceProblem as P;
        let mark = violations.mark();
        let granted = parse_names(F::Granted, F::GrantedEntry, granted, violations);
        let denied = parse_names(F::Denied, F::DeniedEntry, denied, violations);
        let granted_set: HashSet<&Name> = granted.iter().collect();
        for (i, name) in denied.iter().enumerate() {
            if granted_set.contains(name) {
                violations.push(violation(F::DeniedEntry(i), P::AlsoGranted(name.clone())));
            }
        }
        if action == Some(Action::AcceptAll) && !denied.is_empty() {
            violations.push(violation(F::Denied, P::DeniedWhileAcceptingAll));
        }
        if services.len() > MAX_SERVICES {
            violations.push(violation(F::Services, P::TooMany(MAX_SERVICES)));
        }
        let known: HashSet<&Name> = granted.iter().chain(&denied).collect();
        let mut seen = HashSet::new();
        let mut parsed_services = Vec::with_capacity(services.len());
        for (i, raw) in services.into_iter().take(MAX_SERVICES).enumerate() {
            let category = Name::parse(raw.category)
                .map_err(|e| violations.push(violation(F::ServiceCategory(i), P::NotAName(e))));
            let service = Name::parse(raw.service)
                .map_err(|e| violations.push(violation(F::ServiceName(i), P::NotAName(e))));
            let (Ok(category), Ok(service)) = (category, service) else {
                continue;
            };
            if !known.contains(&category) {
                violations.push(violation(F::ServiceCategory(i), P::CategoryNotListed));
            }
            if !seen.insert((category.clone(), service.clone())) {
                violations.push(violation(F::Service(i), P::ServiceListedTwice));
            }
            parsed_services.push(ServiceDecision {
                category,
                service,
                granted: raw.granted,
            });
        }
        violations.failed_since(mark)?;
        Ok(Self {
            granted,
            denied,
            services: parsed_services,
        })
    }

    /// Rebuilds choices read back from the store, which only holds valid ones.
    pub fn from_stored(
        granted: Vec<String>,
        denied: Vec<String>,
        services: Vec<ServiceDecision>,
    ) -> Self {
        Self {
            granted: granted.into_iter().map(Name).collect(),
            denied: denied.into_iter().map(Name).collect(),
            services,
        }
    }

    pub fn granted(&self) -> &[Name] {
        &self.granted
    }

    pub fn denied(&self) -> &[Name] {
        &self.denied
    }

    pub fn services(&self) -> &[ServiceDecision] {
        &self.services
    }
}

fn parse_names(
    list: ChoiceField,
    entry: fn(usize) -> ChoiceField,
    values: Vec<String>,
    violations: &mut Violations<ChoiceViolation>,
) -> Vec<Name> {
    if values.len() > MAX_CATEGORIES {
        violations.push(violation(list, ChoiceProblem::TooMany(MAX_CATEGORIES)));
    }
    let mut names: Vec<Name> = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().take(MAX_CATEGORIES).enumerate() {
        match Name::parse(value) {
            Err(problem) => {
                violations.push(violation(entry(i), ChoiceProblem::NotAName(problem)));
            }
            Ok(name) if names.contains(&name) => {
                violations.push(violation(entry(i), ChoiceProblem::ListedTwice));
            }
            Ok(name) => names.push(name),
        }
    }
    names
}
