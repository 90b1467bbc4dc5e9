//! The one outbound HTTP(S) client setup (data downloads, alert webhooks, identity providers'
//! keys): rustls on the ring provider with the system's trust store, so no second TLS stack is
//! built in; and the pieces every caller needs (an error with its causes, a bounded body read).
//!
//! **Proxies.** Every client built here honours the environment as curl does: `HTTPS_PROXY` /
//! `https_proxy` for `https://` (tunnelled with `CONNECT`), `HTTP_PROXY` / `http_proxy` for
//! `http://` (ignored under CGI, where it is a request header), `ALL_PROXY`, and `NO_PROXY` /
//! `no_proxy` (host names, domains, addresses and networks that go direct). Hosts without a
//! route to the internet reach it through such a proxy, so no download may bypass it.
//! [`build_with_proxy`] is for a proxy the configuration names (GeoIP.conf's `Proxy`).

use std::time::Duration;

/// A client with locgate's user agent and a connect timeout; redirects followed (reqwest's
/// default: at most 10).
pub fn build(connect_timeout: Duration) -> Result<reqwest::Client, String> {
    finish(builder(connect_timeout))
}

/// Like [`build`], but a redirect is returned as the answer instead of followed: for sources
/// whose address is itself the trust decision (an identity provider's keys), where a redirect
/// could take the request to a host or scheme nobody configured.
pub fn build_without_redirects(connect_timeout: Duration) -> Result<reqwest::Client, String> {
    finish(builder(connect_timeout).redirect(reqwest::redirect::Policy::none()))
}

/// Like [`build`], every request through the http:// proxy `url` (with Basic credentials when
/// given) instead of the environment's: geoipupdate's `Proxy` setting, which it sends
/// everything through, `NO_PROXY` included.
pub fn build_with_proxy(
    connect_timeout: Duration,
    url: &str,
    credentials: Option<(&str, &str)>,
) -> Result<reqwest::Client, String> {
    let mut proxy = reqwest::Proxy::all(url).map_err(|e| format!("proxy {url}: {}", chain(&e)))?;
    if let Some((user, password)) = credentials {
        proxy = proxy.basic_auth(user, password);
    }
    finish(builder(connect_timeout).proxy(proxy))
}

fn builder(connect_timeout: Duration) -> reqwest::ClientBuilder {
    use_ring_for_tls();
    reqwest::Client::builder()
        .user_agent(concat!("locgate/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_timeout)
}

fn finish(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, String> {
    builder
        .build()
        .map_err(|e| format!("cannot set up HTTPS: {e}"))
}

/// Makes ring the process's TLS provider before any outbound TLS client is built (reqwest here,
/// `rediss://` in the history link): rustls is built without a default provider, and a client
/// built without one would panic. Installing twice is harmless.
pub fn use_ring_for_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An error with its causes ("error sending request: connection refused"): reqwest's own
/// message alone rarely says what went wrong.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Reads a response body of at most `max` bytes (a larger `Content-Length` is refused before
/// reading), calling `progress(read so far, announced length)` after every chunk.
pub async fn read_body(
    resp: &mut reqwest::Response,
    max: u64,
    mut progress: impl FnMut(usize, Option<u64>),
) -> Result<Vec<u8>, String> {
    let too_big = || format!("answer is larger than {max} bytes");
    let expected = resp.content_length();
    if expected.is_some_and(|n| n > max) {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(expected.unwrap_or(0).min(max).min(1 << 26) as usize);
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if (bytes.len() + c.len()) as u64 > max {
                    return Err(too_big());
                }
                bytes.extend_from_slice(&c);
                progress(bytes.len(), expected);
            }
            Ok(None) => return Ok(bytes),
            Err(e) => {
                return Err(format!(
                    "answer broke off after {} bytes: {}",
                    bytes.len(),
                    chain(&e)
                ));
            }
        }
    }
}
