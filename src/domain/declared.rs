//! The categories and services a site declares its banner to have, and the
//! check of a decision against them.
//!
//! Data from a browser can be altered by anyone (CookieConsent's own
//! documentation warns of it), and a decision's action must agree with
//! what it grants: without a declaration a REJECT_ALL granting analytics
//! and marketing would be stored as REJECTED with both granted. Where a
//! site has declared its categories, every decision (RecordConsent and the
//! public listener alike, in the writer that stores both) must name only
//! those, ACCEPT_ALL must grant every one of them and every declared
//! service (listed, not implied), REJECT_ALL only the necessary ones, and
//! no decision may deny a necessary one or a service of one.

use std::collections::{HashMap, HashSet};

use super::{
    consent::{
        Action, ChoiceField, ChoiceProblem, ChoiceViolation, Choices, MAX_CATEGORIES, MAX_SERVICES,
        Name,
    },
    validation::FieldViolation,
};

/// One declared category.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclaredCategory {
    pub name: Name,
    /// Always granted: no decision may deny it.
    pub necessary: bool,
    pub services: Vec<Name>,
}

/// As `consentd sites get` prints it: `analytics: ga,matomo`,
/// `necessary (necessary)`.
impl std::fmt::Display for DeclaredCategory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name.as_ref())?;
        if self.necessary {
            f.write_str(" (necessary)")?;
        }
        let services: Vec<&str> = self.services.iter().map(AsRef::as_ref).collect();
        if !services.is_empty() {
            write!(f, ": {}", services.join(","))?;
        }
        Ok(())
    }
}

/// A change of a site's declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeclarationChange {
    /// The site drops its own and follows its tenant's (site ''); for the
    /// tenant, the same as declaring none.
    Inherit,
    /// The site's own declaration; `None` declares none, so its decisions
    /// are not checked even where its tenant declares categories.
    Own(Option<Declaration>),
}

impl DeclarationChange {
    /// The three lists the store keeps: `None` inherits, empty lists
    /// declare none.
    pub fn to_stored(&self) -> Option<(Vec<String>, Vec<String>, Vec<String>)> {
        match self {
            Self::Inherit => None,
            Self::Own(None) => Some(Default::default()),
            Self::Own(Some(declaration)) => Some(declaration.to_stored()),
        }
    }
}

/// Unvalidated category, as the caller sent it.
pub struct RawDeclaredCategory {
    pub name: String,
    pub necessary: bool,
    pub services: Vec<String>,
}

/// A site's declared categories: at least one, each named once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declaration {
    categories: Vec<DeclaredCategory>,
}

