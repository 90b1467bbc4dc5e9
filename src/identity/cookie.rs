//! Reading cookies and `Authorization` credentials out of headers, in place and without
//! allocating.
//!
//! `Cookie` is `a=b; c=d` (RFC 6265 §4.2), possibly split over several field lines (HTTP/2 does
//! that), with values optionally in double quotes. `Set-Cookie` is one cookie per line, its value
//! ending at the first `;` where the attributes (`Path`, `Max-Age`, ...) begin (§4.1). Both are
//! client- or upstream-supplied text, so malformed pairs are skipped, never trusted.

use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue};
use jiff::Timestamp;
use jiff::fmt::rfc2822::DateTimeParser;

/// Every non-empty value of the request cookie `name`, from all `Cookie` header lines, in the
/// order sent, surrounding quotes removed. A present but empty cookie counts as absent.
pub fn cookie_values<'h>(
    request_headers: &'h HeaderMap,
    name: &str,
) -> impl Iterator<Item = &'h str> {
    request_headers
        .get_all(COOKIE)
        .into_iter()
        .filter_map(|line| std::str::from_utf8(line.as_bytes()).ok())
        .flat_map(|line| line.split(';'))
        .filter_map(move |pair| {
            let (n, v) = pair.split_once('=')?;
            let v = unquote(v.trim_matches(is_ows));
            (n.trim_matches(is_ows) == name && !v.is_empty()).then_some(v)
        })
}

/// The request cookie `name` appears with different values. Browsers send one cookie per path
/// and domain, and servers disagree on which one counts (many frameworks take the last, some
/// the first), so a credential read from it is ambiguous: a stolen cookie behind a junk one of
/// the same name must not be read as the junk (or the other way round).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DifferingCookies;

/// The value of the request cookie `name` ([`cookie_values`]), when all its values agree;
/// [`DifferingCookies`] when they do not.
pub fn cookie_value<'h>(
    request_headers: &'h HeaderMap,
    name: &str,
) -> Result<Option<&'h str>, DifferingCookies> {
    let mut values = cookie_values(request_headers, name);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.any(|v| v != first) {
        return Err(DifferingCookies);
    }
    Ok(Some(first))
}

/// The value a response sets for cookie `cookie_name`, from its `Set-Cookie` lines (the last
/// one wins, as in a browser). Returns `None` when the line deletes the cookie (empty value,
/// `Max-Age` of zero or less, or `Expires` in the past by the system clock), so a logout's
/// `SESSION=deleted; Max-Age=0` is never learned as a session.
pub fn set_cookie_value<'h>(response_headers: &'h HeaderMap, cookie_name: &str) -> Option<&'h str> {
    let mut found = None;
    for line in response_headers.get_all(SET_COOKIE) {
        let Ok(line) = std::str::from_utf8(line.as_bytes()) else {
            continue;
        };
        let mut parts = line.split(';');
        let Some((n, v)) = parts.next().and_then(|p| p.split_once('=')) else {
            continue;
        };
        if n.trim_matches(is_ows) != cookie_name {
            continue;
        }
        let v = unquote(v.trim_matches(is_ows));
        let deleted = v.is_empty() || parts.any(deletes);
        found = if deleted { None } else { Some(v) };
    }
    found
}

/// Whether a `Set-Cookie` attribute makes the cookie expire immediately.
fn deletes(attribute: &str) -> bool {
    let Some((k, v)) = attribute.split_once('=') else {
        return false;
    };
    let (k, v) = (k.trim_matches(is_ows), v.trim_matches(is_ows));
    if k.eq_ignore_ascii_case("max-age") {
        // RFC 6265 §5.2.2: a non-positive number expires the cookie; junk is ignored.
        let digits = v.strip_prefix('-').unwrap_or(v);
        let number = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        return number && (v.starts_with('-') || digits.bytes().all(|b| b == b'0'));
    }
    if k.eq_ignore_ascii_case("expires") && v.len() <= 64 {
        static PARSER: DateTimeParser = DateTimeParser::new();
        // RFC 1123 dates, plus the old `01-Jan-1970` spelling, on a stack copy.
        let mut buf = [0u8; 64];
        let buf = &mut buf[..v.len()];
        buf.copy_from_slice(v.as_bytes());
        for b in buf.iter_mut() {
            if *b == b'-' {
                *b = b' ';
            }
        }
        if let Ok(when) = PARSER.parse_timestamp(&*buf) {
            return when <= Timestamp::now();
        }
    }
    false
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

/// Outcome of looking for exactly one instance of a header.
pub(super) enum One<'h> {
    Absent,
    Value(&'h HeaderValue),
    /// The header appears more than once: ambiguous, so it is not used.
    Several,
}

/// The header `name` if it appears exactly once. Credentials that appear twice are ambiguous
/// (which one does the upstream use?) and are refused rather than guessed.
pub(super) fn one<'h>(headers: &'h HeaderMap, name: &HeaderName) -> One<'h> {
    let mut all = headers.get_all(name).iter();
    match (all.next(), all.next()) {
        (None, _) => One::Absent,
        (Some(v), None) => One::Value(v),
        (Some(_), Some(_)) => One::Several,
    }
}

