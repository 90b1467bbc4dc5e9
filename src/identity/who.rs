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
    /// Why the identity steps could not settle who is behind the request. A request with
    /// trouble is never decided as a clean anonymous allow: the decision gets
    /// `identity_unreadable` or `identity_conflict` (fail closed).
    pub trouble: Option<Trouble>,
}

/// What kept the identity steps from naming one person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// A source that should have named someone could not be read (a login body that timed
    /// out, was over the limit, was malformed or undecodable).
    Unreadable(String),
    /// Sources named different people (form versus cookie versus header, or duplicate cookie
    /// values belonging to different sessions).
    Conflict(String),
}

impl Who {
    /// Reads the user name from a login form body (all of it, at most the rule's
    /// [`FormRule::max_body`] bytes), as the request's `Content-Type` says to parse it.
    /// `target` is the request target as sent (its query may carry the name too).
    pub fn read_login_form(
        &mut self,
        rule: &FormRule,
        headers: &HeaderMap,
        _target: &[u8],
        body: &[u8],
    ) {
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let found = rule.extract(content_type, body);
        self.identity = found.identity;
        self.problems.extend(found.problems);
    }

    /// The login source could not be read (`why` is a sentence for the event, never a secret).
    /// The first trouble is kept: it is the one that made the rest unreadable.
    pub fn unreadable(&mut self, why: impl Into<String>) {
        let why = why.into();
        self.problems.push(why.clone());
        self.trouble.get_or_insert(Trouble::Unreadable(why));
    }

    /// Sources named different people. A conflict outranks an unreadable source.
    pub fn conflict(&mut self, why: impl Into<String>) {
        let why = why.into();
        self.problems.push(why.clone());
        if !matches!(self.trouble, Some(Trouble::Conflict(_))) {
            self.trouble = Some(Trouble::Conflict(why));
        }
    }
}
