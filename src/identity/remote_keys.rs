//! Signing keys fetched from the identity provider (`jwks_url`, or OIDC discovery from
//! `issuer`), refreshed while the gateway runs, so a key rotation needs no restart.
//!
//! How the keys stay current, and why:
//! - **On expiry**: refetched when the answer's `Cache-Control: max-age` runs out (clamped to
//!   [`MIN_MAX_AGE`]..[`MAX_MAX_AGE`]; [`DEFAULT_MAX_AGE`] without one). Providers publish a new
//!   key in the set before they sign with it, so this catches most rotations ahead of time.
//! - **On an unknown `kid`**: a token naming a key the set lacks asks for a refetch and waits
//!   for it (at most [`KID_WAIT`]), so the first token signed with a new key is verified rather
//!   than refused. At most one such refetch per [`KID_REFRESH_INTERVAL`] per source: the `kid`
//!   is attacker text, and random ones must not turn the gateway into a load on the provider.
//! - **When the provider is down**: the last good keys stay in use (a failed or malformed fetch
//!   never replaces them), retried with backoff up to [`MAX_RETRY`], and the failure is said in
//!   the log, `/readyz` and metrics ([`health`]). Before the first good fetch there are no keys,
//!   and tokens fail closed with that reason.
//!
//! A source is shared by every rule naming the same address and survives a reload (the
//! registry holds it while any rule does), so a reload neither refetches nor forgets keys.
//! Redirects are not followed, and only `https` is fetched (plain `http` to a loopback host is
//! allowed: a sidecar or a test provider on the same machine): the address is the trust
//! decision. With discovery, the document's `issuer` must equal the configured one exactly
//! (OpenID Connect Discovery 1.0 §4.3) and its `jwks_uri` obeys the same rules.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use reqwest::Url;
use serde::Deserialize;
use tokio::sync::{Notify, watch};

use super::jwks::{self, Key};

/// Refetch interval when the answer names none.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
/// Shortest refetch interval honoured (a `max-age=0` provider is not polled in a loop).
pub const MIN_MAX_AGE: Duration = Duration::from_secs(60);
/// Longest refetch interval honoured (keys are looked at at least daily).
pub const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// At most one refetch asked for by an unknown `kid` per this interval, per source.
pub const KID_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// How long a request with an unknown `kid` waits for the refetch it asked for.
pub const KID_WAIT: Duration = Duration::from_secs(3);
/// First retry after a failed fetch; doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(5);
/// Longest wait between retries while the provider is down.
const MAX_RETRY: Duration = Duration::from_secs(300);
/// Timeout of one request to the provider (connect, answer and body).
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Origin {
    /// A JWKS address (`jwks_url`).
    Jwks(Url),
    /// An OIDC issuer: its discovery document names the JWKS (`jwks_uri`).
    Issuer(String),
}

impl Origin {
    /// Checks a configured address: `https`, or `http` to a loopback host.
    pub(super) fn jwks(url: &str) -> Result<Origin, String> {
        let parsed = Url::parse(url).map_err(|e| format!("jwks_url `{url}` is not a URL: {e}"))?;
        fetchable(&parsed).map_err(|why| format!("jwks_url `{url}`: {why}"))?;
        Ok(Origin::Jwks(parsed))
    }

    /// Checks an issuer used for discovery, as [`Origin::jwks`] does.
    pub(super) fn issuer(issuer: &str) -> Result<Origin, String> {
        let parsed = Url::parse(issuer).map_err(|e| {
            format!("issuer `{issuer}` is not a URL, so it cannot be discovered: {e}")
        })?;
        fetchable(&parsed).map_err(|why| format!("issuer `{issuer}`: {why}"))?;
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(format!(
                "issuer `{issuer}`: an OIDC issuer has no query or fragment"
            ));
        }
        Ok(Origin::Issuer(issuer.to_string()))
    }

    /// How the source is named in logs, `/readyz` and metric labels.
    fn label(&self) -> String {
        match self {
            Origin::Jwks(url) => url.to_string(),
            Origin::Issuer(issuer) => format!("{issuer} (discovery)"),
        }
    }
}

/// Whether `url` may be fetched for keys.
fn fetchable(url: &Url) -> Result<(), &'static str> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err("plain http is allowed only to a loopback host; use https"),
        _ => Err("only https URLs can be fetched"),
    }
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// The keys in use and what the last fetch said.
#[derive(Default)]
struct KeySet {
    keys: Arc<Vec<Key>>,
    /// When the keys in use were fetched.
    fetched: Option<SystemTime>,
    /// Why the last fetch failed (`None` after a good one).
    error: Option<String>,
}

