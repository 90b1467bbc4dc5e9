//! Console sign-in with the company's identity provider: OpenID Connect, authorization code
//! flow with PKCE (RFC 7636, S256), as a confidential client when a secret is configured.
//!
//! What protects each step:
//! - **state**: random, kept server-side for ten minutes and usable once, and also bound to
//!   the browser that started the sign-in (a `SameSite=Lax` cookie scoped to `/oidc`), so an
//!   attacker cannot finish their own sign-in in a victim's browser (login CSRF);
//! - **PKCE**: the code is worthless without the verifier, which never leaves the server;
//! - **nonce**: the ID token must carry the one sent, so a token minted for another sign-in
//!   cannot be replayed into this one;
//! - **ID token**: checked as the `jwt` identity source checks tokens (keys from the issuer's
//!   discovery, refreshed while running; algorithm by key; `exp`, `iss`, `aud` = client id);
//! - **role**: from the token's claims ([`super::roles`]); none means no session.
//!
//! Endpoints come from the provider's discovery document, fetched on first use and kept; they
//! must be https (or http to a loopback host).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Url;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::roles::{Role, role_of};
use super::sessions::random_hex32;
use crate::config::OidcConfig;
use crate::identity::IdTokenVerifier;

/// How long a started sign-in may take.
const PENDING_TTL: Duration = Duration::from_secs(600);
/// Most sign-ins pending at once (each costs a little memory; the oldest go first).
const MAX_PENDING: usize = 1024;
/// Most sign-ins pending from one client address (its oldest go first): one address cannot
/// push everyone else's sign-ins out of the table.
const MAX_PENDING_PER_CLIENT: usize = 16;
/// How long discovered endpoints are used before they are discovered again (a provider that
/// moves its endpoints is followed without a restart; the last good ones stay when it fails).
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// Longest text of the provider's (or a caller's) shown or logged.
const MAX_SHOWN: usize = 200;
/// Timeout of the calls to the provider.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read from the provider.
const MAX_ANSWER: u64 = 256 * 1024;

/// The provider's endpoints.
#[derive(Debug, Clone)]
struct Endpoints {
    authorization: Url,
    token: Url,
}

struct Pending {
    verifier: String,
    nonce: String,
    created: Instant,
    client: IpAddr,
}

/// `text` fit to show and log: at most [`MAX_SHOWN`] characters, control characters as `?`
/// (an error text comes from the provider, or from whoever calls the callback).
pub(super) fn shown(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_SHOWN)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().nth(MAX_SHOWN).is_some() {
        out.push('…');
    }
    out
}

/// The console's OpenID Connect client.
pub(super) struct Oidc {
    cfg: OidcConfig,
    ids: IdTokenVerifier,
    client: reqwest::Client,
    /// The endpoints and when to discover them again.
    endpoints: tokio::sync::Mutex<Option<(Endpoints, Instant)>>,
    pending: Mutex<HashMap<String, Pending>>,
}

/// Who signed in.
pub(super) struct SignedIn {
    pub(super) name: String,
    pub(super) role: Role,
}

/// `https://`, or `http://` to a loopback host.
fn secure(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => url.host_str().is_some_and(|h| {
            let bare = h.trim_start_matches('[').trim_end_matches(']');
            bare.parse::<std::net::IpAddr>()
                .map_or(h.eq_ignore_ascii_case("localhost"), |ip| ip.is_loopback())
        }),
        _ => false,
    }
}

/// An `application/x-www-form-urlencoded` body.
fn form(pairs: &[(&str, &str)]) -> String {
    let mut u = match Url::parse("http://localhost/") {
        Ok(u) => u,
        Err(_) => return String::new(),
    };
    u.query_pairs_mut().extend_pairs(pairs);
    u.query().unwrap_or("").to_owned()
}

impl Oidc {
    /// The client for `cfg`; its keys are fetched by the identity key refresher.
    pub(super) fn new(cfg: OidcConfig) -> Result<Oidc, String> {
        let ids = IdTokenVerifier::new(&cfg.issuer, &cfg.client_id, &cfg.name_claim)?;
        let client = crate::http_client::build_without_redirects(TIMEOUT)?;
        Ok(Oidc {
            cfg,
            ids,
            client,
            endpoints: tokio::sync::Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
        })
    }

