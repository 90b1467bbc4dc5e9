//! VPN gateways behind locgate, with the real software (issue 15, point 2): the VPN server says
//! who is on each tunnel, and locgate judges the tunnel as that person.
//!
//! - OpenVPN (Debian's `openvpn`): a real server behind a TCP pass-through listener, real
//!   clients placed by the test databases (`--local 127.2.x` = KP, `127.1.x` = Austin); locgate
//!   reads the management interface's `status 3`.
//! - WireGuard (`wireguard-go` and `wg`, for kernels without the module): a real server behind
//!   a UDP listener; locgate reads `wg show <if> dump` and maps the peer's key to an employee.
//! - A gateway log (ocserv's lines), followed as a file and received as syslog.
//!
//! The OpenVPN and WireGuard tests run inside a network namespace each test makes for itself
//! (their TUN devices and routes exist only there). They need root, `/dev/net/tun` and the
//! tools; without them they are skipped, unless `LOCGATE_REQUIRE_VPN` is set (CI installs the
//! tools and sets it), then they fail.

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::delay_line::{Netns, missing};
use common::*;
use rcgen::{CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use serde_json::Value as Json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long any one wait here may take.
const WAIT: Duration = Duration::from_secs(20);

/// Whether the real-software tests can run here; says why not (and fails when
/// `LOCGATE_REQUIRE_VPN` is set).
fn can_run(tools: &[&str]) -> bool {
    let lacking = missing().map(str::to_owned).or_else(|| {
        tools
            .iter()
            .find(|t| on_path(t).is_none())
            .map(|t| format!("`{t}`"))
    });
    match lacking {
        None => true,
        Some(what) if std::env::var_os("LOCGATE_REQUIRE_VPN").is_some() => {
            panic!("LOCGATE_REQUIRE_VPN is set but this machine lacks {what}")
        }
        Some(what) => {
            eprintln!("skipped: this machine lacks {what}");
            false
        }
    }
}

fn on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Runs `test` on a runtime of its own inside a fresh network namespace: every socket, process
/// and device it makes is in there and goes away with it.
fn in_netns<F, Fut>(test: F)
where
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = ()>,
{
    let ns = Netns::new().expect("network namespace");
    ns.run(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(test())
    });
}

/// A process the test started; killed when dropped.
struct Proc {
    child: std::process::Child,
    name: String,
    log: PathBuf,
    /// A file it leaves behind when killed (wireguard-go's control socket).
    leaves: Option<PathBuf>,
}

