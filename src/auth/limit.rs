//! Per-caller request rate limits: a token bucket per API key, or per
//! client certificate's principal, in this process's memory.
//!
//! Each caller may make `rate` calls a second on average and `burst` at
//! once.
//! A call over the limit is refused with RESOURCE_EXHAUSTED and a
//! `RetryInfo` saying when the next token comes, before any handler runs.
//! The buckets are per replica: N replicas behind a load balancer let a
//! key make up to N times the rate.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::domain::{ApiKeyId, TenantId};

/// Whose bucket a call takes its token from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Caller {
    /// An API key.
    Key(ApiKeyId),
    /// A client certificate's principal: its tenant and name (an entry of
    /// the principals file).
    Certificate(TenantId, String),
}

/// Keys tracked at most; past that, buckets full again are dropped (a
/// full bucket is what a new one would be).
const MAX_BUCKETS: usize = 100_000;

/// A rate and a burst, shared by every key.
#[derive(Debug)]
pub struct RateLimiter {
    /// Tokens added per second.
    rate: f64,
    /// Most tokens a bucket holds.
    burst: f64,
    buckets: Mutex<HashMap<Caller, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `rate` calls a second per key, `burst` at once (at least one).
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst: burst.max(1.0),
            buckets: Mutex::default(),
        }
    }

    /// Takes a token for `key` at `now`; when there is none, how long until
    /// there is.
    pub fn take(&self, key: Caller, now: Instant) -> Result<(), Duration> {
        let Ok(mut buckets) = self.buckets.lock() else {
            // A poisoned lock limits nothing rather than refusing all.
            return Ok(());
        };
        if buckets.len() >= MAX_BUCKETS {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| refill(b, rate, burst, now) < burst);
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        bucket.tokens = refill(bucket, self.rate, self.burst, now);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }
}

/// The tokens `b` holds at `now`.
fn refill(b: &Bucket, rate: f64, burst: f64, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
    (b.tokens + elapsed * rate).min(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let limiter = RateLimiter::new(10.0, 3.0);
        let key = Caller::Key(ApiKeyId::new());
        let other = Caller::Certificate(TenantId::DEFAULT, "svc".into());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.take(key.clone(), t0), Ok(()));
        }
        let wait = limiter
            .take(key.clone(), t0)
            .expect_err("the burst is spent");
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        // Another key has its own bucket.
        assert_eq!(limiter.take(other.clone(), t0), Ok(()));
        // A token every 100 ms.
        assert_eq!(
            limiter.take(key.clone(), t0 + Duration::from_millis(100)),
            Ok(())
        );
        assert!(
            limiter
                .take(key.clone(), t0 + Duration::from_millis(150))
                .is_err()
        );
        // Never more than the burst, however long it waited.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(limiter.take(key.clone(), later), Ok(()));
        }
        assert!(limiter.take(key.clone(), later).is_err());
    }
}
