//! Rows read back, column by column. Every value goes through `try_get`;
//! one that does not read as its type, or no longer parses as what was
//! written, makes the row corrupt, and the error names the table and the
//! column (never the value).

use std::{fmt::Display, time::Duration};

use tokio_postgres::{Row, types::FromSql};

use super::{Error, Result};

/// A row of `table`.
pub(super) struct StoredRow<'r> {
    table: &'static str,
    row: &'r Row,
}

impl<'r> StoredRow<'r> {
    pub fn of(table: &'static str, row: &'r Row) -> Self {
        Self { table, row }
    }

    pub fn get<T: FromSql<'r>>(&self, column: &str) -> Result<T> {
        self.row
            .try_get(column)
            .map_err(|error| Error::corrupt_row(self.table, column, error))
    }

    /// A value that must parse as what was written.
    pub fn parse<S: FromSql<'r>, T, E: Display>(
        &self,
        column: &str,
        parse: impl FnOnce(S) -> Result<T, E>,
    ) -> Result<T> {
        parse(self.get(column)?).map_err(|why| self.corrupt(column, why))
    }

    /// A value that may be NULL and otherwise must parse.
    pub fn parse_opt<S: FromSql<'r>, T, E: Display>(
        &self,
        column: &str,
        parse: impl FnOnce(S) -> Result<T, E>,
    ) -> Result<Option<T>> {
        self.get::<Option<S>>(column)?
            .map(parse)
            .transpose()
            .map_err(|why| self.corrupt(column, why))
    }

    /// A duration stored in microseconds.
    pub fn duration(&self, column: &str) -> Result<Duration> {
        self.parse(column, duration_of_micros)
    }

    /// A duration stored in microseconds, or NULL.
    pub fn duration_opt(&self, column: &str) -> Result<Option<Duration>> {
        self.parse_opt(column, duration_of_micros)
    }

    pub fn corrupt(&self, column: &str, why: impl Display) -> Error {
        Error::corrupt_row(self.table, column, why.to_string())
    }
}

/// A duration as the store keeps it: whole microseconds, saturating (no
/// setting comes near the limit).
pub(super) fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

fn duration_of_micros(micros: i64) -> Result<Duration, &'static str> {
    u64::try_from(micros)
        .map(Duration::from_micros)
        .map_err(|_| "a negative duration")
}
