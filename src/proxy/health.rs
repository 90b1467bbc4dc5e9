//! The balancer's health check, answered by locgate itself.
//!
//! A load balancer probes every few seconds from a private address with no forwarding header.
//! Run through the spine, each probe became an `unknown_location` flag in the review queue.
//! A GET or HEAD of exactly the listener's `health_path` is answered here, before any identity
//! or decision step: no event, nothing forwarded. Anything else on that path (another method, a
//! query, absolute form) goes through the spine like every request.

use http::{Method, StatusCode};

use super::refuse::Reply;
use crate::config::ListenerConfig;

/// The reply to a health check, or `None` when the request is not one.
pub fn answer(cfg: &ListenerConfig, method: &Method, target: &[u8]) -> Option<Reply> {
    let path = cfg.health_path.as_deref()?;
    if target != path.as_bytes() {
        return None;
    }
    let body = match *method {
        Method::GET => "ok\n",
        Method::HEAD => "",
        _ => return None,
    };
    Some(Reply {
        status: StatusCode::OK,
        content_type: "text/plain; charset=utf-8",
        body: body.to_string(),
    })
}
