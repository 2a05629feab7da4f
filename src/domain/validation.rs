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

/// Marks a value that failed to parse. Only [`Violations`] makes one, as it
/// records why, so a parse builds its result with `?` and the request is
/// still refused with every reason: no value is ever unwrapped on the
/// promise that an earlier check passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Invalid(());

/// A parsed value, or the mark that its violation was recorded.
pub type Checked<T> = Result<T, Invalid>;

/// Collects violations while a request is parsed field by field, so the
/// caller learns about every bad field in one round trip. `V` is a
/// [`FieldViolation`] at the edge; a domain parser that checks many things
/// at once (a decision's choices) collects its own typed problems, which
/// `api` words and [`merge`](Self::merge)s in.
pub struct Violations<V = FieldViolation>(Vec<V>);

impl<V> Default for Violations<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

/// A point in a parse, to ask later whether anything failed since.
#[derive(Clone, Copy, Debug)]
pub struct Mark(usize);

impl<V> Violations<V> {
    /// Records a violation; the returned mark stands for the value it spoils.
    pub fn push(&mut self, violation: V) -> Invalid {
        self.0.push(violation);
        Invalid(())
    }

    pub fn mark(&self) -> Mark {
        Mark(self.0.len())
    }

    /// `Err` when a violation was recorded after `mark`: the part of the
    /// request parsed since then is invalid.
    pub fn failed_since(&self, mark: Mark) -> Checked<()> {
        if self.0.len() > mark.0 {
            Err(Invalid(()))
        } else {
            Ok(())
        }
    }

    /// Takes over another parser's violations, each turned into ours.
    pub fn merge<W>(&mut self, other: Violations<W>, mut convert: impl FnMut(W) -> V) {
        self.0.extend(other.0.into_iter().map(&mut convert));
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn as_slice(&self) -> &[V] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) -> Invalid {
        self.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        })
    }

    /// Keeps the parsed value, or records why it failed under `field`.
    pub fn check<T>(&mut self, field: impl Into<String>, parsed: Result<T, String>) -> Checked<T> {
        parsed.map_err(|description| self.add(field, description))
    }

    /// Keeps an optional value: `None` stays `None`, a failure is recorded.
    pub fn check_optional<T>(
        &mut self,
        field: impl Into<String>,
        parsed: Option<Result<T, String>>,
    ) -> Checked<Option<T>> {
        parsed.map(|parsed| self.check(field, parsed)).transpose()
    }

    /// Ends the parse: the value when no check failed, else every
    /// violation. Check every field before building the value with `?`, so
    /// that one bad field never hides another.
    pub fn finish<T>(self, parsed: Checked<T>) -> Result<T, ValidationError> {
        match parsed {
            Ok(value) if self.0.is_empty() => Ok(value),
            // An `Invalid` with no violation cannot come from this parse;
            // it is refused all the same, never unwrapped.
            _ => Err(ValidationError { violations: self.0 }),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reports_every_violation_and_builds_only_without_one() {
        let mut v = Violations::new();
        let a = v.check("a", Err::<u8, _>("bad a".into()));
        let b = v.check("b", Ok::<u8, String>(2));
        let c = v.check_optional("c", Some(Err::<u8, _>("bad c".into())));
        let built = v.finish((|| Ok((a?, b?, c?)))());
        let fields: Vec<_> = built
            .unwrap_err()
            .violations
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["a", "c"]);

        let mut v = Violations::new();
        let b = v.check("b", Ok::<u8, String>(2));
        let c = v.check_optional("c", None::<Result<u8, String>>);
        assert_eq!(v.finish((|| Ok((b?, c?)))()), Ok((2, None)));

        let mut v = Violations::new();
        v.add("cross-field", "no value spoilt, still refused");
        assert!(v.finish(Ok(())).is_err());
    }

    #[test]
    fn a_mark_tells_whether_a_part_failed_and_merge_keeps_the_order() {
        let mut inner: Violations<&str> = Violations::default();
        let mark = inner.mark();
        assert_eq!(inner.failed_since(mark), Ok(()));
        inner.push("first");
        inner.push("second");
        assert!(inner.failed_since(mark).is_err());

        let mut v = Violations::new();
        v.add("before", "x");
        v.merge(inner, |name| FieldViolation {
            field: name.into(),
            description: "y".into(),
        });
        let fields: Vec<_> = v
            .finish(Ok(()))
            .unwrap_err()
            .violations
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["before", "first", "second"]);
    }
}
