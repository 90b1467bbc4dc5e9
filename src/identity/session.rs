//! The `session` source: remembering whose session cookie is whose.
//!
//! After a form or Basic login the upstream sets a session cookie, and every later request
//! carries only that cookie. When the proxy sees a login response that sets the configured
//! cookie, it calls [`SessionStore::learn`] with the employee and where the login came from;
//! later requests are matched with [`SessionStore::lookup`], which also lets per-employee policy
//! notice a session that moved (`session_location_changed`).
//!
//! Design points:
//! - **Only a hash is stored.** Entries are keyed by SHA-256 of the cookie value; the value
//!   itself (a bearer credential) is never kept, so a heap dump or a debug print of the store
//!   does not hand out sessions.
//! - **Verification is inherited.** A session identity is verified only if the login that
//!   created it was: a session learned from a typed form name stays unverified.
//! - **Bounded.** At most `max_entries`; when full, expired entries go first, then the oldest.
//!   Entries expire `ttl` after the login (absolute, not sliding: a stolen cookie does not stay
//!   attributed forever by being used).
//! - **Cheap lookups.** One SHA-256 outside the lock, one hash-map probe inside, and an `Arc`
//!   clone of the employee id.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use http::HeaderMap;
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

use super::config::SessionConfig;
use super::cookie::cookie_values;
use super::{Identity, IdentitySource, check_user};
use crate::country::CountryCode;
use crate::intel::observation::LatLon;

/// Cookie values shorter than this are never learned. A real session id is a long random
/// string; short values are placeholders such as `deleted`, which every logged-out browser
/// would share.
pub const MIN_COOKIE_LEN: usize = 16;

/// Most distinct values of the session cookie looked up on one request (each costs a SHA-256
/// and a probe); more are still reported as differing.
pub const MAX_SESSION_VALUES: usize = 4;

/// What a request's session cookie named.
#[derive(Debug, Default)]
pub struct SessionsFound {
    /// The known sessions among its values, in the order sent.
    pub sessions: Vec<(Identity, SessionEntry)>,
    /// Whether the cookie appeared with different values.
    pub differing: bool,
}

/// Where a session's login came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionPlace {
    /// Country of the login's client address.
    pub country: Option<CountryCode>,
    /// Coordinates of the login's client address.
    pub location: Option<LatLon>,
    /// Accuracy radius of `location`, in km.
    pub accuracy_km: Option<f64>,
}

/// What is remembered about one session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEntry {
    /// The employee the login identified.
    pub employee_id: Arc<str>,
    /// Whether that login's identity was verified.
    pub verified: bool,
    /// Where the login came from.
    pub place: SessionPlace,
    /// When the login was seen.
    pub learned: Timestamp,
    /// When the entry stops being used.
    pub expires: Timestamp,
}

type Key = [u8; 32];

struct Slot {
    entry: SessionEntry,
    /// Insertion sequence number, matching the slot's live record in `order`.
    seq: u64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Key, Slot>,
    /// Keys in learning order, oldest first; records whose `seq` no longer matches the map
    /// (relearned or forgotten sessions) are skipped and dropped lazily.
    order: VecDeque<(Key, u64)>,
    next_seq: u64,
}

/// Learned sessions: cookie hash -> employee and login place. Thread-safe; share it in an `Arc`.
pub struct SessionStore {
    cookie: String,
    ttl: SignedDuration,
    max_entries: usize,
    inner: Mutex<Inner>,
}

impl fmt::Debug for SessionStore {
    /// Shows the settings and size only: no entries (they name people) and no hashes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStore")
            .field("cookie", &self.cookie)
            .field("ttl", &self.ttl)
            .field("max_entries", &self.max_entries)
            .field("len", &self.len())
            .finish()
    }
}

/// Default `ttl`: a working day.
const DEFAULT_TTL_SECS: i64 = 12 * 3600;
/// Default `max_entries`.
const DEFAULT_MAX_ENTRIES: usize = 100_000;

