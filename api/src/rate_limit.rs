//! Rate limits (GCRA) per client address or per partner: each may make
//! `per_minute` requests a minute with bursts of `burst`. In memory, per api
//! process, so approximate across processes; entries of quiet clients are
//! dropped.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Beyond this many tracked clients, expired entries are swept.
const SWEEP_AT: usize = 10_000;

/// A rate: the spacing of requests, and how many may come at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    interval: Duration,
    /// How far ahead of the rate a client at rest may get.
    tolerance: Duration,
}

impl Rate {
    pub fn per_minute(per_minute: u32, burst: u32) -> Self {
        Self::every(Duration::from_secs(60) / per_minute.max(1), burst)
    }

    pub fn per_second(per_second: u32, burst: u32) -> Self {
        Self::every(Duration::from_secs(1) / per_second.max(1), burst)
    }

    fn every(interval: Duration, burst: u32) -> Self {
        Self {
            interval,
            // A client at rest may send `burst` requests at once.
            tolerance: interval * (burst.max(1) - 1),
        }
    }
}

pub struct RateLimiter<K = IpAddr> {
    rate: Rate,
    /// Theoretical arrival time of each client's next request.
    next: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq> RateLimiter<K> {
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            next: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok` if `client` may go ahead now; otherwise how long until it may.
    pub fn check(&self, client: K) -> Result<(), Duration> {
        self.check_at(client, self.rate, Instant::now())
    }

    /// Like [`check`](Self::check), at a rate of the client's own.
    pub fn check_rate(&self, client: K, rate: Rate) -> Result<(), Duration> {
        self.check_at(client, rate, Instant::now())
    }

    fn check_at(&self, client: K, rate: Rate, now: Instant) -> Result<(), Duration> {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        if next.len() >= SWEEP_AT {
            next.retain(|_, at| *at > now);
        }
        let tat = next.get(&client).copied().unwrap_or(now).max(now);
        let allowed_from = tat.checked_sub(rate.tolerance).unwrap_or(now);
        if now < allowed_from {
            return Err(allowed_from - now);
        }
        next.insert(client, tat + rate.interval);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_the_rate() {
        let rate = Rate::per_minute(60, 3);
        let limiter = RateLimiter::new(rate);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at(ip, rate, t0).is_ok());
        }
        let wait = limiter.check_at(ip, rate, t0).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(2),
            "{wait:?}"
        );
        assert!(
            limiter.check_at(other, rate, t0).is_ok(),
            "clients are separate"
        );
        assert!(
            limiter
                .check_at(ip, rate, t0 + Duration::from_secs(1))
                .is_ok(),
            "one per second"
        );
        assert!(limiter
            .check_at(ip, rate, t0 + Duration::from_secs(1))
            .is_err());
    }
}
