//! The path a request target names, as an upstream router would see it, for matching login
//! forms.
//!
//! A login POST must be read whatever spelling of its path the client chose: an upstream that
//! routes `/Login`, `//login`, `/a/../login`, `/%6Cogin`, `/login/`, `/login;jsessionid=1` or
//! `http://host/login` to its login handler would otherwise receive a login locgate never saw,
//! and the request would be decided as anonymous. [`normalise`] applies, in order: the
//! absolute form's scheme and authority removed, the query and fragment cut, `;` parameters of
//! each segment removed (Java servers strip them), percent-decoding, empty and `.` segments
//! dropped and `..` applied (so repeated and trailing slashes vanish). Case is the caller's
//! choice ([`fold_case`]).
//!
//! A target whose meaning depends on the server (an encoded `/`, `\` or `;`, a control
//! character, a `%` left after decoding, bytes that are not UTF-8, a target that is no path)
//! cannot be normalised safely: [`normalise`] returns `None` and the caller reads the request as
//! a login anyway (over-reading costs one body read; missing a login is a dodge).

/// The normalised path of `target` (`/` followed by segments joined by `/`, no trailing slash
/// except for the root), or `None` when the target cannot be normalised safely.
pub fn normalise(target: &[u8]) -> Option<String> {
    let path = path_part(target)?;
    let mut segments: Vec<String> = Vec::new();
    for raw in path.split(|&b| b == b'/') {
        let raw = raw.split(|&b| b == b';').next().unwrap_or_default();
        let segment = decode_segment(raw)?;
        match segment.as_str() {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    Some(out)
}

/// The path compared case-insensitively (IIS and many routers): lower case.
pub fn fold_case(path: &str) -> String {
    path.to_lowercase()
}

/// The path of an origin-form or absolute-form target, without query or fragment; `None` for
/// targets that are no path (`*`, authority form, a bare word).
fn path_part(target: &[u8]) -> Option<&[u8]> {
    let end = target
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(target.len());
    let target = &target[..end];
    if target.first() == Some(&b'/') {
        return Some(target);
    }
    // Absolute form: scheme "://" authority path (RFC 9112 §3.2.2).
    let colon = target.iter().position(|&b| b == b':')?;
    let scheme = &target[..colon];
    let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    let rest = target[colon..].strip_prefix(b"://")?;
    if !scheme_ok {
        return None;
    }
    match rest.iter().position(|&b| b == b'/') {
        Some(slash) => Some(&rest[slash..]),
        None => Some(b"/"),
    }
}

/// One segment percent-decoded, refused when what it decodes to is ambiguous between servers.
fn decode_segment(raw: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = if raw[i] == b'%' {
            let hi = char::from(*raw.get(i + 1)?).to_digit(16)?;
            let lo = char::from(*raw.get(i + 2)?).to_digit(16)?;
            i += 3;
            u8::try_from(hi << 4 | lo).ok()?
        } else {
            i += 1;
            raw[i - 1]
        };
        // `/` and `\` (a separator to IIS) inside a segment, `;` (a parameter to Java servers),
        // `%` (decoded twice by some), `?` and `#` (a query or fragment to a server that decodes
        // before it splits; found by the `login_form` fuzz target: `/a%3Fx` normalised to
        // `/a?x`, which normalised again to `/a`), controls (NUL ends strings in C servers).
        if b"/\\;%?#".contains(&b) || b.is_ascii_control() {
            return None;
        }
        out.push(b);
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(target: &str) -> Option<String> {
        normalise(target.as_bytes())
    }

    #[test]
    fn spellings_of_one_path() {
        for t in [
            "/login",
            "//login",
            "/login/",
            "/login//",
            "/./login",
            "/a/../login",
            "/a/b/../../login",
            "/../login",
            "/%6Cogin",
            "/%6cogin",
            "/login;jsessionid=1",
            "/login;x=1/",
            "/login?next=/x",
            "/login#frag",
            "http://portal.example/login",
            "HTTPS://portal.example:8443/login?x=1",
            "http://u@portal.example//a/../login/",
        ] {
            assert_eq!(n(t).as_deref(), Some("/login"), "{t}");
        }
    }

    #[test]
    fn other_paths_stay_other() {
        assert_eq!(n("/Login").as_deref(), Some("/Login"), "case is kept");
        assert_eq!(fold_case("/LoGin"), "/login");
        assert_eq!(n("/api/login").as_deref(), Some("/api/login"));
        assert_eq!(n("/login/x").as_deref(), Some("/login/x"));
        assert_eq!(n("/").as_deref(), Some("/"));
        assert_eq!(n("http://host").as_deref(), Some("/"));
        assert_eq!(n("http://host?x").as_deref(), Some("/"));
        assert_eq!(n("/..").as_deref(), Some("/"));
        assert_eq!(n("/caf%C3%A9").as_deref(), Some("/café"));
    }

    #[test]
    fn ambiguous_targets_are_not_normalised() {
        for t in [
            "/a%2Flogin",
            "/a%2flogin",
            "/login%00",
            "/log%0Ain",
            "/login%5C",
            "/login%3Bx",
            "/a%3Fson",
            "/login%23frag",
            "/%256Cogin",
            "/login%",
            "/login%4",
            "/login%zz",
            "/%C3",
            "/%FF",
            "*",
            "login",
            "host:443",
            "1http://x/login",
            "ht tp://x/login",
        ] {
            assert_eq!(n(t), None, "{t}");
        }
        assert_eq!(normalise(b"/log\xffin"), None, "raw invalid UTF-8");
        assert_eq!(normalise(b"/log\x01in"), None, "raw control byte");
    }
}
