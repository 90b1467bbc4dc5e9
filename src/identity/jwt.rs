//! The `jwt` source: a user name from a signed JSON Web Token (RFC 7519) in
//! `Authorization: Bearer` or a cookie.
//!
//! What is checked, in order, and why:
//! 1. **Shape and size.** Three base64url segments, at most [`MAX_TOKEN_LEN`] bytes, so a
//!    hostile header costs bounded work.
//! 2. **Algorithm against the key, not the token.** Each loaded key carries the one algorithm it
//!    may verify (RSA keys RS256, P-256 keys ES256, the shared secret HS256), and a rule has
//!    either a JWKS or a secret, never both. So `alg: none` is refused, and the classic
//!    confusion (an HS256 token "signed" with the issuer's RSA *public* key as HMAC secret)
//!    finds no HS256 key to verify with. Tokens with a `crit` header are refused (RFC 7515
//!    §4.1.11: we understand no extensions).
//! 3. **Key selection.** By `kid` when the token has one; otherwise every key of the right
//!    algorithm is tried (a JWKS holds a handful).
//! 4. **Signature**, by `jsonwebtoken`'s RustCrypto verifiers.
//! 5. **Claims**, only after the signature: `exp` is required (a token without one would be a
//!    credential forever), `nbf` honoured, both with `leeway` against the caller's clock;
//!    `iss` and `aud` must match when configured; the user claim must be a string.
//!
//! With `verify = false` steps 2-4 are skipped and the identity is marked unverified: it may
//! tighten policy (flag a login as alice from the wrong country) but never loosen it. `exp` and
//! `nbf` are still honoured when present.
//!
//! Problems name the check that failed and never contain the token, its `kid` or its claims.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use http::header::AUTHORIZATION;
use jiff::Timestamp;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use super::config::{CookieName, HeaderField, JwtConfig};
use super::cookie::{One, auth_scheme, cookie_value, one};
use super::json::{PickError, pick};
use super::jwks::{self, Key};
use super::remote_keys::{Origin, RemoteKeys};
use super::{Extraction, Identity, IdentitySource, check_user};

/// Longest token accepted, in bytes. ID tokens with many claims reach a few KB.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Shortest HS256 secret accepted: RFC 7518 §3.2 asks for a key at least as long as the hash.
const MIN_SECRET_LEN: usize = 32;

/// Default and maximum clock-skew allowance, in seconds.
const DEFAULT_LEEWAY: i64 = 60;
const MAX_LEEWAY: i64 = 3600;

/// Where the token is carried.
#[derive(Clone)]
enum Location {
    /// A header; `bearer_only` for `Authorization`, where the `Bearer` scheme is required.
    Header {
        field: HeaderField,
        bearer_only: bool,
    },
    Cookie(CookieName),
}

/// The keys a rule verifies with.
#[derive(Clone)]
enum Keys {
    /// Read once from the config (JWKS file, HS256 secret); empty when `verify = false`.
    Fixed(Arc<Vec<Key>>),
    /// Fetched from the identity provider and refreshed while running.
    Remote(Arc<RemoteKeys>),
}

impl Keys {
    /// The keys in use now, or why there are none.
    fn current(&self) -> Result<Arc<Vec<Key>>, String> {
        match self {
            Keys::Fixed(keys) => Ok(keys.clone()),
            Keys::Remote(remote) => {
                let keys = remote.current();
                if keys.is_empty() {
                    Err(remote.why_none())
                } else {
                    Ok(keys)
                }
            }
        }
    }
}

/// A loaded `jwt` source.
#[derive(Clone)]
pub(super) struct JwtRule {
    location: Location,
    claim: String,
    keys: Keys,
    verify: bool,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: i64,
}

impl fmt::Debug for JwtRule {
    /// Names the location, claim and key ids; never key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let location = match &self.location {
            Location::Header { field, .. } => format!("header {}", field.as_str()),
            Location::Cookie(c) => format!("cookie {}", c.as_str()),
        };
        let keys: Vec<String> = self.keys.current().map_or_else(
            |why| vec![why],
            |keys| {
                keys.iter()
                    .map(|k| format!("{:?}:{}", k.alg, k.kid.as_deref().unwrap_or("-")))
                    .collect()
            },
        );
        let mut out = f.debug_struct("JwtRule");
        out.field("location", &location)
            .field("claim", &self.claim)
            .field("verify", &self.verify);
        if let Keys::Remote(remote) = &self.keys {
            out.field("keys_from", &remote.label());
        }
        out.field("keys", &keys)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish()
    }
}

