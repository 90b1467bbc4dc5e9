//! Rate limit of the admin login, per client address: [`MAX_FAILURES`] wrong tokens within
//! [`WINDOW`], then `429` with `Retry-After` until the window is over, without even comparing
//! the token. Another address is not affected, so an attacker cannot lock the reviewers out.
//! The table is bounded ([`MAX_CLIENTS`]): when full, finished windows go first, then the
//! oldest, which at worst gives an attacker with thousands of addresses a few more guesses
//! a minute against a token of at least 16 characters.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Wrong tokens allowed per address and window.
pub const MAX_FAILURES: u32 = 5;
/// The window, from an address's first failure.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Most addresses remembered.
pub const MAX_CLIENTS: usize = 4096;

/// Failures per address: (window start, failures in it).
#[derive(Default)]
pub struct LoginLimit {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl LoginLimit {
    /// `Some(wait)` when `ip` has used up its attempts: how long until it may try again.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let map = self.lock();
        let (start, n) = map.get(&ip)?;
        let end = *start + WINDOW;
        (*n >= MAX_FAILURES && end > now).then(|| end - now)
    }

    /// Counts a wrong token from `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut map = self.lock();
        if !map.contains_key(&ip) && map.len() >= MAX_CLIENTS {
            map.retain(|_, (start, _)| *start + WINDOW > now);
            if map.len() >= MAX_CLIENTS
                && let Some(oldest) = map.iter().min_by_key(|(_, v)| v.0).map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
        }
        let entry = map.entry(ip).or_insert((now, 0));
        if entry.0 + WINDOW <= now {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }

    /// A right token from `ip`: its failures are forgotten.
    pub fn succeeded(&self, ip: IpAddr) {
        self.lock().remove(&ip);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (Instant, u32)>> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_a_minute_per_address() {
        let l = LoginLimit::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert!(l.blocked(a, t0).is_none());
            l.failed(a, t0);
        }
        assert_eq!(
            l.blocked(a, t0 + Duration::from_secs(20)),
            Some(Duration::from_secs(40))
        );
        assert!(
            l.blocked(b, t0).is_none(),
            "another address is not affected"
        );
        assert!(l.blocked(a, t0 + WINDOW).is_none(), "the window ends");
        l.failed(a, t0 + WINDOW);
        assert!(l.blocked(a, t0 + WINDOW).is_none(), "a new window starts");
        l.succeeded(a);
        for n in 0..(MAX_CLIENTS as u32 + 10) {
            l.failed(IpAddr::from(n.to_be_bytes()), t0);
        }
        assert!(l.lock().len() <= MAX_CLIENTS);
    }
}