/// One provider's keys, shared by every rule that names it.
pub(super) struct RemoteKeys {
    origin: Origin,
    label: String,
    set: ArcSwap<KeySet>,
    /// Wakes the refresher: a refetch asked for, or the source dropped.
    wake: Arc<Notify>,
    /// Counts finished fetches (good or not), so a waiting request sees its refetch end.
    fetches: watch::Sender<u64>,
    /// The last unknown-`kid` refetch: when it was asked for, and the fetch count then.
    kid_refresh: Mutex<Option<(Instant, u64)>>,
    started: AtomicBool,
}

/// Every live source, so rules naming the same origin share one (across reloads too).
static REGISTRY: Mutex<Vec<Weak<RemoteKeys>>> = Mutex::new(Vec::new());

fn registry() -> std::sync::MutexGuard<'static, Vec<Weak<RemoteKeys>>> {
    // A panic while holding the lock leaves a list of weak pointers, still valid.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

impl RemoteKeys {
    /// The source for `origin`: the live one if a rule already names it, else a new one, whose
    /// refresher [`start`] starts (a config read by `validate` or `check` fetches nothing).
    pub(super) fn shared(origin: Origin) -> Arc<RemoteKeys> {
        let mut all = registry();
        all.retain(|w| w.strong_count() > 0);
        if let Some(live) = all
            .iter()
            .filter_map(Weak::upgrade)
            .find(|k| k.origin == origin)
        {
            return live;
        }
        let keys = Arc::new(RemoteKeys {
            label: origin.label(),
            origin,
            set: ArcSwap::from_pointee(KeySet::default()),
            wake: Arc::new(Notify::new()),
            fetches: watch::channel(0).0,
            kid_refresh: Mutex::new(None),
            started: AtomicBool::new(false),
        });
        all.push(Arc::downgrade(&keys));
        keys
    }

    /// Where the keys come from, for messages.
    pub(super) fn label(&self) -> &str {
        &self.label
    }

    /// The keys in use (empty before the first good fetch).
    pub(super) fn current(&self) -> Arc<Vec<Key>> {
        self.set.load().keys.clone()
    }

    /// Why there are no keys: the last fetch's error, or that none finished yet.
    pub(super) fn why_none(&self) -> String {
        match &self.set.load().error {
            Some(e) => format!("signing keys from {} not loaded: {e}", self.label),
            None => format!("signing keys from {} not fetched yet", self.label),
        }
    }

    /// Whether a token naming `kid` (or none) can be checked with the keys in use, without a
    /// refetch: keys are loaded and, when the token names a key, the set has it.
    pub(super) fn covers(&self, kid: Option<&str>) -> bool {
        let set = self.set.load();
        !set.keys.is_empty()
            && kid.is_none_or(|kid| set.keys.iter().any(|k| k.kid.as_deref() == Some(kid)))
    }

    /// Asks for a refetch because a token names a key the set lacks, and waits (at most
    /// [`KID_WAIT`]) for it to finish. Rate-limited per source: within
    /// [`KID_REFRESH_INTERVAL`] of the last such refetch, waits only if that one is still
    /// running, else returns at once (the token is then checked against the keys in use).
    pub(super) async fn refresh_for_unknown_kid(&self) {
        let mut done = self.fetches.subscribe();
        let started_at = *done.borrow_and_update();
        {
            let mut last = self.kid_refresh.lock().unwrap_or_else(|e| e.into_inner());
            match *last {
                Some((at, count)) if at.elapsed() < KID_REFRESH_INTERVAL => {
                    if count != started_at {
                        return; // that refetch finished: the answer is the set in use
                    }
                }
                _ => {
                    *last = Some((Instant::now(), started_at));
                    self.wake.notify_one();
                }
            }
        }
        let _ = tokio::time::timeout(KID_WAIT, done.changed()).await;
    }

    /// Waits until the first fetch finished (good or not), at most `limit`.
    async fn first_fetch(&self, limit: Duration) {
        let mut done = self.fetches.subscribe();
        if *done.borrow_and_update() > 0 {
            return;
        }
        let _ = tokio::time::timeout(limit, done.changed()).await;
    }

    fn start_refresher(self: &Arc<Self>) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let wake = self.wake.clone();
        tokio::spawn(refresh(Arc::downgrade(self), wake));
    }

    fn health(&self) -> KeySourceHealth {
        let set = self.set.load();
        KeySourceHealth {
            source: self.label.clone(),
            keys: set.keys.len(),
            fetched: set.fetched,
            error: set.error.clone(),
        }
    }
}

impl Drop for RemoteKeys {
    /// Wakes the refresher so it sees the source gone and ends.
    fn drop(&mut self) {
        self.wake.notify_one();
    }
}

