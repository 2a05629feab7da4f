//! Store errors, classified by SQLSTATE and connection state, never by text.

use tokio_postgres::error::SqlState;

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
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
        if unavailable {
            Error::Unavailable(error.into())
        } else {
            Error::Internal(error.into())
        }
    }
}

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
            PoolError::Timeout(kind) => {
                Error::Unavailable(format!("pool timed out: {kind:?}").into())
            }
            other => Error::Internal(other.to_string().into()),
        }
    }
}
