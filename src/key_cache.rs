//! Keys by the SHA-256 of their secret, the digest the store keeps too, so
//! the cache holds nothing the database does not; with when they were
//! looked up. An entry older than `ttl` is never answered from: the store is
//! asked again, which is how a revocation takes effect within `ttl`. Both
//! the gRPC API (secret keys) and the public listener (publishable keys)
//! keep one.

use std::time::{Duration, Instant};

pub struct KeyCache<V> {
    ttl: Duration,
    entries: quick_cache::sync::Cache<[u8; 32], (V, Instant)>,
}

impl<V: Clone> KeyCache<V> {
    /// Past `capacity` keys the least used are forgotten first.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            entries: quick_cache::sync::Cache::new(capacity),
        }
    }

    pub fn get(&self, digest: &[u8; 32], now: Instant) -> Option<V> {
        let (value, fetched) = self.entries.get(digest)?;
        (now.saturating_duration_since(fetched) < self.ttl).then_some(value)
    }

    pub fn insert(&self, digest: [u8; 32], value: V, now: Instant) {
        if !self.ttl.is_zero() {
            self.entries.insert(digest, (value, now));
        }
    }

    /// Drops a key the store no longer knows, so its stale entry does not
    /// take a place in the cache.
    pub fn forget(&self, digest: &[u8; 32]) {
        self.entries.remove(digest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_key_is_answered_until_its_ttl_and_never_after() {
        let ttl = Duration::from_secs(30);
        let cache = KeyCache::new(ttl, 100);
        let fetched = Instant::now();
        assert_eq!(cache.get(&[1; 32], fetched), None);
        cache.insert([1; 32], 1, fetched);
        assert_eq!(cache.get(&[1; 32], fetched), Some(1));
        let almost = fetched + ttl - Duration::from_millis(1);
        assert_eq!(cache.get(&[1; 32], almost), Some(1));
        assert_eq!(cache.get(&[1; 32], fetched + ttl), None);
        assert_eq!(cache.get(&[2; 32], fetched), None);

        cache.insert([1; 32], 3, fetched + ttl);
        assert_eq!(cache.get(&[1; 32], fetched + ttl), Some(3));
        cache.forget(&[1; 32]);
        assert_eq!(cache.get(&[1; 32], fetched + ttl), None);
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let cache = KeyCache::new(Duration::ZERO, 100);
        let now = Instant::now();
        cache.insert([1; 32], 1, now);
        assert_eq!(cache.get(&[1; 32], now), None);
        assert!(cache.entries.is_empty());
    }

    #[test]
    fn the_cache_stays_bounded_by_its_capacity() {
        let cache = KeyCache::new(Duration::from_secs(30), 64);
        let now = Instant::now();
        for n in 0..1_000u32 {
            let mut digest = [0; 32];
            digest[..4].copy_from_slice(&n.to_be_bytes());
            cache.insert(digest, 0, now);
        }
        assert!(cache.entries.len() <= 64, "{}", cache.entries.len());
        assert!(!cache.entries.is_empty());
    }
}