/// The JOSE header members we look at. Unknown members are ignored, except `crit`.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    kid: Option<String>,
    crit: Option<IgnoredAny>,
}

impl JwtRule {
    /// Checks the rule and loads its keys. Errors are sentences without the `identity[i].jwt`
    /// prefix, which the caller adds.
    pub(super) fn from_config(c: &JwtConfig, base_dir: &Path) -> Result<JwtRule, String> {
        let location = match (&c.header, &c.cookie) {
            (Some(field), None) => Location::Header {
                bearer_only: field.name() == AUTHORIZATION,
                field: field.clone(),
            },
            (None, Some(cookie)) => Location::Cookie(cookie.clone()),
            _ => return Err("give exactly one of `header` or `cookie`".into()),
        };
        if c.claim.is_empty() {
            return Err("`claim` must name the claim that holds the user name".into());
        }
        let leeway = match c.leeway {
            None => DEFAULT_LEEWAY,
            Some(d) => i64::try_from(d.0.as_secs())
                .ok()
                .filter(|s| *s <= MAX_LEEWAY)
                .ok_or("leeway must be at most 1h")?,
        };
        let key_sources = [
            c.jwks.is_some(),
            c.jwks_url.is_some(),
            c.hs256_secret_file.is_some(),
            c.hs256_secret.is_some(),
        ];
        let configured = key_sources.iter().filter(|s| **s).count();
        let keys = match (c.verify, configured) {
            (false, 0) => Keys::Fixed(Arc::default()),
            (false, _) => {
                return Err(
                    "verify = false reads tokens without checking them; remove the keys, \
                     or remove verify = false to check signatures"
                        .into(),
                );
            }
            (true, 0) => match &c.issuer {
                // Only an issuer: its discovery document names the keys.
                Some(issuer) => Keys::Remote(RemoteKeys::shared(Origin::issuer(issuer)?)),
                None => {
                    return Err(
                        "give `jwks`, `jwks_url`, `issuer` (OIDC discovery), `hs256_secret_file` \
                         or `hs256_secret` to verify tokens (or verify = false to read them \
                         unverified)"
                            .into(),
                    );
                }
            },
            (true, 2..) => {
                return Err(
                    "give only one of `jwks`, `jwks_url`, `hs256_secret_file`, `hs256_secret`: \
                     mixing public keys and shared secrets in one source invites algorithm \
                     confusion"
                        .into(),
                );
            }
            (true, _) => {
                if let Some(path) = &c.jwks {
                    Keys::Fixed(Arc::new(jwks::load(&base_dir.join(path))?))
                } else if let Some(url) = &c.jwks_url {
                    Keys::Remote(RemoteKeys::shared(Origin::jwks(url)?))
                } else if let Some(path) = &c.hs256_secret_file {
                    Keys::Fixed(Arc::new(vec![load_secret_file(&base_dir.join(path))?]))
                } else if let Some(secret) = &c.hs256_secret {
                    Keys::Fixed(Arc::new(vec![hmac_key(secret.expose(), "hs256_secret")?]))
                } else {
                    Keys::Fixed(Arc::default())
                }
            }
        };
        Ok(JwtRule {
            location,
            claim: c.claim.clone(),
            keys,
            verify: c.verify,
            issuer: c.issuer.clone(),
            audience: c.audience.clone(),
            leeway,
        })
    }

    /// Finds, verifies and reads the token of a request.
    pub(super) fn extract(&self, headers: &HeaderMap, now: Timestamp) -> Extraction {
        let token = match self.token(headers) {
            Ok(Some(t)) => t,
            Ok(None) => return Extraction::none(),
            Err(why) => return Extraction::problem(format!("jwt: {why}")),
        };
        match self.check(token, now) {
            Ok(user) => Extraction::found(Identity {
                user,
                source: IdentitySource::Jwt,
                verified: self.verify,
            }),
            Err(why) => Extraction::problem(format!("jwt: {why}")),
        }
    }

