//! The pooled HTTP/1.1 client to one upstream.

use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// A keep-alive pool to one origin, and the origin's scheme and authority to put in URIs.
pub struct UpstreamClient {
    /// The pooled client.
    pub client: Client<HttpConnector, Incoming>,
    /// `http`.
    pub scheme: http::uri::Scheme,
    /// `host:port`.
    pub authority: http::uri::Authority,
}

impl UpstreamClient {
    /// A client for `origin` (validated by config as `http://host[:port]`).
    pub fn new(origin: &http::Uri, connect_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .set_host(true)
            .build(connector);
        UpstreamClient {
            client,
            scheme: origin.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP),
            authority: origin
                .authority()
                .cloned()
                .unwrap_or_else(|| http::uri::Authority::from_static("127.0.0.1")),
        }
    }

    /// The upstream URI for a client request target.
    pub fn uri_for(&self, original: &http::Uri) -> Result<http::Uri, http::Error> {
        let pq = original
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        http::Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
    }
}
