//! The list filters provisioning clients send (RFC 7644 §3.4.2.2): `userName eq "..."` (Okta
//! and Entra look a user up before creating one) and `externalId eq "..."`. Anything else is
//! answered 400 `invalidFilter` rather than ignored: a filter read as "everyone" would make the
//! IdP think a user exists and skip the create.

use serde_json::Value;

use super::ScimError;
use super::resource::USER_SCHEMA;

/// Longest filter read.
const MAX_FILTER: usize = 2048;

/// A supported filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `userName eq "x"`: compared ignoring case (`userName` is not case-exact, RFC 7643 §4.1.1).
    UserName(String),
    /// `externalId eq "x"`: compared exactly (`externalId` is case-exact).
    ExternalId(String),
}

impl Filter {
    /// Whether a user with these attributes matches.
    pub fn matches(&self, user_name: &str, external_id: Option<&str>) -> bool {
        match self {
            Filter::UserName(v) => v.to_lowercase() == user_name.to_lowercase(),
            Filter::ExternalId(v) => external_id == Some(v.as_str()),
        }
    }
}

/// Reads `attr eq "value"`; the attribute may carry the core schema URN
/// (`urn:ietf:params:scim:schemas:core:2.0:User:userName`), names and `eq` ignore case.
pub fn parse(text: &str) -> Result<Filter, ScimError> {
    if text.len() > MAX_FILTER {
        return Err(ScimError::invalid_filter("filter is too long"));
    }
    let t = text.trim();
    let unsupported = || {
        ScimError::invalid_filter(format!(
            "unsupported filter `{t}`: only `userName eq \"...\"` and `externalId eq \"...\"`"
        ))
    };
    let (attr, rest) = t.split_once(char::is_whitespace).ok_or_else(unsupported)?;
    let (op, value) = rest
        .trim_start()
        .split_once(char::is_whitespace)
        .ok_or_else(unsupported)?;
    if !op.eq_ignore_ascii_case("eq") {
        return Err(unsupported());
    }
    let attr = match attr.get(..USER_SCHEMA.len() + 1) {
        Some(p) if p.eq_ignore_ascii_case(&format!("{USER_SCHEMA}:")) => {
            attr.get(USER_SCHEMA.len() + 1..).unwrap_or("")
        }
        _ => attr,
    };
    let value = match serde_json::from_str::<Value>(value.trim()) {
        Ok(Value::String(s)) => s,
        _ => {
            return Err(ScimError::invalid_filter(format!(
                "filter value in `{t}` must be one quoted string"
            )));
        }
    };
    if attr.eq_ignore_ascii_case("userName") {
        Ok(Filter::UserName(value))
    } else if attr.eq_ignore_ascii_case("externalId") {
        Ok(Filter::ExternalId(value))
    } else {
        Err(unsupported())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lookups_okta_and_entra_send_are_read() {
        assert_eq!(
            parse(r#"userName eq "test.user@okta.local""#),
            Ok(Filter::UserName("test.user@okta.local".into()))
        );
        assert_eq!(
            parse(r#"USERNAME EQ "a\"b""#),
            Ok(Filter::UserName("a\"b".into()))
        );
        assert_eq!(
            parse(r#"externalId eq "00u1""#),
            Ok(Filter::ExternalId("00u1".into()))
        );
        assert_eq!(
            parse(&format!("{USER_SCHEMA}:userName eq \"x\"")),
            Ok(Filter::UserName("x".into()))
        );
        assert!(Filter::UserName("Bob@X".into()).matches("bob@x", None));
        assert!(!Filter::ExternalId("A".into()).matches("bob", Some("a")));
    }

    #[test]
    fn anything_else_is_invalid_filter() {
        for bad in [
            "",
            "userName",
            r#"userName co "a""#,
            r#"userName eq "a" and active eq true"#,
            r#"emails.value eq "a""#,
            "userName eq a",
            r#"userName eq 1"#,
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(
                (e.status, e.scim_type),
                (400, Some("invalidFilter")),
                "{bad}"
            );
        }
    }
}
