//! Field violations: every problem of a request, reported at once.

use std::fmt;

/// One bad field: its path in the request (`services[2].category`) and what is
/// wrong with it, worded for the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

/// A request that failed validation, with all its violations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    pub violations: Vec<FieldViolation>,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} invalid field(s)", self.violations.len())
    }
}

impl std::error::Error for ValidationError {}

/// Collects violations while a request is parsed field by field, so the
/// caller learns about every bad field in one round trip.
#[derive(Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// Keeps the parsed value, or records why it failed under `field`.
    pub fn check<T>(&mut self, field: impl Into<String>, parsed: Result<T, String>) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(description) => {
                self.add(field, description);
                None
            }
        }
    }

    /// Keeps an optional value: `None` stays `None`, a failure is recorded.
    pub fn check_optional<T>(
        &mut self,
        field: impl Into<String>,
        parsed: Option<Result<T, String>>,
    ) -> Option<T> {
        parsed.and_then(|parsed| self.check(field, parsed))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Ends the parse: builds the value when no field failed. `build` runs only
    /// then, so it may unwrap the `Option`s the checks returned.
    pub fn finish<T>(self, build: impl FnOnce() -> T) -> Result<T, ValidationError> {
        if self.0.is_empty() {
            Ok(build())
        } else {
            Err(ValidationError { violations: self.0 })
        }
    }
}

/// Rejects empty, over-long and non-printable strings: the shared rule for
/// identifiers chosen by callers.
pub fn printable_ascii(value: &str, max_chars: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > max_chars {
        return Err(format!("must be at most {max_chars} characters"));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces".into());
    }
    Ok(())
}

/// Rejects text over a length limit or holding control characters.
pub fn bounded_text(value: &str, max_chars: usize) -> Result<(), String> {
    if value.chars().count() > max_chars {
        return Err(format!("must be at most {max_chars} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}
