//! `[admin.oidc]`: the console's sign-in with the company's identity provider (OpenID Connect,
//! authorization code with PKCE), and how a person's role comes from the ID token.
//!
//! ```toml
//! [admin.oidc]
//! issuer = "https://login.example.com"            # discovery: {issuer}/.well-known/openid-configuration
//! client_id = "locgate-console"
//! client_secret_file = "/etc/locgate/oidc-secret"  # omit for a public client (PKCE alone)
//! redirect_url = "https://review.example.com/oidc/callback"
//! name_claim = "email"                             # who the trail says did it
//! groups_claim = "groups"
//! admin_groups = ["sec-admins"]
//! reviewer_groups = ["sec-analysts"]
//! viewer_groups = ["it-helpdesk"]
//! # or: roles_claim = "locgate_role"              # the claim holds viewer / reviewer / admin
//! session = "8h"
//! ```
//!
//! With `[admin.oidc]` the browser signs in only through the provider; the admin token stays
//! for the API and scripts.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::ErrAt;
use super::secret::Secret;
use crate::values::{ConfigError, Dur};

/// The console's OpenID Connect client.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcConfig {
    /// The provider (`iss`), where discovery starts.
    pub issuer: String,
    /// This console's client id (the ID token's `aud`).
    pub client_id: String,
    /// The client secret (sent with HTTP Basic to the token endpoint); none for a public client.
    pub client_secret: Option<Secret>,
    /// Where the provider sends the browser back (its path is `/oidc/callback`).
    pub redirect_url: String,
    /// Scopes asked for (`openid` always among them).
    pub scopes: Vec<String>,
    /// The claim naming the person.
    pub name_claim: String,
    /// A claim holding the role's name (`viewer`, `reviewer`, `admin`), one or a list.
    pub roles_claim: Option<String>,
    /// The claim holding the person's groups.
    pub groups_claim: String,
    /// Groups whose members are admins.
    pub admin_groups: Vec<String>,
    /// Groups whose members are reviewers.
    pub reviewer_groups: Vec<String>,
    /// Groups whose members are viewers.
    pub viewer_groups: Vec<String>,
    /// How long a console session lasts.
    pub session: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOidc {
    issuer: Spanned<String>,
    client_id: Spanned<String>,
    client_secret_file: Option<Spanned<PathBuf>>,
    redirect_url: Spanned<String>,
    scopes: Option<Vec<String>>,
    name_claim: Option<String>,
    roles_claim: Option<String>,
    groups_claim: Option<String>,
    #[serde(default)]
    admin_groups: Vec<String>,
    #[serde(default)]
    reviewer_groups: Vec<String>,
    #[serde(default)]
    viewer_groups: Vec<String>,
    session: Option<Spanned<Dur>>,
}

/// An `https://` URL, or `http://` to a loopback host (a test provider, a local proxy).
fn secure_url(s: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(s).map_err(|e| format!("`{s}` is not a URL: {e}"))?;
    let loopback = match url.host_str() {
        Some(h) => match h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
        {
            Ok(ip) => ip.is_loopback(),
            Err(_) => h.eq_ignore_ascii_case("localhost"),
        },
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(format!(
            "`{s}` must be https (plain http only to a loopback host): tokens and codes cross it"
        )),
    }
}

/// Checks `[admin.oidc]`.
pub(super) fn oidc(
    raw: Option<RawOidc>,
    base: &std::path::Path,
    err: ErrAt<'_>,
) -> Result<Option<OidcConfig>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    secure_url(raw.issuer.get_ref()).map_err(|m| err(raw.issuer.span(), format!("issuer: {m}")))?;
    let redirect = secure_url(raw.redirect_url.get_ref())
        .map_err(|m| err(raw.redirect_url.span(), format!("redirect_url: {m}")))?;
    if redirect.path() != "/oidc/callback" {
        return Err(err(
            raw.redirect_url.span(),
            "redirect_url: its path must be /oidc/callback (where the console receives the code)"
                .into(),
        ));
    }
    if raw.client_id.get_ref().trim().is_empty() {
        return Err(err(raw.client_id.span(), "client_id is empty".into()));
    }
    let client_secret = match raw.client_secret_file {
        None => None,
        Some(f) => {
            let path = base.join(f.get_ref());
            let text = std::fs::read_to_string(&path).map_err(|e| {
                err(
                    f.span(),
                    format!("client_secret_file {}: cannot read: {e}", path.display()),
                )
            })?;
            let text = text.trim();
            if text.is_empty() {
                return Err(err(
                    f.span(),
                    format!("client_secret_file {}: empty", path.display()),
                ));
            }
            Some(Secret(text.to_owned()))
        }
    };
    if raw.roles_claim.is_none()
        && raw.admin_groups.is_empty()
        && raw.reviewer_groups.is_empty()
        && raw.viewer_groups.is_empty()
    {
        return Err(err(
            raw.issuer.span(),
            "[admin.oidc] gives nobody a role: set roles_claim, or admin_groups / reviewer_groups / viewer_groups".into(),
        ));
    }
    let mut scopes = raw
        .scopes
        .unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]);
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".into());
    }
    let session = match raw.session {
        None => Duration::from_secs(8 * 3600),
        Some(d) => {
            let v = d.get_ref().0;
            if v < Duration::from_secs(60) || v > Duration::from_secs(7 * 86_400) {
                return Err(err(d.span(), "session must be between 1m and 7d".into()));
            }
            v
        }
    };
    Ok(Some(OidcConfig {
        issuer: raw.issuer.into_inner(),
        client_id: raw.client_id.into_inner(),
        client_secret,
        redirect_url: raw.redirect_url.into_inner(),
        scopes,
        name_claim: raw.name_claim.unwrap_or_else(|| "email".into()),
        roles_claim: raw.roles_claim,
        groups_claim: raw.groups_claim.unwrap_or_else(|| "groups".into()),
        admin_groups: raw.admin_groups,
        reviewer_groups: raw.reviewer_groups,
        viewer_groups: raw.viewer_groups,
        session,
    }))
}
