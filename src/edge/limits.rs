//! Connection limits of one listener: a total cap and a per-client cap.
//!
//! The total cap is a semaphore taken *before* `accept`, so excess connections wait in the
//! kernel's backlog instead of costing a task and buffers each. The per-client cap counts open
//! connections (or UDP flows) by client address (after the PROXY header, so a load balancer is
//! not mistaken for one client); one client holding hundreds of slow connections is turned away
//! at its cap and cannot starve the others. Taken once per connection, never per request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The caps and the current counts.
#[derive(Debug)]
pub struct Limits {
    total: Arc<Semaphore>,
    per_client: Mutex<HashMap<IpAddr, usize>>,
    max_per_client: usize,
}

/// One admitted connection; dropping it frees the client's slot.
#[derive(Debug)]
pub struct ClientSlot {
    limits: Arc<Limits>,
    /// `None` for an exempt client (nothing to give back).
    ip: Option<IpAddr>,
}

impl Limits {
    /// Caps of `max_total` connections, `max_per_client` per client address.
    pub fn new(max_total: usize, max_per_client: usize) -> Arc<Self> {
        Arc::new(Limits {
            total: Arc::new(Semaphore::new(max_total.min(Semaphore::MAX_PERMITS))),
            per_client: Mutex::new(HashMap::new()),
            max_per_client,
        })
    }

    /// Waits for a free connection slot on the listener.
    pub async fn acquire_total(&self) -> Option<OwnedSemaphorePermit> {
        self.total.clone().acquire_owned().await.ok()
    }

    /// A free slot for `ip` without waiting, if any.
    pub fn try_acquire_total(&self) -> Option<OwnedSemaphorePermit> {
        self.total.clone().try_acquire_owned().ok()
    }

    /// Admits one more connection from `ip`, or `None` when the client is at its cap.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        self.admit_unless(ip, false)
    }

    /// Like [`Limits::admit`], but `exempt` clients (trusted proxies, which carry many
    /// clients' connections) are not counted.
    pub fn admit_unless(self: &Arc<Self>, ip: IpAddr, exempt: bool) -> Option<ClientSlot> {
        if exempt {
            return Some(ClientSlot {
                limits: self.clone(),
                ip: None,
            });
        }
        let mut map = self.per_client.lock().ok()?;
        let n = map.entry(ip).or_insert(0);
        if *n >= self.max_per_client {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            limits: self.clone(),
            ip: Some(ip),
        })
    }

    /// Open connections of `ip` (tests, diagnostics).
    pub fn open_for(&self, ip: IpAddr) -> usize {
        self.per_client
            .lock()
            .map(|m| m.get(&ip).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let Some(ip) = self.ip else { return };
        if let Ok(mut map) = self.limits.per_client.lock()
            && let Some(n) = map.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                map.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_client_cap_and_release() {
        let l = Limits::new(10, 2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = l.admit(ip).unwrap();
        let _b = l.admit(ip).unwrap();
        assert!(l.admit(ip).is_none());
        assert!(l.admit("192.0.2.2".parse().unwrap()).is_some());
        drop(a);
        assert!(l.admit(ip).is_some());
        assert!(l.admit_unless(ip, true).is_some());
    }
}
