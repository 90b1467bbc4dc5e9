//! The `form` source: the user name typed into a login form, read from the POST body.
//!
//! Many portals log in with a plain form POST and then keep a session cookie, so the body of
//! that one request is the only place the name appears. The proxy reads the body (at most
//! [`FormRule::max_body`] bytes; it answers 413 above that), hands it here, and forwards it
//! unchanged. The identity is **unverified**: locgate does not know whether the password was
//! right, so it may only tighten policy.
//!
//! Bodies are `application/x-www-form-urlencoded` (WHATWG URL §5: `&`-separated pairs,
//! percent-encoding, `+` for space), JSON (a top-level string member), `multipart/form-data`
//! (RFC 7578, [`super::multipart`]) or `text/plain` (HTML's `enctype="text/plain"`: one
//! `name=value` per line, nothing escaped). The field in the target's query counts too
//! ([`FormRule::from_query`]): frameworks such as PHP's `$_REQUEST` or Spring's request
//! parameters merge it with the body. A field that appears twice is refused rather than
//! guessed: frameworks disagree on first-wins versus last-wins, and locgate must not name a
//! different user than the upstream authenticates.
//!
//! Which requests are logins: a POST whose target, normalised as a router would see it
//! ([`super::login_path`]), is the rule's path; compared case-insensitively unless the source
//! says `case_sensitive = true`.

use super::config::FormConfig;
use super::json::{PickError, pick};
use super::login_path::{fold_case, normalise};
use super::multipart;
use super::{Extraction, Identity, IdentitySource, check_user};

/// Default and ceiling for `max_body`.
const DEFAULT_MAX_BODY: usize = 64 * 1024;
const CEILING_MAX_BODY: usize = 16 * 1024 * 1024;

/// One login form: which POST to read and which field names the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormRule {
    /// The configured path, normalised (and folded to lower case unless `case_sensitive`).
    path: String,
    field: String,
    max_body: usize,
    case_sensitive: bool,
}

impl FormRule {
    pub(super) fn from_config(c: &FormConfig) -> Result<FormRule, String> {
        if !c.path.starts_with('/') || c.path.contains(['?', '#']) {
            return Err(format!(
                "path `{}` must be an absolute request path without query or fragment (like /login)",
                c.path
            ));
        }
        if c.field.is_empty() || c.field.len() > 256 || c.field.chars().any(char::is_control) {
            return Err("field must be a non-empty name of at most 256 bytes".into());
        }
        let max_body = c.max_body.unwrap_or(DEFAULT_MAX_BODY);
        if max_body == 0 || max_body > CEILING_MAX_BODY {
            return Err(format!(
                "max_body {max_body} must be between 1 and {CEILING_MAX_BODY} bytes"
            ));
        }
        let case_sensitive = c.case_sensitive.unwrap_or(false);
        let path = normalise(c.path.as_bytes()).ok_or_else(|| {
            format!(
                "path `{}` has an encoded `/`, `\\`, `;`, `%` or control character",
                c.path
            )
        })?;
        Ok(FormRule {
            path: if case_sensitive {
                path
            } else {
                fold_case(&path)
            },
            field: c.field.clone(),
            max_body,
            case_sensitive,
        })
    }

    /// The request path this rule reads, normalised (lower case unless case-sensitive).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether a normalised request path ([`super::login_path::normalise`]) is this rule's.
    pub fn matches(&self, normalised: &str) -> bool {
        if self.case_sensitive {
            normalised == self.path
        } else {
            fold_case(normalised) == self.path
        }
    }

    /// The user name in the query of `target` (the part after `?`), urlencoded. No query or no
    /// field there gives an empty extraction; a broken or duplicated field is a problem.
    pub fn from_query(&self, target: &[u8]) -> Extraction {
        let Some(q) = target.iter().position(|&b| b == b'?') else {
            return Extraction::none();
        };
        let query = &target[q + 1..];
        let query = query.split(|&b| b == b'#').next().unwrap_or_default();
        match find_urlencoded(query, self.field.as_bytes()) {
            Ok(None) => Extraction::none(),
            found => self.identity_from("form query", found),
        }
    }

