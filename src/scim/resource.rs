//! The User resource (RFC 7643 §4.1) as this server keeps it: the JSON object the IdP sent,
//! checked and normalised, minus what the server owns (`id`, `meta`) and what it must never
//! keep (`password`, which Okta sends on create).
//!
//! The resource stays JSON rather than a struct: provisioning clients send many attributes
//! locgate does not read (`name`, `phoneNumbers`, the enterprise extension), and RFC 7644 wants
//! them returned as sent. Only what the directory reads is checked.

use serde_json::{Map, Value};

use super::ScimError;

/// The core User schema.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The enterprise User extension (Entra sends `employeeNumber`, `department`, `manager`).
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The PATCH request schema.
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The list response schema.
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// Longest `userName` accepted (it becomes a directory id and goes into events).
pub const MAX_USER_NAME: usize = 512;

/// Top-level attributes whose spelling is normalised: attribute names are case-insensitive
/// (RFC 7643 §2.1), and the directory reads these by name.
const CANONICAL: &[&str] = &[
    "schemas",
    "id",
    "externalId",
    "meta",
    "userName",
    "name",
    "displayName",
    "active",
    "emails",
    "addresses",
    "timezone",
    "password",
];

/// The key of `map` equal to `name` ignoring ASCII case, if any.
pub fn key_ci<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a String> {
    map.keys().find(|k| k.eq_ignore_ascii_case(name))
}

/// The value of attribute `name` (case-insensitive).
pub fn get_ci<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    key_ci(map, name).and_then(|k| map.get(k))
}

/// A string attribute (case-insensitive name), trimmed, `None` when absent, not a string or
/// blank.
pub fn str_ci<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    get_ci(map, name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A SCIM boolean: JSON `true`/`false`, or the strings `"True"`/`"False"` (any case) that Entra
/// sends in PATCH values.
pub fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Checks a User body (create, replace, or the result of a PATCH) and returns it normalised:
/// known attribute names in canonical case, `active` and every `primary` a JSON boolean
/// (`active` defaults to true), `userName` trimmed; `id`, `meta` and `password` removed.
pub fn normalize_user(body: Value) -> Result<Map<String, Value>, ScimError> {
    let Value::Object(raw) = body else {
        return Err(ScimError::invalid_syntax("a User must be a JSON object"));
    };
    let mut user = Map::new();
    for (k, v) in raw {
        let key = CANONICAL
            .iter()
            .find(|c| c.eq_ignore_ascii_case(&k))
            .map_or(k, |c| (*c).to_string());
        user.insert(key, v);
    }
    for gone in ["id", "meta", "password"] {
        user.remove(gone);
    }
    match user.get("schemas") {
        Some(Value::Array(list)) if list.iter().any(|s| s.as_str() == Some(USER_SCHEMA)) => {}
        Some(_) => {
            return Err(ScimError::invalid_syntax(format!(
                "schemas must list {USER_SCHEMA}"
            )));
        }
        None => {
            user.insert("schemas".into(), Value::Array(vec![USER_SCHEMA.into()]));
        }
    }
    let name = match user.get("userName") {
        Some(Value::String(s)) => {
            crate::employees::check::name(s, "userName").map_err(ScimError::invalid_value)?
        }
        Some(_) => return Err(ScimError::invalid_value("userName must be a string")),
        None => return Err(ScimError::invalid_value("userName is required")),
    };
    if name.chars().count() > MAX_USER_NAME {
        return Err(ScimError::invalid_value(format!(
            "userName is longer than {MAX_USER_NAME} characters"
        )));
    }
    user.insert("userName".into(), Value::String(name));
    let active = match user.get("active") {
        None | Some(Value::Null) => true,
        Some(v) => {
            boolean(v).ok_or_else(|| ScimError::invalid_value("active must be true or false"))?
        }
    };
    user.insert("active".into(), Value::Bool(active));
    if let Some(v) = user.get("externalId")
        && !v.is_string()
        && !v.is_null()
    {
        return Err(ScimError::invalid_value("externalId must be a string"));
    }
    if let Some(v) = user.get("timezone")
        && !v.is_string()
        && !v.is_null()
    {
        return Err(ScimError::invalid_value("timezone must be a string"));
    }
    for multi in ["emails", "addresses"] {
        match user.get_mut(multi) {
            None => {}
            Some(Value::Null) => {
                user.remove(multi);
            }
            Some(Value::Array(items)) => {
                for item in items.iter_mut() {
                    let Value::Object(o) = item else {
                        return Err(ScimError::invalid_value(format!(
                            "each of {multi} must be an object"
                        )));
                    };
                    if let Some(k) = key_ci(o, "primary").cloned() {
                        let b = o.get(&k).and_then(boolean).ok_or_else(|| {
                            ScimError::invalid_value(format!("{multi}: primary must be a boolean"))
                        })?;
                        o.remove(&k);
                        o.insert("primary".into(), Value::Bool(b));
                    }
                }
            }
            Some(_) => {
                return Err(ScimError::invalid_value(format!("{multi} must be a list")));
            }
        }
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_user_is_normalised_and_loses_what_the_server_owns() {
        let u = normalize_user(json!({
            "schemas": [USER_SCHEMA], "UserName": " Alice@Example.com ", "Active": "False",
            "id": "forged", "meta": {}, "password": "hunter2",
            "emails": [{"value": "a@example.com", "Primary": "True"}]
        }))
        .expect("valid");
        assert_eq!(u["userName"], "Alice@Example.com");
        assert_eq!(u["active"], false);
        assert_eq!(u["emails"][0]["primary"], true);
        for gone in ["id", "meta", "password"] {
            assert!(!u.contains_key(gone), "{gone} kept");
        }
    }

    #[test]
    fn bad_users_are_refused_with_the_scim_keyword() {
        let e = normalize_user(json!({"schemas": [USER_SCHEMA]})).unwrap_err();
        assert_eq!((e.status, e.scim_type), (400, Some("invalidValue")));
        let e = normalize_user(json!([1])).unwrap_err();
        assert_eq!(e.scim_type, Some("invalidSyntax"));
        let e = normalize_user(json!({"userName": "a", "active": "maybe"})).unwrap_err();
        assert_eq!(e.scim_type, Some("invalidValue"));
        let e = normalize_user(json!({"userName": "a", "addresses": "x"})).unwrap_err();
        assert_eq!(e.scim_type, Some("invalidValue"));
        let e = normalize_user(json!({"userName": "a\u{7}"})).unwrap_err();
        assert_eq!(e.scim_type, Some("invalidValue"));
    }
}