    /// The provider to refetch keys from before this request's token is checked: the rule
    /// fetches its keys, the request carries a token where the rule looks, and the key the
    /// token names (any key, before the first fetch) is not in the set in use. A malformed
    /// token asks for nothing: it is refused whatever the keys.
    pub(super) fn stale_keys_for(&self, headers: &HeaderMap) -> Option<&RemoteKeys> {
        let Keys::Remote(remote) = &self.keys else {
            return None;
        };
        let token = self.token(headers).ok()??;
        let kid = token_kid(token)?;
        (!remote.covers(kid.as_deref())).then_some(&**remote)
    }

    /// The raw token, if the request carries one where this rule looks.
    fn token<'h>(&self, headers: &'h HeaderMap) -> Result<Option<&'h str>, String> {
        match &self.location {
            Location::Cookie(name) => cookie_value(headers, name.as_str()).map_err(|_| {
                format!(
                    "cookie {} appears more than once with different values; ignored",
                    name.as_str()
                )
            }),
            Location::Header { field, bearer_only } => {
                let value = match one(headers, field.name()) {
                    One::Absent => return Ok(None),
                    One::Several => {
                        return Err(format!("several {} headers; ignored", field.as_str()));
                    }
                    One::Value(v) => v,
                };
                match auth_scheme(value) {
                    Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                        Ok(Some(token))
                    }
                    // Another scheme (Basic, Negotiate) is some other source's business.
                    Some(_) if *bearer_only => Ok(None),
                    None if *bearer_only => {
                        let bare = value.as_bytes().trim_ascii();
                        if bare.eq_ignore_ascii_case(b"bearer") {
                            Err("empty Bearer credentials".into())
                        } else {
                            Ok(None)
                        }
                    }
                    // A custom header may carry the bare token.
                    _ => std::str::from_utf8(value.as_bytes())
                        .map(|s| Some(s.trim_matches([' ', '\t'])).filter(|s| !s.is_empty()))
                        .map_err(|_| "malformed token".to_string()),
                }
            }
        }
    }

    /// Verifies `token` and returns the user name, or why not (the console's ID tokens).
    pub(super) fn verify(&self, token: &str, now: Timestamp) -> Result<String, String> {
        self.check(token, now)
    }

    /// Verifies `token` and returns the user name, or why not.
    fn check(&self, token: &str, now: Timestamp) -> Result<String, String> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(format!("token longer than {MAX_TOKEN_LEN} bytes"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("malformed token".into());
        };
        if self.verify {
            let signed = &token[..header.len() + 1 + payload.len()];
            self.verify_signature(header, signed, signature)?;
        }
        let claims = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| "malformed token".to_string())?;
        self.check_claims(&claims, now)
    }

    fn verify_signature(&self, header: &str, signed: &str, signature: &str) -> Result<(), String> {
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| "malformed token".to_string())?;
        let header: JoseHeader =
            serde_json::from_slice(&header).map_err(|_| "malformed token header".to_string())?;
        if header.crit.is_some() {
            return Err("token header has critical extensions (crit); refused".into());
        }
        let alg = parse_alg(&header.alg)?;
        let keys = self.keys.current()?;
        if !keys.iter().any(|k| k.alg == alg) {
            return Err(format!("algorithm {alg:?} not accepted for this source"));
        }
        let mut tried = false;
        for key in keys.iter() {
            let kid_fits = match (&header.kid, &key.kid) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            };
            if key.alg != alg || !kid_fits {
                continue;
            }
            tried = true;
            match jsonwebtoken::crypto::verify(signature, signed.as_bytes(), &key.key, alg) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(_) => return Err("malformed signature".into()),
            }
        }
        if tried {
            Err("bad signature".into())
        } else {
            Err("no key matches the token's key id (kid)".into())
        }
    }

    fn check_claims(&self, claims: &[u8], now: Timestamp) -> Result<String, String> {
        let [exp, nbf, iss, aud, user] =
            pick(claims, ["exp", "nbf", "iss", "aud", self.claim.as_str()]).map_err(
                |e| match e {
                    PickError::Duplicate => "duplicate claims".to_string(),
                    PickError::NotObject | PickError::Malformed => "malformed claims".to_string(),
                },
            )?;
        let now = now.as_second();
        match exp.as_ref().map(numeric_date) {
            None if self.verify => return Err("token has no expiry (exp)".into()),
            None => {}
            Some(None) => return Err("exp is not a number".into()),
            Some(Some(exp)) if now > exp.saturating_add(self.leeway) => {
                return Err(format!("token expired at {}", show_time(exp)));
            }
            Some(Some(_)) => {}
        }
        match nbf.as_ref().map(numeric_date) {
            None => {}
            Some(None) => return Err("nbf is not a number".into()),
            Some(Some(nbf)) if nbf.saturating_sub(self.leeway) > now => {
                return Err(format!("token not valid before {}", show_time(nbf)));
            }
            Some(Some(_)) => {}
        }
        if let Some(want) = &self.issuer {
            match iss {
                Some(Value::String(got)) if got == *want => {}
                None => return Err("token has no issuer (iss)".into()),
                Some(_) => return Err(format!("issuer is not {want}")),
            }
        }
        if let Some(want) = &self.audience {
            let fits = match &aud {
                Some(Value::String(got)) => got == want,
                Some(Value::Array(all)) => all.iter().any(|a| a.as_str() == Some(want.as_str())),
                _ => false,
            };
            if !fits {
                return Err(match aud {
                    None => "token has no audience (aud)".to_string(),
                    Some(_) => format!("audience does not include {want}"),
                });
            }
        }
        match user {
            None => Err(format!("claim {} missing", self.claim)),
            Some(Value::String(user)) => check_user(&user)
                .map(str::to_owned)
                .map_err(|why| format!("claim {}: {why}", self.claim)),
            Some(_) => Err(format!("claim {} is not a string", self.claim)),
        }
    }
}

