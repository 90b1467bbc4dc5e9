//! Bearer tokens from the config (`token` or `token_file`) for the admin console, SCIM and the
//! event outputs: read, checked for strength, and kept in a type that never prints.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::ErrAt;
use crate::values::ConfigError;

/// A secret that never prints (`Debug` shows `<redacted>`), so config dumps and logs cannot leak
/// the admin token.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub(super) String);

impl Secret {
    /// Wraps a secret made by the program itself (a generated token).
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The value, for the constant-time comparison only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Shortest token accepted: a guessable token makes the whole review console public.
const MIN_TOKEN: usize = 16;

/// Reads a bearer token given as `token` or `token_file` (one of them, checked for length and
/// spaces); `what` names the section in messages (`admin`, `scim`).
pub(super) fn secret(
    what: &str,
    token: Option<Spanned<String>>,
    token_file: Option<Spanned<PathBuf>>,
    base: &Path,
    err: ErrAt<'_>,
    whole: &dyn Fn(String) -> ConfigError,
) -> Result<Secret, ConfigError> {
    let (token, span) = match (token, token_file) {
        (Some(_), Some(f)) => {
            return Err(err(
                f.span(),
                "give either token or token_file, not both".into(),
            ));
        }
        (Some(t), None) => {
            let span = t.span();
            (t.into_inner(), span)
        }
        (None, Some(f)) => {
            let span = f.span();
            let path = base.join(f.get_ref());
            let text = std::fs::read_to_string(&path).map_err(|e| {
                err(
                    span.clone(),
                    format!("token_file {}: cannot read: {e}", path.display()),
                )
            })?;
            (text.trim().to_owned(), span)
        }
        (None, None) => {
            return Err(whole(format!(
                "[{what}] needs token or token_file: every {what} route requires a bearer token"
            )));
        }
    };
    if token.len() < MIN_TOKEN || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err(
            span,
            format!(
                "{what} token must be at least {MIN_TOKEN} visible characters with no spaces \
                 (e.g. `openssl rand -hex 32`)"
            ),
        ));
    }
    Ok(Secret(token))
}