impl SessionStore {
    /// An empty store for the configured cookie; refuses a zero `ttl` or `max_entries`, and a
    /// `ttl` over 30 days (a session that long is not one).
    pub fn new(config: &SessionConfig) -> Result<SessionStore, String> {
        let ttl = config
            .ttl
            .map_or(Ok(DEFAULT_TTL_SECS), |d| i64::try_from(d.0.as_secs()))
            .map_err(|_| "session.ttl is too long".to_string())?;
        if !(1..=30 * 86_400).contains(&ttl) {
            return Err(format!(
                "session.ttl must be between 1s and 30d (it is {ttl}s)"
            ));
        }
        let max_entries = config.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES);
        if max_entries == 0 || max_entries > 10_000_000 {
            return Err(format!(
                "session.max_entries must be between 1 and 10000000 (it is {max_entries})"
            ));
        }
        Ok(SessionStore {
            cookie: config.cookie.as_str().to_owned(),
            ttl: SignedDuration::from_secs(ttl),
            max_entries,
            inner: Mutex::new(Inner::default()),
        })
    }

    /// The session cookie's name: the proxy looks for it in `Set-Cookie` of login responses
    /// ([`super::set_cookie_value`]) and in `Cookie` of requests.
    pub fn cookie_name(&self) -> &str {
        &self.cookie
    }

    /// Remembers that `cookie_value` belongs to `employee_id`, who logged in from `place` with
    /// an identity that was (or was not) `verified`. Relearning a value replaces its entry.
    /// Returns false, storing nothing, when the value is shorter than [`MIN_COOKIE_LEN`] or the
    /// employee id fails the user-name rules.
    pub fn learn(
        &self,
        cookie_value: &str,
        employee_id: &str,
        verified: bool,
        place: SessionPlace,
        now: Timestamp,
    ) -> bool {
        if cookie_value.len() < MIN_COOKIE_LEN {
            return false;
        }
        let Ok(employee_id) = check_user(employee_id) else {
            return false;
        };
        let key = hash(cookie_value);
        let entry = SessionEntry {
            employee_id: Arc::from(employee_id),
            verified,
            place,
            learned: now,
            expires: now.saturating_add(self.ttl).unwrap_or(Timestamp::MAX),
        };
        let mut inner = self.lock();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        if inner.map.insert(key, Slot { entry, seq }).is_none() {
            inner.evict(self.max_entries, now);
        }
        inner.order.push_back((key, seq));
        inner.compact();
        true
    }

    /// The live entry for `cookie_value`; expired entries are removed and never returned.
    pub fn lookup(&self, cookie_value: &str, now: Timestamp) -> Option<SessionEntry> {
        let key = hash(cookie_value);
        let mut inner = self.lock();
        let slot = inner.map.get(&key)?;
        if slot.entry.expires > now {
            return Some(slot.entry.clone());
        }
        inner.map.remove(&key);
        None
    }

    /// Forgets a session (for example when the upstream deletes the cookie on logout).
    pub fn forget(&self, cookie_value: &str) {
        let key = hash(cookie_value);
        self.lock().map.remove(&key);
    }

    /// The session identities of a request: every distinct value of its session cookie (all
    /// `Cookie` lines, all pairs with the name, at most [`MAX_SESSION_VALUES`] looked up),
    /// looked up. Each identity is verified only if the login that created its session was.
    /// Values that differ are reported ([`SessionsFound::differing`]): the upstream may take
    /// another value than the one locgate knows, so a stolen cookie behind a junk one of the
    /// same name must not pass as one person's session.
    pub fn identify(&self, request_headers: &HeaderMap, now: Timestamp) -> SessionsFound {
        let mut found = SessionsFound::default();
        let mut seen: Vec<&str> = Vec::new();
        for value in cookie_values(request_headers, &self.cookie) {
            if seen.contains(&value) {
                continue;
            }
            if !seen.is_empty() {
                found.differing = true;
            }
            if seen.len() == MAX_SESSION_VALUES {
                break;
            }
            seen.push(value);
            if let Some(entry) = self.lookup(value, now) {
                let identity = Identity {
                    user: entry.employee_id.to_string(),
                    source: IdentitySource::Session,
                    verified: entry.verified,
                };
                found.sessions.push((identity, entry));
            }
        }
        found
    }

    /// Number of entries held (expired ones included until they are evicted or looked up).
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether the store holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A panic while the lock was held cannot leave the map inconsistent (every mutation is a
    /// single map or deque operation), so a poisoned lock is used as is rather than panicking
    /// every later request.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    /// Called after inserting a new key: while over capacity, drops expired entries, then the
    /// oldest. Entries all live for the same `ttl`, so in learning order the oldest are also the
    /// first to expire: one walk from the front does both, at O(1) amortised per insert.
    fn evict(&mut self, max_entries: usize, now: Timestamp) {
        // First, every expired entry at the front, even when not over capacity: cheap, and it
        // keeps expired sessions from occupying memory.
        while let Some(&(key, seq)) = self.order.front() {
            match self.map.get(&key) {
                Some(slot) if slot.seq == seq => {
                    if slot.entry.expires > now && self.map.len() <= max_entries {
                        break;
                    }
                    self.map.remove(&key);
                }
                _ => {}
            }
            self.order.pop_front();
        }
    }

    /// Rebuilds the order queue when stale records (from relearned keys) outnumber live ones,
    /// so a client relearning one cookie in a loop cannot grow memory.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.map.len() + 64 {
            let map = &self.map;
            self.order
                .retain(|(key, seq)| map.get(key).is_some_and(|slot| slot.seq == *seq));
        }
    }
}

