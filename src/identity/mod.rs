//! Who is behind a request.
//!
//! Per-employee policy ("this person said they live in Lisbon") needs a name for every request.
//! This module finds it, from the places an SSO portal or VPN front end actually carries it:
//!
//! | source | where | `verified` |
//! | --- | --- | --- |
//! | `header` | a header set by an auth proxy (`X-Remote-User`) | yes, **only from an `identity_proxies` peer** |
//! | `jwt` | `Authorization: Bearer` or a cookie, signature checked (JWKS file or URL, OIDC discovery, or HS256) | yes |
//! | `jwt` with `verify = false` | same, signature not checked | no |
//! | `basic` | the user name of `Authorization: Basic` | no: locgate never sees whether the password was right |
//! | `form` | the user-name field of a login POST (urlencoded, JSON, multipart or text/plain body, or the query), whatever the spelling of its path | no: same |
//! | `session` | a session cookie whose login locgate saw ([`SessionStore`]) | as the login was |
//! | `client_cert` | subject CN or SAN e-mail of a TLS client certificate | yes (the TLS layer checked the chain) |
//!
//! **`verified` decides what an identity may do.** A verified identity can be trusted to say
//! whose rules apply. An unverified one (a name the client typed, or a token nobody checked) may
//! only *tighten*: it can make a request look suspicious (a login as `alice` from a country Alice
//! does not live in) but never make a suspicious request look fine, because anyone can type
//! `alice`.
//!
//! Everything here reads hostile input: tokens, headers, bodies and certificates are parsed with
//! bounded work and no panics, and what goes wrong becomes a short sentence in
//! [`Extraction::problems`] that never contains a secret (no token, password, cookie value or key).
//! Key material is read by [`Extractors::from_config`] (files, secrets), or fetched from the identity
//! provider and kept current by `remote_keys.rs` (`jwks_url`, OIDC discovery); the request path only
//! verifies, except that a token naming an unknown key may wait for one bounded refetch.
//!
//! Wiring, on the proxy side:
//! 1. [`Extractors::from_headers`] for every request (every source is tried), and
//!    [`SessionStore::identify`] (the store is runtime state, so it is a separate step); every
//!    identity found goes into [`Who::claims`].
//! 2. For a POST that [`Extractors::form_rule`] matches (whatever the spelling of its path, and
//!    whatever identity the head already named): read at most [`FormRule::max_body`] bytes (413
//!    above), [`Who::read_login_form`] (body and query), forward the body unchanged. A login
//!    that names nobody is [`Who::unreadable`] (fail closed).
//! 3. [`Who::settle`] before deciding: claims that name different people are a
//!    [`Who::conflict`]; the identity decided on is then the new login's (or the first found),
//!    never verified.
//! 4. On the response to a request whose identity is known: [`set_cookie_value`] with
//!    [`SessionStore::cookie_name`], then [`SessionStore::learn`].
//! 5. Strip a `header` source's header (and its `_` spellings) from requests that do not come
//!    from an identity proxy before forwarding: the upstream may believe it too.
//!
//! **Trust is per purpose.** A load balancer (`trusted_proxies`) is believed for the client's
//! address, never for its identity: it passes the client's own `X-Remote-User` through. A
//! `header` source is believed only from the peers that *set* it (`identity_proxies`, an auth
//! proxy such as oauth2-proxy), which the proxy decides per request and passes in.

mod basic;
mod cert;
mod config;
mod cookie;
mod form;
mod id_token;
mod json;
pub(crate) mod jwks;
mod jwt;
pub mod login_path;
mod multipart;
pub(crate) mod remote_keys;
mod session;
mod who;

pub use cert::from_client_cert;
pub use config::{
    CookieName, FormConfig, HeaderField, JwtConfig, Secret, SessionConfig, SourceConfig,
};
pub use cookie::{DifferingCookies, cookie_value, cookie_values, set_cookie_value};
pub use form::FormRule;

/// How long a start or reload waits for identity providers' keys (`jwks_url`, discovery)
/// before serving without them (tokens from a provider without keys are refused, said in
/// `/readyz`, and the fetch is retried).
pub const KEY_FETCH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
pub use id_token::IdTokenVerifier;
pub use remote_keys::{KeySourceHealth, health as key_sources, start as start_key_refresh};
pub use session::{
    MAX_SESSION_VALUES, MIN_COOKIE_LEN, SessionEntry, SessionPlace, SessionStore, SessionsFound,
};
pub use who::{Trouble, Who};

use std::fmt;
use std::path::Path;

use http::{HeaderMap, Method};
use jiff::Timestamp;

use jwt::JwtRule;

/// Longest user name accepted from any source, in bytes. Real user names and e-mail addresses
/// are far shorter; the cap keeps hostile values out of events and employee lookups.
pub const MAX_USER_LEN: usize = 256;