    /// How long its sessions last.
    pub(super) fn session_ttl(&self) -> Duration {
        self.cfg.session
    }

    /// The provider's name for the login page.
    pub(super) fn issuer(&self) -> &str {
        &self.cfg.issuer
    }

    async fn get(&self, url: &Url) -> Result<Vec<u8>, String> {
        let mut resp = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("{url}: {}", crate::http_client::chain(&e)))?;
        if !resp.status().is_success() {
            return Err(format!("{url} answered {}", resp.status()));
        }
        crate::http_client::read_body(&mut resp, MAX_ANSWER, |_, _| {}).await
    }

    /// The endpoints: discovered on first use and again once an hour; the last good ones
    /// while the provider cannot say.
    async fn endpoints(&self) -> Result<Endpoints, String> {
        let mut known = self.endpoints.lock().await;
        let now = Instant::now();
        if let Some((e, again)) = known.as_ref()
            && now < *again
        {
            return Ok(e.clone());
        }
        match self.discover().await {
            Ok(e) => {
                *known = Some((e.clone(), now + DISCOVERY_TTL));
                Ok(e)
            }
            Err(why) => match known.as_mut() {
                Some((e, again)) => {
                    tracing::warn!(error = %why, "console sign-in: discovery failed; the last endpoints stay");
                    // Tried again in a minute, not on every sign-in.
                    *again = now + Duration::from_secs(60);
                    Ok(e.clone())
                }
                None => Err(why),
            },
        }
    }

    /// Reads the provider's configuration document.
    async fn discover(&self) -> Result<Endpoints, String> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            authorization_endpoint: String,
            token_endpoint: String,
        }
        let address = format!(
            "{}/.well-known/openid-configuration",
            self.cfg.issuer.trim_end_matches('/')
        );
        let url = Url::parse(&address).map_err(|e| format!("{address}: {e}"))?;
        let body = self.get(&url).await?;
        let doc: Discovery = serde_json::from_slice(&body)
            .map_err(|e| format!("{address}: not an OpenID provider configuration: {e}"))?;
        if doc.issuer != self.cfg.issuer {
            return Err(format!(
                "{address} names issuer `{}`, not `{}`; refused",
                doc.issuer, self.cfg.issuer
            ));
        }
        let endpoint = |s: &str| -> Result<Url, String> {
            let u = Url::parse(s).map_err(|e| format!("endpoint `{s}`: {e}"))?;
            if !secure(&u) {
                return Err(format!("endpoint `{s}` is not https"));
            }
            Ok(u)
        };
        Ok(Endpoints {
            authorization: endpoint(&doc.authorization_endpoint)?,
            token: endpoint(&doc.token_endpoint)?,
        })
    }

    /// Starts a sign-in: the provider's address to send the browser to, and the state the
    /// browser's cookie must carry back.
    pub(super) async fn start(&self, client: IpAddr) -> Result<(String, String), String> {
        let endpoints = self.endpoints().await?;
        let (Some(state), Some(nonce), Some(verifier)) =
            (random_hex32(), random_hex32(), random_hex32())
        else {
            return Err("no randomness for a sign-in".into());
        };
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        {
            let now = Instant::now();
            let mut pending = self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            pending.retain(|_, p| now.duration_since(p.created) < PENDING_TTL);
            if pending.values().filter(|p| p.client == client).count() >= MAX_PENDING_PER_CLIENT
                && let Some(oldest) = pending
                    .iter()
                    .filter(|(_, p)| p.client == client)
                    .min_by_key(|(_, p)| p.created)
                    .map(|(k, _)| k.clone())
            {
                pending.remove(&oldest);
            }
            if pending.len() >= MAX_PENDING
                && let Some(oldest) = pending
                    .iter()
                    .min_by_key(|(_, p)| p.created)
                    .map(|(k, _)| k.clone())
            {
                pending.remove(&oldest);
            }
            pending.insert(
                state.clone(),
                Pending {
                    verifier,
                    nonce: nonce.clone(),
                    created: now,
                    client,
                },
            );
        }
        let mut url = endpoints.authorization;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.cfg.client_id)
            .append_pair("redirect_uri", &self.cfg.redirect_url)
            .append_pair("scope", &self.cfg.scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        Ok((url.to_string(), state))
    }

    /// Finishes a sign-in from the provider's redirect: `state` as it came back, `bound` the
    /// state in the browser's cookie.
    pub(super) async fn finish(
        &self,
        code: &str,
        state: &str,
        bound: Option<&str>,
    ) -> Result<SignedIn, String> {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(state)
            .ok_or("unknown or already used sign-in (state); start again")?;
        if !bound.is_some_and(|b| bool::from(b.as_bytes().ct_eq(state.as_bytes()))) {
            return Err(
                "this sign-in was started in another browser (state cookie); start again".into(),
            );
        }
        if pending.created.elapsed() >= PENDING_TTL {
            return Err("the sign-in took longer than ten minutes; start again".into());
        }
        let endpoints = self.endpoints().await?;
        let body = form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.cfg.redirect_url),
            ("code_verifier", &pending.verifier),
            ("client_id", &self.cfg.client_id),
        ]);
        let mut req = self
            .client
            .post(endpoints.token.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(TIMEOUT)
            .body(body);
        if let Some(secret) = &self.cfg.client_secret {
            // RFC 6749 §2.3.1: client id and secret form-encoded, then Basic.
            let user = form(&[("u", &self.cfg.client_id)]);
            let pass = form(&[("p", secret.expose())]);
            let encoded = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                user.trim_start_matches("u="),
                pass.trim_start_matches("p=")
            ));
            req = req.header(reqwest::header::AUTHORIZATION, format!("Basic {encoded}"));
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| format!("token endpoint: {}", crate::http_client::chain(&e)))?;
        let status = resp.status();
        let answer = crate::http_client::read_body(&mut resp, MAX_ANSWER, |_, _| {}).await?;
        #[derive(Deserialize)]
        struct TokenAnswer {
            id_token: Option<String>,
            error: Option<String>,
        }
        let answer: TokenAnswer = serde_json::from_slice(&answer)
            .map_err(|_| format!("token endpoint answered {status} without JSON"))?;
        if !status.is_success() {
            return Err(format!(
                "token endpoint refused the code: {}",
                shown(answer.error.as_deref().unwrap_or(status.as_str()))
            ));
        }
        let token = answer.id_token.ok_or("token endpoint gave no id_token")?;
        let (name, claims) = self
            .ids
            .verify(&token, jiff::Timestamp::now())
            .map_err(|why| format!("ID token refused: {why}"))?;
        let nonce_ok = claims
            .get("nonce")
            .and_then(|n| n.as_str())
            .is_some_and(|n| bool::from(n.as_bytes().ct_eq(pending.nonce.as_bytes())));
        if !nonce_ok {
            return Err("ID token refused: its nonce is not this sign-in's".into());
        }
        let role = role_of(&self.cfg, &claims).ok_or_else(|| {
            format!("{name} has no console role (no role claim or group matches)")
        })?;
        Ok(SignedIn { name, role })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn provider_text_is_bounded_and_printable() {
        assert_eq!(shown("invalid_grant"), "invalid_grant");
        assert_eq!(shown("a\nb\u{1b}[31m"), "a?b?[31m");
        let long = "x".repeat(10_000);
        assert_eq!(shown(&long).chars().count(), MAX_SHOWN + 1);
    }

    #[test]
    fn form_bodies_are_encoded() {
        assert_eq!(form(&[("a", "b c&d"), ("e", "=")]), "a=b+c%26d&e=%3D");
    }

    #[test]
    fn only_https_or_loopback_http() {
        let u = |s: &str| secure(&Url::parse(s).expect("url"));
        assert!(u("https://idp.example/token"));
        assert!(u("http://127.0.0.1:8080/token"));
        assert!(u("http://[::1]/token"));
        assert!(!u("http://idp.example/token"));
        assert!(!u("ftp://idp.example/token"));
    }
}
