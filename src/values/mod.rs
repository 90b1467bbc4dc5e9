//! Value types that validate while they are read, so TOML errors point at the exact value.
//!
//! This is the ground floor under the config loader: the employee directory loaders and the
//! identity settings read the same durations and networks and raise the same located errors as
//! `config` does, and `config` in turn builds on identity and employees. Keeping these types here,
//! importing nothing else from the crate, lets every one of them depend on `values` without an
//! import circle through `config`.

pub mod error;

pub use error::ConfigError;

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

/// A duration written like `200us`, `500ms`, `30s`, `10m`, `12h` or `2d`.
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
        "us" | "µs" => Duration::from_micros(n),
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "d" => Duration::from_secs(n.saturating_mul(86_400)),
        "" => return Err(format!("`{s}` has no unit (write e.g. {s}s or {s}ms)")),
        other => {
            return Err(format!(
                "`{other}` is not a duration unit (use us, ms, s, m, h or d)"
            ));
        }
    };
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("250µs"), Ok(Duration::from_micros(250)));
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
}
