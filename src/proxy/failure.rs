//! Every way an HTTP exchange can fail, and the one table that maps each to what the client is
//! told and what the event says.
//!
//! Both engines turn what went wrong into a [`Failure`]; [`super::exchange::Exchange::fail`]
//! records it and hands back the reply, so the status of a failure cannot differ between
//! HTTP/1.1 and HTTP/2 and is tested in one place. Client-side failures are counted as bad
//! requests; upstream failures as upstream errors, and their reply carries the event's reference
//! id so a help desk can find it.

use std::time::Duration;

use http::StatusCode;

use super::refuse::{self, Reply};

/// What `http.response.status_code` says when the client went away before any response: no
/// status was sent, and 499 is the code log readers know for it (nginx's "client closed
/// request").
pub const CLIENT_CLOSED: u16 = 499;

/// Why an exchange ended without the upstream's response reaching the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The request head does not parse (`why` from the parser).
    MalformedHead(String),
    /// More header fields than the parser takes.
    TooManyHeaders(usize),
    /// A request head over `max_header_bytes`.
    HeadTooLarge(usize),
    /// The client closed in the middle of a request head.
    ClosedMidHead,
    /// The request head did not complete within `header_read_timeout`.
    HeadTimeout(Duration),
    /// A login form body over its rule's limit.
    LoginBodyTooLarge(usize),
    /// The client paused longer than the body timeout while sending a login form.
    LoginBodyStalled(Duration),
    /// The client stopped sending a login form body (reset, closed).
    LoginBodyGone,
    /// The resolved client (behind a trusted balancer) already has this many requests in
    /// flight: `max_connections_per_client` applied per request.
    ClientOverCap(usize),
    /// `CONNECT`: a reverse proxy does not open tunnels to arbitrary hosts.
    Connect,
    /// A request target that is neither origin-form nor absolute-form.
    BadTarget(&'static str),
    /// A malformed chunked request body.
    BadClientBody(&'static str),
    /// The client closed or stalled while sending its body: nothing can be answered.
    ClientGone,
    /// The client reset its HTTP/2 stream before the response: the upstream request is
    /// abandoned, nothing can be answered.
    StreamReset,
    /// The listener has no HTTP upstream.
    NoUpstream,
    /// Connecting to the upstream failed (the text names the address and the error).
    UpstreamConnect(String),
    /// Connecting to the upstream timed out.
    UpstreamConnectTimeout(String),
    /// The upstream closed the connection before a response head.
    UpstreamClosed(String),
    /// The upstream stopped reading the request body.
    UpstreamStoppedReading(String),
    /// No response head within `response_timeout`.
    UpstreamTimeout {
        /// `host:port`.
        origin: String,
        /// The limit.
        timeout: Duration,
    },
    /// The upstream answered something unusable (the text says what).
    UpstreamBad(String),
    /// After the response head went out: nothing more can be said, the connection just closes
    /// (the event was written with the head).
    MidResponse(String),
}

/// Which counter a failure adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The client sent something unusable or went away (`bad_requests`).
    Client,
    /// The upstream failed (`upstream_errors`); the reply carries a reference id.
    Upstream,
    /// Nothing to count: already recorded, or a refusal by rule.
    None,
}

impl Failure {
    /// The status the client is sent, and the one recorded: `None` when nothing can be sent.
    pub fn status(&self) -> Option<StatusCode> {
        use Failure::*;
        Some(match self {
            MalformedHead(_) | ClosedMidHead | LoginBodyGone | BadTarget(_) | BadClientBody(_) => {
                StatusCode::BAD_REQUEST
            }
            TooManyHeaders(_) | HeadTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            HeadTimeout(_) | LoginBodyStalled(_) => StatusCode::REQUEST_TIMEOUT,
            LoginBodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Connect => StatusCode::METHOD_NOT_ALLOWED,
            ClientOverCap(_) => StatusCode::TOO_MANY_REQUESTS,
            NoUpstream
            | UpstreamConnect(_)
            | UpstreamClosed(_)
            | UpstreamStoppedReading(_)
            | UpstreamBad(_) => StatusCode::BAD_GATEWAY,
            UpstreamConnectTimeout(_) | UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ClientGone | StreamReset | MidResponse(_) => return None,
        })
    }

