//! One field of a `multipart/form-data` body (RFC 7578), read without trusting it.
//!
//! A login form with `enctype="multipart/form-data"` carries the user name in a part whose
//! `Content-Disposition: form-data; name="username"`. The body is hostile input: the work is
//! bounded (at most [`MAX_PARTS`] parts, [`MAX_HEADER_BYTES`] of headers per part, one pass over
//! the body), nothing is indexed without a check, and what cannot be read is an error, never a
//! guess. A field that appears twice is refused, as for the other encodings.

/// Most parts read; a login form has a handful.
const MAX_PARTS: usize = 256;
/// Most header bytes of one part.
const MAX_HEADER_BYTES: usize = 8 * 1024;

/// The `boundary` parameter of a `multipart/form-data` content type (quoted or not), checked
/// against RFC 2046 §5.1.1 (1 to 70 characters).
pub fn boundary(content_type: &str) -> Result<&str, &'static str> {
    let value = content_type
        .split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim())
        .ok_or("multipart body without a boundary")?;
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    if value.is_empty() || value.len() > 70 || value.bytes().any(|b| b.is_ascii_control()) {
        return Err("multipart boundary is malformed");
    }
    Ok(value)
}

/// The value of the part named `field` (UTF-8 text), `None` when no part has that name.
pub fn find_field(
    body: &[u8],
    boundary: &str,
    field: &str,
) -> Result<Option<String>, &'static str> {
    const MALFORMED: &str = "malformed multipart body";
    let mut delimiter = Vec::with_capacity(boundary.len() + 4);
    delimiter.extend_from_slice(b"\r\n--");
    delimiter.extend_from_slice(boundary.as_bytes());
    // The first delimiter may open the body without a preceding CRLF.
    let dash = &delimiter[2..];
    let mut at = if body.starts_with(dash) {
        dash.len()
    } else {
        find(body, &delimiter).ok_or(MALFORMED)? + delimiter.len()
    };
    let mut found = None;
    for _ in 0..MAX_PARTS {
        let rest = body.get(at..).ok_or(MALFORMED)?;
        if rest.starts_with(b"--") {
            return Ok(found);
        }
        let rest = skip_padding(rest);
        let rest = rest.strip_prefix(b"\r\n").ok_or(MALFORMED)?;
        let head_len = find(rest, b"\r\n\r\n").ok_or(MALFORMED)?;
        if head_len > MAX_HEADER_BYTES {
            return Err("multipart part headers too long");
        }
        let name = part_name(&rest[..head_len])?;
        let content = &rest[head_len + 4..];
        let end = find(content, &delimiter).ok_or(MALFORMED)?;
        if name.as_deref() == Some(field) {
            if found.is_some() {
                return Err("user name field appears more than once");
            }
            let value =
                std::str::from_utf8(&content[..end]).map_err(|_| "user name is not UTF-8")?;
            found = Some(value.to_owned());
        }
        // Offset of the byte after this delimiter, within `body`.
        at = body.len() - content.len() + end + delimiter.len();
    }
    Err("multipart body has too many parts")
}

/// Linear whitespace a sender may put after a delimiter (RFC 2046 `transport-padding`).
fn skip_padding(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    &s[n..]
}

/// The `name` of a part from its headers' `Content-Disposition: form-data; name=..`; `None`
/// for a part without one (ignored, as servers do).
fn part_name(head: &[u8]) -> Result<Option<String>, &'static str> {
    let head = std::str::from_utf8(head).map_err(|_| "multipart part headers are not UTF-8")?;
    let mut name = None;
    for line in head.split("\r\n") {
        let Some((k, v)) = line.split_once(':') else {
            return Err("malformed multipart part header");
        };
        if !k.trim().eq_ignore_ascii_case("content-disposition") {
            continue;
        }
        if name.is_some() {
            return Err("multipart part has two Content-Disposition headers");
        }
        let mut params = v.split(';');
        let kind = params.next().unwrap_or_default().trim();
        if !kind.eq_ignore_ascii_case("form-data") {
            continue;
        }
        for p in params {
            let Some((pk, pv)) = p.split_once('=') else {
                continue;
            };
            if pk.trim().eq_ignore_ascii_case("name") {
                let pv = pv.trim();
                let pv = pv
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(pv);
                name = Some(pv.to_owned());
            }
        }
    }
    Ok(name)
}

