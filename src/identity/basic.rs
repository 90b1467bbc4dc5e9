//! The `basic` source: the user name of `Authorization: Basic base64(user:password)`
//! (RFC 7617).
//!
//! The identity is **unverified**: locgate does not know the password database, so it cannot
//! tell whether the password was right; the upstream checks it. The name is still worth having:
//! a login attempt as `alice` from a country Alice does not live in is worth flagging whether or
//! not the password was right. Unverified identities may only tighten policy.
//!
//! The password is decoded into a stack buffer (never the heap), the user name is copied out,
//! and the buffer is wiped before returning; the password never reaches a `String`, a problem
//! message or a log.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;
use http::HeaderMap;
use http::header::AUTHORIZATION;

use super::cookie::{One, auth_scheme, one};
use super::{Extraction, Identity, IdentitySource, check_user};

/// Largest decoded `user:password` accepted. Real credentials are far shorter.
const MAX_DECODED: usize = 1024;

/// Reads the Basic user name, if the request carries Basic credentials.
pub(super) fn extract(headers: &HeaderMap) -> Extraction {
    let value = match one(headers, &AUTHORIZATION) {
        One::Absent => return Extraction::none(),
        One::Several => {
            return Extraction::problem("basic: several Authorization headers; ignored".into());
        }
        One::Value(v) => v,
    };
    let Some((scheme, credentials)) = auth_scheme(value) else {
        // `Authorization: Basic` with nothing after it is malformed; other bare schemes are
        // not ours to judge.
        let bare = value.as_bytes().trim_ascii();
        if bare.eq_ignore_ascii_case(b"basic") {
            return Extraction::problem("basic: malformed header".into());
        }
        return Extraction::none();
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Extraction::none();
    }
    let mut buf = [0u8; MAX_DECODED];
    let result = user_from(credentials, &mut buf);
    wipe(&mut buf);
    match result {
        Ok(user) => Extraction::found(Identity {
            user,
            source: IdentitySource::Basic,
            verified: false,
        }),
        Err(why) => Extraction::problem(format!("basic: {why}")),
    }
}

fn user_from(credentials: &str, buf: &mut [u8; MAX_DECODED]) -> Result<String, &'static str> {
    if credentials.len() > MAX_DECODED / 3 * 4 {
        return Err("credentials too long");
    }
    let n = STANDARD_PAD_INDIFFERENT
        .decode_slice(credentials, buf)
        .map_err(|_| "malformed header")?;
    let decoded = &buf[..n];
    let colon = decoded
        .iter()
        .position(|&b| b == b':')
        .ok_or("no colon between user name and password")?;
    let user = std::str::from_utf8(&decoded[..colon]).map_err(|_| "user name is not UTF-8")?;
    check_user(user).map(str::to_owned)
}

/// Overwrites the decoded credentials; `black_box` keeps the compiler from eliding the stores as
/// dead writes.
fn wipe(buf: &mut [u8]) {
    buf.fill(0);
    std::hint::black_box(buf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_auth(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                AUTHORIZATION,
                HeaderValue::from_bytes(v).expect("test header"),
            );
        }
        h
    }

    fn b64(s: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn user_name_only() {
        let h = with_auth(&[format!("Basic {}", b64(b"alice:s3cr3t:with:colons")).as_bytes()]);
        let ex = extract(&h);
        let id = ex.identity.expect("identity");
        assert_eq!(id.user, "alice");
        assert_eq!(id.source, IdentitySource::Basic);
        assert!(!id.verified, "locgate never checks the password");
        assert!(ex.problems.is_empty());
        assert!(!format!("{id:?}").contains("s3cr3t"));
    }

    #[test]
    fn scheme_is_case_insensitive_and_padding_optional() {
        let enc = b64(b"bob:pw");
        let unpadded = enc.trim_end_matches('=').to_owned();
        for v in [format!("basic {enc}"), format!("BASIC  {unpadded}")] {
            let ex = extract(&with_auth(&[v.as_bytes()]));
            assert_eq!(ex.identity.map(|i| i.user).as_deref(), Some("bob"), "{v}");
        }
    }

    #[test]
    fn hostile_inputs() {
        let cases: [(Vec<u8>, &str); 8] = [
            (b"Basic !!!notbase64".to_vec(), "basic: malformed header"),
            (b"Basic".to_vec(), "basic: malformed header"),
            (
                format!("Basic {}", b64(b"nocolon")).into_bytes(),
                "basic: no colon between user name and password",
            ),
            (
                format!("Basic {}", b64(b"\xff\xfe:pw")).into_bytes(),
                "basic: user name is not UTF-8",
            ),
            (
                format!("Basic {}", b64(b":pw")).into_bytes(),
                "basic: user name is empty",
            ),
            (
                format!("Basic {}", b64(b"a\nb:pw")).into_bytes(),
                "basic: user name contains control characters",
            ),
            (
                format!("Basic {}", b64(&[b'a'; 2000])).into_bytes(),
                "basic: credentials too long",
            ),
            (
                format!("Basic {}", b64(&[b'u'; 300])).into_bytes(),
                "basic: no colon between user name and password",
            ),
        ];
        for (value, want) in cases {
            let ex = extract(&with_auth(&[&value]));
            assert!(ex.identity.is_none(), "{want}");
            assert_eq!(ex.problems, vec![want.to_string()]);
        }
        let long_user = format!("Basic {}", b64(&[&[b'u'; 300][..], b":pw"].concat()));
        assert_eq!(
            extract(&with_auth(&[long_user.as_bytes()])).problems,
            vec!["basic: user name is longer than 256 bytes".to_string()]
        );
    }

    #[test]
    fn other_schemes_and_duplicates() {
        assert_eq!(extract(&with_auth(&[b"Bearer a.b.c"])), Extraction::none());
        assert_eq!(extract(&HeaderMap::new()), Extraction::none());
        let v = format!("Basic {}", b64(b"a:b"));
        let ex = extract(&with_auth(&[v.as_bytes(), v.as_bytes()]));
        assert!(ex.identity.is_none());
        assert_eq!(ex.problems.len(), 1);
    }
}
