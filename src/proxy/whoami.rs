//! `builtin:whoami`: a page that shows the caller what locgate sees of them and why.
//!
//! It is the first thing an operator opens after `locgate run`, and what an employee is sent to
//! when IT asks "what does the gateway think of your connection?".

use http::{HeaderMap, StatusCode};

use super::refuse::{self, Reply};
use crate::audit::{Event, RequestFacts};
use crate::client_addr::ClientAddr;
use crate::edge::context::ListenerCtx;
use crate::explain;
use crate::intel::{Intel, Observation};
use crate::policy::Decision;

/// Renders the page (JSON event when the client asks for JSON).
pub fn page(
    ctx: &ListenerCtx,
    client: &ClientAddr,
    obs: &Observation<'_>,
    decision: &Decision,
    intel: &Intel,
    headers: &HeaderMap,
) -> Reply {
    if refuse::wants_json(headers) {
        let facts = RequestFacts {
            listener: ctx.cfg.name.clone(),
            port: client.port,
            client_addr_source: client.source.as_str(),
            ..RequestFacts::default()
        };
        let event = Event::build(
            "whoami".into(),
            crate::audit::timestamp_now(),
            obs,
            decision,
            facts,
            intel.shown(),
        );
        let body = serde_json::to_string_pretty(&event).unwrap_or_default();
        return Reply {
            status: StatusCode::OK,
            content_type: "application/json",
            body,
        };
    }
    let explanation = explain::html_escape(&explain::text(obs, decision));
    let versions: String = intel
        .versions()
        .iter()
        .map(|v| {
            format!(
                "<li><code>{}</code> ({}, built {})</li>",
                explain::html_escape(&v.source),
                explain::html_escape(&v.kind),
                v.built_date()
            )
        })
        .collect();
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>locgate: what we see of you</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <style>body{{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem;color:#222}}\
         pre{{background:#f6f6f6;padding:1rem;border-radius:6px;overflow-x:auto}}small{{color:#666}}</style></head>\
         <body><h1>What locgate sees of this connection</h1>\
         <p>Address taken from: <b>{source}</b> (listener <code>{listener}</code>, {mode} mode)</p>\
         <pre>{explanation}</pre>\
         <h2>Data used</h2><ul>{versions}</ul>\
         <p><small>Ask for <code>Accept: application/json</code> to get the audit event instead. \
         Geolocation data: ip-location-db (NRO, RouteViews, DB-IP: \
         <a href=\"https://db-ip.com\">IP Geolocation by DB-IP</a>), GeoNames; see data/README.md.</small></p></body></html>\n",
        source = client.source.as_str(),
        listener = explain::html_escape(&ctx.cfg.name),
        mode = ctx.cfg.mode.as_str(),
    );
    Reply {
        status: StatusCode::OK,
        content_type: "text/html; charset=utf-8",
        body,
    }
}
