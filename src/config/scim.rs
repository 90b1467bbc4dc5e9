//! `[scim]`: the SCIM 2.0 server an IdP provisions employees through (`src/scim/`).
//!
//! ```toml
//! [scim]
//! token_file = "/etc/locgate/scim-token"   # or token = "..."; not the admin token
//! store = "/var/lib/locgate/scim.sqlite"
//! ```
//!
//! Served under `/scim/v2/` on the admin listener, so `[admin]` is required; the users join the
//! `[employees]` directory (whose `default_radius_km` they use), so that is required too.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::review::AdminConfig;
use super::secret::{Secret, secret};
use super::{EmployeesConfig, ErrAt};
use crate::values::ConfigError;

/// `[scim]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimConfig {
    /// The bearer token the IdP presents (its own secret: trust is per purpose).
    pub token: Secret,
    /// The SQLite file holding the provisioned users.
    pub store: PathBuf,
    /// Home radius of users placed at a city (`[employees] default_radius_km`).
    pub default_radius_km: f64,
}

/// `[scim]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScim {
    token: Option<Spanned<String>>,
    token_file: Option<Spanned<PathBuf>>,
    store: Spanned<PathBuf>,
}

/// Checks `[scim]` against the sections it needs; `None` when absent.
pub(super) fn check(
    raw: Option<Spanned<RawScim>>,
    admin: Option<&AdminConfig>,
    employees: Option<&EmployeesConfig>,
    base: &Path,
    err: ErrAt<'_>,
    whole: &dyn Fn(String) -> ConfigError,
) -> Result<Option<ScimConfig>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let span = raw.span();
    let raw = raw.into_inner();
    let Some(admin) = admin else {
        return Err(err(
            span,
            "[scim] is served on the admin listener: configure [admin] too".into(),
        ));
    };
    let Some(employees) = employees else {
        return Err(err(
            span,
            "[scim] users join the employee directory: configure [employees] too".into(),
        ));
    };
    let token_span = raw
        .token
        .as_ref()
        .map(Spanned::span)
        .or_else(|| raw.token_file.as_ref().map(Spanned::span))
        .unwrap_or(span);
    let token = secret("scim", raw.token, raw.token_file, base, err, whole)?;
    if token == admin.token {
        return Err(err(
            token_span,
            "the SCIM token must differ from the admin token: the IdP may provision users, not \
             review events (and the reverse)"
                .into(),
        ));
    }
    let store_span = raw.store.span();
    let store = base.join(raw.store.into_inner());
    if store.as_os_str().is_empty() || store.is_dir() {
        return Err(err(
            store_span,
            format!("store {} must be a file path", store.display()),
        ));
    }
    Ok(Some(ScimConfig {
        token,
        store,
        default_radius_km: employees.default_radius_km,
    }))
}