    /// The largest body the proxy should read for this rule, in bytes; larger bodies get 413
    /// (a login form is small; a huge body is not a login).
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// Extracts the field from an urlencoded or JSON body, chosen by `content_type` (parameters
    /// such as `charset` ignored). Malformed bodies, a missing or duplicated field, a non-string
    /// JSON value and bodies over [`FormRule::max_body`] give no identity and a problem.
    pub fn extract(&self, content_type: Option<&str>, body: &[u8]) -> Extraction {
        if body.len() > self.max_body {
            return Extraction::problem(format!(
                "form: body larger than {} bytes; not read",
                self.max_body
            ));
        }
        let Some(content_type) = content_type else {
            return Extraction::problem("form: no Content-Type".into());
        };
        let media = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim_matches([' ', '\t']);
        let found = if media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            find_urlencoded(body, self.field.as_bytes())
        } else if is_json(media) {
            self.find_json(body)
        } else if media.eq_ignore_ascii_case("multipart/form-data") {
            multipart::boundary(content_type)
                .and_then(|b| multipart::find_field(body, b, &self.field))
        } else if media.eq_ignore_ascii_case("text/plain") {
            find_text_plain(body, &self.field)
        } else {
            Err(
                "unsupported Content-Type (urlencoded, JSON, multipart and text/plain bodies are read)",
            )
        };
        self.identity_from("form", found)
    }

    /// The identity a field's raw value gives, or the problem (prefixed with `what`).
    fn identity_from(&self, what: &str, found: Result<Option<String>, &'static str>) -> Extraction {
        let raw = match found {
            Ok(Some(raw)) => raw,
            Ok(None) => return Extraction::problem(format!("{what}: no {} field", self.field)),
            Err(why) => return Extraction::problem(format!("{what}: {why}")),
        };
        match check_user(&raw) {
            Ok(user) => Extraction::found(Identity {
                user: user.to_owned(),
                source: IdentitySource::Form,
                verified: false,
            }),
            Err(why) => Extraction::problem(format!("{what}: {why}")),
        }
    }

    fn find_json(&self, body: &[u8]) -> Result<Option<String>, &'static str> {
        match pick(body, [self.field.as_str()]) {
            Ok([None]) => Ok(None),
            Ok([Some(serde_json::Value::String(s))]) => Ok(Some(s)),
            Ok([Some(_)]) => Err("user name field is not a string"),
            Err(PickError::Duplicate) => Err("user name field appears more than once"),
            Err(PickError::NotObject) => Err("JSON body is not an object"),
            Err(PickError::Malformed) => Err("malformed JSON body"),
        }
    }
}

/// `application/json` and structured-syntax `application/*+json` (RFC 6839).
fn is_json(media: &str) -> bool {
    let Some(sub) = media
        .get(..12)
        .filter(|p| p.eq_ignore_ascii_case("application/"))
        .map(|_| &media[12..])
    else {
        return false;
    };
    // Compared as bytes: a hostile type may put a multi-byte character where a `str` slice
    // would cut it.
    let sub = sub.as_bytes();
    sub.eq_ignore_ascii_case(b"json")
        || sub.len() > 5 && sub[sub.len() - 5..].eq_ignore_ascii_case(b"+json")
}

/// Finds `field` in a `text/plain` form body (HTML §4.10.21.8: `name=value` lines ending in
/// CRLF, nothing escaped, so the name ends at the first `=`).
fn find_text_plain(body: &[u8], field: &str) -> Result<Option<String>, &'static str> {
    let text = std::str::from_utf8(body).map_err(|_| "text/plain body is not UTF-8")?;
    let mut found = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        if name != field {
            continue;
        }
        if found.is_some() {
            return Err("user name field appears more than once");
        }
        found = Some(value.to_owned());
    }
    Ok(found)
}

/// Finds `field` in an urlencoded body and decodes its value.
fn find_urlencoded(body: &[u8], field: &[u8]) -> Result<Option<String>, &'static str> {
    let mut found = None;
    for pair in body.split(|&b| b == b'&') {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        if !decoded_eq(name, field) {
            continue;
        }
        if found.is_some() {
            return Err("user name field appears more than once");
        }
        let value = decode_strict(value)?;
        found = Some(String::from_utf8(value).map_err(|_| "user name is not UTF-8")?);
    }
    Ok(found)
}

/// Whether the urlencoded `name` decodes to `want`, decoding leniently as browsers and servers
/// do (`%` not followed by two hex digits stays literal) and without allocating.
fn decoded_eq(name: &[u8], want: &[u8]) -> bool {
    let mut want = want.iter();
    let mut i = 0;
    while i < name.len() {
        let (b, used) = match name[i] {
            b'+' => (b' ', 1),
            b'%' => match hex_pair(name, i) {
                Some(b) => (b, 3),
                None => (b'%', 1),
            },
            b => (b, 1),
        };
        if want.next() != Some(&b) {
            return false;
        }
        i += used;
    }
    want.next().is_none()
}

