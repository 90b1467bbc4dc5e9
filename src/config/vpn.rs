//! `[[listener.vpn]]`: the VPN server behind a pass-through listener, and how locgate learns who
//! is on its tunnels (issue 15, point 2).
//!
//! A VPN client's tunnel carries no identity locgate can read; the VPN server that terminates it
//! knows who authenticated. Each source says where to ask:
//!
//! ```toml
//! [[listener.vpn]]
//! kind = "openvpn"                    # the management interface, read-only (`status 3`)
//! management = "127.0.0.1:7505"       # host:port, or the path of a unix socket
//! password_file = "/etc/locgate/openvpn-management.pass"   # when `management` has a password
//! user = "username"                   # or "common_name"; default: username, else common name
//! poll = "2s"
//!
//! [[listener.vpn]]
//! kind = "wireguard"                  # peers' public keys -> employees' `wireguard_keys`
//! command = ["wg", "show", "wg0", "dump"]
//!
//! [[listener.vpn]]
//! kind = "log"                        # any other gateway: its log lines, one regex
//! file = "/var/log/ocserv.log"        # or syslog = "127.0.0.1:5514"
//! pattern = 'user (?P<user>\S+) connected from (?P<ip>[0-9.]+):(?P<port>\d+)'
//! end_pattern = 'user (?P<user>\S+) disconnected'   # optional
//! verified = true                     # only once the pattern cannot match text a client chose
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::values::{ConfigError, Dur};

/// Where a VPN source's sessions come from.
#[derive(Debug, Clone)]
pub enum VpnSource {
    /// OpenVPN's management interface.
    OpenVpn {
        /// Where it listens.
        management: Management,
        /// Its password (the first line of `password_file`), when it asks for one.
        password: Option<String>,
        /// Which name identifies the employee.
        user: OpenVpnUser,
    },
    /// A command printing `wg show <interface> dump`.
    WireGuard {
        /// Program and arguments (no shell).
        command: Vec<String>,
    },
    /// Log lines matched by a regular expression with named captures `user` and `ip`.
    Log {
        /// Where the lines come from.
        input: LogInput,
        /// A session starts: captures `user`, `ip`, optionally `port`.
        pattern: regex::Regex,
        /// A session ends: captures `user` (and `ip`/`port` when the line has them).
        end_pattern: Option<regex::Regex>,
    },
}

/// Where OpenVPN's management interface listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Management {
    /// `management 127.0.0.1 7505`.
    Tcp(String),
    /// `management /run/openvpn/server.sock unix`.
    Unix(PathBuf),
}

/// Which of OpenVPN's names is the employee's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OpenVpnUser {
    /// The username of `auth-user-pass-verify` (or a plugin), else the certificate's common
    /// name when the server asks for no username.
    #[default]
    Username,
    /// Always the client certificate's common name.
    CommonName,
}

/// Where log lines come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogInput {
    /// A file, followed as it grows and across rotation.
    File(PathBuf),
    /// Syslog datagrams (RFC 3164 or 5424), one message each.
    Syslog(SocketAddr),
}

/// One `[[listener.vpn]]` as checked.
#[derive(Debug, Clone)]
pub struct VpnConfig {
    /// Name in logs, `/readyz` and metrics: `<listener>/<kind>` unless `name` says otherwise.
    pub name: String,
    /// What to read.
    pub source: VpnSource,
    /// How often to ask (OpenVPN, WireGuard).
    pub poll: Duration,
    /// Whether what it says is proof of identity: it may then loosen a decision (the person's
    /// allowances, travel, exemption) and is recorded in their history. OpenVPN's and
    /// WireGuard's reports are (the server authenticated the session). Log lines are not unless
    /// the operator says `verified = true`: a line is text, and text a client chose (a user name
    /// tried at a failed login) can end up in it and look like a session start; unverified
    /// identities only tighten, like `bind_address`'s. A syslog listener on a non-loopback
    /// address can never be verified (a datagram's source is forged easily).
    pub verified: bool,
}