impl Proc {
    fn spawn(dir: &Path, name: &str, program: &str, args: &[&str]) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(on_path(program).expect("tool"))
            .args(args)
            .current_dir(dir)
            .env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        Proc {
            child,
            name: name.into(),
            log,
            leaves: None,
        }
    }

    /// Its output so far, for failure messages.
    fn output(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!("--- {} ---\n{text}", self.name)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(p) = &self.leaves {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Runs a command to its end; panics with its output when it fails.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(on_path(program).expect("tool"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A loopback port free right now.
fn free_port(udp: bool) -> u16 {
    if udp {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.local_addr().expect("addr").port()
    } else {
        let s = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        s.local_addr().expect("addr").port()
    }
}

/// Polls `events` until one satisfies `pred`, for at most [`WAIT`]; panics with `why` and the
/// processes' output.
async fn event_where(
    fx: &Fixture,
    running: &locgate::serve::Running,
    procs: &[&Proc],
    pred: impl Fn(&Json) -> bool,
) -> (Json, Vec<Json>) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let events = fx.events(running).await;
        if let Some(e) = events.iter().find(|e| pred(e)) {
            return (e.clone(), events);
        }
        if tokio::time::Instant::now() > deadline {
            let logs: String = procs.iter().map(|p| p.output()).collect();
            panic!(
                "no matching event within {WAIT:?}; vpn sources: {:?}\nevents: {events:#?}\n{logs}",
                running.shared.vpn_health.snapshot()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the VPN source `name` has been read (or opened) without a problem.
async fn source_ready(running: &locgate::serve::Running, name: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = running.shared.vpn_health.snapshot();
        if status.iter().any(|(n, s)| n == name && s.problem.is_none()) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn is_close(e: &Json) -> bool {
    !e["locgate"]["tunnel"].is_null()
}

// ---------------------------------------------------------------------------------------------
// OpenVPN
// ---------------------------------------------------------------------------------------------

/// A CA, the server's certificate, and client certificates whose common name is the user.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "locgate test VPN CA");
        let ca =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write");
        Pki {
            ca,
            dir: dir.to_owned(),
        }
    }

    /// Writes `<name>.pem` and `<name>.key` with common name `cn`.
    fn issue(&self, name: &str, cn: &str, purpose: ExtendedKeyUsagePurpose) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![purpose];
        // OpenVPN's `remote-cert-tls` wants a key usage too (ECDSA keys: signatures).
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        std::fs::write(self.dir.join(format!("{name}.pem")), cert.pem()).expect("write");
        std::fs::write(self.dir.join(format!("{name}.key")), key.serialize_pem()).expect("write");
    }
}

/// A real OpenVPN server on 127.0.0.1:`port` (`proto` `tcp-server` or `udp`), its management
/// interface on 127.0.0.1:`management`. Its TUN device is left unconfigured: the tests look at
/// who connects, not at what the tunnel carries.
fn openvpn_server(dir: &Path, proto: &str, port: u16, management: u16) -> Proc {
    let (port, management) = (port.to_string(), management.to_string());
    Proc::spawn(
        dir,
        "openvpn-server",
        "openvpn",
        &[
            "--mode",
            "server",
            "--tls-server",
            "--dev",
            "tun",
            "--topology",
            "subnet",
            "--ifconfig",
            "10.88.0.1",
            "255.255.255.0",
            "--ifconfig-pool",
            "10.88.0.2",
            "10.88.0.50",
            "--push",
            "topology subnet",
            "--ifconfig-noexec",
            "--route-noexec",
            "--proto",
            proto,
            "--local",
            "127.0.0.1",
            "--port",
            &port,
            "--ca",
            "ca.pem",
            "--cert",
            "server.pem",
            "--key",
            "server.key",
            "--dh",
            "none",
            "--duplicate-cn",
            "--keepalive",
            "2",
            "10",
            "--management",
            "127.0.0.1",
            &management,
            "--verb",
            "3",
        ],
    )
}

/// A real OpenVPN client with `alice`'s certificate, from `local` to `remote`.
fn openvpn_client(dir: &Path, name: &str, proto: &str, local: &str, remote: SocketAddr) -> Proc {
    let (host, port) = (remote.ip().to_string(), remote.port().to_string());
    Proc::spawn(
        dir,
        name,
        "openvpn",
        &[
            "--client",
            "--dev",
            "null",
            "--proto",
            proto,
            "--remote",
            &host,
            &port,
            "--local",
            local,
            "--lport",
            "0",
            "--ca",
            "ca.pem",
            "--cert",
            "alice.pem",
            "--key",
            "alice.key",
            "--remote-cert-tls",
            "server",
            "--ifconfig-noexec",
            "--route-noexec",
            "--connect-retry",
            "1",
            "--verb",
            "3",
        ],
    )
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
async fn listening(port: u16, server: &Proc) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing listens on {port}\n{}",
            server.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The SSO listener (a trusted loopback auth proxy names client and user, `bind_address` on)
/// and, after it, `vpn`.
fn with_sso(vpn: &str) -> String {
    let sso = listener(
        "sso",
        "builtin:whoami",
        "mode = \"enforce\"\ntrusted_proxies = [\"127.0.0.1/32\"]\nidentity_proxies = [\"127.0.0.1/32\"]\n\
         identity = [ { header = \"X-Remote-User\" } ]\nbind_address = \"12h\"",
    );
    format!("{sso}{vpn}")
}

/// The company this test plays: per-employee rules that block (a tunnel from outside the
/// declared country is refused), and no global country rule, so nothing but the identity the
/// VPN server reports can refuse these tunnels. (With the default sanctions a KP address never
/// reaches the VPN server at all: `tests/edge.rs` covers that.)
const PER_EMPLOYEE_BLOCKS: &str = "[policy]\nsanctioned_countries = []\n\n[employees]\nfile = \"employees.toml\"\ncountry_mismatch = \"block\"\n";

/// A real OpenVPN server over `transport` (`tcp` or `udp`) with a CA, its certificate and
/// alice's (common name `alice`, an alias of e1042, declared Austin), and the `vpn` listener
/// that fronts it (enforce mode, the server's management interface as its source): the fixture,
/// its directory, the server, and the listener's config.
async fn openvpn_behind_locgate(transport: &str) -> (Fixture, PathBuf, Proc, String) {
    let fx = Fixture::new();
    fx.write_standard_directory();
    let dir = fx.dir.path().to_owned();
    let pki = Pki::new(&dir);
    pki.issue(
        "server",
        "vpn.example.test",
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    pki.issue("alice", "alice", ExtendedKeyUsagePurpose::ClientAuth);
    let udp = transport == "udp";
    let (port, management) = (free_port(udp), free_port(false));
    let proto = if udp { "udp" } else { "tcp-server" };
    let server = openvpn_server(&dir, proto, port, management);
    listening(management, &server).await;
    let vpn = listener(
        "vpn",
        &format!("127.0.0.1:{port}"),
        &format!(
            "kind = \"{transport}\"\nmode = \"enforce\"\n\n[[listener.vpn]]\nkind = \"openvpn\"\n\
             management = \"127.0.0.1:{management}\"\npoll = \"200ms\""
        ),
    );
    (fx, dir, server, vpn)
}

#[test]
fn an_openvpn_tunnel_is_judged_as_the_employee_its_server_names() {
    if !can_run(&["openvpn"]) {
        return;
    }
    in_netns(|| async {
        let (fx, dir, server, vpn) = openvpn_behind_locgate("tcp").await;
        let running = fx.start_with(&with_sso(&vpn), PER_EMPLOYEE_BLOCKS).await;
        let sso = running.addr("sso").expect("sso");
        let gateway = running.addr("vpn").expect("vpn");

        // alice signs in to the portal from Austin, then a tunnel with her certificate comes
        // from Pyongyang.
        assert_eq!(sso_login(sso, "127.1.0.60", "alice").await, 200);
        let far = openvpn_client(&dir, "openvpn-kp", "tcp-client", "127.2.0.8", gateway);
        let (closed, events) = event_where(&fx, &running, &[&server, &far], |e| {
            e["source"]["ip"] == "127.2.0.8"
                && is_close(e)
                && e["locgate"]["tunnel"]["end"] == "blocked"
        })
        .await;
        // Her client reconnects at once: that tunnel is judged as her at connect (the address
        // stays bound to her for allow_log_interval) and refused before it reaches the server.
        let (again, _) = event_where(&fx, &running, &[&server, &far], |e| {
            e["source"]["ip"] == "127.2.0.8"
                && e["locgate"]["identity"]["source"] == "address_binding"
        })
        .await;
        assert_eq!(again["event"]["action"], "block", "{again:#}");
        assert_eq!(user_of(&again), "e1042", "{again:#}");
        drop(far);
        // Its close event names her and says why, with the bytes the handshake moved.
        assert_eq!(user_of(&closed), "e1042", "{closed:#}");
        assert_eq!(closed["event"]["action"], "block", "{closed:#}");
        assert!(
            reasons(&closed).contains(&"country_mismatch".into()),
            "{closed:#}"
        );
        assert_eq!(
            closed["locgate"]["identity"]["source"], "openvpn",
            "{closed:#}"
        );
        assert_eq!(
            closed["locgate"]["identity"]["verified"], true,
            "{closed:#}"
        );
        assert_eq!(
            closed["locgate"]["identity"]["presented"], "alice",
            "{closed:#}"
        );
        assert!(
            closed["source"]["bytes"].as_u64().unwrap_or(0) > 0,
            "{closed:#}"
        );
        // The connect event knew nobody; the re-decision did, with her history: she was in
        // Austin minutes ago.
        let redecided = events
            .iter()
            .find(|e| e["source"]["ip"] == "127.2.0.8" && !is_close(e) && user_of(e) == "e1042")
            .expect("the re-decision's event");
        assert_eq!(redecided["event"]["action"], "block", "{redecided:#}");
        assert!(
            reasons(redecided).contains(&"impossible_travel".into()),
            "{redecided:#}"
        );
        let connect = events
            .iter()
            .find(|e| e["source"]["ip"] == "127.2.0.8" && !is_close(e))
            .expect("the connect event");
        assert!(connect["user"].is_null(), "{connect:#}");

        // The same person from home: named, allowed, and the tunnel stays open.
        let home = openvpn_client(&dir, "openvpn-home", "tcp-client", "127.1.0.62", gateway);
        let (named, _) = event_where(&fx, &running, &[&server, &home], |e| {
            e["source"]["ip"] == "127.1.0.62" && user_of(e) == "e1042"
        })
        .await;
        // Home, so nothing of her declaration is wrong; what remains is history: she was just
        // seen in Pyongyang (the blocked tunnel's verified sighting), which a flag carries.
        assert_ne!(named["event"]["action"], "block", "{named:#}");
        assert!(
            !reasons(&named).contains(&"country_mismatch".into()),
            "{named:#}"
        );
        assert_eq!(
            named["locgate"]["identity"]["source"], "openvpn",
            "{named:#}"
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let events = fx.events(&running).await;
        assert!(
            !events
                .iter()
                .any(|e| e["source"]["ip"] == "127.1.0.62" && is_close(e)),
            "the home tunnel stays open: {events:#?}\n{}",
            home.output()
        );
        let status = running.shared.vpn_health.snapshot();
        assert_eq!(status.len(), 1, "{status:?}");
        assert_eq!(status[0].1.problem, None, "{status:?}");
        assert!(status[0].1.sessions >= 1, "{status:?}");
        drop(home);
        running.shutdown().await;
    });
}

#[test]
fn an_openvpn_udp_session_names_its_flow() {
    if !can_run(&["openvpn"]) {
        return;
    }
    in_netns(|| async {
        let (fx, dir, server, vpn) = openvpn_behind_locgate("udp").await;
        let running = fx.start_with(&vpn, PER_EMPLOYEE_BLOCKS).await;
        let gateway = running.addr("vpn").expect("vpn");
        // From Berlin: alice may not work from Germany, so the flow is dropped once named.
        let client = openvpn_client(&dir, "openvpn-de", "udp", "127.6.0.44", gateway);
        let (closed, _) = event_where(&fx, &running, &[&server, &client], |e| {
            e["source"]["ip"] == "127.6.0.44" && is_close(e)
        })
        .await;
        // The client keeps sending; its datagrams are dropped, not let through as a new flow
        // decided on the address alone.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let events = fx.events(&running).await;
        let flows: Vec<_> = events
            .iter()
            .filter(|e| e["source"]["ip"] == "127.6.0.44" && is_close(e))
            .collect();
        assert_eq!(flows.len(), 1, "one flow, then nothing: {events:#?}");
        assert_eq!(closed["network"]["transport"], "udp", "{closed:#}");
        assert_eq!(closed["locgate"]["tunnel"]["end"], "blocked", "{closed:#}");
        assert_eq!(user_of(&closed), "e1042", "{closed:#}");
        assert!(
            reasons(&closed).contains(&"country_mismatch".into()),
            "{closed:#}"
        );
        running.shutdown().await;
    });
}

// ---------------------------------------------------------------------------------------------
// WireGuard
// ---------------------------------------------------------------------------------------------

/// A WireGuard interface run by `wireguard-go` (foreground, killed on drop), configured with
/// `wg set`.
fn wireguard(dir: &Path, ifname: &str, key: &Path, port: u16, peer: &[&str], addr: &str) -> Proc {
    let mut proc = Proc::spawn(dir, ifname, "wireguard-go", &["-f", ifname]);
    let sock = PathBuf::from(format!("/var/run/wireguard/{ifname}.sock"));
    proc.leaves = Some(sock.clone());
    let deadline = std::time::Instant::now() + WAIT;
    while !sock.exists() {
        assert!(std::time::Instant::now() < deadline, "{}", proc.output());
        std::thread::sleep(Duration::from_millis(50));
    }
    let port = port.to_string();
    let key = key.display().to_string();
    let mut args = vec![
        "set",
        ifname,
        "private-key",
        &key,
        "listen-port",
        &port,
        "peer",
    ];
    args.extend_from_slice(peer);
    run("wg", &args);
    run("ip", &["addr", "add", addr, "dev", ifname]);
    run("ip", &["link", "set", ifname, "up"]);
    proc
}

/// A fresh key pair: (private key file, public key).
fn wg_keys(dir: &Path, name: &str) -> (PathBuf, String) {
    let private = run("wg", &["genkey"]);
    let file = dir.join(format!("{name}.key"));
    std::fs::write(&file, &private).expect("write key");
    let mut child = Command::new(on_path("wg").expect("wg"))
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("wg pubkey");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(private.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wg pubkey");
    (file, String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn a_wireguard_peer_whose_key_names_an_employee_is_judged_as_them() {
    if !can_run(&["wireguard-go", "wg"]) {
        return;
    }
    in_netns(|| async {
        let fx = Fixture::new();
        let dir = fx.dir.path().to_owned();
        let (server_key, server_pub) = wg_keys(&dir, "server");
        let (client_key, client_pub) = wg_keys(&dir, "client");
        // alice declared Austin; her laptop's WireGuard key is on her directory entry.
        fx.write(
            "employees.toml",
            &format!(
                "[[employee]]\nid = \"e1042\"\naliases = [\"alice\"]\ncountry = \"US\"\nregion = \"Texas\"\n\
                 city = \"Austin\"\nlat = 30.2672\nlon = -97.7431\nradius_km = 150\nwireguard_keys = [\"{client_pub}\"]\n"
            ),
        );
        // Packets to 127.250/16 leave from 127.6.250.1 (Berlin in the test database): the
        // client's endpoint as locgate sees it. Only inside this test's namespace.
        run(
            "ip",
            &[
                "route",
                "add",
                "local",
                "127.250.0.0/16",
                "dev",
                "lo",
                "src",
                "127.6.250.1",
                "table",
                "local",
            ],
        );
        let tag = std::process::id() % 100_000;
        let (server_if, client_if) = (format!("lgws{tag}"), format!("lgwc{tag}"));
        let server_port = free_port(true);
        let server = wireguard(
            &dir,
            &server_if,
            &server_key,
            server_port,
            &[&client_pub, "allowed-ips", "10.77.0.2/32"],
            "10.77.0.1/24",
        );
        let vpn = listener_at(
            "wg",
            "127.250.0.1:0",
            &format!("127.0.0.1:{server_port}"),
            &format!(
                "kind = \"udp\"\nmode = \"enforce\"\n\n[[listener.vpn]]\nkind = \"wireguard\"\n\
                 command = [\"wg\", \"show\", \"{server_if}\", \"dump\"]\npoll = \"200ms\""
            ),
        );
        let running = fx
            .start_with(&vpn, &employees_section("employees.toml"))
            .await;
        let gateway = running.addr("wg").expect("wg").to_string();
        let client_port = free_port(true);
        let client = wireguard(
            &dir,
            &client_if,
            &client_key,
            client_port,
            &[
                &server_pub,
                "allowed-ips",
                "10.77.0.1/32",
                "endpoint",
                &gateway,
                "persistent-keepalive",
                "1",
            ],
            "10.77.0.2/32",
        );
        let (named, _) = event_where(&fx, &running, &[&server, &client], |e| {
            e["source"]["ip"] == "127.6.250.1" && user_of(e) == "e1042"
        })
        .await;
        assert_eq!(named["network"]["transport"], "udp", "{named:#}");
        assert_eq!(
            named["locgate"]["identity"]["source"], "wireguard",
            "{named:#}"
        );
        assert_eq!(named["locgate"]["identity"]["verified"], true, "{named:#}");
        // Berlin is outside her declared country: flagged (the directory's default action).
        assert_eq!(named["event"]["action"], "flag", "{named:#}");
        assert!(
            reasons(&named).contains(&"country_mismatch".into()),
            "{named:#}"
        );
        assert_eq!(
            named["source"]["geo"]["country_iso_code"], "DE",
            "{named:#}"
        );
        drop(client);
        running.shutdown().await;
        drop(server);
    });
}

// ---------------------------------------------------------------------------------------------
// Gateway logs (no root needed)
// ---------------------------------------------------------------------------------------------

const OCSERV_START: &str = r"main\[(?P<user>[^\]]+)\]:(?P<ip>[0-9.]+):(?P<port>\d+) user logged in";
const OCSERV_END: &str =
    r"main\[(?P<user>[^\]]+)\]:(?P<ip>[0-9.]+):(?P<port>\d+) user disconnected";

/// Opens a tunnel from `client` through `gateway` (an echo upstream behind it) and returns it
/// with the upstream-side address locgate used (`source.nat` of its connect event).
async fn open_tunnel(
    fx: &Fixture,
    running: &locgate::serve::Running,
    client: &str,
) -> (tokio::net::TcpStream, String) {
    let gateway = running.addr("vpn").expect("vpn");
    let mut s = connect_from(client, gateway).await;
    s.write_all(b"ping").await.expect("write");
    let mut buf = [0u8; 4];
    within("echo", s.read_exact(&mut buf)).await.expect("echo");
    let (connect, _) = event_where(fx, running, &[], |e| {
        e["source"]["ip"] == client && !e["source"]["nat"].is_null()
    })
    .await;
    let nat = format!(
        "{}:{}",
        connect["source"]["nat"]["ip"].as_str().expect("nat ip"),
        connect["source"]["nat"]["port"]
    );
    (s, nat)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_log_file_names_the_tunnel_its_line_reports() {
    let fx = Fixture::new();
    fx.write_standard_directory();
    let log = fx.write(
        "ocserv.log",
        "Dec  2 08:00:00 vpn ocserv[99]: main[bob]:127.0.0.1:1 user logged in\n",
    );
    let upstream = tcp_echo_upstream().await;
    let vpn = listener(
        "vpn",
        &upstream.to_string(),
        &format!(
            "kind = \"tcp\"\nmode = \"enforce\"\n\n[[listener.vpn]]\nkind = \"log\"\nfile = {}\n\
             pattern = '{OCSERV_START}'\nend_pattern = '{OCSERV_END}'",
            toml_str(&log)
        ),
    );
    let running = fx
        .start_with(&vpn, &employees_section("employees.toml"))
        .await;
    source_ready(&running, "vpn/log").await;
    let (mut tunnel, nat) = open_tunnel(&fx, &running, "127.6.0.51").await;
    // ocserv logs the address it saw: locgate's side of the tunnel.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("log");
    use std::io::Write;
    writeln!(
        f,
        "Dec  2 13:01:02 vpn ocserv[1234]: main[alice]:{nat} user logged in"
    )
    .expect("write");
    let (named, _) = event_where(&fx, &running, &[], |e| {
        e["source"]["ip"] == "127.6.0.51" && user_of(e) == "e1042"
    })
    .await;
    assert_eq!(
        named["locgate"]["identity"]["source"], "vpn_log",
        "{named:#}"
    );
    // A log line is text, not proof (a name tried at a failed login can end up in one): it
    // tightens only, unless the operator sets `verified = true`.
    assert_eq!(named["locgate"]["identity"]["verified"], false, "{named:#}");
    assert_eq!(named["event"]["action"], "flag", "{named:#}");
    assert!(
        reasons(&named).contains(&"country_mismatch".into()),
        "{named:#}"
    );
    // The old line (before locgate started) named nobody; bob is not on any tunnel.
    let events = fx.events(&running).await;
    assert!(!events.iter().any(|e| user_of(e) == "e2001"), "{events:#?}");
    // The tunnel ends; its close event names her.
    tunnel.shutdown().await.expect("shutdown");
    drop(tunnel);
    let (closed, _) = event_where(&fx, &running, &[], |e| {
        e["source"]["ip"] == "127.6.0.51" && is_close(e)
    })
    .await;
    assert_eq!(user_of(&closed), "e1042", "{closed:#}");
    let status = running.shared.vpn_health.snapshot();
    assert_eq!(status[0].1.problem, None, "{status:?}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_lines_name_tunnels_and_a_source_that_cannot_be_read_is_said() {
    let fx = Fixture::new();
    fx.write_standard_directory();
    let upstream = tcp_echo_upstream().await;
    let syslog = free_port(true);
    let dead = free_port(false);
    let vpn = listener(
        "vpn",
        &upstream.to_string(),
        &format!(
            "kind = \"tcp\"\nmode = \"enforce\"\n\n[[listener.vpn]]\nkind = \"log\"\n\
             syslog = \"127.0.0.1:{syslog}\"\npattern = '{OCSERV_START}'\n\n\
             [[listener.vpn]]\nkind = \"openvpn\"\nmanagement = \"127.0.0.1:{dead}\"\npoll = \"200ms\""
        ),
    );
    let token = "a-long-enough-admin-token-for-the-test-0123456789";
    let sections = format!(
        "{}\n[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"{token}\"\n",
        employees_section("employees.toml")
    );
    let running = fx.start_with(&vpn, &sections).await;
    // Both sources have had a go: the syslog socket is bound, the OpenVPN one found nobody.
    let settled = |status: &[(String, locgate::history::vpn_sessions::SourceStatus)]| {
        let of = |name: &str| {
            status
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| s.clone())
        };
        of("vpn/log").is_some_and(|s| s.problem.is_none())
            && of("vpn/openvpn")
                .and_then(|s| s.problem)
                .is_some_and(|p| p.contains("refused"))
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while !settled(&running.shared.vpn_health.snapshot()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            running.shared.vpn_health.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (tunnel, nat) = open_tunnel(&fx, &running, "127.1.0.77").await;
    // RFC 5424, as rsyslog forwards it.
    let line =
        format!("<134>1 2026-12-02T13:01:02Z vpn ocserv 1234 - - main[bob]:{nat} user logged in");
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    sock.send_to(line.as_bytes(), ("127.0.0.1", syslog))
        .await
        .expect("send");
    let (named, _) = event_where(&fx, &running, &[], |e| {
        e["source"]["ip"] == "127.1.0.77" && user_of(e) == "e2001"
    })
    .await;
    // bob at home: allowed, and named.
    assert_eq!(named["event"]["action"], "allow", "{named:#}");
    assert_eq!(
        named["locgate"]["identity"]["source"], "vpn_log",
        "{named:#}"
    );
    // The OpenVPN source has nothing to talk to: said where an operator looks, not silent.
    let adm = running.admin_addr.expect("admin");
    let bearer = format!("Bearer {token}");
    let (_, body) = get(LOCAL, adm, "/readyz", &[("authorization", &bearer)]).await;
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.lines()
            .any(|l| l.starts_with("warning: vpn source vpn/openvpn:")
                && l.contains("refused")
                && l.contains("judged without identity")),
        "{body}"
    );
    let (_, metrics) = get(LOCAL, adm, "/metrics", &[("authorization", &bearer)]).await;
    let metrics = String::from_utf8_lossy(&metrics);
    for line in [
        "locgate_vpn_source_up{source=\"vpn/openvpn\"} 0",
        "locgate_vpn_source_up{source=\"vpn/log\"} 1",
        "locgate_vpn_sessions{source=\"vpn/log\"} 1",
        "locgate_tunnels_open 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
    drop(tunnel);
    running.shutdown().await;
}

/// The shipped VPN example parses with every kind of source, on the listeners the guide says.
#[test]
fn the_vpn_example_configures_every_kind_of_source() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/locgate-vpn.toml");
    let text = std::fs::read_to_string(&path).expect("read");
    let config = locgate::config::Config::parse(&text, "locgate-vpn.toml", Path::new("/"))
        .unwrap_or_else(|e| panic!("{e}"));
    let kinds: Vec<(&str, usize)> = config
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), l.vpn.len()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("vpn-portal", 0),
            ("openvpn-udp", 1),
            ("openvpn-tcp", 1),
            ("wireguard", 1),
            ("sslvpn-tls", 1),
            ("sslvpn-dtls", 0),
        ]
    );
    for l in &config.listeners {
        assert!(l.warnings.is_empty(), "{}: {:?}", l.name, l.warnings);
        for v in &l.vpn {
            let is_log = matches!(v.source, locgate::config::VpnSource::Log { .. });
            assert_eq!(v.verified, !is_log, "{}: log lines only tighten", v.name);
        }
    }
}