/// Decodes the value strictly: a broken escape is an error, because the name it stands for is
/// unknowable.
fn decode_strict(value: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        match value[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                out.push(hex_pair(value, i).ok_or("malformed percent-encoding")?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The byte encoded by `%XY` at `at`, if both are hex digits.
fn hex_pair(s: &[u8], at: usize) -> Option<u8> {
    let hi = char::from(*s.get(at + 1)?).to_digit(16)?;
    let lo = char::from(*s.get(at + 2)?).to_digit(16)?;
    u8::try_from(hi << 4 | lo).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(max_body: usize) -> FormRule {
        FormRule::from_config(&FormConfig {
            path: "/login".into(),
            field: "username".into(),
            max_body: Some(max_body),
            case_sensitive: None,
        })
        .expect("valid rule")
    }

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    fn user(ex: &Extraction) -> Option<&str> {
        ex.identity.as_ref().map(|i| i.user.as_str())
    }

    #[test]
    fn urlencoded_with_percent_and_plus() {
        let r = rule(1024);
        let ex = r.extract(
            FORM,
            b"csrf=x&username=J%C3%BCrgen+M%c3%bcller&password=p%26w",
        );
        assert_eq!(user(&ex), Some("Jürgen Müller"));
        let id = ex.identity.as_ref().expect("identity");
        assert_eq!((id.source, id.verified), (IdentitySource::Form, false));
        assert!(ex.problems.is_empty());
        // Encoded field names match too; other fields' broken escapes are not our business.
        let ex = r.extract(
            Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8"),
            b"a=%zz&user%6Eame=%20alice%40example.com%20&&x",
        );
        assert_eq!(user(&ex), Some("alice@example.com"));
    }

    #[test]
    fn urlencoded_hostile() {
        let r = rule(1024);
        let cases: [(&[u8], &str); 7] = [
            (
                b"username=a&username=b",
                "form: user name field appears more than once",
            ),
            (b"username=%E2%82", "form: user name is not UTF-8"),
            (b"username=ab%2", "form: malformed percent-encoding"),
            (b"username=%G0", "form: malformed percent-encoding"),
            (b"username=", "form: user name is empty"),
            (
                b"username=a%0Ab",
                "form: user name contains control characters",
            ),
            (b"user=alice", "form: no username field"),
        ];
        for (body, want) in cases {
            let ex = r.extract(FORM, body);
            assert_eq!(ex.identity, None, "{want}");
            assert_eq!(ex.problems, vec![want.to_string()]);
        }
        let ex = r.extract(FORM, b"username");
        assert_eq!(ex.problems, vec!["form: user name is empty".to_string()]);
    }

    #[test]
    fn json_bodies() {
        let r = rule(1024);
        let j = Some("application/json; charset=utf-8");
        let ex = r.extract(j, br#"{"password":"pw","username":"bob","remember":true}"#);
        assert_eq!(user(&ex), Some("bob"));
        assert_eq!(
            user(&r.extract(Some("application/vnd.api+json"), br#"{"username":"c"}"#)),
            Some("c")
        );
        let cases: [(&[u8], &str); 6] = [
            (
                br#"{"username":42}"#,
                "form: user name field is not a string",
            ),
            (
                br#"{"username":"a","username":"b"}"#,
                "form: user name field appears more than once",
            ),
            (br#"["username"]"#, "form: JSON body is not an object"),
            (br#"{"username":"a""#, "form: malformed JSON body"),
            (br#"{"nested":{"username":"a"}}"#, "form: no username field"),
            (
                br#"{"username":"\u0000x"}"#,
                "form: user name contains control characters",
            ),
        ];
        for (body, want) in cases {
            let ex = r.extract(j, body);
            assert_eq!(ex.identity, None, "{want}");
            assert_eq!(ex.problems, vec![want.to_string()]);
        }
    }

    #[test]
    fn refuses_oversized_and_unknown_types() {
        let r = rule(16);
        let ex = r.extract(FORM, b"username=alice&padding=xxxxxxxxxx");
        assert_eq!(ex.identity, None);
        assert_eq!(
            ex.problems,
            vec!["form: body larger than 16 bytes; not read".to_string()]
        );
        assert_eq!(r.max_body(), 16);
        assert_eq!(
            r.extract(None, b"username=a").problems,
            vec!["form: no Content-Type".to_string()]
        );
        for ct in [
            "multipart/form-data; boundary=x",
            "multipart/form-data",
            "text/html",
            "application/jsonx",
            "",
            "application/",
        ] {
            let ex = r.extract(Some(ct), b"username=a");
            assert_eq!(ex.identity, None, "{ct}");
            assert_eq!(ex.problems.len(), 1, "{ct}");
        }
    }

    #[test]
    fn config_checks() {
        let bad = |path: &str, field: &str, max: Option<usize>| {
            FormRule::from_config(&FormConfig {
                path: path.into(),
                field: field.into(),
                max_body: max,
                case_sensitive: None,
            })
            .is_err()
        };
        assert!(bad("login", "u", None));
        assert!(bad("/login?x=1", "u", None));
        assert!(bad("/login", "", None));
        assert!(bad("/login", "u", Some(0)));
        assert!(bad("/login", "u", Some(1 << 30)));
        assert!(!bad("/login", "u", None));
        assert_eq!(rule(5).path(), "/login");
        assert!(
            bad("/a%2Flogin", "u", None),
            "an ambiguous path cannot be configured"
        );
    }

    #[test]
    fn paths_match_after_normalisation_and_case_folding() {
        let r = rule(16);
        let m = |t: &str| normalise(t.as_bytes()).is_some_and(|p| r.matches(&p));
        for t in [
            "/login",
            "/LOGIN",
            "//Login/",
            "/a/../login;x=1",
            "/%6cogin",
        ] {
            assert!(m(t), "{t}");
        }
        assert!(!m("/logins"));
        let strict = FormRule::from_config(&FormConfig {
            path: "/Login/".into(),
            field: "u".into(),
            max_body: None,
            case_sensitive: Some(true),
        })
        .expect("valid");
        assert_eq!(strict.path(), "/Login");
        assert!(strict.matches("/Login"));
        assert!(!strict.matches("/login"));
    }

    #[test]
    fn multipart_text_plain_and_query() {
        let r = rule(1024);
        let body =
            b"--xyz\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nbob\r\n--xyz--\r\n";
        let ex = r.extract(Some("multipart/form-data; boundary=xyz"), body);
        assert_eq!(user(&ex), Some("bob"));
        let ex = r.extract(Some("multipart/form-data; boundary=other"), body);
        assert_eq!(
            ex.problems,
            vec!["form: malformed multipart body".to_string()]
        );

        let ex = r.extract(
            Some("text/plain"),
            b"csrf=a=b\r\nusername=carol\r\npassword=x\r\n",
        );
        assert_eq!(user(&ex), Some("carol"));
        let ex = r.extract(Some("text/plain"), b"username=a\r\nusername=b\r\n");
        assert_eq!(
            ex.problems,
            vec!["form: user name field appears more than once".to_string()]
        );

        assert_eq!(
            user(&r.from_query(b"/login?x=1&username=dave#f")),
            Some("dave")
        );
        assert_eq!(r.from_query(b"/login?x=1"), Extraction::none());
        assert_eq!(r.from_query(b"/login"), Extraction::none());
        assert_eq!(
            r.from_query(b"/login?username=a&username=b").problems,
            vec!["form query: user name field appears more than once".to_string()]
        );
    }

    #[test]
    fn lenient_name_matching() {
        assert!(decoded_eq(b"user+name", b"user name"));
        assert!(decoded_eq(b"%", b"%"));
        assert!(decoded_eq(b"a%4", b"a%4"));
        assert!(!decoded_eq(b"usernam", b"username"));
        assert!(!decoded_eq(b"usernamee", b"username"));
    }

    /// Found by the `login_form` fuzz target: a multi-byte character just before `json` used
    /// to be cut by a `str` slice (a panic); it is simply not JSON.
    #[test]
    fn a_non_ascii_media_type_is_not_json_and_does_not_panic() {
        assert!(!is_json("application/\u{e9}json"));
        assert!(!is_json("application/\u{e9}\u{e9}json"));
        assert!(is_json("application/vnd.api+JSON"));
        let found = rule(1024).extract(Some("application/\u{e9}json"), b"username=alice");
        assert!(found.identity.is_none());
    }
}
