//! Store errors, classified by SQLSTATE and connection state, never by text.

use std::sync::Arc;

use tokio_postgres::error::SqlState;

use crate::domain::consent::ChoiceViolation;

type Source = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not found")]
    NotFound,
    /// The database cannot be reached or refuses connections for now; the
    /// same call may work later.
    #[error("database unavailable")]
    Unavailable(#[source] Source),
    #[error("database error")]
    Internal(#[source] Source),
    /// Too many exports are running (of the caller's tenant, or in all);
    /// the same call may work once one of them ends.
    #[error("too many exports are running: at most {limit} {scope}")]
    TooManyExports { limit: usize, scope: ExportScope },
    /// The decision disagrees with the categories its site declares
    /// (`domain::declared`); each edge words the problems in its own
    /// field names. Nothing was stored.
    #[error("the decision disagrees with the site's declared categories")]
    Declined(Vec<ChoiceViolation>),
}

/// Which limit on concurrent exports was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportScope {
    Tenant,
    Server,
}

impl std::fmt::Display for ExportScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ExportScope::Tenant => "per tenant",
            ExportScope::Server => "in all",
        })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A stored row that does not read back as what was written: a column
    /// missing or of another type, or a value that no longer parses.
    pub(super) fn corrupt_row(table: &'static str, column: &str, cause: impl Into<Source>) -> Self {
        Error::Internal(Box::new(CorruptRow {
            table,
            column: column.to_string(),
            cause: cause.into(),
        }))
    }

    /// The same error for each of many calls that one failure fails.
    pub(super) fn shared(error: &Arc<Error>) -> Self {
        match error.as_ref() {
            Error::NotFound => Error::NotFound,
            Error::Unavailable(_) => Error::Unavailable(Box::new(SharedCause(error.clone()))),
            Error::Internal(_) => Error::Internal(Box::new(SharedCause(error.clone()))),
            Error::TooManyExports { limit, scope } => Error::TooManyExports {
                limit: *limit,
                scope: *scope,
            },
            Error::Declined(problems) => Error::Declined(problems.clone()),
        }
    }
}

#[derive(Debug)]
struct SharedCause(Arc<Error>);

impl std::fmt::Display for SharedCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "batch write failed: {}",
            crate::telemetry::error_chain(self.0.as_ref())
        )
    }
}

impl std::error::Error for SharedCause {}

/// Names the table and the column, never the value.
#[derive(Debug)]
struct CorruptRow {
    table: &'static str,
    column: String,
    cause: Source,
}

impl std::fmt::Display for CorruptRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "corrupt row in {}: column {}", self.table, self.column)
    }
}

impl std::error::Error for CorruptRow {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.cause.as_ref())
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(error: tokio_postgres::Error) -> Self {
        let unavailable = match error.code() {
            Some(code) => {
                code.code().starts_with("08") // connection exception
                    || *code == SqlState::ADMIN_SHUTDOWN
                    || *code == SqlState::CRASH_SHUTDOWN
                    || *code == SqlState::CANNOT_CONNECT_NOW
                    || *code == SqlState::TOO_MANY_CONNECTIONS
                    || *code == SqlState::QUERY_CANCELED
            }
            // Without a SQLSTATE the server never answered: a refused or
            // dropped connection.
            None => error.is_closed() || source_is_io(&error),
        };
        let cause: Source = match error.as_db_error() {
            Some(db) => Box::new(DbFailure::from(db)),
            None => error.into(),
        };
        if unavailable {
            Error::Unavailable(cause)
        } else {
            Error::Internal(cause)
        }
    }
}

/// What is safe to log of a database error: never its DETAIL, which quotes
/// row values ("Failing row contains (...)"), nor the message of a data
/// exception (class 22), which quotes the offending value.
#[derive(Debug)]
struct DbFailure {
    code: String,
    message: Option<String>,
    table: Option<String>,
    constraint: Option<String>,
}

impl From<&tokio_postgres::error::DbError> for DbFailure {
    fn from(db: &tokio_postgres::error::DbError) -> Self {
        let code = db.code().code().to_string();
        Self {
            message: (!code.starts_with("22")).then(|| db.message().to_string()),
            table: db.table().map(str::to_string),
            constraint: db.constraint().map(str::to_string),
            code,
        }
    }
}

impl std::fmt::Display for DbFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SQLSTATE {}", self.code)?;
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        if let Some(table) = &self.table {
            write!(f, " (table {table})")?;
        }
        if let Some(constraint) = &self.constraint {
            write!(f, " (constraint {constraint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for DbFailure {}

fn source_is_io(error: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::PoolError;
        match error {
            PoolError::Backend(error) => error.into(),
            PoolError::PostCreateHook(deadpool_postgres::HookError::Backend(error)) => error.into(),
            PoolError::Timeout(kind) => {
                Error::Unavailable(format!("pool timed out: {kind:?}").into())
            }
            other => Error::Internal(other.to_string().into()),
        }
    }
}
