//! `upstream = ...` of a listener: where allowed traffic goes.
//!
//! Kept in `config` (not in the ground-floor `values`) because telling `host:port` from a URL uses
//! the listener-edge rules in [`super::edge`].

use std::fmt;

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
