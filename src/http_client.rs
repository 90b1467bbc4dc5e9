//! The one outbound HTTP(S) client setup (data downloads, alert webhooks): rustls on the ring
//! provider with the system's trust store, so no second TLS stack is built in.

use std::time::Duration;

/// A client with locgate's user agent and a connect timeout.
pub fn build(connect_timeout: Duration) -> Result<reqwest::Client, String> {
    // Installing twice is harmless (the second call reports the first provider).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("locgate/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_timeout)
        .build()
        .map_err(|e| format!("cannot set up HTTPS: {e}"))
}