fn hash(cookie_value: &str) -> Key {
    Sha256::digest(cookie_value.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::CookieName;
    use crate::values::Dur;
    use http::HeaderValue;
    use http::header::COOKIE;
    use std::time::Duration;

    fn store(ttl_secs: u64, max: usize) -> SessionStore {
        SessionStore::new(&SessionConfig {
            cookie: CookieName::parse("SESSION").expect("name"),
            ttl: Some(Dur(Duration::from_secs(ttl_secs))),
            max_entries: Some(max),
        })
        .expect("store")
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_790_000_000 + s).expect("time")
    }

    fn place() -> SessionPlace {
        SessionPlace {
            country: CountryCode::parse("PT"),
            location: Some(LatLon {
                lat: 38.7,
                lon: -9.1,
            }),
            accuracy_km: Some(20.0),
        }
    }

    fn cookie(n: usize) -> String {
        format!("session-value-{n:08}-0123456789abcdef")
    }

    #[test]
    fn learn_and_lookup() {
        let s = store(3600, 10);
        assert!(s.learn(&cookie(1), "alice", true, place(), at(0)));
        let e = s.lookup(&cookie(1), at(10)).expect("entry");
        assert_eq!(&*e.employee_id, "alice");
        assert!(e.verified);
        assert_eq!(e.place, place());
        assert_eq!(e.learned, at(0));
        assert_eq!(e.expires, at(3600));
        assert!(s.lookup(&cookie(2), at(10)).is_none());
        assert!(s.lookup("", at(10)).is_none());
    }

    #[test]
    fn expiry() {
        let s = store(60, 10);
        s.learn(&cookie(1), "alice", false, place(), at(0));
        assert!(s.lookup(&cookie(1), at(59)).is_some());
        assert!(s.lookup(&cookie(1), at(60)).is_none(), "expired at ttl");
        assert_eq!(s.len(), 0, "expired entry removed on lookup");
        assert!(s.lookup(&cookie(1), at(0)).is_none(), "and gone for good");
    }

    #[test]
    fn relearn_replaces() {
        let s = store(60, 10);
        s.learn(&cookie(1), "alice", false, place(), at(0));
        s.learn(&cookie(1), "bob", true, place(), at(30));
        let e = s
            .lookup(&cookie(1), at(70))
            .expect("relearned entry lives from its own login");
        assert_eq!((&*e.employee_id, e.verified), ("bob", true));
        assert_eq!(s.len(), 1);
        for _ in 0..1000 {
            s.learn(&cookie(1), "bob", true, place(), at(30));
        }
        assert!(
            s.lock().order.len() <= 2 + 64,
            "stale order records are compacted"
        );
    }

    #[test]
    fn eviction_drops_expired_then_oldest() {
        let s = store(100, 3);
        s.learn(&cookie(1), "a", true, place(), at(0));
        s.learn(&cookie(2), "b", true, place(), at(50));
        s.learn(&cookie(3), "c", true, place(), at(60));
        // At 120, cookie 1 has expired: it goes, nothing live is evicted.
        s.learn(&cookie(4), "d", true, place(), at(120));
        assert_eq!(s.len(), 3);
        assert!(s.lookup(&cookie(2), at(120)).is_some());
        // Full of live entries: the oldest (2) goes.
        s.learn(&cookie(5), "e", true, place(), at(121));
        assert_eq!(s.len(), 3);
        assert!(s.lookup(&cookie(2), at(121)).is_none());
        for n in [3, 4, 5] {
            assert!(s.lookup(&cookie(n), at(121)).is_some(), "{n}");
        }
        // A relearned session counts as new: 3 relearned, so 4 is now the oldest.
        s.learn(&cookie(3), "c", true, place(), at(122));
        s.learn(&cookie(6), "f", true, place(), at(123));
        assert!(s.lookup(&cookie(4), at(123)).is_none());
        assert!(s.lookup(&cookie(3), at(123)).is_some());
    }

    #[test]
    fn bounded_under_churn() {
        let s = store(1_000_000, 100);
        for n in 0..10_000 {
            s.learn(&cookie(n), "x", false, place(), at(n as i64));
        }
        assert_eq!(s.len(), 100);
        assert!(s.lock().order.len() <= 100 + 64);
        assert!(s.lookup(&cookie(9_999), at(10_000)).is_some());
        assert!(s.lookup(&cookie(9_899), at(10_000)).is_none());
    }

    #[test]
    fn stores_only_hashes() {
        let s = store(60, 10);
        let secret = "s3cr3t-session-cookie-value-XYZ";
        s.learn(secret, "alice", true, place(), at(0));
        let inner = s.lock();
        let key = *inner.map.keys().next().expect("one entry");
        assert_eq!(key, <[u8; 32]>::from(Sha256::digest(secret.as_bytes())));
        assert!(!key.windows(4).any(|w| w == &secret.as_bytes()[..4]));
        drop(inner);
        let dbg = format!("{s:?}");
        assert!(!dbg.contains(secret) && !dbg.contains("alice"), "{dbg}");
    }

    #[test]
    fn refuses_placeholders_and_bad_ids() {
        let s = store(60, 10);
        assert!(!s.learn("deleted", "alice", true, place(), at(0)));
        assert!(!s.learn(&cookie(1), "", true, place(), at(0)));
        assert!(!s.learn(&cookie(1), "a\u{7}b", true, place(), at(0)));
        assert!(s.is_empty());
        s.learn(&cookie(1), "alice", true, place(), at(0));
        s.forget(&cookie(1));
        assert!(s.lookup(&cookie(1), at(1)).is_none());
    }

    #[test]
    fn identify_from_request() {
        let s = store(60, 10);
        s.learn(&cookie(1), "alice", false, place(), at(0));
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_str(&format!("a=b; SESSION={}", cookie(1))).expect("hv"),
        );
        let found = s.identify(&h, at(1));
        assert!(!found.differing);
        let (id, e) = &found.sessions[0];
        assert_eq!(id.user, "alice");
        assert_eq!(id.source, IdentitySource::Session);
        assert!(!id.verified, "inherits the login's unverified flag");
        assert_eq!(e.place.country, CountryCode::parse("PT"));
        assert!(s.identify(&h, at(61)).sessions.is_empty());
        assert!(s.identify(&HeaderMap::new(), at(1)).sessions.is_empty());
        assert_eq!(s.cookie_name(), "SESSION");
    }

    #[test]
    fn identify_reads_every_value_of_a_duplicated_cookie() {
        let s = store(60, 10);
        s.learn(&cookie(1), "alice", true, place(), at(0));
        s.learn(&cookie(2), "bob", true, place(), at(0));
        let mut h = HeaderMap::new();
        let line = format!("SESSION=junk; SESSION={}", cookie(1));
        h.insert(COOKIE, HeaderValue::from_str(&line).expect("hv"));
        let found = s.identify(&h, at(1));
        assert!(found.differing, "junk first, a known session last");
        let users: Vec<_> = found
            .sessions
            .iter()
            .map(|(i, _)| i.user.as_str())
            .collect();
        assert_eq!(users, ["alice"]);
        h.append(
            COOKIE,
            HeaderValue::from_str(&format!("SESSION={}; SESSION={}", cookie(2), cookie(1)))
                .expect("hv"),
        );
        let found = s.identify(&h, at(1));
        let users: Vec<_> = found
            .sessions
            .iter()
            .map(|(i, _)| i.user.as_str())
            .collect();
        assert_eq!(
            users,
            ["alice", "bob"],
            "each distinct value looked up once"
        );
        let many = (0..20)
            .map(|i| format!("SESSION=v{i}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_str(&many).expect("hv"));
        let found = s.identify(&h, at(1));
        assert!(found.differing && found.sessions.is_empty());
    }

    #[test]
    fn config_checks() {
        let new = |ttl: u64, max: usize| {
            SessionStore::new(&SessionConfig {
                cookie: CookieName::parse("S").expect("name"),
                ttl: Some(Dur(Duration::from_secs(ttl))),
                max_entries: Some(max),
            })
        };
        assert!(new(0, 10).is_err());
        assert!(new(31 * 86_400, 10).is_err());
        assert!(new(u64::MAX, 10).is_err());
        assert!(new(60, 0).is_err());
        assert!(new(60, 1).is_ok());
    }

    #[test]
    fn concurrent_use() {
        let s = Arc::new(store(3600, 2000));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    for n in 0..500 {
                        let c = cookie(t * 1000 + n);
                        s.learn(&c, "u", true, place(), at(0));
                        assert!(s.lookup(&c, at(1)).is_some());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(s.len(), 2000);
    }
}
