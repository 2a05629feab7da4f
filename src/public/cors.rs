//! CORS for a publishable key's origins. `navigator.sendBeacon` always
//! sends credentials, so the answer echoes the one origin with
//! `Access-Control-Allow-Credentials: true`: a wildcard would be refused by
//! the browser. Every answer varies by `Origin`, so no cache hands one
//! origin's answer to another.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::domain::auth::Origin;

/// How long a browser may reuse a preflight's answer.
const PREFLIGHT_MAX_AGE: &str = "600";

/// The answer to an allowed preflight.
pub fn preflight(origin: &Origin) -> Response {
    let mut response = allow(StatusCode::NO_CONTENT.into_response(), origin);
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, x-consentd-key"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    response
}

/// `response`, readable by a page of `origin`.
pub fn allow(mut response: Response, origin: &Origin) -> Response {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(origin.as_ref()) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    response
}
