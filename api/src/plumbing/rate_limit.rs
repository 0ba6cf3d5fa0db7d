//! Rate limits (GCRA) per client address or per partner: each may make
//! `per_minute` requests a minute with bursts of `burst`. In memory, per api
//! process, so approximate across processes.
//!
//! State is sharded (a lock per shard, never one for every client) and
//! forgotten by generations instead of sweeps: each shard keeps the entries
//! touched in the current and the previous period, and drops the older
//! generation whole when a period ends. A period is at least the longest
//! time an entry can matter (its rate's interval plus burst tolerance), so
//! what is dropped had already expired; a shard that fills up early rotates
//! early, which can only forget a client's debt, never invent one.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher as _};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHARDS: usize = 16;
/// Entries a shard's generation holds before it rotates early.
const SHARD_CAPACITY: usize = 8_192;

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

    /// How long an entry can still limit its client after its last request.
    fn memory(&self) -> Duration {
        self.interval + self.tolerance
    }
}

struct Shard<K> {
    current: HashMap<K, Instant>,
    previous: HashMap<K, Instant>,
    rotated_at: Instant,
}

impl<K: Hash + Eq> Shard<K> {
    fn rotate_if_due(&mut self, now: Instant, period: Duration) {
        if now.duration_since(self.rotated_at) >= period || self.current.len() >= SHARD_CAPACITY {
            self.previous = std::mem::take(&mut self.current);
            self.rotated_at = now;
        }
    }

    fn get(&self, key: &K) -> Option<Instant> {
        self.current
            .get(key)
            .or_else(|| self.previous.get(key))
            .copied()
    }
}

pub struct RateLimiter<K = IpAddr> {
    rate: Rate,
    shards: Vec<Mutex<Shard<K>>>,
    /// The longest [`Rate::memory`] seen, in milliseconds: the rotation period.
    period_ms: AtomicU64,
}

impl<K: Hash + Eq> RateLimiter<K> {
    pub fn new(rate: Rate) -> Self {
        let now = Instant::now();
        Self {
            rate,
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        current: HashMap::new(),
                        previous: HashMap::new(),
                        rotated_at: now,
                    })
                })
                .collect(),
            period_ms: AtomicU64::new(rate.memory().as_millis().max(1000) as u64),
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

    /// `Ok` if `client` would be let through now; takes nothing from it.
    pub fn peek(&self, client: K) -> Result<(), Duration> {
        let now = Instant::now();
        let shard = self
            .shard(&client)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let tat = shard.get(&client).unwrap_or(now).max(now);
        let allowed_from = tat.checked_sub(self.rate.tolerance).unwrap_or(now);
        if now < allowed_from {
            return Err(allowed_from - now);
        }
        Ok(())
    }

    fn shard(&self, client: &K) -> &Mutex<Shard<K>> {
        let mut hasher = DefaultHasher::new();
        client.hash(&mut hasher);
        &self.shards[hasher.finish() as usize % SHARDS]
    }

    fn check_at(&self, client: K, rate: Rate, now: Instant) -> Result<(), Duration> {
        let memory = rate.memory().as_millis() as u64;
        let period_ms = self
            .period_ms
            .fetch_max(memory, Ordering::Relaxed)
            .max(memory);
        let mut shard = self
            .shard(&client)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        shard.rotate_if_due(now, Duration::from_millis(period_ms));
        let tat = shard.get(&client).unwrap_or(now).max(now);
        let allowed_from = tat.checked_sub(rate.tolerance).unwrap_or(now);
        if now < allowed_from {
            return Err(allowed_from - now);
        }
        shard.current.insert(client, tat + rate.interval);
        Ok(())
    }

    /// Clients remembered now (both generations), for tests.
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap();
                s.current.len() + s.previous.len()
            })
            .sum()
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

    #[test]
    fn peeking_takes_nothing() {
        let limiter = RateLimiter::new(Rate::per_minute(1, 2));
        let ip: IpAddr = "192.0.2.3".parse().unwrap();
        for _ in 0..10 {
            assert!(limiter.peek(ip).is_ok());
        }
        assert!(limiter.check(ip).is_ok());
        assert!(limiter.check(ip).is_ok());
        assert!(limiter.peek(ip).is_err(), "in debt after the burst");
    }

    #[test]
    fn a_limited_client_stays_limited_across_a_rotation() {
        let rate = Rate::per_minute(1, 2);
        let limiter = RateLimiter::new(rate);
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let t0 = Instant::now();
        assert!(limiter.check_at(ip, rate, t0).is_ok());
        assert!(limiter.check_at(ip, rate, t0).is_ok());
        assert!(limiter.check_at(ip, rate, t0).is_err());
        // A flood of other clients rotates every shard early, once: the
        // limited client's entry moves to the previous generation, kept.
        let flood = (SHARD_CAPACITY * SHARDS) as u32 * 11 / 10;
        for n in 0..flood {
            let _ = limiter.check_at(IpAddr::from((n + 1).to_be_bytes()), rate, t0);
        }
        assert!(limiter.check_at(ip, rate, t0).is_err());
    }

    #[test]
    fn forgotten_clients_cost_no_memory() {
        let rate = Rate::per_second(10, 1);
        let limiter = RateLimiter::new(rate);
        let t0 = Instant::now();
        for n in 0..50_000u32 {
            let _ = limiter.check_at(IpAddr::from(n.to_be_bytes()), rate, t0);
        }
        assert!(limiter.remembered() <= SHARDS * SHARD_CAPACITY * 2);
        // Two periods later every generation has been dropped as it was touched.
        let later = t0 + Duration::from_secs(5);
        for shard_probe in 0..5_000u32 {
            let _ = limiter.check_at(
                IpAddr::from((shard_probe + 1_000_000).to_be_bytes()),
                rate,
                later,
            );
        }
        let much_later = later + Duration::from_secs(5);
        for shard_probe in 0..5_000u32 {
            let _ = limiter.check_at(
                IpAddr::from((shard_probe + 2_000_000).to_be_bytes()),
                rate,
                much_later,
            );
        }
        assert!(limiter.remembered() <= 10_000, "{}", limiter.remembered());
    }
}
