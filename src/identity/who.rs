//! What one request's identity steps found, before deciding.
//!
//! The transports differ in where the name comes from (a client certificate at the handshake,
//! header sources and a session cookie with the head, a login form with the body), but they all
//! end in one [`Who`], which is what the decision reads.

use http::HeaderMap;

use super::{FormRule, Identity, IdentitySource, SessionEntry};

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
    /// Every identity a source named on this request (certificate, header sources, each known
    /// session cookie value, login body and query), in the order read; [`Who::settle`] compares
    /// them. Empty unless some source named someone.
    pub claims: Vec<Identity>,
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
    /// Reads the user name of a login from its body (all of it, at most the rule's
    /// [`FormRule::max_body`] bytes, parsed as the request's `Content-Type` says) and from the
    /// query of `target` (the request target as sent). The name found becomes a claim, and the
    /// identity when the head named nobody; a body and a query naming different people are a
    /// conflict; a login that names nobody is [`Who::unreadable`] (fail closed: a login that
    /// cannot be read is never an anonymous allow).
    pub fn read_login_form(
        &mut self,
        rule: &FormRule,
        headers: &HeaderMap,
        target: &[u8],
        body: &[u8],
    ) {
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let in_body = rule.extract(content_type, body);
        let in_query = rule.from_query(target);
        // The field is in the query but cannot be read (broken escape, twice): which name the
        // upstream takes is unknowable, whatever the body says.
        if let Some(why) = in_query.problems.first() {
            self.unreadable(why.clone());
        }
        self.problems.extend(in_query.problems.into_iter().skip(1));
        let named: Vec<Identity> = in_body
            .identity
            .into_iter()
            .chain(in_query.identity)
            .collect();
        let Some(first) = named.first() else {
            let why = in_body
                .problems
                .first()
                .cloned()
                .unwrap_or_else(|| "form: login names nobody".into());
            // The body's problems are the reason; keep them once.
            self.problems.extend(in_body.problems.into_iter().skip(1));
            self.unreadable(why);
            return;
        };
        // The query answered and the body did not: the body's problems are kept (a framework
        // merging both would read the query, but a reviewer should see the body was odd).
        self.problems.extend(in_body.problems);
        if self.identity.is_none() {
            self.identity = Some(first.clone());
        }
        self.claims.extend(named);
    }

    /// Compares every claim ([`Who::claims`]) by `key` (the directory's employee id, so aliases
    /// of one person agree, else the name folded to lower case). Claims that name different
    /// people are a [`Who::conflict`]. A new login (a form claim) is what the request is about,
    /// so it becomes the identity when it disagrees with the head or when the head named
    /// nobody. Whenever the request has trouble the identity decided on is unverified and keeps
    /// no session: one identity must never lend another its exemption or its login place.
    pub fn settle(&mut self, key: impl Fn(&str) -> String) {
        if self.claims.len() > 1 {
            let first = key(&self.claims[0].user);
            if self.claims[1..].iter().any(|c| key(&c.user) != first) {
                let mut named: Vec<String> = Vec::with_capacity(self.claims.len());
                for c in &self.claims {
                    let entry = format!("{} {}", c.source, c.user);
                    if !named.contains(&entry) {
                        named.push(entry);
                    }
                }
                self.conflict(format!("identity sources disagree: {}", named.join(", ")));
                if let Some(login) = self
                    .claims
                    .iter()
                    .find(|c| c.source == IdentitySource::Form)
                {
                    self.identity = Some(login.clone());
                }
            }
        }
        if self.trouble.is_some() {
            if let Some(identity) = &mut self.identity {
                identity.verified = false;
            }
            if self
                .identity
                .as_ref()
                .is_none_or(|i| i.source != IdentitySource::Session)
            {
                self.session = None;
            }
        }
    }

    /// Whether anything about who is behind the request went wrong (a problem or trouble):
    /// such a request's event is never folded into another.
    pub fn has_problems(&self) -> bool {
        !self.problems.is_empty() || self.trouble.is_some()
    }

    /// Whether a session the response sets may be learned for this request's identity: always
    /// without trouble; on a conflict only for the new login's name (unverified by then, see
    /// [`Who::settle`]); never after an unreadable login (whose login was it?) nor for an
    /// identity a conflict put in doubt (a duplicated cookie's owner).
    pub fn may_learn_session(&self) -> bool {
        match (&self.trouble, &self.identity) {
            (_, None) | (Some(Trouble::Unreadable(_)), _) => false,
            (None, Some(_)) => true,
            (Some(Trouble::Conflict(_)), Some(identity)) => identity.source == IdentitySource::Form,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::FormConfig;
    use http::HeaderValue;

    fn rule() -> FormRule {
        FormRule::from_config(&FormConfig {
            path: "/login".into(),
            field: "username".into(),
            max_body: None,
            case_sensitive: None,
        })
        .expect("valid rule")
    }

    fn form_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        h
    }

    fn id(user: &str, source: IdentitySource, verified: bool) -> Identity {
        Identity {
            user: user.into(),
            source,
            verified,
        }
    }

    /// Canonical names as the spine gives them without a directory.
    fn lower(name: &str) -> String {
        name.to_lowercase()
    }

    #[test]
    fn a_login_naming_nobody_is_unreadable() {
        let mut who = Who::default();
        who.read_login_form(&rule(), &form_headers(), b"/login", b"password=x");
        assert_eq!(
            who.trouble,
            Some(Trouble::Unreadable("form: no username field".into()))
        );
        assert_eq!(who.problems, ["form: no username field"]);
        assert!(who.identity.is_none() && who.claims.is_empty());
        assert!(!who.may_learn_session());

        let mut who = Who::default();
        who.read_login_form(&rule(), &HeaderMap::new(), b"/login", b"");
        assert_eq!(
            who.trouble,
            Some(Trouble::Unreadable("form: no Content-Type".into()))
        );
    }

    #[test]
    fn the_query_names_the_user_and_may_disagree_with_the_body() {
        let mut who = Who::default();
        who.read_login_form(&rule(), &form_headers(), b"/login?username=bob", b"x=1");
        assert_eq!(who.identity, Some(id("bob", IdentitySource::Form, false)));
        assert_eq!(who.trouble, None);
        who.settle(lower);
        assert_eq!(who.trouble, None);

        let mut who = Who::default();
        who.read_login_form(
            &rule(),
            &form_headers(),
            b"/login?username=bob",
            b"username=alice",
        );
        who.settle(lower);
        assert!(matches!(who.trouble, Some(Trouble::Conflict(_))));
        assert_eq!(who.identity.map(|i| i.user).as_deref(), Some("alice"));

        // A name in the query that cannot be read makes the login unreadable, whatever the
        // body says: the upstream may take either.
        let mut who = Who::default();
        who.read_login_form(
            &rule(),
            &form_headers(),
            b"/login?username=a&username=b",
            b"username=alice",
        );
        assert_eq!(
            who.trouble,
            Some(Trouble::Unreadable(
                "form query: user name field appears more than once".into()
            ))
        );
        assert!(!who.may_learn_session());
    }

    #[test]
    fn a_login_as_someone_else_wins_over_a_session_and_is_unverified() {
        let mut who = Who {
            identity: Some(id("e3007", IdentitySource::Session, true)),
            claims: vec![id("e3007", IdentitySource::Session, true)],
            ..Who::default()
        };
        who.read_login_form(&rule(), &form_headers(), b"/login", b"username=Alice");
        who.settle(lower);
        assert_eq!(
            who.trouble,
            Some(Trouble::Conflict(
                "identity sources disagree: session e3007, form Alice".into()
            ))
        );
        assert_eq!(who.identity, Some(id("Alice", IdentitySource::Form, false)));
        assert!(who.may_learn_session(), "as the form's user");
        assert!(
            who.session.is_none(),
            "the old session's place is not the new login's"
        );
    }

    #[test]
    fn one_person_under_several_names_is_no_conflict() {
        let mut who = Who {
            identity: Some(id("e1042", IdentitySource::Session, true)),
            claims: vec![id("e1042", IdentitySource::Session, true)],
            ..Who::default()
        };
        who.read_login_form(&rule(), &form_headers(), b"/login", b"username=ALICE");
        // The directory maps the alias to the id.
        who.settle(|n| match n.to_lowercase().as_str() {
            "alice" => "e1042".into(),
            other => other.into(),
        });
        assert_eq!(who.trouble, None);
        assert!(who.problems.is_empty());
        assert_eq!(
            who.identity,
            Some(id("e1042", IdentitySource::Session, true)),
            "the stronger identity stays"
        );
    }

    #[test]
    fn any_trouble_demotes_the_identity() {
        let mut who = Who {
            identity: Some(id("e3007", IdentitySource::Jwt, true)),
            claims: vec![id("e3007", IdentitySource::Jwt, true)],
            ..Who::default()
        };
        who.conflict("cookie SESSION sent with different values");
        who.settle(lower);
        assert_eq!(who.identity.as_ref().map(|i| i.verified), Some(false));
        assert!(who.has_problems());
        assert!(
            !who.may_learn_session(),
            "a doubted identity teaches no session"
        );
        assert!(!Who::default().has_problems());
    }
}
