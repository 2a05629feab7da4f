//! The values the `consentd` commands other than `serve` take, checked
//! where they are given: each parser refuses what `serve` or the API would
//! refuse later, with the rule in its message, and [`env_hints`] names the
//! environment variable of a refused flag. `serve`'s own settings are in
//! [`crate::config`].

use uuid::Uuid;

use crate::domain::{
    consent::MAX_NAME_CHARS,
    declared::{Declaration, DeclarationChange},
    ids::{MAX_IDENTIFIER_CHARS, SiteId},
    keyring::check_key_id,
    validation::printable_ascii,
};

/// The rule of a name, for the message when one breaks it.
fn identifier_rule(what: &str) -> String {
    format!("{what} is 1-{MAX_IDENTIFIER_CHARS} printable ASCII characters, no spaces")
}

/// A site id as RecordConsent and UpdateSiteSettings take it.
pub fn site_id(site: &str) -> Result<SiteId, String> {
    SiteId::parse(site.to_string())
        .map_err(|problem| format!("{problem}: {}", identifier_rule("a site id")))
}

/// A site id, or '' for the tenant's defaults, as UpdateSiteSettings
/// takes it.
pub fn site_or_defaults(site: &str) -> Result<String, String> {
    if site.is_empty() {
        return Ok(String::new());
    }
    site_id(site).map(SiteId::into_inner)
}

/// A tenant's name: the rule of the ids callers choose, so a name never
/// holds a space or a control character.
pub fn tenant(name: &str) -> Result<String, String> {
    printable_ascii(name, MAX_IDENTIFIER_CHARS)
        .map(|()| name.to_string())
        .map_err(|problem| format!("{problem}: {}", identifier_rule("a tenant name")))
}

/// An API key's id, as `keys create` and `keys list` print it.
pub fn key_uuid(id: &str) -> Result<Uuid, String> {
    Uuid::parse_str(id).map_err(|_| {
        "must be a key id as `keys create` and `keys list` print it, a UUID such as \
         0190f1d2-7b1a-7c3e-9a1b-2c3d4e5f6a7b"
            .to_string()
    })
}

/// The id of a keyring entry, as `serve` reads it.
pub fn key_id(id: &str) -> Result<String, String> {
    check_key_id(id).map(|()| id.to_string())
}

/// A `--category` of `sites set`: `name` or `name=service,service`.
pub fn category(flag: &str) -> Result<String, String> {
    Declaration::from_flags(&[flag.to_string()], &[])
        .map(|_| flag.to_string())
        .map_err(|problem| {
            format!("{problem}; a category or service name is 1-{MAX_NAME_CHARS} of [A-Za-z0-9_.-]")
        })
}

/// What the declaration flags of `sites set` change: nothing when none is
/// given.
pub fn declaration_change(
    categories: &[String],
    necessary: &[String],
    no_categories: bool,
    inherit: bool,
) -> Result<Option<DeclarationChange>, String> {
    if inherit {
        return Ok(Some(DeclarationChange::Inherit));
    }
    if !no_categories && categories.is_empty() {
        return Ok(None);
    }
    Declaration::from_flags(categories, necessary).map(|own| Some(DeclarationChange::Own(own)))
}

/// For each flag clap refused, the environment variable that sets it, if
/// any: in a pod that is where a bad value came from.
pub fn env_hints(command: &clap::Command, error: &clap::Error) -> Vec<String> {
    use clap::error::{ContextKind, ContextValue};
    let args = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => vec![arg.clone()],
        Some(ContextValue::Strings(args)) => args.clone(),
        _ => return Vec::new(),
    };
    args.iter()
        .filter_map(|arg| {
            // clap names an argument as "--flag-name <VALUE>".
            let long = arg.split_whitespace().next()?.strip_prefix("--")?;
            let env = env_of(command, long)?;
            Some(format!(
                "consentd: --{long} is set with the flag or the environment variable {env}"
            ))
        })
        .collect()
}

fn env_of(command: &clap::Command, long: &str) -> Option<String> {
    command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(long))
        .and_then(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .or_else(|| command.get_subcommands().find_map(|sub| env_of(sub, long)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_refused_with_their_rule() {
        assert_eq!(tenant("acme"), Ok("acme".into()));
        for bad in ["", "a b", "a\u{7}", &"t".repeat(129)] {
            let problem = tenant(bad).unwrap_err();
            assert!(
                problem.ends_with("a tenant name is 1-128 printable ASCII characters, no spaces"),
                "{problem}"
            );
        }
        assert_eq!(site_or_defaults(""), Ok(String::new()));
        assert_eq!(site_or_defaults("shop"), Ok("shop".into()));
        assert!(
            site_or_defaults("my shop")
                .unwrap_err()
                .contains("a site id is 1-128")
        );
        assert!(site_id("").is_err(), "a key's site is never the defaults");
        assert!(key_uuid("7").unwrap_err().contains("a UUID"));
        assert!(
            key_id("bad.id")
                .unwrap_err()
                .contains("1-64 of [A-Za-z0-9_-]")
        );
    }
}
