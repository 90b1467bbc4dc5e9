//! The TOML shape of identity sources and sessions, with value types that validate while they
//! are read (so a typo is reported at its line), and `Debug` that never prints a secret.
//!
//! ```toml
//! identity = [ { header = "X-Remote-User" },
//!              { jwt = { cookie = "id_token", claim = "email", jwks = "/etc/locgate/jwks.json" } },
//!              { jwt = { header = "authorization", claim = "sub", hs256_secret_file = "hs.key",
//!                        issuer = "https://idp.example", audience = "portal", leeway = "60s" } },
//!              { jwt = { cookie = "x", claim = "email", verify = false } },
//!              { basic = true },
//!              { form = { path = "/login", field = "username", max_body = 65536,
//!                         case_sensitive = false } } ]
//! session = { cookie = "SESSION", ttl = "12h", max_entries = 100000, max_per_client = 1000 }
//! ```
//!
//! `max_per_client` bounds the sessions one client address (IPv6: one /64) may hold, so logins
//! in a loop cannot evict other employees' sessions (see `identity/session.rs`).

use std::fmt;
use std::path::PathBuf;

use http::HeaderName;
use serde::Deserialize;

use crate::values::Dur;

/// One entry of a listener's `identity` list; the order of the list is the order sources are
/// tried in.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// `{ header = "X-Remote-User" }`: a header a trusted inner proxy sets.
    Header(HeaderField),
    /// `{ jwt = { .. } }`: a JSON Web Token.
    Jwt(JwtConfig),
    /// `{ basic = true }`: the user name of HTTP Basic authentication (`false` disables it).
    Basic(bool),
    /// `{ form = { .. } }`: the user-name field of a login form POST.
    Form(FormConfig),
}

/// Where a JWT is and how it is checked.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Read the token from this header (`authorization` means `Authorization: Bearer <t>`; any
    /// other header may hold `Bearer <t>` or the bare token). Exactly one of `header`, `cookie`.
    pub header: Option<HeaderField>,
    /// Read the token from this cookie.
    pub cookie: Option<CookieName>,
    /// The claim that names the user (`sub`, `email`, `preferred_username`); must be a string.
    pub claim: String,
    /// A JWKS file with the issuer's RS256 / ES256 public keys.
    pub jwks: Option<PathBuf>,
    /// The issuer's JWKS address (`https://`, or `http://` to a loopback host), fetched at
    /// start and kept current while running (refetched on `Cache-Control` expiry and on a
    /// token naming an unknown key; the last good keys are kept while the provider is down).
    /// With neither this nor a file or secret, `issuer` is used for OIDC discovery instead.
    pub jwks_url: Option<String>,
    /// A file holding the HS256 shared secret (trailing newline ignored).
    pub hs256_secret_file: Option<PathBuf>,
    /// The HS256 shared secret written inline (prefer `hs256_secret_file`: configs get shared).
    pub hs256_secret: Option<Secret>,
    /// Required `iss` value, when set. Given without any key (`jwks`, `jwks_url`, secret), it
    /// is also where the keys are found: OpenID Connect discovery reads
    /// `{issuer}/.well-known/openid-configuration`, whose `issuer` must be this exact string,
    /// and fetches its `jwks_uri` as `jwks_url` would be.
    pub issuer: Option<String>,
    /// Required member of `aud`, when set. Recommended: without it, any token from the same
    /// issuer (minted for another application) is accepted.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf` (default 60s, at most 1h).
    pub leeway: Option<Dur>,
    /// `false`: read the claim without checking the signature. The identity is then marked
    /// unverified, so it may tighten policy but never loosen it. Default `true`.
    #[serde(default = "yes")]
    pub verify: bool,
}

fn yes() -> bool {
    true
}

/// A login form whose POST body carries the user name.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormConfig {
    /// The request path of the login POST (`/login`). Matched after normalisation (absolute
    /// form, percent-decoding, dot segments, repeated and trailing slashes, `;` parameters), so
    /// every spelling an upstream router would send to the same handler is read.
    pub path: String,
    /// The body field holding the user name.
    pub field: String,
    /// Largest body read, in bytes (default 64 KiB); larger bodies are answered 413.
    pub max_body: Option<usize>,
    /// Compare the path case-sensitively (default `false`: IIS and many routers ignore case,
    /// so `/LOGIN` reaches the same handler).
    pub case_sensitive: Option<bool>,
}

/// `session = { .. }`: learn which session cookie belongs to whom when a login is seen, so later
/// requests carrying only the cookie still have an identity.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// The upstream's session cookie name.
    pub cookie: CookieName,
    /// How long a learned session is remembered (absolute, from the login; default 12h).
    pub ttl: Option<Dur>,
    /// Most sessions remembered (default 100000); when full, expired then oldest go first.
    pub max_entries: Option<usize>,
    /// Most sessions one client address (IPv6: one /64) may hold (default a quarter of
    /// `max_entries`, at most 1000); above it, that client's own oldest go first, so logins
    /// from a few addresses cannot push other employees' sessions out.
    pub max_per_client: Option<usize>,
}

/// A header name checked while the config is read; keeps the operator's spelling for messages.
#[derive(Clone, PartialEq, Eq)]
pub struct HeaderField {
    name: HeaderName,
    spelled: String,
}

impl HeaderField {
    /// Parses a header name, refusing what HTTP would refuse.
    pub fn parse(s: &str) -> Result<Self, String> {
        let spelled = s.trim();
        let name = HeaderName::from_bytes(spelled.as_bytes())
            .map_err(|_| format!("`{spelled}` is not a valid header name"))?;
        Ok(HeaderField {
            name,
            spelled: spelled.to_owned(),
        })
    }

    /// The header as `http` matches it (lower case).
    pub fn name(&self) -> &HeaderName {
        &self.name
    }

    /// The header as the operator wrote it, for messages.
    pub fn as_str(&self) -> &str {
        &self.spelled
    }
}

impl fmt::Debug for HeaderField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spelled)
    }
}

impl<'de> Deserialize<'de> for HeaderField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        HeaderField::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A cookie name checked while the config is read (an RFC 6265 token: no spaces, `;`, `=`,
/// quotes or control characters), so it can be matched against `Cookie` headers literally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieName(String);

impl CookieName {
    /// Parses a cookie name.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 256
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
        if ok {
            Ok(CookieName(s.to_owned()))
        } else {
            Err(format!("`{s}` is not a valid cookie name"))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for CookieName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        CookieName::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A secret written in the config. `Debug` prints `[redacted]`, so a config dump, a panic
/// message or a `{:?}` in a log line cannot leak it.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret (for tests and programmatic configs).
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret's bytes, for loading into a key; do not log them.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
