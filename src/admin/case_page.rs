//! The case pages: the list of cases to work, and one case (its members, map, timeline,
//! trail, and the form that changes it). Changes go to the JSON API with `fetch` (a form post
//! from another site cannot send JSON, and the session cookie is `SameSite=Strict`).

use std::fmt::Write;

use serde::Serialize;

use super::page::{enc, esc, map, shell, timeline_table};
use crate::audit::store::{Case, CaseState, StoredEvent, TrailEntry};

/// A case, its events (newest first, at most 500) and its trail: what the case page and the
/// evidence report show, and the API's answer.
#[derive(Serialize)]
pub(super) struct CaseData {
    pub(super) case: Case,
    pub(super) events: Vec<StoredEvent>,
    pub(super) trail: Vec<TrailEntry>,
}

fn state_pill(state: CaseState) -> String {
    let class = match state {
        CaseState::Open => "flag",
        CaseState::Investigating => "flag",
        CaseState::ConfirmedFraud => "block",
        CaseState::Benign => "allow",
    };
    format!(
        "<span class=\"pill {class} state\">{}</span>",
        esc(&state.as_str().replace('_', " "))
    )
}

fn subject(case: &Case) -> String {
    if case.kind == "egress" {
        format!("shared egress {}", esc(&case.subject))
    } else {
        format!(
            "<a href=\"/employees/{}\">{}</a>",
            enc(&case.subject),
            esc(&case.subject)
        )
    }
}