/// The `kid` of a token's JOSE header (`Some(None)`: the header names none), or `None` when
/// the token is too long or its header unreadable.
fn token_kid(token: &str) -> Option<Option<String>> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let header = URL_SAFE_NO_PAD.decode(token.split('.').next()?).ok()?;
    let header: JoseHeader = serde_json::from_slice(&header).ok()?;
    Some(header.kid)
}

/// The algorithms a key here may have. Everything else is refused by name when it is a
/// registered JWS algorithm, and as "unsupported" otherwise (the header is attacker text).
fn parse_alg(alg: &str) -> Result<Algorithm, String> {
    match alg {
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        "HS256" => Ok(Algorithm::HS256),
        a if a.eq_ignore_ascii_case("none") => Err("unsigned token (alg none) refused".into()),
        "HS384" | "HS512" | "RS384" | "RS512" | "ES384" | "ES512" | "PS256" | "PS384" | "PS512"
        | "EdDSA" | "ES256K" => Err(format!("algorithm {alg} not accepted for this source")),
        _ => Err("unsupported algorithm".into()),
    }
}

/// A NumericDate (RFC 7519 §2): seconds since the epoch, possibly fractional.
fn numeric_date(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    let f = v.as_f64()?;
    // Beyond ±2^62 s nothing is meaningful; clamp so the comparisons stay exact.
    f.is_finite()
        .then(|| f.clamp(-4.6e18, 4.6e18).floor() as i64)
}

fn show_time(secs: i64) -> String {
    Timestamp::from_second(secs)
        .map_or_else(|_| format!("{secs} (epoch seconds)"), |t| t.to_string())
}

fn load_secret_file(path: &Path) -> Result<Key, String> {
    let shown = path.display();
    let mut secret =
        std::fs::read(path).map_err(|e| format!("cannot read HS256 secret file {shown}: {e}"))?;
    // `echo secret > file` adds a newline that is not part of the secret.
    if secret.last() == Some(&b'\n') {
        secret.pop();
        if secret.last() == Some(&b'\r') {
            secret.pop();
        }
    }
    let key = hmac_key(&secret, &format!("HS256 secret file {shown}"));
    secret.fill(0);
    std::hint::black_box(&secret);
    key
}

fn hmac_key(secret: &[u8], what: &str) -> Result<Key, String> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(format!(
            "{what} holds {} bytes; an HS256 secret needs at least {MIN_SECRET_LEN} random bytes",
            secret.len()
        ));
    }
    Ok(Key {
        kid: None,
        alg: Algorithm::HS256,
        key: DecodingKey::from_secret(secret),
    })
}

#[cfg(test)]
mod tests;