    /// The status code the event records.
    pub fn recorded_status(&self) -> u16 {
        self.status().map_or(CLIENT_CLOSED, |s| s.as_u16())
    }

    /// Whose failure it is, for the counters.
    pub fn blame(&self) -> Blame {
        use Failure::*;
        match self {
            MalformedHead(_) | TooManyHeaders(_) | HeadTooLarge(_) | ClosedMidHead
            | HeadTimeout(_) | BadClientBody(_) => Blame::Client,
            NoUpstream
            | UpstreamConnect(_)
            | UpstreamConnectTimeout(_)
            | UpstreamClosed(_)
            | UpstreamStoppedReading(_)
            | UpstreamTimeout { .. }
            | UpstreamBad(_) => Blame::Upstream,
            LoginBodyTooLarge(_) | LoginBodyStalled(_) | LoginBodyGone | Connect | BadTarget(_)
            | ClientOverCap(_) | ClientGone | StreamReset | MidResponse(_) => Blame::None,
        }
    }

    /// Whether the event must still be written (a failure after the response head was
    /// recorded with the head).
    pub fn needs_event(&self) -> bool {
        !matches!(self, Failure::MidResponse(_))
    }

    /// The reply for the client (`id`: the event's reference, shown on upstream failures).
    pub fn reply(&self, id: &str) -> Option<Reply> {
        use Failure::*;
        let status = self.status()?;
        Some(match self {
            TooManyHeaders(_) | HeadTooLarge(_) => {
                refuse::plain(status, "request headers too large\n")
            }
            HeadTimeout(_) => refuse::plain(status, "request headers not received in time\n"),
            MalformedHead(_) | ClosedMidHead => refuse::plain(status, "malformed request\n"),
            LoginBodyTooLarge(_) => refuse::plain(status, "login form body too large\n"),
            LoginBodyStalled(_) | LoginBodyGone => {
                refuse::plain(status, "login form body not received\n")
            }
            Connect => refuse::plain(status, "CONNECT is not supported by a reverse proxy\n"),
            ClientOverCap(_) => refuse::plain(status, "too many requests in flight\n"),
            BadTarget(_) => refuse::plain(status, "bad request target\n"),
            BadClientBody(_) => refuse::plain(status, "malformed request body\n"),
            _ => refuse::upstream_error(status, id),
        })
    }

