//! API keys from the `x-api-key` metadata, checked against the store.

use std::{
    sync::Arc,
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
    cache: Arc<KeyCache>,
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

/// Callers by the SHA-256 of their key, the digest the store keeps too, so
/// the cache holds nothing the database does not; with when they were
/// looked up. An entry older than `ttl` is never answered from: the store is
/// asked again, which is how a revocation takes effect within `ttl`.
struct KeyCache {
    ttl: Duration,
    callers: quick_cache::sync::Cache<[u8; 32], (Caller, Instant)>,
}

impl KeyCache {
    fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            callers: quick_cache::sync::Cache::new(capacity),
        }
    }

    fn get(&self, digest: &[u8; 32], now: Instant) -> Option<Caller> {
        let (caller, fetched) = self.callers.get(digest)?;
        (now.saturating_duration_since(fetched) < self.ttl).then_some(caller)
    }

    fn insert(&self, digest: [u8; 32], caller: Caller, now: Instant) {
        if !self.ttl.is_zero() {
            self.callers.insert(digest, (caller, now));
        }
    }

    /// Drops a key the store no longer knows, so its stale entry does not
    /// take a place in the cache.
    fn forget(&self, digest: &[u8; 32]) {
        self.callers.remove(digest);
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn caller(n: u8) -> Caller {
        Caller {
            tenant_id: Uuid::from_bytes([n; 16]),
            key_id: Uuid::from_bytes([n; 16]),
            scopes: vec![Scope::ConsentRead],
        }
    }

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

    #[test]
    fn a_cached_caller_is_answered_until_its_ttl_and_never_after() {
        let ttl = Duration::from_secs(30);
        let cache = KeyCache::new(ttl, 100);
        let fetched = Instant::now();
        assert_eq!(cache.get(&[1; 32], fetched), None);
        cache.insert([1; 32], caller(1), fetched);
        assert_eq!(cache.get(&[1; 32], fetched), Some(caller(1)));
        let almost = fetched + ttl - Duration::from_millis(1);
        assert_eq!(cache.get(&[1; 32], almost), Some(caller(1)));
        assert_eq!(cache.get(&[1; 32], fetched + ttl), None);
        assert_eq!(cache.get(&[2; 32], fetched), None);

        cache.insert([1; 32], caller(3), fetched + ttl);
        assert_eq!(cache.get(&[1; 32], fetched + ttl), Some(caller(3)));
        cache.forget(&[1; 32]);
        assert_eq!(cache.get(&[1; 32], fetched + ttl), None);
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let cache = KeyCache::new(Duration::ZERO, 100);
        let now = Instant::now();
        cache.insert([1; 32], caller(1), now);
        assert_eq!(cache.get(&[1; 32], now), None);
        assert!(cache.callers.is_empty());
    }

    #[test]
    fn the_cache_stays_bounded_by_its_capacity() {
        let cache = KeyCache::new(Duration::from_secs(30), 64);
        let now = Instant::now();
        for n in 0..1_000u32 {
            let mut digest = [0; 32];
            digest[..4].copy_from_slice(&n.to_be_bytes());
            cache.insert(digest, caller(0), now);
        }
        assert!(cache.callers.len() <= 64, "{}", cache.callers.len());
        assert!(!cache.callers.is_empty());
    }
}
