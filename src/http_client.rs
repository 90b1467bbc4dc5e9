//! The one outbound HTTP(S) client setup (data downloads, alert webhooks): rustls on the ring
//! provider with the system's trust store, so no second TLS stack is built in.

use std::time::Duration;

/// A client with locgate's user agent and a connect timeout.
pub fn build(connect_timeout: Duration) -> Result<reqwest::Client, String> {
    use_ring_for_tls();
    reqwest::Client::builder()
        .user_agent(concat!("locgate/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_timeout)
        .build()
        .map_err(|e| format!("cannot set up HTTPS: {e}"))
}

/// Makes ring the process's TLS provider before any outbound TLS client is built (reqwest here,
/// `rediss://` in the history link): rustls is built without a default provider, and a client
/// built without one would panic. Installing twice is harmless.
pub fn use_ring_for_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