fn members(case: &Case) -> String {
    case.members
        .iter()
        .map(|m| format!("<a href=\"/employees/{}\">{}</a>", enc(m), esc(m)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn reason_codes(case: &Case) -> String {
    case.reasons
        .iter()
        .map(|r| format!("<span class=\"code\">{}</span>", esc(r)))
        .collect()
}

/// The list of cases in `shown` states.
pub fn list(cases: &[Case], shown: &[CaseState]) -> String {
    let mut body = String::from("<h1>Cases</h1><div class=\"card\"><p>");
    let filters = [
        ("open,investigating", "to work"),
        ("confirmed_fraud", "confirmed fraud"),
        ("benign", "benign"),
        ("", "all"),
    ];
    for (q, label) in filters {
        let _ = write!(
            body,
            "<a href=\"/cases?state={}\">{}</a> · ",
            enc(q),
            esc(label)
        );
    }
    let _ = write!(
        body,
        "showing: {}</p><table id=\"cases\"><thead><tr><th>Case</th><th>State</th><th>Subject</th><th>Members</th><th>Evidence</th><th>Owner</th><th>Updated (UTC)</th></tr></thead><tbody>",
        if shown.is_empty() {
            "all".to_owned()
        } else {
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    if cases.is_empty() {
        body.push_str("<tr><td colspan=\"7\" class=\"muted\">No cases.</td></tr>");
    }
    for c in cases {
        let _ = write!(
            body,
            "<tr data-case=\"{0}\"><td><a href=\"/cases/{0}\">#{0}</a></td><td>{1}</td><td>{2}</td><td>{3}</td><td>{4}</td><td>{5}</td><td>{6}</td></tr>",
            c.id,
            state_pill(c.state),
            subject(c),
            members(c),
            reason_codes(c),
            esc(c.owner.as_deref().unwrap_or("")),
            esc(&c.updated.get(..16).unwrap_or(&c.updated).replace('T', " ")),
        );
    }
    body.push_str("</tbody></table></div>");
    shell("Cases", &body)
}

const CHANGE_JS: &str = r#"<script>
document.getElementById('change').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = ev.target, out = f.querySelector('.result');
  const body = {};
  if (f.state.value !== f.state.dataset.was) body.state = f.state.value;
  if (f.owner.value !== f.owner.dataset.was) body.owner = f.owner.value;
  if (f.note.value.trim()) body.note = f.note.value;
  const r = await fetch('/api/cases/' + f.dataset.case, {method: 'POST',
    headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf()}, body: JSON.stringify(body), credentials: 'same-origin'});
  const j = await r.json().catch(() => ({}));
  if (r.ok) location.reload(); else out.textContent = j.error || ('error ' + r.status);
});
</script>"#;

fn trail_table(trail: &[TrailEntry]) -> String {
    let mut s = String::from(
        "<table id=\"trail\"><thead><tr><th>When (UTC)</th><th>Who</th><th>From</th><th>What</th></tr></thead><tbody>",
    );
    for t in trail {
        let what = match t.action.as_str() {
            "state" => format!(
                "state {} → {}",
                esc(t.detail["from"].as_str().unwrap_or("?")),
                esc(t.detail["to"].as_str().unwrap_or("?"))
            ),
            "owner" => format!(
                "owner → {}",
                esc(t.detail["to"].as_str().unwrap_or("nobody"))
            ),
            "note" => format!("note: {}", esc(t.detail["text"].as_str().unwrap_or(""))),
            "opened" | "evidence" => format!(
                "{}: {}",
                esc(&t.action),
                t.detail["reasons"]
                    .as_array()
                    .map(|a| a
                        .iter()
                        .filter_map(|r| r.as_str())
                        .map(esc)
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            ),
            "member_added" => format!(
                "member added: {}",
                esc(t.detail["employee"].as_str().unwrap_or(""))
            ),
            other => format!("{} {}", esc(other), esc(&t.detail.to_string())),
        };
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td class=\"muted\">{}</td><td>{what}</td></tr>",
            esc(&t.at.get(..19).unwrap_or(&t.at).replace('T', " ")),
            esc(&t.actor),
            esc(&t.source),
        );
    }
    s.push_str("</tbody></table>");
    s
}

/// One case, its events and its trail.
pub fn view(data: &CaseData) -> String {
    let (case, events, trail) = (&data.case, &data.events, &data.trail);
    let sightings: Vec<(f64, f64, &str)> = events
        .iter()
        .filter_map(|e| Some((e.lat?, e.lon?, e.action.as_str())))
        .collect();
    let instances: std::collections::BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e.instance.as_deref())
        .collect();
    let mut body = format!(
        "<h1>Case #{} {}</h1><div class=\"grid\"><div class=\"card\">{}<p class=\"muted\">Red: blocks, orange: flags, blue: allows. Natural Earth 110m outline.</p></div><div class=\"card\"><dl>",
        case.id,
        state_pill(case.state),
        map(None, &sightings)
    );
    let _ = write!(
        body,
        "<dt>Subject</dt><dd>{}</dd><dt>Members</dt><dd id=\"members\">{}</dd><dt>Evidence</dt><dd>{}</dd>\
<dt>Owner</dt><dd>{}</dd><dt>Opened</dt><dd>{}</dd><dt>Events</dt><dd>{}{}</dd><dt>Seen by</dt><dd id=\"instances\">{}</dd>",
        subject(case),
        members(case),
        reason_codes(case),
        esc(case.owner.as_deref().unwrap_or("nobody")),
        esc(&case
            .opened
            .get(..16)
            .unwrap_or(&case.opened)
            .replace('T', " ")),
        events.len(),
        if events.len() >= 500 {
            " (newest 500)"
        } else {
            ""
        },
        esc(&instances.into_iter().collect::<Vec<_>>().join(", ")),
    );
    let mut options = String::new();
    for s in CaseState::NAMES {
        let _ = write!(
            options,
            "<option value=\"{s}\"{}>{}</option>",
            if s == case.state.as_str() {
                " selected"
            } else {
                ""
            },
            s.replace('_', " ")
        );
    }
    let owner = esc(case.owner.as_deref().unwrap_or(""));
    let _ = write!(
        body,
        "</dl><form id=\"change\" data-case=\"{}\" style=\"margin-top:12px\"><label>State <select name=\"state\" data-was=\"{}\">{options}</select></label> \
<label>Owner <input name=\"owner\" value=\"{owner}\" data-was=\"{owner}\" size=\"14\"></label><br><label>Note<br><textarea name=\"note\" rows=\"2\" cols=\"40\"></textarea></label><br>\
<button type=\"submit\">Save</button> <a href=\"/cases/{}/report\">Evidence report</a> · <a href=\"/api/cases/{}/events.csv\">Export CSV</a> <span class=\"result muted\"></span></form></div></div>",
        case.id,
        case.state.as_str(),
        case.id,
        case.id,
    );
    body.push_str("<div class=\"card\"><h1>Timeline</h1>");
    body.push_str(&timeline_table(events));
    body.push_str("</div><div class=\"card\"><h1>Trail</h1>");
    body.push_str(&trail_table(trail));
    body.push_str("</div>");
    body.push_str(CHANGE_JS);
    shell(&format!("Case #{}", case.id), &body)
}

/// A member's declared home, as the evidence report lists it.
pub struct Declared {
    /// The employee.
    pub employee: String,
    /// Their declared place (`Austin, US`), or why there is none.
    pub place: String,
    /// The home point and radius, when known.
    pub disc: Option<(f64, f64, f64)>,
}

const REPORT_STYLE: &str = "body{font:12px/1.45 system-ui,sans-serif;color:#1d2939;margin:24px;max-width:1000px}\
h1{font-size:20px}h2{font-size:15px;margin-top:20px;border-bottom:1px solid #d0d5dd}table{border-collapse:collapse;width:100%}\
th,td{text-align:left;vertical-align:top;padding:3px 6px;border-bottom:1px solid #eaecf0}th{background:#f2f4f7}\
.code{font-family:monospace;background:#eef2f6;padding:0 4px;margin-right:3px}svg.map{width:100%;height:auto;background:#dbe9f6}\
dl{display:grid;grid-template-columns:auto 1fr;gap:2px 12px}dt{color:#667085}\
@media print{body{margin:0}a{color:inherit;text-decoration:none}tr{break-inside:avoid}}";

/// The evidence report of a case, for HR and legal: one self-contained HTML page without
/// scripts or outside resources, laid out to print (or save as PDF from the browser's print
/// dialog): who and what, the declared homes, the map, every event with its reasons' sentences,
/// and the trail of decisions. `by` is who asked for it; `at` when.
pub fn report(data: &CaseData, homes: &[Declared], by: &str, at: &str) -> String {
    let (case, events, trail) = (&data.case, &data.events, &data.trail);
    let sightings: Vec<(f64, f64, &str)> = events
        .iter()
        .filter_map(|e| Some((e.lat?, e.lon?, e.action.as_str())))
        .collect();
    let home = match homes {
        [one] => one.disc,
        _ => None,
    };
    let mut body = format!(
        "<h1>Evidence report: case #{} ({})</h1><dl><dt>Subject</dt><dd>{}</dd><dt>State</dt><dd>{}</dd><dt>Owner</dt><dd>{}</dd>\
<dt>Opened</dt><dd>{}</dd><dt>Evidence</dt><dd>{}</dd><dt>Events</dt><dd>{}{}</dd><dt>Report made</dt><dd>{} by {}</dd></dl>",
        case.id,
        esc(&case.kind),
        if case.kind == "egress" {
            format!(
                "one egress shared by several employees: {}",
                esc(&case.subject)
            )
        } else {
            esc(&case.subject)
        },
        esc(&case.state.as_str().replace('_', " ")),
        esc(case.owner.as_deref().unwrap_or("nobody")),
        esc(&case.opened),
        reason_codes(case),
        events.len(),
        if events.len() >= 500 {
            " (the newest 500)"
        } else {
            ""
        },
        esc(at),
        esc(by),
    );
    body.push_str("<h2>Declared homes</h2><table><thead><tr><th>Employee</th><th>Declared home</th></tr></thead><tbody>");
    for h in homes {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(&h.employee),
            esc(&h.place)
        );
    }
    body.push_str("</tbody></table><h2>Where the sign-ins came from</h2>");
    body.push_str(&map(home, &sightings));
    body.push_str("<p>Red: blocked, orange: flagged, blue: allowed sign-ins; green: the declared home and its radius (one employee only).</p><h2>Events</h2><table><thead><tr><th>Time (UTC)</th><th>Employee</th><th>Action</th><th>Address, network, place</th><th>Why</th><th>Seen by</th></tr></thead><tbody>");
    for e in events {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}<br>{} {}</td><td>{}<br>{}</td><td>{}</td></tr>",
            esc(&e.timestamp),
            esc(e.employee.as_deref().unwrap_or("unknown")),
            esc(&e.action),
            esc(&e.ip),
            e.asn.map(|a| format!("AS{a}")).unwrap_or_default(),
            esc(e.as_org.as_deref().unwrap_or("")),
            e.reasons
                .iter()
                .map(|r| format!("<span class=\"code\">{}</span>", esc(r)))
                .collect::<String>(),
            esc(&e.message),
            esc(e.instance.as_deref().unwrap_or("")),
        );
    }
    body.push_str("</tbody></table><h2>Trail</h2>");
    body.push_str(&trail_table(trail));
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Evidence report: case #{}</title>\
<style>{REPORT_STYLE}</style></head><body>{body}<p><small>Geolocation data: ip-location-db (NRO, RouteViews, DB-IP: IP Geolocation by DB-IP), GeoNames. Map: Natural Earth.</small></p></body></html>",
        case.id
    )
}
