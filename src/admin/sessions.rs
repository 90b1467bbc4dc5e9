//! Browser sessions of the admin console, held on the server.
//!
//! `POST /login` with the right token creates a session: a random 256-bit id, which the browser
//! holds in its cookie, while the server keeps only the id's SHA-256 and an expiry. So signing
//! out revokes the session for real (the old cookie gets 401 afterwards), a cookie copied out
//! of a browser dies with its session, and a leaked memory dump holds no usable id. The count
//! is bounded: at [`MAX_SESSIONS`], expired ones go first, then the one closest to expiry.
//! The lookup is a hash-map probe on the digest: timing can at most reveal bits of a digest,
//! which do not lead back to an id.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How long a browser session lasts (also the cookie's `Max-Age`).
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most sessions held at once.
pub const MAX_SESSIONS: usize = 1024;

type Digest32 = [u8; 32];

/// 256 random bits as 64 hex digits, from the system's secure generator; `None` when it has
/// none to give (then no session or token rather than a weak one).
pub(super) fn random_hex32() -> Option<String> {
    let mut id = [0u8; 32];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut id)
        .ok()?;
    Some(id.iter().map(|b| format!("{b:02x}")).collect())
}

/// The live sessions: digest of the id -> expiry.
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<Digest32, Instant>>,
}

impl Sessions {
    /// A new session valid for [`SESSION_TTL`]; returns its id (64 hex digits) for the cookie,
    /// or `None` when the system has no randomness to give (no session rather than a weak one).
    pub fn create(&self, now: Instant) -> Option<String> {
        let id = random_hex32()?;
        let mut live = self.lock();
        if live.len() >= MAX_SESSIONS {
            live.retain(|_, expires| *expires > now);
        }
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k)
        {
            live.remove(&oldest);
        }
        live.insert(digest(&id), now + SESSION_TTL);
        Some(id)
    }

    /// Whether `id` names a live session.
    pub fn valid(&self, id: &str, now: Instant) -> bool {
        let key = digest(id);
        let mut live = self.lock();
        match live.get(&key) {
            Some(expires) if *expires > now => true,
            Some(_) => {
                live.remove(&key);
                false
            }
            None => false,
        }
    }

    /// Ends the session `id` (sign-out).
    pub fn revoke(&self, id: &str) {
        self.lock().remove(&digest(id));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest32, Instant>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn digest(id: &str) -> Digest32 {
    Sha256::digest(id.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_check_revoke_expire_and_bound() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let a = s.create(t0).expect("id");
        assert_eq!(a.len(), 64);
        assert!(s.valid(&a, t0));
        assert!(!s.valid("forged", t0));
        let b = s.create(t0).expect("id");
        assert_ne!(a, b, "random ids");
        s.revoke(&a);
        assert!(!s.valid(&a, t0), "revoked on the server");
        assert!(s.valid(&b, t0));
        assert!(!s.valid(&b, t0 + SESSION_TTL), "expired");
        assert!(
            s.lock().is_empty(),
            "an expired session is dropped when seen"
        );
        for _ in 0..MAX_SESSIONS + 10 {
            s.create(t0);
        }
        assert_eq!(s.lock().len(), MAX_SESSIONS);
        let c = s.create(t0).expect("id");
        assert!(
            s.lock().contains_key(&digest(&c)),
            "only the digest is kept"
        );
    }
}
