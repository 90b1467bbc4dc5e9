//! Browser sessions of the admin console, held on the server.
//!
//! A sign-in (the token form, or the identity provider) creates a session: a random 256-bit id,
//! which the browser holds in its cookie, while the server keeps only the id's SHA-256, an
//! expiry, who signed in with which role, and the session's CSRF token (sent back by the page
//! in `X-CSRF-Token` with every change; another site cannot read it). So signing
//! out revokes the session for real (the old cookie gets 401 afterwards), a cookie copied out
//! of a browser dies with its session, and a leaked memory dump holds no usable id. The count
//! is bounded: at [`MAX_SESSIONS`], expired ones go first, then the one closest to expiry.
//! The lookup is a hash-map probe on the digest: timing can at most reveal bits of a digest,
//! which do not lead back to an id.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::roles::Role;

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

/// Who a session is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The person (the ID token's name claim), or the token sign-in's fixed name.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// The token the page must send back with every change.
    pub csrf: String,
}

struct Entry {
    expires: Instant,
    info: SessionInfo,
}

/// The live sessions: digest of the id -> expiry and who.
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<Digest32, Entry>>,
}

impl Sessions {
    /// A new session for `name` as `role`, valid for `ttl`; returns its id (64 hex digits) for
    /// the cookie and what it holds, or `None` when the system has no randomness to give (no
    /// session rather than a weak one).
    pub fn create(
        &self,
        now: Instant,
        ttl: Duration,
        name: &str,
        role: Role,
    ) -> Option<(String, SessionInfo)> {
        let id = random_hex32()?;
        let csrf = random_hex32()?;
        let mut live = self.lock();
        if live.len() >= MAX_SESSIONS {
            live.retain(|_, e| e.expires > now);
        }
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live.iter().min_by_key(|(_, e)| e.expires).map(|(k, _)| *k)
        {
            live.remove(&oldest);
        }
        let info = SessionInfo {
            name: name.to_owned(),
            role,
            csrf,
        };
        live.insert(
            digest(&id),
            Entry {
                expires: now + ttl,
                info: info.clone(),
            },
        );
        Some((id, info))
    }

    /// The live session `id` names, if any.
    pub fn get(&self, id: &str, now: Instant) -> Option<SessionInfo> {
        let key = digest(id);
        let mut live = self.lock();
        match live.get(&key) {
            Some(e) if e.expires > now => Some(e.info.clone()),
            Some(_) => {
                live.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session `id` (sign-out).
    pub fn revoke(&self, id: &str) {
        self.lock().remove(&digest(id));
    }

    /// Ends every session of `name` (someone leaving, a stolen laptop); returns how many.
    pub fn revoke_named(&self, name: &str) -> usize {
        let mut live = self.lock();
        let before = live.len();
        live.retain(|_, e| !e.info.name.eq_ignore_ascii_case(name));
        before - live.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest32, Entry>> {
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
        let new = |name: &str| s.create(t0, SESSION_TTL, name, Role::Reviewer).expect("id");
        let (a, info) = new("rita@example.com");
        assert_eq!(a.len(), 64);
        assert_eq!(info.csrf.len(), 64);
        assert_ne!(info.csrf, a, "the CSRF token is not the session id");
        assert_eq!(s.get(&a, t0), Some(info));
        assert!(s.get("forged", t0).is_none());
        let (b, _) = new("sam@example.com");
        assert_ne!(a, b, "random ids");
        s.revoke(&a);
        assert!(s.get(&a, t0).is_none(), "revoked on the server");
        assert!(s.get(&b, t0).is_some());
        let (c, _) = new("Sam@example.com");
        assert_eq!(
            s.revoke_named("sam@example.com"),
            2,
            "every session of one person"
        );
        assert!(s.get(&c, t0).is_none());
        let (b, _) = new("sam@example.com");
        assert!(s.get(&b, t0 + SESSION_TTL).is_none(), "expired");
        assert!(
            s.lock().is_empty(),
            "an expired session is dropped when seen"
        );
        for _ in 0..MAX_SESSIONS + 10 {
            new("x");
        }
        assert_eq!(s.lock().len(), MAX_SESSIONS);
        let (c, _) = new("y");
        assert!(
            s.lock().contains_key(&digest(&c)),
            "only the digest is kept"
        );
    }
}
