//! API keys from the `x-api-key` metadata, checked against the store.

use tonic::Request;

use super::Error;
use crate::{
    domain::auth::{ApiKey, Caller, Scope},
    store::Store,
};

pub const API_KEY_HEADER: &str = "x-api-key";

/// Resolves the caller of a request and checks its scope.
#[derive(Clone)]
pub struct Authenticator {
    store: Store,
}

impl Authenticator {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The caller, if the request carries a live key with `scope`.
    pub async fn authorize<T>(&self, request: &Request<T>, scope: Scope) -> Result<Caller, Error> {
        let presented = request
            .metadata()
            .get(API_KEY_HEADER)
            .and_then(|value| value.to_str().ok())
            .filter(|value| !value.is_empty())
            .ok_or(Error::Unauthenticated)?;
        let caller = self
            .store
            .authenticate(&ApiKey::presented(presented))
            .await?
            .ok_or(Error::Unauthenticated)?;
        if !caller.may(scope) {
            return Err(Error::PermissionDenied(scope));
        }
        tracing::Span::current().record("tenant_id", tracing::field::display(caller.tenant_id));
        Ok(caller)
    }
}
