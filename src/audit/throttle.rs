//! Allow throttling: a busy employee makes thousands of allowed requests a day; the event log
//! needs one line per client (and user) per interval, not thousands. Counts are kept, so the line
//! that is written says how many were folded into it.
//!
//! The keys are attacker input (any client address, any typed-in name), so the table is built to
//! cost the same per request however many distinct keys arrive (a large company, or a botnet):
//!
//! - **Sharded**: [`SHARDS`] maps, each behind its own lock, chosen by a keyed hash (a client
//!   cannot aim all its keys at one shard), so requests rarely contend.
//! - **Two generations per shard, rotated per interval**: a key is looked up in the current
//!   generation, then the previous one. When the current generation is an interval old, the
//!   previous one is dropped whole (every key in it is older than the interval) and the current
//!   becomes the previous. There is never a scan for expired keys.
//! - **A fixed bound**: a generation holds at most [`SHARD_GENERATION`] keys, so the whole table
//!   holds at most [`MAX_KEYS`]. A generation that fills up is rotated early. That forgets keys
//!   before their interval is over, so the fault is towards *writing* an allow again (never
//!   towards hiding one), and the extra lines are bounded: a key is written at most once per
//!   rotation, and a rotation needs [`SHARD_GENERATION`] new keys. Early rotations are counted.
//!
//! Work per admit: one hash, one or two map probes, and at most one generation dropped
//! (amortised over the inserts that filled it): constant, whatever the number of clients.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Independent shards (each with its own lock).
pub const SHARDS: usize = 64;
/// Most keys in one generation of one shard.
pub const SHARD_GENERATION: usize = 1024;
/// Most keys the whole throttle ever holds (two generations per shard): about 130k entries,
/// around 10 MB at the worst.
pub const MAX_KEYS: usize = SHARDS * 2 * SHARD_GENERATION;

type Key = (IpAddr, Option<Box<str>>);
/// Key -> (last written, allows folded since), in two generations.
type Shard = super::Generations<Key, (Instant, u64)>;

/// Remembers when an allow was last written per (client, user), within a fixed memory bound.
pub struct AllowThrottle {
    interval: Duration,
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    /// Generations rotated early because they were full (keys forgotten before their interval).
    early_rotations: AtomicU64,
}

impl AllowThrottle {
    /// A throttle writing at most one allow per key per `interval`.
    pub fn new(interval: Duration) -> Self {
        let now = Instant::now();
        AllowThrottle {
            interval,
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Shard::new(interval, SHARD_GENERATION, now)))
                .collect(),
            hasher: RandomState::new(),
            early_rotations: AtomicU64::new(0),
        }
    }

    /// The interval (also how often a blocked UDP source is recorded).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether this allow should be written; if so, how many were suppressed since the last one.
    pub fn admit(&self, ip: IpAddr, user: Option<&str>, now: Instant) -> Option<u64> {
        let shard = self.shard_of(ip, user);
        // A panic cannot leave a shard half-updated (each step is one map operation).
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        shard.rotate_if_due(now);
        let key: Key = (ip, user.map(Box::from));
        let (value, answer) = match shard.remove(&key) {
            Some((last, folded)) if now.saturating_duration_since(last) < self.interval => {
                ((last, folded + 1), None)
            }
            Some((_, folded)) => ((now, 0), Some(folded)),
            None => ((now, 0), Some(0)),
        };
        if shard.insert(key, value, now) {
            self.early_rotations.fetch_add(1, Ordering::Relaxed);
        }
        answer
    }

    /// The shard a key lives in (a keyed hash: a client cannot choose it).
    fn shard_of(&self, ip: IpAddr, user: Option<&str>) -> &Mutex<Shard> {
        &self.shards[self.hasher.hash_one((ip, user)) as usize % SHARDS]
    }

    /// Keys held now (tests, diagnostics); never more than [`MAX_KEYS`].
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Generations rotated early because they were full.
    pub fn early_rotations(&self) -> u64 {
        self.early_rotations.load(Ordering::Relaxed)
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

    /// A key remembered in the previous generation still folds, and carries its count over.
    #[test]
    fn keys_survive_one_rotation() {
        let t = AllowThrottle::new(Duration::from_secs(10));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(t.admit(ip, None, t0 + Duration::from_secs(9)), Some(0));
        // 11 s: the shard rotated (its generation began at t0), the key is in the previous one.
        assert_eq!(t.admit(ip, None, t0 + Duration::from_secs(11)), None);
        assert_eq!(t.admit(ip, None, t0 + Duration::from_secs(19)), Some(1));
        assert_eq!(t.admit(ip, None, t0 + Duration::from_secs(20)), None);
    }

    /// The attack: a million distinct client addresses within one interval (a botnet, or a
    /// large company behind no NAT). The old map grew past 100k keys and scanned all of them
    /// under one lock for every new key. Now the table never holds more than its bound, and no
    /// admit ever releases more than one shard generation (constant work per admit, counted in
    /// entries rather than measured in time).
    #[test]
    fn a_million_distinct_clients_stay_within_the_bound() {
        let t = AllowThrottle::new(Duration::from_secs(3600));
        let t0 = Instant::now();
        let mut largest_release = 0usize;
        for n in 0u32..1_000_000 {
            let ip = IpAddr::from((0x0a00_0000u32 + n).to_be_bytes());
            let shard_len = || t.shard_of(ip, None).lock().map_or(0, |s| s.len());
            let before = shard_len();
            // Every new key is written: a full table fails towards writing.
            assert_eq!(t.admit(ip, None, t0), Some(0));
            // An admit adds one key; whatever it dropped is the work it did besides.
            largest_release = largest_release.max((before + 1).saturating_sub(shard_len()));
            if n % 65_536 == 0 {
                assert!(t.len() <= MAX_KEYS, "{} keys", t.len());
            }
        }
        assert!(t.len() <= MAX_KEYS, "{} keys", t.len());
        assert!(
            largest_release <= SHARD_GENERATION,
            "one admit released {largest_release} keys"
        );
        assert!(t.early_rotations() > 0);
        // A fresh key is still throttled right after its first write.
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        assert_eq!(t.admit(ip, None, t0), Some(0));
        assert_eq!(t.admit(ip, None, t0), None);
    }
}