/// Starts the refresher of every source not yet started (at start, and after a reload for
/// the sources the new config added), then waits for each one's first fetch, at most `limit`
/// in all, so the first requests find keys. Must run inside the Tokio runtime.
pub async fn start(limit: Duration) {
    let live: Vec<Arc<RemoteKeys>> = registry().iter().filter_map(Weak::upgrade).collect();
    for keys in &live {
        keys.start_refresher();
    }
    let deadline = tokio::time::Instant::now() + limit;
    for keys in &live {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        keys.first_fetch(left).await;
        let set = keys.set.load();
        match &set.error {
            None => {
                tracing::info!(source = %keys.label, keys = set.keys.len(), "JWT signing keys fetched")
            }
            Some(e) if set.keys.is_empty() => {
                tracing::error!(source = %keys.label, error = %e, "JWT SIGNING KEYS NOT LOADED: tokens from this provider are refused until a fetch succeeds")
            }
            Some(e) => {
                tracing::warn!(source = %keys.label, error = %e, "JWT signing keys not refreshed; the last good keys stay in use")
            }
        }
    }
}

/// What `/readyz` and the metrics say about one source.
#[derive(Clone, Debug)]
pub struct KeySourceHealth {
    /// The JWKS address, or the issuer with "(discovery)".
    pub source: String,
    /// Keys in use.
    pub keys: usize,
    /// When the keys in use were fetched (`None`: never).
    pub fetched: Option<SystemTime>,
    /// Why the last fetch failed.
    pub error: Option<String>,
}

/// Every live source's state, sorted by name.
pub fn health() -> Vec<KeySourceHealth> {
    let mut out: Vec<KeySourceHealth> = registry()
        .iter()
        .filter_map(Weak::upgrade)
        .map(|k| k.health())
        .collect();
    out.sort_by(|a, b| a.source.cmp(&b.source));
    out
}

/// The refresher of one source: fetch, keep or report, sleep until expiry or a wake-up;
/// ends when every rule naming the source is gone.
async fn refresh(source: Weak<RemoteKeys>, wake: Arc<Notify>) {
    let client = crate::http_client::build_without_redirects(FETCH_TIMEOUT);
    let mut retry = FIRST_RETRY;
    loop {
        let Some(keys) = source.upgrade() else { return };
        let outcome = match &client {
            Ok(client) => fetch(client, &keys.origin).await,
            Err(e) => Err(e.clone()),
        };
        let next = match outcome {
            Ok((fetched, max_age)) => {
                let kids: Vec<&str> = fetched.iter().filter_map(|k| k.kid.as_deref()).collect();
                tracing::debug!(source = %keys.label, kids = ?kids, "JWT signing keys fetched");
                keys.set.store(Arc::new(KeySet {
                    keys: Arc::new(fetched),
                    fetched: Some(SystemTime::now()),
                    error: None,
                }));
                retry = FIRST_RETRY;
                next_refresh(max_age)
            }
            Err(e) => {
                let old = keys.set.load_full();
                tracing::warn!(source = %keys.label, error = %e, kept = old.keys.len(), "cannot fetch JWT signing keys; keeping the last good ones");
                keys.set.store(Arc::new(KeySet {
                    keys: old.keys.clone(),
                    fetched: old.fetched,
                    error: Some(e),
                }));
                let wait = retry;
                retry = (retry * 2).min(MAX_RETRY);
                wait
            }
        };
        keys.fetches.send_modify(|n| *n += 1);
        drop(keys);
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = wake.notified() => {}
        }
    }
}

/// How long keys fetched with `max_age` (from `Cache-Control`) are used before a refetch.
fn next_refresh(max_age: Option<Duration>) -> Duration {
    max_age
        .unwrap_or(DEFAULT_MAX_AGE)
        .clamp(MIN_MAX_AGE, MAX_MAX_AGE)
}

/// `max-age` of a `Cache-Control` value; `no-store`/`no-cache` count as 0 (refetch at the
/// shortest interval).
pub(crate) fn max_age(cache_control: &str) -> Option<Duration> {
    let mut found = None;
    for directive in cache_control.split(',') {
        let directive = directive.trim();
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "no-store" | "no-cache" => return Some(Duration::ZERO),
            "max-age" => {
                found = value
                    .trim()
                    .trim_matches('"')
                    .parse()
                    .ok()
                    .map(Duration::from_secs);
            }
            _ => {}
        }
    }
    found
}

/// One fetch: discovery first when the origin is an issuer, then the key set.
async fn fetch(
    client: &reqwest::Client,
    origin: &Origin,
) -> Result<(Vec<Key>, Option<Duration>), String> {
    let url = match origin {
        Origin::Jwks(url) => url.clone(),
        Origin::Issuer(issuer) => discover(client, issuer).await?,
    };
    let (body, max_age) = get(client, &url).await?;
    let keys = jwks::parse(&body, &format!("JWKS from {url}"))?;
    Ok((keys, max_age))
}