/// `[[listener.vpn]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVpn {
    kind: Spanned<String>,
    name: Option<String>,
    management: Option<Spanned<String>>,
    password_file: Option<Spanned<PathBuf>>,
    user: Option<Spanned<OpenVpnUser>>,
    command: Option<Spanned<Vec<String>>>,
    file: Option<Spanned<PathBuf>>,
    syslog: Option<Spanned<SocketAddr>>,
    pattern: Option<Spanned<String>>,
    end_pattern: Option<Spanned<String>>,
    poll: Option<Spanned<Dur>>,
    verified: Option<Spanned<bool>>,
}

/// Checks a listener's `vpn` sources; `err` locates a span in the config file.
pub(super) fn check_all(
    raw: Vec<Spanned<RawVpn>>,
    listener: &str,
    base: &Path,
    err: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<Vec<VpnConfig>, ConfigError> {
    let mut out: Vec<VpnConfig> = Vec::with_capacity(raw.len());
    for r in raw {
        let span = r.span();
        let v = check(
            r.into_inner(),
            listener,
            base,
            &|s, m| err(s, m),
            span.clone(),
        )?;
        if out.iter().any(|o| o.name == v.name) {
            return Err(err(
                span,
                format!("vpn: two sources named `{}`; give one a `name`", v.name),
            ));
        }
        out.push(v);
    }
    Ok(out)
}

/// A field as written (where, if it is) and the kinds of source it belongs to.
type FieldOf<'a> = (&'a str, Option<std::ops::Range<usize>>, &'a [&'a str]);

/// The kinds of source.
const KINDS: [&str; 3] = ["openvpn", "wireguard", "log"];

