//! API keys from the `x-api-key` metadata, checked against the store.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tonic::Request;

use super::Error;
use crate::{
    domain::auth::{ApiKey, Caller, Scope},
    store::Store,
};

pub const API_KEY_HEADER: &str = "x-api-key";

/// Resolves the caller of a request and checks its scope. Known keys are
/// remembered for `cache_ttl`, so a hot path does not ask the database on
/// every call; a revocation takes effect within that time.
#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    cache_ttl: Duration,
    cache: Arc<Mutex<KeyCache>>,
}

/// Callers by the SHA-256 of their key, with when they were looked up.
type KeyCache = HashMap<[u8; 32], (Caller, Instant)>;

/// Most keys remembered; past that the cache starts over.
const MAX_CACHED_KEYS: usize = 10_000;

impl Authenticator {
    pub fn new(store: Store, cache_ttl: Duration) -> Self {
        Self {
            store,
            cache_ttl,
            cache: Arc::default(),
        }
    }

    async fn caller(&self, presented: &ApiKey) -> Result<Option<Caller>, Error> {
        let digest = presented.digest();
        if let Some((caller, fetched)) = self.cache.lock().expect("not poisoned").get(&digest)
            && fetched.elapsed() < self.cache_ttl
        {
            return Ok(Some(caller.clone()));
        }
        let caller = self.store.authenticate(presented).await?;
        if let Some(caller) = &caller
            && !self.cache_ttl.is_zero()
        {
            let mut cache = self.cache.lock().expect("not poisoned");
            if cache.len() >= MAX_CACHED_KEYS {
                cache.clear();
            }
            cache.insert(digest, (caller.clone(), Instant::now()));
        }
        Ok(caller)
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
            .caller(&ApiKey::presented(presented))
            .await?
            .ok_or(Error::Unauthenticated)?;
        if !caller.may(scope) {
            return Err(Error::PermissionDenied(scope));
        }
        tracing::Span::current().record("tenant_id", tracing::field::display(caller.tenant_id));
        Ok(caller)
    }
}
