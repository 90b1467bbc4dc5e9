//! A map with a fixed bound and no scans, for state keyed by attacker input (client addresses,
//! typed-in names): two generations, the current one and the previous one. Rotating drops the
//! previous generation whole and starts a new current one; it happens once per `period`, or
//! early when the current generation holds `cap` keys. Every entry lives at least one period
//! unless the map is flooded, and memory never exceeds two generations.
//!
//! Users pick the fault direction: a forgotten key must only ever cause *more* recording (an
//! allow or a blocked source written again), never less.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Two generations of at most `cap` keys each.
pub struct Generations<K, V> {
    current: HashMap<K, V>,
    previous: HashMap<K, V>,
    /// When `current` became current.
    since: Instant,
    period: Duration,
    cap: usize,
}

impl<K: Hash + Eq, V> Generations<K, V> {
    /// Empty, rotating every `period` or at `cap` keys in the current generation.
    pub fn new(period: Duration, cap: usize, now: Instant) -> Self {
        Generations {
            current: HashMap::new(),
            previous: HashMap::new(),
            since: now,
            period,
            cap: cap.max(1),
        }
    }

    /// Rotates when the current generation is a period old.
    pub fn rotate_if_due(&mut self, now: Instant) {
        if now.saturating_duration_since(self.since) >= self.period {
            self.rotate(now);
        }
    }

    fn rotate(&mut self, now: Instant) {
        self.previous = std::mem::take(&mut self.current);
        self.since = now;
    }

    /// The value of `key`, from either generation.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.current.get(key).or_else(|| self.previous.get(key))
    }

    /// Takes `key` out of whichever generation holds it.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.current
            .remove(key)
            .or_else(|| self.previous.remove(key))
    }

    /// Puts `key` in the current generation; returns true when that made the generation
    /// rotate early (it was full).
    pub fn insert(&mut self, key: K, value: V, now: Instant) -> bool {
        let early = !self.current.contains_key(&key) && self.current.len() >= self.cap;
        if early {
            self.rotate(now);
        }
        self.previous.remove(&key);
        self.current.insert(key, value);
        early
    }

    /// Keys held (both generations).
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_per_period_and_when_full() {
        let t0 = Instant::now();
        let mut g = Generations::new(Duration::from_secs(10), 2, t0);
        assert!(!g.insert(1, "a", t0));
        assert!(!g.insert(2, "b", t0));
        assert!(g.insert(3, "c", t0), "full: rotated early");
        assert_eq!(g.len(), 3);
        assert_eq!(
            g.get(&1),
            Some(&"a"),
            "the previous generation still answers"
        );
        assert!(!g.insert(1, "a2", t0), "moved to current, no duplicate");
        assert_eq!(g.len(), 3);
        g.rotate_if_due(t0 + Duration::from_secs(10));
        g.rotate_if_due(t0 + Duration::from_secs(20));
        assert!(g.is_empty(), "two periods later all is gone");
        assert_eq!(g.remove(&1), None);
    }
}