/// Splits `Scheme credentials` (RFC 9110 §11.4): the scheme before the first space or tab, and
/// the credentials with surrounding whitespace removed. `None` when there is nothing after the
/// scheme.
pub(super) fn auth_scheme(value: &HeaderValue) -> Option<(&str, &str)> {
    let s = std::str::from_utf8(value.as_bytes())
        .ok()?
        .trim_matches(is_ows);
    let (scheme, rest) = s.split_once([' ', '\t'])?;
    let rest = rest.trim_matches(is_ows);
    (!rest.is_empty()).then_some((scheme, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: HeaderName, lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(name.clone(), HeaderValue::from_str(l).expect("test header"));
        }
        h
    }

    #[test]
    fn cookie_pairs() {
        let h = headers(
            COOKIE,
            &["a=1; id_token=tok.en.x;b=2", "c=\"quoted v\"; d="],
        );
        assert_eq!(cookie_value(&h, "a"), Ok(Some("1")));
        assert_eq!(cookie_value(&h, "id_token"), Ok(Some("tok.en.x")));
        assert_eq!(cookie_value(&h, "b"), Ok(Some("2")));
        assert_eq!(cookie_value(&h, "c"), Ok(Some("quoted v")));
        assert_eq!(cookie_value(&h, "d"), Ok(None), "empty counts as absent");
        assert_eq!(cookie_value(&h, "e"), Ok(None));
        assert_eq!(cookie_value(&h, "A"), Ok(None), "names are case-sensitive");
        assert_eq!(cookie_value(&h, "oken"), Ok(None), "no substring matches");
    }

    #[test]
    fn cookie_edge_cases() {
        let h = headers(COOKIE, &[";;  ; noequals; x=1=2 ; =v; x=second; \"q"]);
        assert_eq!(
            cookie_values(&h, "x").collect::<Vec<_>>(),
            ["1=2", "second"],
            "every value, in order; a value may hold '='"
        );
        assert_eq!(
            cookie_value(&h, "x"),
            Err(DifferingCookies),
            "differing duplicates are ambiguous"
        );
        assert_eq!(cookie_value(&h, "noequals"), Ok(None));
        assert_eq!(cookie_value(&h, ""), Ok(Some("v")));
        let h = headers(COOKIE, &["q=\"", "r=\"\""]);
        assert_eq!(
            cookie_value(&h, "q"),
            Ok(Some("\"")),
            "a lone quote is not a quoted value"
        );
        assert_eq!(cookie_value(&h, "r"), Ok(None));
        let h = headers(COOKIE, &["s=same; t=1", "s=\"same\"; s="]);
        assert_eq!(
            cookie_value(&h, "s"),
            Ok(Some("same")),
            "equal duplicates (and empty ones) are no ambiguity"
        );
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_bytes(b"s=\xff\xfe").expect("opaque bytes"),
        );
        h.append(COOKIE, HeaderValue::from_static("s=ok"));
        assert_eq!(
            cookie_value(&h, "s"),
            Ok(Some("ok")),
            "non-UTF-8 line skipped"
        );
    }

    #[test]
    fn set_cookie_lines() {
        let h = headers(
            SET_COOKIE,
            &[
                "other=1; Path=/",
                "SESSION=abc123; Path=/; HttpOnly; Secure; SameSite=Lax",
            ],
        );
        assert_eq!(set_cookie_value(&h, "SESSION"), Some("abc123"));
        assert_eq!(set_cookie_value(&h, "other"), Some("1"));
        assert_eq!(
            set_cookie_value(&h, "Path"),
            None,
            "attributes are not cookies"
        );
        assert_eq!(set_cookie_value(&h, "none"), None);

        let h = headers(SET_COOKIE, &["S=first", "S=\"second\"; Max-Age=3600"]);
        assert_eq!(set_cookie_value(&h, "S"), Some("second"), "last wins");
    }

    #[test]
    fn set_cookie_deletions() {
        for line in [
            "S=; Path=/",
            "S=deleted; Max-Age=0",
            "S=deleted; max-age=-1",
            "S=deleted; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            "S=deleted; expires=Thu, 01-Jan-1970 00:00:01 GMT",
        ] {
            let h = headers(SET_COOKIE, &[line]);
            assert_eq!(set_cookie_value(&h, "S"), None, "{line}");
        }
        let h = headers(
            SET_COOKIE,
            &["S=live; Expires=Fri, 01 Jan 2100 00:00:00 GMT; Max-Age=60"],
        );
        assert_eq!(set_cookie_value(&h, "S"), Some("live"));
        let h = headers(SET_COOKIE, &["S=live; Expires=garbage; Max-Age=junk"]);
        assert_eq!(
            set_cookie_value(&h, "S"),
            Some("live"),
            "unparseable attributes ignored"
        );
        let h = headers(SET_COOKIE, &["S=old", "S=; Max-Age=0"]);
        assert_eq!(set_cookie_value(&h, "S"), None, "a later deletion wins");
    }

    #[test]
    fn schemes() {
        let v = HeaderValue::from_static("  Bearer \t abc.def.ghi  ");
        assert_eq!(auth_scheme(&v), Some(("Bearer", "abc.def.ghi")));
        assert_eq!(auth_scheme(&HeaderValue::from_static("Bearer")), None);
        assert_eq!(auth_scheme(&HeaderValue::from_static("Bearer   ")), None);
        assert_eq!(auth_scheme(&HeaderValue::from_static("")), None);
    }
}