impl Declaration {
    /// Parses a declaration; no category at all means none is declared.
    /// Violations name fields as `categories[i].name` and
    /// `categories[i].services[j]`, which each edge puts under its own.
    pub fn parse(raw: Vec<RawDeclaredCategory>) -> Result<Option<Self>, Vec<FieldViolation>> {
        let mut problems = Vec::new();
        let mut problem = |field: String, description: String| {
            problems.push(FieldViolation { field, description })
        };
        if raw.len() > MAX_CATEGORIES {
            problem(
                "categories".into(),
                format!("at most {MAX_CATEGORIES} entries"),
            );
        }
        let service_count: usize = raw.iter().map(|c| c.services.len()).sum();
        if service_count > MAX_SERVICES {
            problem(
                "categories".into(),
                format!("at most {MAX_SERVICES} services in all"),
            );
        }
        let mut categories: Vec<DeclaredCategory> = Vec::with_capacity(raw.len());
        for (i, category) in raw.into_iter().enumerate() {
            let name = match Name::parse(category.name) {
                Ok(name) if categories.iter().any(|c| c.name == name) => {
                    problem(format!("categories[{i}].name"), "declared twice".into());
                    None
                }
                Ok(name) => Some(name),
                Err(e) => {
                    problem(format!("categories[{i}].name"), e);
                    None
                }
            };
            let mut services: Vec<Name> = Vec::with_capacity(category.services.len());
            for (j, service) in category.services.into_iter().enumerate() {
                match Name::parse(service) {
                    Ok(service) if services.contains(&service) => problem(
                        format!("categories[{i}].services[{j}]"),
                        "listed twice".into(),
                    ),
                    Ok(service) => services.push(service),
                    Err(e) => problem(format!("categories[{i}].services[{j}]"), e),
                }
            }
            if let Some(name) = name {
                categories.push(DeclaredCategory {
                    name,
                    necessary: category.necessary,
                    services,
                });
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok((!categories.is_empty()).then_some(Self { categories }))
    }

    /// A declaration from the command line: `--category` values (`name`
    /// or `name=service,service`), `--necessary` names among them.
    pub fn from_flags(categories: &[String], necessary: &[String]) -> Result<Option<Self>, String> {
        let unknown = necessary.iter().find(|n| {
            !categories
                .iter()
                .any(|c| c.split('=').next() == Some(n.as_str()))
        });
        if let Some(unknown) = unknown {
            return Err(format!("--necessary {unknown}: not a --category"));
        }
        let raw = categories
            .iter()
            .map(|flag| {
                let (name, services) = flag.split_once('=').unwrap_or((flag, ""));
                RawDeclaredCategory {
                    name: name.to_string(),
                    necessary: necessary.iter().any(|n| n == name),
                    services: services
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                }
            })
            .collect();
        Self::parse(raw).map_err(|problems| {
            let problems: Vec<String> = problems
                .into_iter()
                .map(|p| format!("--category ({}): {}", p.field, p.description))
                .collect();
            problems.join("; ")
        })
    }

    /// Rebuilds a declaration the store holds as three lists (services as
    /// `category/service`, which [`Name`]'s charset keeps unambiguous);
    /// `None` when it holds none.
    pub fn from_stored(
        categories: Vec<String>,
        necessary: Vec<String>,
        services: Vec<String>,
    ) -> Option<Self> {
        let necessary: HashSet<String> = necessary.into_iter().collect();
        let mut by_category: HashMap<String, Vec<Name>> = HashMap::new();
        for entry in services {
            if let Some((category, Ok(service))) = entry
                .split_once('/')
                .map(|(category, service)| (category, Name::parse(service.to_string())))
            {
                by_category
                    .entry(category.to_string())
                    .or_default()
                    .push(service);
            }
        }
        // The store holds only names that parsed when declared.
        let categories: Vec<DeclaredCategory> = categories
            .into_iter()
            .filter_map(|name| {
                Some(DeclaredCategory {
                    necessary: necessary.contains(&name),
                    services: by_category.remove(&name).unwrap_or_default(),
                    name: Name::parse(name).ok()?,
                })
            })
            .collect();
        (!categories.is_empty()).then_some(Self { categories })
    }

    /// The three lists the store keeps, in declaration order.
    pub fn to_stored(&self) -> (Vec<String>, Vec<String>, Vec<String>) {
        let names = self.categories.iter().map(|c| c.name.as_ref().to_string());
        let necessary = self
            .categories
            .iter()
            .filter(|c| c.necessary)
            .map(|c| c.name.as_ref().to_string());
        let services = self.categories.iter().flat_map(|c| {
            c.services
                .iter()
                .map(move |s| format!("{}/{}", c.name.as_ref(), s.as_ref()))
        });
        (names.collect(), necessary.collect(), services.collect())
    }

    pub fn categories(&self) -> &[DeclaredCategory] {
        &self.categories
    }

    fn category(&self, name: &Name) -> Option<&DeclaredCategory> {
        self.categories.iter().find(|c| &c.name == name)
    }

    /// Every way `choices`, made with `action`, disagrees with the
    /// declaration; empty when it agrees.
    pub fn check(&self, action: Action, choices: &Choices) -> Vec<ChoiceViolation> {
        use ChoiceField as F;
        use ChoiceProblem as P;
        let mut found = Vec::new();
        let mut push = |field, problem| found.push(ChoiceViolation { field, problem });
        for (i, name) in choices.granted().iter().enumerate() {
            match self.category(name) {
                None => push(F::GrantedEntry(i), P::UnknownCategory(name.clone())),
                Some(c) if action == Action::RejectAll && !c.necessary => push(
                    F::GrantedEntry(i),
                    P::GrantedWhileRejectingAll(name.clone()),
                ),
                Some(_) => {}
            }
        }
        for (i, name) in choices.denied().iter().enumerate() {
            match self.category(name) {
                None => push(F::DeniedEntry(i), P::UnknownCategory(name.clone())),
                Some(c) if c.necessary => push(F::DeniedEntry(i), P::NecessaryDenied(name.clone())),
                Some(_) => {}
            }
        }
        if action == Action::AcceptAll {
            for category in &self.categories {
                if !choices.granted().contains(&category.name) {
                    push(F::Granted, P::MissingFromAcceptAll(category.name.clone()));
                }
            }
        }
        for (i, service) in choices.services().iter().enumerate() {
            let Some(category) = self.category(&service.category) else {
                push(
                    F::ServiceCategory(i),
                    P::UnknownCategory(service.category.clone()),
                );
                continue;
            };
            if !category.services.contains(&service.service) {
                push(
                    F::ServiceName(i),
                    P::UnknownService(service.service.clone()),
                );
            } else if category.necessary && !service.granted {
                push(
                    F::Service(i),
                    P::NecessaryServiceDenied(service.category.clone()),
                );
            } else if action == Action::AcceptAll && !service.granted {
                push(F::Service(i), P::ServiceDeniedWhileAcceptingAll);
            } else if action == Action::RejectAll && service.granted && !category.necessary {
                push(
                    F::Service(i),
                    P::GrantedWhileRejectingAll(service.category.clone()),
                );
            }
        }
        if action == Action::AcceptAll {
            // Explicit, as for categories: the record itself proves what
            // was granted, without the declaration of the day. A missing
            // category, or a service listed as denied, is named above.
            for category in &self.categories {
                for service in &category.services {
                    let listed = choices
                        .services()
                        .iter()
                        .any(|s| s.category == category.name && &s.service == service);
                    if !listed && choices.granted().contains(&category.name) {
                        push(
                            F::Services,
                            P::ServiceMissingFromAcceptAll(category.name.clone(), service.clone()),
                        );
                    }
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests;
