//! Client addresses bound to the employees who signed in from them (issue 15, point 1).
//!
//! A VPN client usually logs in through a web SSO first; the tunnel that follows carries no
//! identity locgate can read. When an HTTP listener with `bind_address` sees a *verified* identity,
//! the client address (IPv4, or the IPv6 /64) is bound to that employee for a while, and a TCP or
//! UDP connection from the same address is then judged as that employee, with their declared home
//! and history. Several employees bound to one address at once is evidence of its own (a laptop
//! farm behind one line). Only verified identities bind: a typed-in name must not be able to move
//! someone else's policy onto an address.
//!
//! In memory, bounded (addresses and employees per address), entries expire by themselves.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::Timestamp;

use super::EgressKey;

/// Most addresses remembered; beyond that the binding that expires first goes.
const MAX_ADDRESSES: usize = 100_000;
/// Most employees remembered per address (a farm larger than this is already obvious).
const MAX_PER_ADDRESS: usize = 32;

/// Employees bound to one address, each until a time.
type Bound = Vec<(Arc<str>, Timestamp)>;

/// Address -> employees signed in from it, each until a time.
#[derive(Default)]
pub struct AddressBindings {
    inner: Mutex<HashMap<EgressKey, Bound>>,
}

impl AddressBindings {
    /// An empty set of bindings.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<EgressKey, Bound>> {
        // A panic elsewhere while holding the lock leaves plain data behind: keep using it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Binds `ip` to `employee` until `until` (a later sign-in extends it). True when the
    /// employee was not bound to the address before (open tunnels from it should re-decide).
    pub fn bind(&self, ip: IpAddr, employee: &str, until: Timestamp, now: Timestamp) -> bool {
        let key = EgressKey::of(ip);
        let mut map = self.lock();
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&key) {
            map.retain(|_, v| v.iter().any(|(_, t)| *t > now));
            if map.len() >= MAX_ADDRESSES {
                let first = map
                    .iter()
                    .map(|(k, v)| (*k, v.iter().map(|(_, t)| *t).max()))
                    .min_by_key(|(_, t)| *t)
                    .map(|(k, _)| k);
                if let Some(k) = first {
                    map.remove(&k);
                }
            }
        }
        let entries = map.entry(key).or_default();
        entries.retain(|(_, t)| *t > now);
        match entries.iter_mut().find(|(e, _)| &**e == employee) {
            Some(entry) => {
                entry.1 = entry.1.max(until);
                false
            }
            None => {
                if entries.len() >= MAX_PER_ADDRESS
                    && let Some(i) = entries
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, (_, t))| *t)
                        .map(|(i, _)| i)
                {
                    entries.swap_remove(i);
                }
                entries.push((Arc::from(employee), until));
                true
            }
        }
    }

    /// The employees bound to `ip` at `now`, by name.
    pub fn lookup(&self, ip: IpAddr, now: Timestamp) -> Vec<Arc<str>> {
        let map = self.lock();
        let mut out: Vec<Arc<str>> = map
            .get(&EgressKey::of(ip))
            .map(|v| {
                v.iter()
                    .filter(|(_, t)| *t > now)
                    .map(|(e, _)| e.clone())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Number of addresses with a binding (live or not yet pruned).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no address is bound.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_binding_holds_until_it_expires_and_a_later_sign_in_extends_it() {
        let b = AddressBindings::new();
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        let now = t("2026-12-02T09:00:00Z");
        b.bind(ip, "e1042", t("2026-12-02T21:00:00Z"), now);
        assert_eq!(
            b.lookup(ip, t("2026-12-02T20:59:00Z")),
            vec![Arc::from("e1042")]
        );
        assert!(b.lookup(ip, t("2026-12-02T21:00:00Z")).is_empty());
        b.bind(
            ip,
            "e1042",
            t("2026-12-03T09:00:00Z"),
            t("2026-12-02T10:00:00Z"),
        );
        b.bind(
            ip,
            "e1042",
            t("2026-12-02T12:00:00Z"),
            t("2026-12-02T10:00:00Z"),
        );
        assert_eq!(
            b.lookup(ip, t("2026-12-03T08:00:00Z")).len(),
            1,
            "never shortened"
        );
        assert!(b.lookup("198.51.100.8".parse().unwrap(), now).is_empty());
    }

    #[test]
    fn an_ipv6_household_is_its_slash_64_and_several_employees_are_all_named() {
        let b = AddressBindings::new();
        let now = t("2026-12-02T09:00:00Z");
        let until = t("2026-12-02T21:00:00Z");
        b.bind("2001:db8:1:2::10".parse().unwrap(), "bob", until, now);
        b.bind("2001:db8:1:2::99".parse().unwrap(), "ann", until, now);
        assert_eq!(
            b.lookup("2001:db8:1:2:aaaa::1".parse().unwrap(), now),
            vec![Arc::from("ann"), Arc::from("bob")]
        );
        assert!(b.lookup("2001:db8:1:3::1".parse().unwrap(), now).is_empty());
    }

    #[test]
    fn an_address_keeps_at_most_its_cap_of_employees() {
        let b = AddressBindings::new();
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let now = t("2026-12-02T09:00:00Z");
        for i in 0..(MAX_PER_ADDRESS + 10) {
            let until = now + jiff::SignedDuration::from_secs(3600 + i as i64);
            b.bind(ip, &format!("e{i}"), until, now);
        }
        let live = b.lookup(ip, now);
        assert_eq!(live.len(), MAX_PER_ADDRESS);
        assert!(live.iter().any(|e| &**e == "e41"), "the newest stays");
        assert!(
            !live.iter().any(|e| &**e == "e0"),
            "the first to expire goes"
        );
    }
}