/// Where an identity came from; recorded in events so a reviewer knows how much to trust it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentitySource {
    /// A header set by a trusted inner proxy.
    Header,
    /// A JSON Web Token (verified or not: see [`Identity::verified`]).
    Jwt,
    /// The user name of HTTP Basic authentication.
    Basic,
    /// The user-name field of a login form.
    Form,
    /// A session cookie learned from an earlier login.
    Session,
    /// A TLS client certificate.
    ClientCert,
}

impl IdentitySource {
    /// Stable lower-case name used in events and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentitySource::Header => "header",
            IdentitySource::Jwt => "jwt",
            IdentitySource::Basic => "basic",
            IdentitySource::Form => "form",
            IdentitySource::Session => "session",
            IdentitySource::ClientCert => "client_cert",
        }
    }
}

impl fmt::Display for IdentitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user name and how far it can be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name as the source gave it (trimmed, at most [`MAX_USER_LEN`] bytes, no control
    /// characters). Mapping it to an employee is the employees module's job.
    pub user: String,
    /// Where it came from.
    pub source: IdentitySource,
    /// Whether something cryptographic or a trusted proxy vouches for it. Unverified identities
    /// may only tighten policy, never loosen it (see the module documentation).
    pub verified: bool,
}

/// The outcome of extraction: an identity or not, plus problems worth recording (never
/// secrets), e.g. `jwt: token expired at 2026-11-20T10:00:00Z`, `jwt: bad signature`,
/// `basic: malformed header`. A forged or expired token is a signal even when another source
/// later supplies an identity, so problems are kept alongside the identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extraction {
    /// The first identity found, if any.
    pub identity: Option<Identity>,
    /// The identities later sources found (when several were tried), in source order: they
    /// must name the same person as [`Extraction::identity`], or the request is a conflict.
    pub others: Vec<Identity>,
    /// What was present but unusable, in source order.
    pub problems: Vec<String>,
}

impl Extraction {
    /// No identity and nothing to report (allocates nothing).
    pub fn none() -> Self {
        Extraction::default()
    }

    fn found(identity: Identity) -> Self {
        Extraction {
            identity: Some(identity),
            ..Extraction::default()
        }
    }

    fn problem(problem: String) -> Self {
        Extraction {
            problems: vec![problem],
            ..Extraction::default()
        }
    }
}

/// One source that reads request headers, loaded and ready.
#[derive(Clone)]
enum HeaderSource {
    Header(HeaderField),
    Jwt(Box<JwtRule>),
    Basic,
}

/// The identity sources of one listener, with all key material loaded.
///
/// Built once at configuration time by [`Extractors::from_config`]; shared read-only by every
/// request afterwards.
#[derive(Clone, Default)]
pub struct Extractors {
    sources: Vec<HeaderSource>,
    forms: Vec<FormRule>,
}

impl fmt::Debug for Extractors {
    /// Lists the sources by kind only: key material and secrets are never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for s in &self.sources {
            match s {
                HeaderSource::Header(h) => list.entry(&format_args!("header({})", h.as_str())),
                HeaderSource::Jwt(j) => list.entry(j),
                HeaderSource::Basic => list.entry(&format_args!("basic")),
            };
        }
        for form in &self.forms {
            list.entry(form);
        }
        list.finish()
    }
}

/// Headers that carry credentials rather than names; a `header` source on them would turn a
/// password or token into a "user name" (and into events).
const CREDENTIAL_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

impl Extractors {
    /// Loads keys (JWKS file with RS256 and ES256 keys by `kid`; HMAC secret from a file or
    /// inline) and validates the configuration, so that a gateway never starts with a source it
    /// cannot use. Relative paths are resolved against `base_dir` (the config file's directory).
    /// Errors are sentences naming the entry (`identity[1].jwt: ...`) and the file.
    pub fn from_config(sources: &[SourceConfig], base_dir: &Path) -> Result<Extractors, String> {
        let mut out = Extractors::default();
        for (i, source) in sources.iter().enumerate() {
            match source {
                SourceConfig::Header(h) => {
                    if CREDENTIAL_HEADERS.contains(&h.name().as_str()) {
                        return Err(format!(
                            "identity[{i}].header: {} carries credentials, not a user name; \
                             use the jwt or basic source for it",
                            h.as_str()
                        ));
                    }
                    out.sources.push(HeaderSource::Header(h.clone()));
                }
                SourceConfig::Jwt(j) => {
                    let rule = JwtRule::from_config(j, base_dir)
                        .map_err(|e| format!("identity[{i}].jwt: {e}"))?;
                    out.sources.push(HeaderSource::Jwt(Box::new(rule)));
                }
                SourceConfig::Basic(true) => out.sources.push(HeaderSource::Basic),
                SourceConfig::Basic(false) => {}
                SourceConfig::Form(f) => {
                    let rule =
                        FormRule::from_config(f).map_err(|e| format!("identity[{i}].form: {e}"))?;
                    out.forms.push(rule);
                }
            }
        }
        Ok(out)
    }

