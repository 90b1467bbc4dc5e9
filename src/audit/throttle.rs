//! Allow throttling: a busy employee makes thousands of allowed requests a day; the event log
//! needs one line per client (and user) per interval, not thousands. Counts are kept, so the line
//! that is written says how many were folded into it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries beyond which expired ones are swept (bounds memory under address churn).
const SWEEP_AT: usize = 100_000;

/// (client, user) -> (last written, allows folded since).
type Seen = HashMap<(IpAddr, Option<Box<str>>), (Instant, u64)>;

/// Remembers when an allow was last written per (client, user).
pub struct AllowThrottle {
    interval: Duration,
    seen: Mutex<Seen>,
}

impl AllowThrottle {
    /// A throttle writing at most one allow per key per `interval`.
    pub fn new(interval: Duration) -> Self {
        AllowThrottle {
            interval,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The interval (also how often a blocked UDP source is recorded).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether this allow should be written; if so, how many were suppressed since the last one.
    pub fn admit(&self, ip: IpAddr, user: Option<&str>, now: Instant) -> Option<u64> {
        let Ok(mut seen) = self.seen.lock() else {
            return Some(0);
        };
        let key = (ip, user.map(Box::from));
        match seen.get_mut(&key) {
            Some((last, suppressed)) if now.duration_since(*last) < self.interval => {
                *suppressed += 1;
                None
            }
            Some(entry) => {
                let folded = entry.1;
                *entry = (now, 0);
                Some(folded)
            }
            None => {
                if seen.len() >= SWEEP_AT {
                    let interval = self.interval;
                    seen.retain(|_, (last, _)| now.duration_since(*last) < interval);
                }
                seen.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_interval_per_key_with_counts() {
        let t = AllowThrottle::new(Duration::from_secs(600));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(t.admit(ip, None, t0), Some(0));
        assert_eq!(t.admit(ip, None, t0 + Duration::from_secs(1)), None);
        assert_eq!(t.admit(ip, None, t0 + Duration::from_secs(2)), None);
        assert_eq!(
            t.admit(ip, Some("ann"), t0 + Duration::from_secs(2)),
            Some(0),
            "another user is another key"
        );
        assert_eq!(t.admit(ip, None, t0 + Duration::from_secs(601)), Some(2));
    }
}
