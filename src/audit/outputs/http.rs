//! The one way the event side posts over HTTP(S): alert webhooks, Splunk HEC and OTLP all go
//! through [`Poster`], with the project's one client setup (`http_client`: rustls on ring, the
//! system's trust store), and carry their configured [`Headers`].

use std::time::Duration;

use super::Failure;

/// Extra request headers (`headers = { Authorization = "..." }`, or a `token_file`), checked
/// at config time. Their values are secrets as often as not, so `Debug` shows names only.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Headers(Vec<(http::HeaderName, http::HeaderValue)>);

/// Header names a configuration may not set: locgate writes them itself, or they would change
/// how the request is framed.
const RESERVED: &[&str] = &[
    "content-length",
    "content-type",
    "host",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
];

impl Headers {
    /// Adds `name: value`, checked: a valid header name not in [`RESERVED`] and not given twice
    /// (in any case), and a value without control characters.
    pub fn add(&mut self, name: &str, value: &str) -> Result<(), String> {
        let header = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{name}` is not a valid header name"))?;
        if RESERVED.contains(&header.as_str()) {
            return Err(format!("`{name}` is set by locgate itself"));
        }
        if self.0.iter().any(|(n, _)| *n == header) {
            return Err(format!("`{name}` is given twice"));
        }
        let mut value = http::HeaderValue::from_str(value).map_err(|_| {
            format!("the value of `{name}` has characters a header cannot carry (control characters, line breaks)")
        })?;
        value.set_sensitive(true);
        self.0.push((header, value));
        Ok(())
    }

    /// Whether `name` (any case) is among them.
    pub fn has(&self, name: &str) -> bool {
        self.0
            .iter()
            .any(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
    }

    /// The headers, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &(http::HeaderName, http::HeaderValue)> {
        self.0.iter()
    }
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(n, _)| format!("{n}: <redacted>")))
            .finish()
    }
}

/// A small runtime and client for one sending thread: events and alerts are posted from their
/// own threads, never from the request path.
pub struct Poster {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

/// A [`Poster`] made on first use, on the thread that uses it (an output's thread: its runtime
/// must not be built on the writer's).
#[derive(Default)]
pub struct LazyPoster(Option<Poster>);

impl LazyPoster {
    /// The poster, made now if this is the first call; a failure to make it is retried.
    pub fn get(&mut self) -> Result<&Poster, Failure> {
        if self.0.is_none() {
            self.0 = Some(Poster::new().map_err(Failure::Retry)?);
        }
        self.0
            .as_ref()
            .ok_or_else(|| Failure::Retry("no HTTP client".into()))
    }
}

/// How long one post may take, connecting included.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

impl Poster {
    /// A poster with its own current-thread runtime.
    pub fn new() -> Result<Self, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let client = {
            let _in_runtime = rt.enter();
            crate::http_client::build(Duration::from_secs(5))?
        };
        Ok(Poster { rt, client })
    }

    /// One POST of `body` with `headers`; `Ok` on a 2xx answer (with the answer's body, at most
    /// 64 KiB), else whether to retry ([`Failure`]).
    pub fn post(
        &self,
        url: &str,
        content_type: &'static str,
        headers: &Headers,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, Failure> {
        // Built and sent inside the runtime: reqwest's timeout timer needs its reactor.
        self.rt.block_on(async {
            let mut req = self
                .client
                .post(url)
                .header(http::header::CONTENT_TYPE, content_type)
                .timeout(POST_TIMEOUT)
                .body(body);
            for (name, value) in headers.iter() {
                req = req.header(name, value);
            }
            let mut resp = req
                .send()
                .await
                .map_err(|e| Failure::Retry(crate::http_client::chain(&e)))?;
            let status = resp.status().as_u16();
            let answer = crate::http_client::read_body(&mut resp, 64 * 1024, |_, _| {})
                .await
                .unwrap_or_default();
            match status {
                200..=299 => Ok(answer),
                400 | 413 | 415 | 422 => Err(Failure::Refused(describe(status, &answer))),
                _ => Err(Failure::Retry(describe(status, &answer))),
            }
        })
    }
}

/// `status 503: <the first line of the answer>`.
fn describe(status: u16, answer: &[u8]) -> String {
    let text = String::from_utf8_lossy(answer);
    let first: String = text
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    if first.is_empty() {
        format!("status {status}")
    } else {
        format!("status {status}: {first}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_checked_and_never_printed() {
        let mut h = Headers::default();
        assert!(h.add("Authorization", "Splunk 1234-secret").is_ok());
        assert!(h.add("X-Scope-OrgID", "tenant-a").is_ok());
        assert!(h.add("authorization", "again").is_err(), "twice");
        assert!(h.add("Content-Length", "1").is_err(), "reserved");
        assert!(h.add("bad name", "x").is_err());
        assert!(h.add("X-Evil", "a\r\nInjected: yes").is_err());
        assert!(h.has("AUTHORIZATION"));
        let shown = format!("{h:?}");
        assert!(
            !shown.contains("secret") && !shown.contains("tenant-a"),
            "{shown}"
        );
    }
}