/// Reads `{issuer}/.well-known/openid-configuration` and returns its `jwks_uri`.
async fn discover(client: &reqwest::Client, issuer: &str) -> Result<Url, String> {
    let address = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let url = Url::parse(&address).map_err(|e| format!("{address}: {e}"))?;
    let (body, _) = get(client, &url).await?;
    parse_discovery(&body, issuer).map_err(|why| format!("{address}: {why}"))
}

/// The `jwks_uri` of a discovery document, once its `issuer` is the configured one.
pub(crate) fn parse_discovery(body: &[u8], issuer: &str) -> Result<Url, String> {
    #[derive(Deserialize)]
    struct Discovery {
        issuer: String,
        jwks_uri: String,
    }
    let doc: Discovery = serde_json::from_slice(body)
        .map_err(|e| format!("not an OpenID provider configuration: {e}"))?;
    if doc.issuer != issuer {
        return Err(format!(
            "names issuer `{}`, not `{issuer}`; refused (OIDC Discovery §4.3)",
            doc.issuer
        ));
    }
    let url = Url::parse(&doc.jwks_uri)
        .map_err(|e| format!("jwks_uri `{}` is not a URL: {e}", doc.jwks_uri))?;
    fetchable(&url).map_err(|why| format!("jwks_uri `{url}`: {why}"))?;
    Ok(url)
}

/// GET with the fetch timeout; 200 only; the body bounded by [`jwks::MAX_JWKS_LEN`].
async fn get(client: &reqwest::Client, url: &Url) -> Result<(Vec<u8>, Option<Duration>), String> {
    let mut resp = client
        .get(url.clone())
        .header(http::header::ACCEPT, "application/json")
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("{url}: {}", crate::http_client::chain(&e)))?;
    let status = resp.status();
    if status.is_redirection() {
        return Err(format!(
            "{url} answered {status}; redirects are not followed: configure the final address"
        ));
    }
    if status != http::StatusCode::OK {
        return Err(format!("{url} answered {status}"));
    }
    let max_age = resp
        .headers()
        .get(http::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(max_age);
    let body = crate::http_client::read_body(&mut resp, jwks::MAX_JWKS_LEN as u64, |_, _| {})
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    Ok((body, max_age))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_is_fetched() {
        assert!(Origin::jwks("https://idp.example.com/keys").is_ok());
        assert!(Origin::jwks("http://127.0.0.1:8080/keys").is_ok());
        assert!(Origin::jwks("http://[::1]/keys").is_ok());
        assert!(Origin::jwks("http://localhost/keys").is_ok());
        let e = Origin::jwks("http://idp.example.com/keys").unwrap_err();
        assert!(e.contains("use https"), "{e}");
        assert!(Origin::jwks("file:///etc/keys.json").is_err());
        assert!(Origin::jwks("not a url").is_err());
        assert!(Origin::issuer("https://idp.example.com/oauth2/default").is_ok());
        assert!(Origin::issuer("https://idp.example.com/?x=1").is_err());
    }

    #[test]
    fn refetch_interval_follows_cache_control_within_bounds() {
        assert_eq!(
            max_age("public, max-age=86400"),
            Some(Duration::from_secs(86400))
        );
        assert_eq!(
            max_age("max-age=\"120\", must-revalidate"),
            Some(Duration::from_secs(120))
        );
        assert_eq!(max_age("no-cache"), Some(Duration::ZERO));
        assert_eq!(max_age("private"), None);
        assert_eq!(max_age("max-age=abc"), None);
        assert_eq!(next_refresh(None), DEFAULT_MAX_AGE);
        assert_eq!(next_refresh(Some(Duration::ZERO)), MIN_MAX_AGE);
        assert_eq!(
            next_refresh(Some(Duration::from_secs(900))),
            Duration::from_secs(900)
        );
        assert_eq!(
            next_refresh(Some(Duration::from_secs(30 * 86400))),
            MAX_MAX_AGE
        );
    }

    #[test]
    fn discovery_must_name_the_configured_issuer() {
        let doc =
            br#"{"issuer":"https://idp.example.com","jwks_uri":"https://idp.example.com/keys"}"#;
        let url = parse_discovery(doc, "https://idp.example.com").expect("matches");
        assert_eq!(url.as_str(), "https://idp.example.com/keys");
        let e = parse_discovery(doc, "https://idp.example.com/").unwrap_err();
        assert!(e.contains("not `https://idp.example.com/`"), "{e}");
        let plain = br#"{"issuer":"https://i.example","jwks_uri":"http://i.example/keys"}"#;
        let e = parse_discovery(plain, "https://i.example").unwrap_err();
        assert!(e.contains("use https"), "{e}");
        assert!(parse_discovery(b"[]", "https://i.example").is_err());
    }
}
