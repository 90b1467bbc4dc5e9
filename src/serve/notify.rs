//! systemd's readiness protocol (`sd_notify(3)`), for `Type=notify` units.
//!
//! systemd passes the path of a unix datagram socket in `NOTIFY_SOCKET`; each state change is one
//! datagram of `KEY=value` lines. locgate says `READY=1` once every listener is bound and the
//! data is loaded (so `systemctl start` returns, and units ordered after it start, only when it
//! serves), `RELOADING=1` with `MONOTONIC_USEC` when a reload begins and `READY=1` when it ended
//! either way (a refused reload still serves the previous state), and `STOPPING=1` when it
//! drains. `STATUS=` carries one line for `systemctl status`.
//!
//! Written here rather than taken from a crate: the protocol is one `sendto`, and the whole
//! dependency would be for that. Without `NOTIFY_SOCKET` (not under systemd, the tests) every
//! call does nothing. A socket that cannot be reached is logged once per message, never fatal:
//! systemd then reports the start as timed out, which says more than a gateway that will not run.

use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The environment variable systemd sets for `Type=notify` services.
pub const SOCKET_ENV: &str = "NOTIFY_SOCKET";

/// Started: every listener is bound and the data is loaded. `status` is shown by `systemctl`.
pub fn ready(status: &str) {
    send(&format!("READY=1\nSTATUS={}", one_line(status)));
}

/// A reload begins (systemd 253+ shows the unit as reloading until the next [`ready`]).
pub fn reloading() {
    send(&format!(
        "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading",
        monotonic_usec()
    ));
}

/// Stopping: no new connections, in-flight work drains.
pub fn stopping() {
    send("STOPPING=1\nSTATUS=stopping: draining in-flight requests");
}

/// Sends `message` to the socket in `NOTIFY_SOCKET`; `false` when there is none or it failed.
pub fn send(message: &str) -> bool {
    let Some(path) = std::env::var_os(SOCKET_ENV) else {
        return false;
    };
    let result = address(&path).and_then(|addr| {
        let sock = UnixDatagram::unbound()?;
        sock.send_to_addr(message.as_bytes(), &addr)
    });
    match result {
        Ok(_) => true,
        Err(e) => {
            let first = message.lines().next().unwrap_or_default();
            tracing::warn!(socket = ?path, error = %e, "cannot tell systemd {first}");
            false
        }
    }
}

/// The socket address: a path, or an abstract name written with a leading `@`.
fn address(path: &std::ffi::OsStr) -> std::io::Result<SocketAddr> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_bytes();
    match bytes.split_first() {
        #[cfg(target_os = "linux")]
        Some((b'@', name)) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)
        }
        Some((b'/', _)) => SocketAddr::from_pathname(path),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "NOTIFY_SOCKET is neither an absolute path nor an abstract name (@...)",
        )),
    }
}

/// `CLOCK_MONOTONIC` in microseconds, the clock systemd compares `MONOTONIC_USEC` with.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

/// A status for one `STATUS=` line (a newline would start a new assignment).
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_paths_and_abstract_names() {
        assert!(address(std::ffi::OsStr::new("/run/systemd/notify")).is_ok());
        #[cfg(target_os = "linux")]
        assert!(address(std::ffi::OsStr::new("@/org/freedesktop/systemd1/notify")).is_ok());
        assert!(address(std::ffi::OsStr::new("relative")).is_err());
        assert!(address(std::ffi::OsStr::new("")).is_err());
    }

    #[test]
    fn status_stays_on_one_line() {
        assert_eq!(one_line("a\nb\r\nc"), "a b  c");
    }

    #[test]
    fn monotonic_clock_moves() {
        let a = monotonic_usec();
        assert!(a > 0);
        assert!(monotonic_usec() >= a);
    }
}
