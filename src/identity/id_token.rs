//! ID tokens for the admin console's OpenID Connect sign-in: the same checks as a `jwt`
//! identity source (keys by discovery from the issuer, refreshed while running; algorithm by
//! key; `exp`, `iss`, `aud`), and the whole claim set handed back so the console can check the
//! `nonce` and read roles or groups.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;

use super::config::{HeaderField, JwtConfig};
use super::jwt::{JwtRule, MAX_TOKEN_LEN};

/// Verifies the ID tokens of one issuer for one client.
#[derive(Debug, Clone)]
pub struct IdTokenVerifier {
    rule: JwtRule,
}

impl IdTokenVerifier {
    /// Tokens of `issuer` (keys found by its discovery document) for `client_id` (`aud`),
    /// naming the user in `claim`.
    pub fn new(issuer: &str, client_id: &str, claim: &str) -> Result<IdTokenVerifier, String> {
        let config = JwtConfig {
            header: Some(HeaderField::parse("authorization")?),
            cookie: None,
            claim: claim.to_owned(),
            jwks: None,
            jwks_url: None,
            hs256_secret_file: None,
            hs256_secret: None,
            issuer: Some(issuer.to_owned()),
            audience: Some(client_id.to_owned()),
            leeway: None,
            verify: true,
        };
        Ok(IdTokenVerifier {
            rule: JwtRule::from_config(&config, Path::new("."))?,
        })
    }

    /// The user name and every claim of a verified `token`, or why it is refused.
    pub fn verify(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<(String, serde_json::Value), String> {
        let user = self.rule.verify(token, now)?;
        // Verified above: the payload decodes (the size was bounded there too).
        let payload = token
            .get(..MAX_TOKEN_LEN.min(token.len()))
            .and_then(|t| t.split('.').nth(1))
            .ok_or("malformed token")?;
        let claims = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| "malformed token".to_string())?;
        let claims = serde_json::from_slice(&claims).map_err(|_| "malformed claims".to_string())?;
        Ok((user, claims))
    }
}
