//! What a person may do in the console, and how the ID token says which role they have.
//!
//! - `viewer`: read the queue, cases, reports;
//! - `reviewer`: also acknowledge events and work cases (state, owner, notes);
//! - `admin`: also revoke other people's console sessions.
//!
//! The role comes from `roles_claim` (a string or a list of role names) or from the groups in
//! `groups_claim` matched against the configured lists; the highest one found wins. Nothing
//! found: no role, and the sign-in is refused (fail closed).

use serde_json::Value;

use crate::config::OidcConfig;

/// A console role, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads.
    Viewer,
    /// Reads, acknowledges, works cases.
    Reviewer,
    /// Everything, including revoking sessions.
    Admin,
}

impl Role {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
        }
    }

    fn from_name(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "reviewer" => Some(Role::Reviewer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The strings of a claim that is a string or a list of strings.
fn strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The role `claims` give under `cfg`, if any.
pub fn role_of(cfg: &OidcConfig, claims: &Value) -> Option<Role> {
    let mut best = None;
    if let Some(claim) = &cfg.roles_claim {
        best = strings(claims.get(claim))
            .into_iter()
            .filter_map(Role::from_name)
            .max();
    }
    let groups = strings(claims.get(&cfg.groups_claim));
    for (role, listed) in [
        (Role::Admin, &cfg.admin_groups),
        (Role::Reviewer, &cfg.reviewer_groups),
        (Role::Viewer, &cfg.viewer_groups),
    ] {
        if groups.iter().any(|g| listed.iter().any(|l| l == g)) {
            best = best.max(Some(role));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> OidcConfig {
        OidcConfig {
            issuer: "https://idp.example".into(),
            client_id: "c".into(),
            client_secret: None,
            redirect_url: "https://r.example/oidc/callback".into(),
            scopes: vec!["openid".into()],
            name_claim: "email".into(),
            roles_claim: Some("locgate_role".into()),
            groups_claim: "groups".into(),
            admin_groups: vec!["sec-admins".into()],
            reviewer_groups: vec!["sec-analysts".into()],
            viewer_groups: vec!["helpdesk".into()],
            session: std::time::Duration::from_secs(3600),
        }
    }

    #[test]
    fn the_highest_role_from_claim_or_groups_and_none_without_either() {
        let c = cfg();
        let r = |v: Value| role_of(&c, &v);
        assert_eq!(
            r(serde_json::json!({"groups": ["helpdesk"]})),
            Some(Role::Viewer)
        );
        assert_eq!(
            r(serde_json::json!({"groups": ["helpdesk", "sec-analysts"]})),
            Some(Role::Reviewer)
        );
        assert_eq!(
            r(serde_json::json!({"locgate_role": "admin"})),
            Some(Role::Admin)
        );
        assert_eq!(
            r(serde_json::json!({"locgate_role": ["viewer"], "groups": "sec-analysts"})),
            Some(Role::Reviewer)
        );
        assert_eq!(
            r(serde_json::json!({"groups": ["everyone"], "locgate_role": "root"})),
            None
        );
        assert_eq!(r(serde_json::json!({"groups": 7})), None);
    }
}