    /// The sentence for the event's `locgate.error`.
    pub fn message(&self) -> String {
        use Failure::*;
        match self {
            MalformedHead(why) => format!("malformed request: {why}"),
            TooManyHeaders(n) => format!("more than {n} header fields"),
            HeadTooLarge(n) => format!("request head larger than {n} bytes"),
            ClosedMidHead => "client closed in the middle of a request head".into(),
            HeadTimeout(t) => format!("request head read timeout: not complete within {t:?}"),
            LoginBodyTooLarge(n) => format!("login form body larger than {n} bytes"),
            LoginBodyStalled(t) => format!("login form body: client paused for more than {t:?}"),
            LoginBodyGone => "login form body: client stopped sending it".into(),
            Connect => "CONNECT refused".into(),
            ClientOverCap(n) => format!("client over its cap of {n} requests in flight"),
            BadTarget(why) => format!("bad request target: {why}"),
            BadClientBody(why) => format!("malformed chunked request body: {why}"),
            ClientGone => "client closed or stalled while sending the request body".into(),
            StreamReset => "client went away: it reset the stream before the response".into(),
            NoUpstream => "no upstream configured".into(),
            UpstreamConnect(text)
            | UpstreamConnectTimeout(text)
            | UpstreamClosed(text)
            | UpstreamStoppedReading(text)
            | UpstreamBad(text)
            | MidResponse(text) => text.clone(),
            UpstreamTimeout { origin, timeout } => {
                format!("upstream {origin} sent no response within {timeout:?}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant, its status to the client (`None`: nothing sent), the status recorded, and
    /// the counter it adds to. A new variant must be added here to compile the match below.
    #[test]
    fn every_failure_maps_to_its_status() {
        let t = Duration::from_secs(5);
        let s = |x: &str| x.to_owned();
        let table: Vec<(Failure, Option<u16>, u16, Blame)> = vec![
            (
                Failure::MalformedHead(s("x")),
                Some(400),
                400,
                Blame::Client,
            ),
            (Failure::TooManyHeaders(100), Some(431), 431, Blame::Client),
            (Failure::HeadTooLarge(8192), Some(431), 431, Blame::Client),
            (Failure::ClosedMidHead, Some(400), 400, Blame::Client),
            (Failure::HeadTimeout(t), Some(408), 408, Blame::Client),
            (
                Failure::LoginBodyTooLarge(1024),
                Some(413),
                413,
                Blame::None,
            ),
            (Failure::LoginBodyStalled(t), Some(408), 408, Blame::None),
            (Failure::LoginBodyGone, Some(400), 400, Blame::None),
            (Failure::Connect, Some(405), 405, Blame::None),
            (Failure::ClientOverCap(8), Some(429), 429, Blame::None),
            (Failure::BadTarget("x"), Some(400), 400, Blame::None),
            (Failure::BadClientBody("x"), Some(400), 400, Blame::Client),
            (Failure::ClientGone, None, 499, Blame::None),
            (Failure::StreamReset, None, 499, Blame::None),
            (Failure::NoUpstream, Some(502), 502, Blame::Upstream),
            (
                Failure::UpstreamConnect(s("x")),
                Some(502),
                502,
                Blame::Upstream,
            ),
            (
                Failure::UpstreamConnectTimeout(s("x")),
                Some(504),
                504,
                Blame::Upstream,
            ),
            (
                Failure::UpstreamClosed(s("x")),
                Some(502),
                502,
                Blame::Upstream,
            ),
            (
                Failure::UpstreamStoppedReading(s("x")),
                Some(502),
                502,
                Blame::Upstream,
            ),
            (
                Failure::UpstreamTimeout {
                    origin: s("o"),
                    timeout: t,
                },
                Some(504),
                504,
                Blame::Upstream,
            ),
            (
                Failure::UpstreamBad(s("x")),
                Some(502),
                502,
                Blame::Upstream,
            ),
            (Failure::MidResponse(s("x")), None, 499, Blame::None),
        ];
        for (f, sent, recorded, blame) in &table {
            // Exhaustiveness: adding a variant without a row fails to compile here.
            match f {
                Failure::MalformedHead(_)
                | Failure::TooManyHeaders(_)
                | Failure::HeadTooLarge(_)
                | Failure::ClosedMidHead
                | Failure::HeadTimeout(_)
                | Failure::LoginBodyTooLarge(_)
                | Failure::LoginBodyStalled(_)
                | Failure::LoginBodyGone
                | Failure::Connect
                | Failure::ClientOverCap(_)
                | Failure::BadTarget(_)
                | Failure::BadClientBody(_)
                | Failure::ClientGone
                | Failure::StreamReset
                | Failure::NoUpstream
                | Failure::UpstreamConnect(_)
                | Failure::UpstreamConnectTimeout(_)
                | Failure::UpstreamClosed(_)
                | Failure::UpstreamStoppedReading(_)
                | Failure::UpstreamTimeout { .. }
                | Failure::UpstreamBad(_)
                | Failure::MidResponse(_) => {}
            }
            assert_eq!(f.status().map(|s| s.as_u16()), *sent, "{f:?}");
            assert_eq!(f.recorded_status(), *recorded, "{f:?}");
            assert_eq!(f.blame(), *blame, "{f:?}");
            let reply = f.reply("ref-1");
            assert_eq!(reply.as_ref().map(|r| r.status.as_u16()), *sent, "{f:?}");
            if *blame == Blame::Upstream {
                assert!(reply.is_some_and(|r| r.body.contains("ref-1")), "{f:?}");
            }
            assert!(!f.message().is_empty());
        }
        assert_eq!(table.len(), 22, "one row per variant");
    }

    #[test]
    fn messages_name_what_went_wrong() {
        assert_eq!(
            Failure::LoginBodyTooLarge(1024).message(),
            "login form body larger than 1024 bytes"
        );
        assert_eq!(
            Failure::UpstreamTimeout {
                origin: "127.0.0.1:9".into(),
                timeout: Duration::from_secs(2)
            }
            .message(),
            "upstream 127.0.0.1:9 sent no response within 2s"
        );
        assert_eq!(
            Failure::HeadTimeout(Duration::from_millis(500)).message(),
            "request head read timeout: not complete within 500ms"
        );
    }
}