/// The first position of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "----WebKitFormBoundary7MA4YWxkTrZu0gW";

    fn body(parts: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in parts {
            out.extend_from_slice(
                format!(
                    "--{B}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        out.extend_from_slice(format!("--{B}--\r\n").as_bytes());
        out
    }

    #[test]
    fn reads_the_named_part() {
        let b = body(&[
            ("csrf", "x"),
            ("username", "alice@example.com"),
            ("password", "p\r\nw"),
        ]);
        assert_eq!(
            find_field(&b, B, "username"),
            Ok(Some("alice@example.com".into()))
        );
        assert_eq!(find_field(&b, B, "password"), Ok(Some("p\r\nw".into())));
        assert_eq!(find_field(&b, B, "other"), Ok(None));
        // A preamble, a file part, unquoted names, lower-case headers, padding.
        let b = format!(
            "preamble\r\n--{B}  \r\ncontent-disposition: form-data; name=avatar; filename=\"a.png\"\r\n\
             content-type: image/png\r\n\r\n\x00\x01\r\n--{B}\r\n\
             Content-Disposition: form-data; name=username\r\n\r\nbob\r\n--{B}--"
        );
        assert_eq!(
            find_field(b.as_bytes(), B, "username"),
            Ok(Some("bob".into()))
        );
    }

    #[test]
    fn boundaries() {
        assert_eq!(boundary("multipart/form-data; boundary=abc"), Ok("abc"));
        assert_eq!(
            boundary("multipart/form-data; charset=x; BOUNDARY=\"a b\""),
            Ok("a b")
        );
        assert!(boundary("multipart/form-data").is_err());
        assert!(boundary("multipart/form-data; boundary=").is_err());
        assert!(boundary("multipart/form-data; boundary=\"\"").is_err());
        assert!(boundary(&format!("multipart/form-data; boundary={}", "x".repeat(71))).is_err());
    }

    #[test]
    fn hostile_bodies_are_refused_without_panics() {
        let dup = body(&[("username", "a"), ("username", "b")]);
        assert_eq!(
            find_field(&dup, B, "username"),
            Err("user name field appears more than once")
        );
        let good = body(&[("username", "alice")]);
        // Every truncation of a valid body is an error or a clean answer, never a panic.
        for n in 0..good.len() {
            let _ = find_field(&good[..n], B, "username");
        }
        assert!(find_field(b"", B, "username").is_err());
        assert!(find_field(b"no delimiter at all", B, "username").is_err());
        let unterminated =
            format!("--{B}\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice");
        assert!(find_field(unterminated.as_bytes(), B, "username").is_err());
        let no_head_end = format!("--{B}\r\nContent-Disposition: form-data; name=\"username\"");
        assert!(find_field(no_head_end.as_bytes(), B, "username").is_err());
        let bad_utf8 = [
            format!("--{B}\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\n")
                .into_bytes(),
            vec![0xff, 0xfe],
            format!("\r\n--{B}--").into_bytes(),
        ]
        .concat();
        assert_eq!(
            find_field(&bad_utf8, B, "username"),
            Err("user name is not UTF-8")
        );
        let many: Vec<(&str, &str)> = vec![("x", "y"); MAX_PARTS + 1];
        assert_eq!(
            find_field(&body(&many), B, "username"),
            Err("multipart body has too many parts")
        );
        let two_dispositions = format!(
            "--{B}\r\nContent-Disposition: form-data; name=\"x\"\r\n\
             Content-Disposition: form-data; name=\"username\"\r\n\r\nalice\r\n--{B}--"
        );
        assert!(find_field(two_dispositions.as_bytes(), B, "username").is_err());
        let header_without_colon = format!("--{B}\r\nbogus\r\n\r\nalice\r\n--{B}--");
        assert!(find_field(header_without_colon.as_bytes(), B, "username").is_err());
    }
}
