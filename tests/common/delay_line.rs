//! A slow wire for end-to-end tests: network namespaces joined by TUN devices, with the test
//! process itself carrying every IP packet across and holding it for a set one-way delay.
//!
//! Why: the gateway judges a client's distance by the round-trip time its own kernel measures
//! (`TCP_INFO`), so a test of a "far away" client needs packets that really take long. `tc
//! netem` would give that, but not every kernel has it (the project's machines have no netem, fq
//! or cake). TUN devices are nearly everywhere: the kernel hands us each IP packet routed to the
//! device, and takes each packet we write to it as received. Copying from one device to another
//! after a wait is a wire with that latency, for both kernels' TCP stacks; the gateway is not
//! told anything and nothing in it is faked.
//!
//! Every end lives in a network namespace made here with `unshare` (anonymous: no name to clean
//! up). The host's own network is not changed, the `10.231.0.0/16` addresses exist only inside
//! these namespaces, and everything disappears with the last thread and descriptor using it, even
//! when the test is killed. Needs root, `/dev/net/tun` and `ip` (iproute2): see [`missing`].

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the delay line needs and this machine lacks (root, `/dev/net/tun`, `ip`), or `None`.
pub fn missing() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        Some("root (namespaces and TUN devices need CAP_NET_ADMIN)")
    } else if !std::path::Path::new("/dev/net/tun").exists() {
        Some("/dev/net/tun")
    } else if ip_command().is_none() {
        Some("the `ip` command (iproute2)")
    } else {
        None
    }
}

/// `ip`, found on the `PATH` or where Debian puts it (a root shell without sbin on its `PATH`).
fn ip_command() -> Option<&'static str> {
    static FOUND: std::sync::OnceLock<Option<&'static str>> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        ["ip", "/usr/sbin/ip", "/sbin/ip"].into_iter().find(|ip| {
            Command::new(ip)
                .arg("-V")
                .output()
                .is_ok_and(|o| o.status.success())
        })
    })
}

fn last_error(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// A fresh network namespace of its own (loopback up, nothing else), alive while this value, a
/// thread in it or a device of it is.
pub struct Netns {
    /// `/proc/thread-self/ns/net` of the thread that made it: what [`Netns::run`] joins.
    fd: OwnedFd,
}

impl Netns {
    pub fn new() -> io::Result<Netns> {
        let fd = std::thread::spawn(|| -> io::Result<OwnedFd> {
            // Moves only this thread (network namespaces are per thread); it ends right after.
            // SAFETY: unshare has no memory preconditions.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(last_error("unshare(CLONE_NEWNET)"));
            }
            Ok(File::open("/proc/thread-self/ns/net")?.into())
        })
        .join()
        .expect("unshare thread")?;
        let ns = Netns { fd };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs `f` on a new thread inside this namespace (sockets it opens and threads it starts
    /// are in here) and returns what it returns; a panic in `f` is passed on.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            let thread = s.spawn(|| {
                // SAFETY: `fd` is a namespace descriptor owned by `self`, open for the call.
                if unsafe { libc::setns(self.fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    panic!("{}", last_error("setns into the test namespace"));
                }
                f()
            });
            match thread.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Runs `ip args` inside this namespace.
    pub fn ip(&self, args: &[&str]) -> io::Result<()> {
        let ip = ip_command().ok_or_else(|| io::Error::other("no `ip` command"))?;
        let out = self.run(|| Command::new(ip).args(args).output())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// Creates the layer-3 TUN device `name` here (`IFF_TUN | IFF_NO_PI`: each read or write is
    /// one bare IP packet). The device lives as long as the returned file.
    fn tun(&self, name: &str) -> io::Result<File> {
        self.run(|| {
            // The device is made in the namespace of the thread that opens the clone device.
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open("/dev/net/tun")?;
            // SAFETY: ifreq is a plain C struct; all zeroes is a valid value.
            let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
            assert!(name.len() < req.ifr_name.len(), "device name too long");
            for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
                *dst = src as libc::c_char;
            }
            req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
            // SAFETY: TUNSETIFF reads and writes one ifreq, which `req` is, on our own fd.
            if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) } != 0 {
                return Err(last_error("TUNSETIFF"));
            }
            Ok(file)
        })
    }
}

/// One wire between a client namespace and a gateway namespace, subnet `10.231.<n>.0/30`: the
/// client end is `.2`, the gateway end `.1`, each a TUN device `lgdl<n>` with a route to the
/// other. Every packet is held for the one-way delay in each direction, in order. Dropping it
/// stops the carriers and removes both devices.
pub struct DelayLine {
    /// The client end's address.
    pub client: Ipv4Addr,
    /// The gateway end's address.
    pub gateway: Ipv4Addr,
    stop: Arc<AtomicBool>,
    carriers: Vec<JoinHandle<()>>,
}

impl DelayLine {
    pub fn new(client: &Netns, gateway: &Netns, n: u8, one_way: Duration) -> io::Result<Self> {
        let (c_addr, g_addr) = (Ipv4Addr::new(10, 231, n, 2), Ipv4Addr::new(10, 231, n, 1));
        let dev = format!("lgdl{n}");
        let mut ends = Vec::new();
        for (ns, local, peer) in [(client, c_addr, g_addr), (gateway, g_addr, c_addr)] {
            let tun = Arc::new(ns.tun(&dev)?);
            let (local, peer) = (local.to_string(), peer.to_string());
            ns.ip(&["addr", "add", &local, "peer", &peer, "dev", &dev])?;
            ns.ip(&["link", "set", &dev, "up"])?;
            ends.push(tun);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let carriers = [(0, 1), (1, 0)]
            .into_iter()
            .map(|(from, to)| {
                let (from, to, stop) = (ends[from].clone(), ends[to].clone(), stop.clone());
                std::thread::spawn(move || carry(&from, &to, one_way, &stop))
            })
            .collect();
        Ok(DelayLine {
            client: c_addr,
            gateway: g_addr,
            stop,
            carriers,
        })
    }
}

impl Drop for DelayLine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.carriers.drain(..) {
            let _ = c.join();
        }
    }
}

/// How often a carrier looks at its stop flag, at the longest.
const TICK: Duration = Duration::from_millis(20);

/// Moves packets from `from` to `to`, each `delay` after it was read, until `stop`. A packet
/// the kernel will not take is lost, as on a real wire.
fn carry(from: &File, to: &File, delay: Duration, stop: &AtomicBool) {
    let mut held: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while held.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, packet)) = held.pop_front() {
                let _ = (&*to).write(&packet);
            }
        }
        let wait = held
            .front()
            .map_or(TICK, |(due, _)| due.saturating_duration_since(now))
            .min(TICK);
        let mut pfd = libc::pollfd {
            fd: from.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Rounded up to whole milliseconds, so a packet is never sent early.
        let ms = wait.as_micros().div_ceil(1000) as libc::c_int;
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe { libc::poll(&mut pfd, 1, ms) };
        loop {
            match (&*from).read(&mut buf) {
                Ok(n) if n > 0 => held.push_back((Instant::now() + delay, buf[..n].to_vec())),
                _ => break,
            }
        }
    }
}
