//! Rate limits of the public listener: a token bucket per publishable key and
//! per client network, in memory. Each replica counts on its own, so the
//! budget a site gets is per replica; that bounds abuse, it does not bill.

use std::{
    hash::Hash,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use uuid::Uuid;

/// Most buckets remembered per limit; a forgotten bucket starts full again,
/// which only ever lets a little more through.
const MAX_BUCKETS: usize = 100_000;

/// A budget of `burst` requests, refilled at `burst` per `period`.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    pub burst: u32,
    pub period: Duration,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets by key, each behind its own lock so requests of different
/// callers never wait on each other.
pub struct Limiter<K> {
    rate: Rate,
    buckets: quick_cache::sync::Cache<K, Arc<Mutex<Bucket>>>,
}

impl<K: Eq + Hash + Clone> Limiter<K> {
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: quick_cache::sync::Cache::new(MAX_BUCKETS),
        }
    }

    /// Takes one token, or says how long until one is there.
    pub fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let burst = f64::from(self.rate.burst.max(1));
        let bucket = self
            .buckets
            .get_or_insert_with(key, || {
                Ok::<_, ()>(Arc::new(Mutex::new(Bucket {
                    tokens: burst,
                    at: now,
                })))
            })
            .expect("building a bucket does not fail");
        let mut bucket = bucket.lock().unwrap_or_else(|e| e.into_inner());
        let per_token = self.rate.period.as_secs_f64() / burst;
        let refilled = now.saturating_duration_since(bucket.at).as_secs_f64() / per_token;
        bucket.tokens = (bucket.tokens + refilled).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) * per_token))
        }
    }
}

/// The network a client address is counted under: IPv4 /24, IPv6 /48, the
/// same networks records keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Network([u8; 7]);

impl Network {
    pub fn of(ip: IpAddr) -> Self {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                Self([4, a, b, c, 0, 0, 0])
            }
            IpAddr::V6(v6) => {
                let o = v6.octets();
                Self([6, o[0], o[1], o[2], o[3], o[4], o[5]])
            }
        }
    }
}

/// The two limits a request passes.
pub struct Limits {
    pub per_key: Limiter<Uuid>,
    pub per_network: Limiter<Network>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_spends_its_burst_then_refills_at_its_rate() {
        let limiter = Limiter::new(Rate {
            burst: 2,
            period: Duration::from_secs(2),
        });
        let start = Instant::now();
        assert_eq!(limiter.take(&1, start), Ok(()));
        assert_eq!(limiter.take(&1, start), Ok(()));
        let wait = limiter.take(&1, start).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        assert_eq!(limiter.take(&2, start), Ok(()), "buckets are per key");
        assert_eq!(limiter.take(&1, start + Duration::from_secs(1)), Ok(()));
        assert!(limiter.take(&1, start + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn clients_of_one_network_share_a_bucket() {
        let net = |s: &str| Network::of(s.parse().unwrap());
        assert_eq!(net("203.0.113.1"), net("203.0.113.200"));
        assert_ne!(net("203.0.113.1"), net("203.0.114.1"));
        assert_eq!(net("::ffff:203.0.113.9"), net("203.0.113.1"));
        assert_eq!(net("2001:db8:abcd:1::1"), net("2001:db8:abcd:ffff::2"));
        assert_ne!(net("2001:db8:abcd::1"), net("2001:db8:abce::1"));
    }
}