fn check(
    r: RawVpn,
    listener: &str,
    base: &Path,
    err: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
    whole: std::ops::Range<usize>,
) -> Result<VpnConfig, ConfigError> {
    let kind = r.kind.get_ref().as_str();
    let name = r
        .name
        .clone()
        .unwrap_or_else(|| format!("{listener}/{kind}"));
    let poll = match &r.poll {
        None => Duration::from_secs(if kind == "openvpn" { 2 } else { 5 }),
        Some(p)
            if p.get_ref().0 < Duration::from_millis(100)
                || p.get_ref().0 > Duration::from_secs(300) =>
        {
            return Err(err(p.span(), "vpn.poll: between 100ms and 5m".into()));
        }
        Some(p) => p.get_ref().0,
    };
    // Fields that belong to another kind are refused rather than ignored: a `file` under an
    // `openvpn` source is a mistake that would otherwise leave the gateway blind.
    let fields: [FieldOf; 10] = [
        (
            "management",
            r.management.as_ref().map(Spanned::span),
            &["openvpn"],
        ),
        (
            "password_file",
            r.password_file.as_ref().map(Spanned::span),
            &["openvpn"],
        ),
        ("user", r.user.as_ref().map(Spanned::span), &["openvpn"]),
        (
            "command",
            r.command.as_ref().map(Spanned::span),
            &["wireguard"],
        ),
        (
            "poll",
            r.poll.as_ref().map(Spanned::span),
            &["openvpn", "wireguard"],
        ),
        ("file", r.file.as_ref().map(Spanned::span), &["log"]),
        ("syslog", r.syslog.as_ref().map(Spanned::span), &["log"]),
        ("pattern", r.pattern.as_ref().map(Spanned::span), &["log"]),
        (
            "end_pattern",
            r.end_pattern.as_ref().map(Spanned::span),
            &["log"],
        ),
        ("verified", r.verified.as_ref().map(Spanned::span), &["log"]),
    ];
    for (field, at, kinds) in fields {
        // (An unknown kind is refused below, naming the kinds.)
        if let Some(at) = at
            && KINDS.contains(&kind)
            && !kinds.contains(&kind)
        {
            return Err(err(
                at,
                format!("vpn.{field}: not a setting of kind = \"{kind}\""),
            ));
        }
    }
    let mut verified = true;
    let source = match kind {
        "openvpn" => {
            let m = r.management.as_ref().ok_or_else(|| {
                err(
                    whole.clone(),
                    "vpn.management: missing: where OpenVPN's management interface listens \
                     (\"127.0.0.1:7505\", or a unix socket's path)"
                        .into(),
                )
            })?;
            let management = if m.get_ref().starts_with('/') {
                Management::Unix(PathBuf::from(m.get_ref()))
            } else if m.get_ref().parse::<SocketAddr>().is_ok() {
                Management::Tcp(m.get_ref().clone())
            } else {
                return Err(err(
                    m.span(),
                    format!(
                        "vpn.management: `{}` is neither host:port (an IP address) nor an absolute unix socket path",
                        m.get_ref()
                    ),
                ));
            };
            let password = match &r.password_file {
                None => None,
                Some(p) => {
                    let path = base.join(p.get_ref());
                    let text = std::fs::read_to_string(&path).map_err(|e| {
                        err(
                            p.span(),
                            format!("vpn.password_file: {}: cannot read: {e}", path.display()),
                        )
                    })?;
                    // OpenVPN reads the first line of its password file; so does locgate.
                    let first = text.lines().next().unwrap_or("").trim_end_matches('\r');
                    if first.is_empty() {
                        return Err(err(
                            p.span(),
                            format!(
                                "vpn.password_file: {}: the first line is empty",
                                path.display()
                            ),
                        ));
                    }
                    Some(first.to_string())
                }
            };
            VpnSource::OpenVpn {
                management,
                password,
                user: r
                    .user
                    .as_ref()
                    .map_or_else(OpenVpnUser::default, |u| *u.get_ref()),
            }
        }
        "wireguard" => {
            let command = match &r.command {
                None => vec!["wg".into(), "show".into(), "wg0".into(), "dump".into()],
                Some(c) if c.get_ref().is_empty() || c.get_ref()[0].is_empty() => {
                    return Err(err(
                        c.span(),
                        "vpn.command: a program and its arguments, e.g. [\"wg\", \"show\", \"wg0\", \"dump\"]".into(),
                    ));
                }
                Some(c) => c.get_ref().clone(),
            };
            VpnSource::WireGuard { command }
        }
        "log" => {
            let input = match (&r.file, &r.syslog) {
                (Some(f), None) => LogInput::File(base.join(f.get_ref())),
                (None, Some(s)) => {
                    if !s.get_ref().ip().is_loopback()
                        && let Some(v) = r.verified.as_ref().filter(|v| *v.get_ref())
                    {
                        return Err(err(
                            v.span(),
                            "vpn.verified: a syslog listener on a non-loopback address cannot be \
                             verified: anyone who can reach it can forge a datagram's source"
                                .into(),
                        ));
                    }
                    LogInput::Syslog(*s.get_ref())
                }
                _ => {
                    return Err(err(
                        whole.clone(),
                        "vpn: a log source reads either `file` or `syslog` (one of them)".into(),
                    ));
                }
            };
            let p = r.pattern.as_ref().ok_or_else(|| {
                err(
                    whole.clone(),
                    "vpn.pattern: missing: a regular expression with named captures `user` and `ip`"
                        .into(),
                )
            })?;
            let pattern = log_regex(p, true, err)?;
            let end_pattern = r
                .end_pattern
                .as_ref()
                .map(|p| log_regex(p, false, err))
                .transpose()?;
            verified = r.verified.as_ref().is_some_and(|v| *v.get_ref());
            VpnSource::Log {
                input,
                pattern,
                end_pattern,
            }
        }
        other => {
            return Err(err(
                r.kind.span(),
                format!("vpn.kind: `{other}` is not one of {}", KINDS.join(", ")),
            ));
        }
    };
    Ok(VpnConfig {
        name,
        source,
        poll,
        verified,
    })
}

/// A log source's regex: it compiles, and names `user` (and `ip` for a session's start).
fn log_regex(
    p: &Spanned<String>,
    start: bool,
    err: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<regex::Regex, ConfigError> {
    let field = if start { "pattern" } else { "end_pattern" };
    let re = regex::RegexBuilder::new(p.get_ref())
        .size_limit(1 << 20)
        .build()
        .map_err(|e| err(p.span(), format!("vpn.{field}: {e}")))?;
    let names: Vec<&str> = re.capture_names().flatten().collect();
    let needs: &[&str] = if start { &["user", "ip"] } else { &["user"] };
    for n in needs {
        if !names.contains(n) {
            return Err(err(
                p.span(),
                format!("vpn.{field}: needs a named capture `(?P<{n}>...)`"),
            ));
        }
    }
    Ok(re)
}
