//! `[employees]`: the employee directory file and what a per-employee mismatch does.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::ErrAt;
use crate::employees::CsvColumns;
use crate::policy::Action;
use crate::policy::employee::EmployeeRules;
use crate::values::ConfigError;

/// `[employees]`: who declared what, and what a mismatch does.
#[derive(Debug, Clone)]
pub struct EmployeesConfig {
    /// Directory file (TOML or CSV), resolved against the config's directory.
    pub file: PathBuf,
    /// Home radius for employees that do not declare one.
    pub default_radius_km: f64,
    /// Actions for the per-employee reasons.
    pub rules: EmployeeRules,
    /// Action when a session cookie is used from somewhere other than where it was issued.
    pub session_location_changed: Action,
    /// Which CSV header holds which field (`columns = { id = "Employee ID" }`).
    pub columns: CsvColumns,
}

/// Checks `[employees]`; `None` when the section is absent.
pub(super) fn check(
    raw: Option<RawEmployees>,
    base: &Path,
    err: ErrAt<'_>,
) -> Result<Option<EmployeesConfig>, ConfigError> {
    let Some(e) = raw else { return Ok(None) };
    let radius = match e.default_radius_km {
        None => 100.0,
        Some(r) if r.get_ref().is_finite() && *r.get_ref() > 0.0 => *r.get_ref(),
        Some(r) => {
            return Err(err(
                r.span(),
                "default_radius_km must be a positive number of km".into(),
            ));
        }
    };
    let columns = match &e.columns {
        None => CsvColumns::default(),
        Some(c) => CsvColumns::new(
            c.get_ref()
                .iter()
                .map(|(field, header)| (field.as_str(), header.as_str())),
        )
        .map_err(|m| err(c.span(), m))?,
    };
    Ok(Some(EmployeesConfig {
        file: base.join(e.file),
        columns,
        default_radius_km: radius,
        rules: EmployeeRules {
            country_mismatch: e.country_mismatch,
            outside_home_radius: e.outside_home_radius,
            outside_home_radius_domestic: e.outside_home_radius_domestic,
            region_mismatch: e.region_mismatch,
            unknown_employee: e.unknown_employee,
        },
        session_location_changed: e.session_location_changed,
    }))
}

/// `[employees]` as written; the actions default to flag (mismatches) or note (finer ones).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEmployees {
    file: PathBuf,
    default_radius_km: Option<Spanned<f64>>,
    columns: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    #[serde(default = "flag")]
    unknown_employee: Action,
    #[serde(default = "flag")]
    country_mismatch: Action,
    #[serde(default = "flag")]
    outside_home_radius: Action,
    #[serde(default = "note")]
    outside_home_radius_domestic: Action,
    #[serde(default = "note")]
    region_mismatch: Action,
    #[serde(default = "flag")]
    session_location_changed: Action,
}

fn flag() -> Action {
    Action::Flag
}

fn note() -> Action {
    Action::Note
}
