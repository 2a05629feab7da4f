//! API keys from the `x-api-key` metadata, checked against the store.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tonic::Request;

use super::Error;
use crate::{
    domain::auth::{ApiKey, Caller, Scope},
    key_cache::KeyCache,
    store::Store,
};

pub const API_KEY_HEADER: &str = "x-api-key";

/// Resolves the caller of a request and checks its scope. Known keys are
/// remembered for `cache_ttl`, so a hot path does not ask the database on
/// every call; a revocation takes effect within that time.
#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    cache: Arc<KeyCache<Caller>>,
}

/// Most keys remembered; past that the least used are forgotten first.
const MAX_CACHED_KEYS: usize = 10_000;

impl Authenticator {
    pub fn new(store: Store, cache_ttl: Duration) -> Self {
        Self {
            store,
            cache: Arc::new(KeyCache::new(cache_ttl, MAX_CACHED_KEYS)),
        }
    }

    async fn caller(&self, presented: &ApiKey) -> Result<Option<Caller>, Error> {
        let digest = presented.digest();
        if let Some(caller) = self.cache.get(&digest, Instant::now()) {
            return Ok(Some(caller));
        }
        let caller = self.store.authenticate(presented).await?;
        match &caller {
            Some(caller) => self.cache.insert(digest, caller.clone(), Instant::now()),
            None => self.cache.forget(&digest),
        }
        Ok(caller)
    }

    /// The caller, if the request carries a live key with `scope`.
    pub async fn authorize<T>(&self, request: &Request<T>, scope: Scope) -> Result<Caller, Error> {
        let presented = only_key(request.metadata()).ok_or(Error::Unauthenticated)?;
        let caller = self
            .caller(&ApiKey::presented(presented))
            .await?
            .ok_or(Error::Unauthenticated)?;
        if !caller.may(scope) {
            return Err(Error::PermissionDenied(scope));
        }
        tracing::Span::current().record("tenant_id", tracing::field::display(caller.tenant_id));
        crate::telemetry::RpcSpan::record_tenant(request.extensions(), caller.tenant_id);
        Ok(caller)
    }
}

/// The one key a request carries. Two or more `x-api-key` values are
/// refused whatever they hold: which of them a proxy, a log or this server
/// reads would otherwise decide who the caller is.
fn only_key(metadata: &tonic::metadata::MetadataMap) -> Option<&str> {
    let mut values = metadata.get_all(API_KEY_HEADER).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok().filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_with_more_than_one_key_has_none() {
        use tonic::metadata::{MetadataMap, MetadataValue};
        let with = |keys: &[&'static str]| {
            let mut metadata = MetadataMap::new();
            for key in keys {
                metadata.append(API_KEY_HEADER, MetadataValue::from_static(key));
            }
            metadata
        };
        assert_eq!(only_key(&with(&["cdk_a"])), Some("cdk_a"));
        assert_eq!(only_key(&with(&[])), None);
        assert_eq!(only_key(&with(&[""])), None);
        assert_eq!(only_key(&with(&["cdk_a", "cdk_a"])), None);
        assert_eq!(only_key(&with(&["cdk_a", "cdk_b"])), None);
    }
}
