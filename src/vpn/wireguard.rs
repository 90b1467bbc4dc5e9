//! WireGuard: `wg show <interface> dump` run every `poll`; a peer with a recent handshake is a
//! session at its endpoint, named by the employee whose `wireguard_keys` list its public key.
//!
//! The dump's interface line holds the interface's private key: it is skipped unread, never
//! kept, logged or put in an error; errors name lines and fields, never their contents.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Reported, Reporter, parse_address};

/// A peer whose last handshake is older than this has no session (WireGuard's
/// `REJECT_AFTER_TIME`: keys older than 180 s are refused, so such a peer is not talking).
pub const SESSION_AFTER_HANDSHAKE: Duration = Duration::from_secs(180);

/// How long the command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest output read (a dump is about 200 bytes a peer).
const MAX_OUTPUT: usize = 32 * 1024 * 1024;

/// One peer with a live session: its public key and its endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Base64 public key, as the directory lists it.
    pub key: String,
    /// Where its packets come from, as the server sees it.
    pub endpoint: std::net::SocketAddr,
}

/// Reads a dump (`wg show <if> dump`: 4-field interface line, 8-field peer lines; `wg show all
/// dump`: each with the interface name in front). Peers without an endpoint or without a
/// handshake within [`SESSION_AFTER_HANDSHAKE`] of `now` (seconds since the epoch) are left out.
pub fn parse_dump(text: &str, now: u64) -> Result<Vec<Peer>, String> {
    let mut peers = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let peer = match fields.len() {
            4 | 5 => continue, // the interface line: private key, public key, port, fwmark
            8 => &fields[..],
            9 => &fields[1..],
            k => {
                return Err(format!(
                    "line {}: {k} tab-separated fields (not `wg show ... dump` output?)",
                    n + 1
                ));
            }
        };
        let (key, endpoint, handshake) = (peer[0], peer[2], peer[4]);
        if !crate::employees::is_wireguard_key(key) {
            return Err(format!(
                "line {}: a peer key that is not a WireGuard key",
                n + 1
            ));
        }
        let handshake: u64 = handshake
            .parse()
            .map_err(|_| format!("line {}: latest-handshake is not a number", n + 1))?;
        if endpoint == "(none)" || handshake == 0 {
            continue;
        }
        if now.saturating_sub(handshake) > SESSION_AFTER_HANDSHAKE.as_secs() {
            continue;
        }
        let endpoint = parse_address(endpoint)
            .ok_or_else(|| format!("line {}: cannot read the endpoint", n + 1))?;
        peers.push(Peer {
            key: key.to_owned(),
            endpoint,
        });
    }
    Ok(peers)
}

/// Polls the command until the listener stops.
pub async fn run(mut reporter: Reporter, command: Vec<String>, poll: Duration) {
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        match dump(&command).await.and_then(|out| parse_dump(&out, now)) {
            Ok(peers) => {
                let state = reporter.state();
                let sessions = peers
                    .into_iter()
                    .map(|p| Reported {
                        user: Some(
                            state
                                .directory
                                .as_ref()
                                .and_then(|d| d.by_wireguard_key(&p.key))
                                .map_or_else(|| format!("wireguard:{}", p.key), |e| e.id.clone()),
                        ),
                        addr: p.endpoint,
                    })
                    .collect();
                drop(state);
                reporter.snapshot(sessions);
            }
            Err(problem) => reporter.failed(problem),
        }
    }
}

/// Runs the command (no shell) and returns its output.
async fn dump(command: &[String]) -> Result<String, String> {
    let Some((program, args)) = command.split_first() else {
        return Err("empty command".into());
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(COMMAND_TIMEOUT, child)
        .await
        .map_err(|_| format!("{program}: no answer within {COMMAND_TIMEOUT:?}"))?
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "{program}: {}: {}",
            out.status,
            err.lines().next().unwrap_or("").trim()
        ));
    }
    if out.stdout.len() > MAX_OUTPUT {
        return Err(format!("{program}: more than {MAX_OUTPUT} bytes of output"));
    }
    String::from_utf8(out.stdout).map_err(|_| format!("{program}: output is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "hIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";
    const BOB: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
    const CAROL: &str = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=";

    fn dump(now: u64) -> String {
        format!(
            "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\tHIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=\t51820\toff\n\
{ALICE}\t(none)\t127.6.0.1:40000\t10.9.0.2/32\t{}\t1000\t2000\t25\n\
{BOB}\t(none)\t[2001:db8::5]:51820\t10.9.0.3/32\t{}\t1\t2\toff\n\
{CAROL}\t(none)\t(none)\t10.9.0.4/32\t0\t0\t0\toff\n",
            now - 5,
            now - 400
        )
    }

    #[test]
    fn peers_with_a_recent_handshake_are_sessions_and_the_private_key_is_never_read() {
        let now = 1_800_000_000;
        let peers = parse_dump(&dump(now), now).expect("parses");
        assert_eq!(
            peers,
            vec![Peer {
                key: ALICE.into(),
                endpoint: "127.6.0.1:40000".parse().expect("addr")
            }]
        );
        // `wg show all dump`: the interface name first.
        let all: String = dump(now).lines().map(|l| format!("wg0\t{l}\n")).collect();
        assert_eq!(parse_dump(&all, now).expect("parses"), peers);
    }

    #[test]
    fn other_output_is_refused_without_echoing_it() {
        assert!(parse_dump("interface: wg0\n  public key: x\n", 0).is_err());
        let bad_key = "not-a-key\t(none)\t1.2.3.4:5\t10.0.0.2/32\t1\t0\t0\toff\n";
        let err = parse_dump(bad_key, 2).expect_err("refused");
        assert!(!err.contains("not-a-key"), "{err}");
        let bad_time = format!("{ALICE}\t(none)\t1.2.3.4:5\t10.0.0.2/32\tsoon\t0\t0\toff\n");
        assert!(parse_dump(&bad_time, 2).is_err());
    }
}