    /// The headers of `header` sources. A request not from an identity proxy must not carry them to
    /// the upstream: the upstream may believe `X-Remote-User` as much as we would have.
    pub fn trusted_header_names(&self) -> Vec<http::HeaderName> {
        self.sources
            .iter()
            .filter_map(|s| match s {
                HeaderSource::Header(h) => Some(h.name().clone()),
                _ => None,
            })
            .collect()
    }

    /// Whether no source is configured (the listener does not look for identities).
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty() && self.forms.is_empty()
    }

    /// Run before [`Extractors::from_headers`]: when a `jwt` source fetches its keys from the
    /// identity provider and this request's token names a key not in the set in use (the
    /// provider rotated), asks for a refetch and waits for it (bounded and rate-limited: see
    /// `remote_keys.rs`), so the first token signed with a new key is verified, not refused.
    /// Costs nothing for listeners without such a source.
    pub async fn refresh_keys_for(&self, headers: &HeaderMap) {
        for source in &self.sources {
            if let HeaderSource::Jwt(rule) = source
                && let Some(remote) = rule.stale_keys_for(headers)
            {
                remote.refresh_for_unknown_kid().await;
            }
        }
    }

    /// Tries every header source in configuration order; the first identity wins, the others
    /// are kept in [`Extraction::others`] (one identity must not hide another: a request whose
    /// sources disagree is a conflict), and every source's problems are kept. Sources whose
    /// credential is absent cost a header lookup; a JWT is verified only when present.
    /// `identity_trusted` says whether the peer is an identity proxy (`identity_proxies`): a
    /// `header` source is honoured only then, because anyone else (a balancer passing the
    /// client's headers through included) can send `X-Remote-User: ceo`. `now` is the clock for
    /// `exp`/`nbf` (a parameter so tests and replays are deterministic).
    pub fn from_headers(
        &self,
        headers: &HeaderMap,
        identity_trusted: bool,
        now: Timestamp,
    ) -> Extraction {
        let mut out = Extraction::none();
        for source in &self.sources {
            let found = match source {
                HeaderSource::Header(h) => from_trusted_header(h, headers, identity_trusted),
                HeaderSource::Jwt(rule) => rule.extract(headers, now),
                HeaderSource::Basic => basic::extract(headers),
            };
            out.problems.extend(found.problems);
            if let Some(identity) = found.identity {
                match out.identity {
                    None => out.identity = Some(identity),
                    Some(_) => out.others.push(identity),
                }
            }
        }
        out
    }

    /// The login form whose body must be read for a request: method POST and a target whose
    /// path, normalised as a router would see it ([`login_path::normalise`]), is a configured
    /// form's path. A target that cannot be normalised safely is read with the first form (a
    /// missed login is a dodge; an extra read costs one body). Anything but POST returns at
    /// once. The proxy then reads at most [`FormRule::max_body`] bytes (more: 413), calls
    /// [`Who::read_login_form`], and forwards the body unchanged.
    pub fn form_rule(&self, method: &Method, target: &[u8]) -> Option<&FormRule> {
        if method != Method::POST || self.forms.is_empty() {
            return None;
        }
        match login_path::normalise(target) {
            Some(path) => self.forms.iter().find(|f| f.matches(&path)),
            None => self.forms.first(),
        }
    }
}

/// The `header` source: believed only from an identity proxy.
fn from_trusted_header(h: &HeaderField, headers: &HeaderMap, identity_trusted: bool) -> Extraction {
    let mut values = headers.get_all(h.name()).iter();
    let Some(value) = values.next() else {
        return Extraction::none();
    };
    if !identity_trusted {
        return Extraction::problem(format!(
            "header {} not from an identity proxy (identity_proxies); ignored",
            h.as_str()
        ));
    }
    if values.next().is_some() {
        return Extraction::problem(format!(
            "header {} appears more than once; ignored",
            h.as_str()
        ));
    }
    let Ok(raw) = std::str::from_utf8(value.as_bytes()) else {
        return Extraction::problem(format!("header {}: user name is not UTF-8", h.as_str()));
    };
    match check_user(raw) {
        Ok(user) => Extraction::found(Identity {
            user: user.to_owned(),
            source: IdentitySource::Header,
            verified: true,
        }),
        Err(why) => Extraction::problem(format!("header {}: {why}", h.as_str())),
    }
}

/// The shared rule for user names from any source: trimmed, non-empty, at most
/// [`MAX_USER_LEN`] bytes, no control characters (which could forge log lines or confuse
/// lookups). Returns the trimmed name or why it was refused.
fn check_user(raw: &str) -> Result<&str, &'static str> {
    let user = raw.trim();
    if user.is_empty() {
        return Err("user name is empty");
    }
    if user.len() > MAX_USER_LEN {
        return Err("user name is longer than 256 bytes");
    }
    if user.chars().any(char::is_control) {
        return Err("user name contains control characters");
    }
    Ok(user)
}

#[cfg(test)]
mod tests;
