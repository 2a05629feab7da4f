//! Every error a handler can return, and the single mapping to a gRPC status.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::{
    domain::{auth::Scope, validation::ValidationError},
    store,
    telemetry::error_chain,
};

/// `ErrorInfo.domain` of our errors (AIP-193).
const ERROR_DOMAIN: &str = "consentd";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("missing or unknown API key")]
    Unauthenticated,
    #[error("the API key lacks scope {0}")]
    PermissionDenied(Scope),
    #[error(transparent)]
    Store(#[from] store::Error),
}

// Handlers use `?` on validation and store results alike; each goes
// through the one mapping below.
impl From<ValidationError> for Status {
    fn from(error: ValidationError) -> Self {
        Error::from(error).into()
    }
}

impl From<store::Error> for Status {
    fn from(error: store::Error) -> Self {
        Error::from(error).into()
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::Invalid(invalid) => {
                let violations: Vec<FieldViolation> = invalid
                    .violations
                    .iter()
                    .map(|v| FieldViolation::new(&v.field, &v.description))
                    .collect();
                let fields = invalid
                    .violations
                    .iter()
                    .map(|v| v.field.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut details = ErrorDetails::with_bad_request(violations);
                details.set_error_info("INVALID_FIELDS", ERROR_DOMAIN, HashMap::new());
                Status::with_error_details(
                    Code::InvalidArgument,
                    format!("invalid request: {fields}"),
                    details,
                )
            }
            Error::Unauthenticated => with_reason(
                Code::Unauthenticated,
                "send a valid, unrevoked API key in the x-api-key metadata",
                "API_KEY_INVALID",
                HashMap::new(),
            ),
            Error::PermissionDenied(scope) => with_reason(
                Code::PermissionDenied,
                &format!("the API key lacks the scope {scope}"),
                "SCOPE_MISSING",
                HashMap::from([("scope".to_string(), scope.to_string())]),
            ),
            Error::Store(store::Error::NotFound) => {
                with_reason(Code::NotFound, "not found", "NOT_FOUND", HashMap::new())
            }
            Error::Store(error @ store::Error::Unavailable(_)) => {
                tracing::warn!(error = %error_chain(&error), "database unavailable");
                with_reason(
                    Code::Unavailable,
                    "the database is unavailable; retry later",
                    "DATABASE_UNAVAILABLE",
                    HashMap::new(),
                )
            }
            Error::Store(store::Error::TooManyExports { limit, scope }) => with_reason(
                Code::ResourceExhausted,
                &format!(
                    "too many exports are running ({limit} {scope}); finish or cancel one, or retry later"
                ),
                "TOO_MANY_EXPORTS",
                HashMap::from([("limit".to_string(), limit.to_string())]),
            ),
            // Only RecordConsent meets a site's declared categories: its
            // problems in the proto's field names.
            Error::Store(store::Error::Declined(problems)) => Error::Invalid(ValidationError {
                violations: problems
                    .into_iter()
                    .map(crate::api::convert::choice_violation)
                    .collect(),
            })
            .into(),
            Error::Store(error @ store::Error::Internal(_)) => {
                // The cause stays in our logs; the client learns nothing of
                // the database.
                tracing::error!(error = %error_chain(&error), "internal error");
                Status::internal("internal error")
            }
        }
    }
}

fn with_reason(
    code: Code,
    message: &str,
    reason: &str,
    metadata: HashMap<String, String>,
) -> Status {
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata),
    )
}
