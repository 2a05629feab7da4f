//! What the public listener answers: the record stored, or a refusal as a
//! JSON error a page's script can read.

use std::time::{Duration, SystemTime};

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::domain::{
    consent::{ConsentRecord, Status},
    receipt::Receipt,
    validation::ValidationError,
};

/// Why a request stored nothing.
#[derive(Debug)]
pub enum Refusal {
    /// No publishable key, an unknown or revoked one, or a secret key.
    NoKey,
    /// No `Origin`, or one the key does not allow.
    Origin,
    /// Over a rate limit; retry after this long.
    Limited(Duration),
    /// A body that is not JSON text.
    ContentType,
    Invalid(ValidationError),
    NotFound,
    Unavailable,
    Internal,
}

impl Refusal {
    pub fn too_large() -> Self {
        Refusal::Invalid(ValidationError {
            violations: vec![crate::domain::validation::FieldViolation {
                field: "body".into(),
                description: format!("must be at most {} bytes", super::MAX_BODY_BYTES),
            }],
        })
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, code, message) = match &self {
            Refusal::NoKey => (
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "a publishable site key is required",
            ),
            Refusal::Origin => (
                StatusCode::FORBIDDEN,
                "ORIGIN_NOT_ALLOWED",
                "this origin may not record consent with this key",
            ),
            Refusal::Limited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                "too many requests",
            ),
            Refusal::ContentType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "send application/json or text/plain",
            ),
            Refusal::Invalid(_) => (
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "the consent data is invalid",
            ),
            Refusal::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND", "no such path"),
            Refusal::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "try again later",
            ),
            Refusal::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "internal error",
            ),
        };
        tracing::debug!(code, "public request refused");
        crate::metrics::metrics().public_request(code);
        let mut error = json!({ "code": code, "message": message });
        if let Refusal::Invalid(invalid) = &self {
            error["fieldViolations"] = invalid
                .violations
                .iter()
                .map(|v| json!({ "field": v.field, "description": v.description }))
                .collect();
        }
        let mut response = (status, json_body(&json!({ "error": error }))).into_response();
        if let Refusal::Limited(wait) = self {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

/// The answer to a stored decision: what a page may keep as its proof.
pub fn recorded(record: &ConsentRecord, receipt: Option<Receipt>) -> Response {
    let status = match record.status {
        Status::Accepted => "ACCEPTED",
        Status::Partial => "PARTIAL",
        Status::Rejected => "REJECTED",
    };
    let body = json!({
        "id": record.id.to_string(),
        "status": status,
        "recordTime": rfc3339(record.record_time),
        "expireTime": rfc3339(record.expire_time),
        "receipt": receipt.map(|r| r.token()),
    });
    crate::metrics::metrics().public_request("recorded");
    (StatusCode::OK, json_body(&body)).into_response()
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_micros(time).to_string()
}

fn json_body(value: &serde_json::Value) -> ([(header::HeaderName, HeaderValue); 1], String) {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        value.to_string(),
    )
}
