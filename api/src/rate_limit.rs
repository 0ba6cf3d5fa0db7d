//! Per-client rate limits (GCRA): each address may make `per_minute`
//! requests a minute with bursts of `burst`. In memory, per api process, so
//! approximate across processes; entries of quiet clients are dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Beyond this many tracked clients, expired entries are swept.
const SWEEP_AT: usize = 10_000;

pub struct RateLimiter {
    interval: Duration,
    burst: Duration,
    /// Theoretical arrival time of each client's next request.
    next: Mutex<HashMap<IpAddr, Instant>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let interval = Duration::from_secs(60) / per_minute.max(1);
        Self {
            interval,
            // A client at rest may send `burst` requests at once.
            burst: interval * (burst.max(1) - 1),
            next: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok` if `client` may go ahead now; otherwise how long until it may.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        self.check_at(client, Instant::now())
    }

    fn check_at(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        if next.len() >= SWEEP_AT {
            next.retain(|_, at| *at > now);
        }
        let tat = next.get(&client).copied().unwrap_or(now).max(now);
        let allowed_from = tat.checked_sub(self.burst).unwrap_or(now);
        if now < allowed_from {
            return Err(allowed_from - now);
        }
        next.insert(client, tat + self.interval);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_the_rate() {
        let limiter = RateLimiter::new(60, 3);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at(ip, t0).is_ok());
        }
        let wait = limiter.check_at(ip, t0).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(2),
            "{wait:?}"
        );
        assert!(limiter.check_at(other, t0).is_ok(), "clients are separate");
        assert!(
            limiter.check_at(ip, t0 + Duration::from_secs(1)).is_ok(),
            "one per second"
        );
        assert!(limiter.check_at(ip, t0 + Duration::from_secs(1)).is_err());
    }
}
