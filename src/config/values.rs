//! Value types that validate while they are read, so TOML errors point at the exact value.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use ipnetwork::IpNetwork;

/// A network written as CIDR (`10.0.0.0/8`) or a bare address (a host route).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net(pub IpNetwork);

impl<'de> serde::Deserialize<'de> for Net {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse_net(&s).map(Net).map_err(serde::de::Error::custom)
    }
}

/// Parses `a.b.c.d/n`, `v6/n` or a bare address.
pub fn parse_net(s: &str) -> Result<IpNetwork, String> {
    let s = s.trim();
    if s.contains('/') {
        s.parse::<IpNetwork>()
            .map_err(|e| format!("`{s}` is not a CIDR network: {e}"))
    } else {
        s.parse::<IpAddr>()
            .map(IpNetwork::from)
            .map_err(|_| format!("`{s}` is not an IP address or CIDR network"))
    }
}

/// A duration written like `500ms`, `30s`, `10m`, `12h` or `2d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> serde::Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse_duration(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses a duration with a unit suffix; a bare number is refused because "30" is ambiguous.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (write e.g. 500ms, 30s, 10m, 12h, 2d)"))?;
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "d" => Duration::from_secs(n.saturating_mul(86_400)),
        "" => return Err(format!("`{s}` has no unit (write e.g. {s}s or {s}ms)")),
        other => {
            return Err(format!(
                "`{other}` is not a duration unit (use ms, s, m, h or d)"
            ));
        }
    };
    Ok(d)
}

/// Where a listener sends allowed traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// An HTTP origin such as `http://127.0.0.1:9000`.
    Http(http::Uri),
    /// The built-in page that shows callers what locgate sees of them.
    Whoami,
    /// `host:port` of a TCP or UDP upstream (`kind = "tcp"` / `"udp"` listeners).
    Addr(String),
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Upstream::Http(u) => write!(f, "{u}"),
            Upstream::Whoami => f.write_str("builtin:whoami"),
            Upstream::Addr(a) => f.write_str(a),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Upstream {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse_upstream(&s).map_err(serde::de::Error::custom)
    }
}

/// Parses `builtin:whoami` or an `http://host[:port]` origin (no path: locgate forwards the
/// client's path unchanged).
pub fn parse_upstream(s: &str) -> Result<Upstream, String> {
    if s == "builtin:whoami" {
        return Ok(Upstream::Whoami);
    }
    if s.starts_with("builtin:") {
        return Err(format!(
            "`{s}` is not a built-in upstream (the only one is builtin:whoami)"
        ));
    }
    if !s.contains("://") && super::edge::is_host_port(s) {
        return Ok(Upstream::Addr(s.to_owned()));
    }
    let uri: http::Uri = s.parse().map_err(|e| format!("`{s}` is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "`{s}`: TLS to the upstream is not supported yet; use http:// on a trusted network"
            ));
        }
        _ => return Err(format!("`{s}` must start with http://")),
    }
    if uri.authority().is_none() {
        return Err(format!("`{s}` has no host"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!(
            "`{s}`: give only scheme, host and port; the client's path is forwarded as is"
        ));
    }
    Ok(Upstream::Http(uri))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("5 weeks").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn networks() {
        assert_eq!(parse_net("10.0.0.0/8").unwrap().prefix(), 8);
        assert_eq!(parse_net("::1").unwrap().prefix(), 128);
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("example.com").is_err());
    }

    #[test]
    fn upstreams() {
        assert_eq!(parse_upstream("builtin:whoami"), Ok(Upstream::Whoami));
        assert!(matches!(
            parse_upstream("http://127.0.0.1:9000"),
            Ok(Upstream::Http(_))
        ));
        assert!(parse_upstream("https://x").unwrap_err().contains("TLS"));
        assert!(parse_upstream("ftp://x").is_err());
        assert!(parse_upstream("http://x/path").is_err());
        assert!(parse_upstream("builtin:nope").is_err());
    }
}
