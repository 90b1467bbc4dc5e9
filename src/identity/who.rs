//! What one request's identity steps found, before deciding.
//!
//! The transports differ in where the name comes from (a client certificate at the handshake,
//! header sources and a session cookie with the head, a login form with the body), but they all
//! end in one [`Who`], which is what the decision reads.

use http::HeaderMap;

use super::{FormRule, Identity, SessionEntry};

/// What was learned about who is behind a request, before deciding.
#[derive(Debug, Default, Clone)]
pub struct Who {
    /// The identity found, if any.
    pub identity: Option<Identity>,
    /// Why sources failed (for the event).
    pub problems: Vec<String>,
    /// The session the identity came from, when it came from a session cookie.
    pub session: Option<SessionEntry>,
}

impl Who {
    /// Reads the user name from a login form body (all of it, at most the rule's
    /// [`FormRule::max_body`] bytes), as the request's `Content-Type` says to parse it.
    pub fn read_login_form(&mut self, rule: &FormRule, headers: &HeaderMap, body: &[u8]) {
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let found = rule.extract(content_type, body);
        self.identity = found.identity;
        self.problems.extend(found.problems);
    }
}
