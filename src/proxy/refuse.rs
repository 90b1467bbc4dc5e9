//! Responses locgate writes itself: the block page, upstream failures, plain errors.
//!
//! The block page shows only a reference id: telling a blocked client *why* (which database, which
//! rule) would teach an attacker how to get around it; IT looks the id up in the events.

use bytes::Bytes;
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{Either, Full};

use super::handler::ProxyBody;

/// Whether the client prefers JSON (API clients) over HTML (browsers).
pub fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/json"))
}

/// 403 with a reference id, as HTML or JSON.
pub fn forbidden(id: &str, headers: &HeaderMap) -> Response<ProxyBody> {
    if wants_json(headers) {
        let body = serde_json::json!({ "error": "access_denied", "reference": id }).to_string();
        return build(StatusCode::FORBIDDEN, "application/json", body);
    }
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Access denied</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <style>body{{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;color:#222}}\
         code{{background:#f2f2f2;padding:.15rem .4rem;border-radius:4px}}</style></head>\
         <body><h1>Access denied</h1><p>This connection was not allowed by your organisation's access policy.</p>\
         <p>If you think this is a mistake, contact your IT help desk and quote this reference:</p>\
         <p><code>{id}</code></p></body></html>\n"
    );
    build(StatusCode::FORBIDDEN, "text/html; charset=utf-8", body)
}

/// 502 / 504 with a reference id.
pub fn upstream_error(status: StatusCode, id: &str) -> Response<ProxyBody> {
    let what = if status == StatusCode::GATEWAY_TIMEOUT {
        "The service did not answer in time."
    } else {
        "The service behind this gateway is unavailable."
    };
    build(
        status,
        "text/plain; charset=utf-8",
        format!("{what} Reference: {id}\n"),
    )
}

/// A short plain-text response.
pub fn plain(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    build(status, "text/plain; charset=utf-8", text.to_string())
}

/// A complete response with a body we generated.
pub fn build(status: StatusCode, content_type: &'static str, body: String) -> Response<ProxyBody> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
