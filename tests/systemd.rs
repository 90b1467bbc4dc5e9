//! The real binary under systemd's readiness protocol (`Type=notify`): the test plays systemd,
//! with a unix datagram socket in `NOTIFY_SOCKET`, and checks what `locgate run` says and when:
//! `READY=1` only once the listener accepts, `RELOADING=1` (with a `MONOTONIC_USEC` from the
//! same clock systemd reads) and `READY=1` around a SIGHUP reload and around a refused one,
//! and `STOPPING=1` on SIGTERM before a clean exit.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Fixture, Guard, listener};

/// Longest the test waits for one message (a loaded CI machine, not a timing requirement).
const WAIT: Duration = Duration::from_secs(20);

/// The next datagram, as text.
fn next(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no message from locgate within {WAIT:?}: {e}"));
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The value of `KEY=` in a message.
fn field<'a>(msg: &'a str, key: &str) -> Option<&'a str> {
    msg.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// `CLOCK_MONOTONIC` in microseconds, as systemd reads it.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid, writable timespec.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) },
        0
    );
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// One request on a fresh connection, one attempt: the status line.
fn status_line(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: app.example.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `locgate run -c config` with `NOTIFY_SOCKET` set, as systemd starts it.
fn run(config: &Path, notify_socket: &Path, stderr: Stdio) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_locgate"))
        .args(["run", "-c", config.to_str().unwrap()])
        .env("NOTIFY_SOCKET", notify_socket)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn locgate")
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: plain kill(2) of the child this test started.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, sig) }, 0);
}

#[test]
fn readiness_reload_and_stop_are_told_to_systemd() {
    let fx = Fixture::new();
    let sock_path = fx.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let good = fx.config_text(&listener("portal", "builtin:whoami", ""));
    let config = fx.write("locgate.toml", &good);

    let child = run(&config, &sock_path, Stdio::null());
    let pid = child.id();
    let mut guard = Guard(Some(child));

    // The first word is READY, and at that moment the listener it names accepts and answers:
    // one connection, no retry.
    let ready = next(&sock);
    assert_eq!(field(&ready, "READY"), Some("1"), "{ready:?}");
    let status = field(&ready, "STATUS").expect("a STATUS line");
    let addr: SocketAddr = status
        .strip_prefix("serving portal on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("STATUS names the bound listener: {status:?}"));
    assert!(
        status_line(addr).starts_with("HTTP/1.1 200"),
        "served at READY"
    );

    // SIGHUP: RELOADING=1 stamped with the monotonic clock of the moment, then READY=1.
    let before = monotonic_usec();
    signal(pid, libc::SIGHUP);
    let reloading = next(&sock);
    let after = monotonic_usec();
    assert_eq!(field(&reloading, "RELOADING"), Some("1"), "{reloading:?}");
    let stamp: u64 = field(&reloading, "MONOTONIC_USEC")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("MONOTONIC_USEC: {reloading:?}"));
    assert!(
        (before..=after).contains(&stamp),
        "{before} <= {stamp} <= {after}"
    );
    let done = next(&sock);
    assert_eq!(field(&done, "READY"), Some("1"), "{done:?}");
    assert_eq!(field(&done, "STATUS"), Some("serving; reloaded (sighup)"));

    // A bad config (noticed by the file watcher): the reload is refused, and still READY=1, since
    // the previous state serves on; the status names the problem with its line.
    std::fs::write(
        &config,
        format!("{good}\n[policy]\nunknown_location = \"maybe\"\n"),
    )
    .unwrap();
    let refused = loop {
        let m = next(&sock);
        if field(&m, "READY").is_some() {
            break m;
        }
        assert_eq!(field(&m, "RELOADING"), Some("1"), "{m:?}");
    };
    let status = field(&refused, "STATUS").unwrap_or_default();
    assert!(
        status.starts_with("serving the previous state; reload")
            && status.contains("locgate.toml:"),
        "{status}"
    );
    assert!(status_line(addr).starts_with("HTTP/1.1 200"));

    // SIGTERM: STOPPING=1, then a clean exit.
    signal(pid, libc::SIGTERM);
    let stopping = loop {
        let m = next(&sock);
        if field(&m, "STOPPING").is_some() {
            break m;
        }
    };
    assert_eq!(field(&stopping, "STOPPING"), Some("1"));
    let mut child = guard.0.take().expect("child");
    let deadline = std::time::Instant::now() + WAIT;
    let exit = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "locgate did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn a_notify_socket_nobody_reads_is_logged_not_fatal() {
    use std::io::BufRead;
    let fx = Fixture::new();
    let config = fx.write(
        "locgate.toml",
        &fx.config_text(&listener("portal", "builtin:whoami", "")),
    );
    let mut child = run(&config, &fx.dir.path().join("nobody.sock"), Stdio::piped());
    let pid = child.id();
    let stderr = child.stderr.take().expect("stderr");
    let mut guard = Guard(Some(child));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let warned = loop {
        let line = rx
            .recv_timeout(WAIT)
            .expect("locgate logs the unreachable socket");
        if line.contains("cannot tell systemd READY=1") {
            break line;
        }
    };
    assert!(warned.contains("nobody.sock"), "{warned}");
    signal(pid, libc::SIGTERM);
    let exit = guard.0.take().expect("child").wait().expect("wait");
    assert!(exit.success(), "it served and stopped cleanly: {exit:?}");
}
