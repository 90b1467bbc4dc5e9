//! The review page: server-rendered HTML with a little JS (acknowledge), no external resources,
//! so it works on an isolated admin network. The map is drawn from the bundled Natural Earth
//! outline (`assets/`), pre-projected to SVG paths at build time.

use std::collections::HashMap;
use std::fmt::Write;

use crate::audit::store::{EmployeeSummary, Page, StoredEvent};

const LAND: &str = include_str!("../../assets/world-110m-land.path");
const BORDERS: &str = include_str!("../../assets/world-110m-borders.path");

const STYLE: &str = r#"
:root{--fg:#1d2430;--muted:#5d6b7e;--line:#dde3ea;--bg:#f5f7fa;--card:#fff;--accent:#1f5fbf;
--block:#b42318;--flag:#b54708;--ok:#067647}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{background:#14213d;color:#fff;padding:10px 24px;display:flex;align-items:center;gap:24px}
header a{color:#cfd8e6;text-decoration:none}header strong{font-size:16px;letter-spacing:.3px}
main{padding:20px 24px;max-width:1280px;margin:0 auto}h1{font-size:20px;margin:0 0 14px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:14px 16px;margin-bottom:16px}
form.filters{display:flex;gap:10px;flex-wrap:wrap;align-items:end}
label{display:flex;flex-direction:column;font-size:12px;color:var(--muted);gap:3px}
input,select,button{font:inherit;padding:6px 8px;border:1px solid var(--line);border-radius:6px;background:#fff}
button{background:var(--accent);color:#fff;border-color:var(--accent);cursor:pointer}
button.secondary{background:#fff;color:var(--accent)}
table{width:100%;border-collapse:collapse}th,td{text-align:left;padding:7px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:600;text-transform:uppercase;letter-spacing:.4px}
.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.block{background:#fee4e2;color:var(--block)}.flag{background:#fef0c7;color:var(--flag)}.allow{background:#dcfae6;color:var(--ok)}
.code{font-family:ui-monospace,Menlo,monospace;font-size:12px;background:#eef2f6;padding:1px 5px;border-radius:4px;margin-right:3px}
.muted{color:var(--muted)}.msg{max-width:420px}.acked{color:var(--ok);font-size:12px}
.grid{display:grid;grid-template-columns:2fr 1fr;gap:16px}
svg.map{width:100%;height:auto;background:#dbe9f6;border-radius:6px}
.land{fill:#f3efe6;stroke:#b9b2a3;stroke-width:.15}.borders{fill:none;stroke:#c9c1b0;stroke-width:.1}
.home{fill:rgba(6,118,71,.15);stroke:#067647;stroke-width:.35}.s-block{fill:#b42318}.s-flag{fill:#dc6803}.s-allow{fill:#1f5fbf}
dl{display:grid;grid-template-columns:auto 1fr;gap:4px 12px;margin:0}dt{color:var(--muted)}
"#;

/// Escapes text for HTML content and attribute values (the one escaper the project uses).
pub use crate::explain::html_escape as esc;

/// Percent-encodes a path segment or query value.
pub(super) fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The review pages show places looked up in the embedded DB-IP City Lite data, whose CC BY 4.0
/// licence asks for this link on every page that shows its results (data/README.md).
const ATTRIBUTION: &str = "<footer class=\"muted\" style=\"padding:1rem\"><small>Geolocation data: \
ip-location-db (NRO, RouteViews, DB-IP: <a href=\"https://db-ip.com\">IP Geolocation by DB-IP</a>), GeoNames.</small></footer>";

pub(super) fn shell(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{} · locgate review</title><style>{STYLE}</style></head><body><header><strong>locgate</strong><a href=\"/\">Open mismatches</a>\
<a href=\"/?status=all\">All events</a><a href=\"/cases\">Cases</a><a href=\"/logout\" style=\"margin-left:auto\">Sign out</a></header><main>{body}</main>{ACK_JS}{ATTRIBUTION}</body></html>",
        esc(title)
    )
}

const ACK_JS: &str = r#"<script>
// Every change sends the session's CSRF token back (the server compares it with the session's).
function csrf() { const m = document.cookie.match(/(?:^|; )locgate_csrf=([0-9a-f]+)/); return m ? m[1] : ''; }
document.addEventListener('submit', async (ev) => {
  const f = ev.target; if (!f.classList.contains('ack')) return; ev.preventDefault();
  const id = f.dataset.id, out = f.querySelector('.result');
  const reviewer = f.reviewer ? f.reviewer.value : '';
  const body = JSON.stringify({reviewer, note: f.note.value});
  if (f.reviewer) localStorage.setItem('locgate-reviewer', reviewer);
  const r = await fetch('/api/events/' + encodeURIComponent(id) + '/ack',
    {method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf()}, body, credentials: 'same-origin'});
  const j = await r.json().catch(() => ({}));
  if (r.ok) {
    const s = document.createElement('span'); s.className = 'acked';
    s.textContent = '✓ acknowledged by ' + j.reviewer; f.replaceWith(s);
  }
  else { out.textContent = j.error || ('error ' + r.status); }
});
for (const i of document.querySelectorAll('input[name=reviewer]')) i.value = localStorage.getItem('locgate-reviewer') || '';
// Someone the identity provider named acknowledges as themselves: no name to type.
fetch('/api/whoami', {credentials: 'same-origin'}).then(r => r.ok ? r.json() : null).then(me => {
  if (!me || !me.personal) return;
  for (const i of document.querySelectorAll('form.ack input[name=reviewer]')) {
    const s = document.createElement('span'); s.className = 'muted'; s.textContent = 'as ' + me.name + ' ';
    i.replaceWith(s);
  }
}).catch(() => {});
</script>"#;

/// The login page: the token form, or (with `idp`) the way to the identity provider.
pub fn login(problem: Option<&str>, idp: Option<&str>) -> String {
    let p = problem.map_or(String::new(), |p| {
        format!("<p style=\"color:var(--block)\">{}</p>", esc(p))
    });
    let how = match idp {
        Some(issuer) => format!(
            "<p><a id=\"sso\" href=\"/oidc/start\"><button type=\"button\">Sign in with your company account</button></a></p>\
<p class=\"muted\">Through {}.</p>",
            esc(issuer)
        ),
        None => "<form method=\"post\" action=\"/login\"><label>Admin token<input type=\"password\" name=\"token\" autocomplete=\"current-password\" required autofocus></label>\
<p><button type=\"submit\">Sign in</button></p></form><p class=\"muted\">The token is in the [admin] section of the gateway's config (token or token_file).</p>"
            .to_owned(),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in · locgate review</title><style>{STYLE}</style></head>\
<body><main style=\"max-width:420px;margin-top:80px\"><div class=\"card\"><h1>locgate review</h1>{p}{how}</div></main></body></html>"
    )
}

/// An error page.
pub fn error(message: &str) -> String {
    shell(
        "Error",
        &format!(
            "<div class=\"card\"><h1>Cannot show this</h1><p>{}</p></div>",
            esc(message)
        ),
    )
}

pub(super) fn pill(action: &str) -> String {
    format!("<span class=\"pill {0}\">{0}</span>", esc(action))
}

fn codes(e: &StoredEvent) -> String {
    e.reasons
        .iter()
        .map(|r| format!("<span class=\"code\">{}</span>", esc(r)))
        .collect()
}

fn ack_cell(e: &StoredEvent) -> String {
    match &e.ack {
        Some(a) => format!(
            "<span class=\"acked\">✓ {} · {}</span><div class=\"muted\">{}</div>",
            esc(&a.reviewer),
            esc(a.at.get(..16).unwrap_or(&a.at)),
            esc(&a.note)
        ),
        None => format!(
            "<form class=\"ack\" data-id=\"{}\"><input name=\"reviewer\" placeholder=\"your name\" required size=\"10\">\
<input name=\"note\" placeholder=\"note\" size=\"16\"><button type=\"submit\">Acknowledge</button><span class=\"result muted\"></span></form>",
            esc(&e.id)
        ),
    }
}

fn place(e: &StoredEvent) -> String {
    let mut s = esc(e.country.as_deref().unwrap_or("??"));
    if let Some(asn) = e.asn {
        let _ = write!(
            s,
            "<div class=\"muted\">AS{asn} {}</div>",
            esc(e.as_org.as_deref().unwrap_or(""))
        );
    }
    s
}

/// The list of open mismatches with filters.
pub fn index(
    q: &HashMap<String, String>,
    page: &Page,
    ranked: Option<&[EmployeeSummary]>,
    period: &str,
) -> String {
    let v = |k: &str| esc(q.get(k).map_or("", String::as_str));
    let sel = |k: &str, val: &str| {
        if q.get(k).map(String::as_str) == Some(val) {
            " selected"
        } else {
            ""
        }
    };
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>Mismatches to review</h1><div class=\"card\"><form class=\"filters\" method=\"get\" action=\"/\">\
<label>Employee<input name=\"employee\" value=\"{}\"></label><label>Reason<input name=\"reason\" value=\"{}\" placeholder=\"e.g. country_mismatch\"></label>\
<label>Since<input name=\"since\" value=\"{}\" placeholder=\"24h, 30d\" size=\"8\"></label>\
<label>Action<select name=\"action\"><option value=\"\">flag + block</option><option{} >flag</option><option{}>block</option></select></label>\
<label>Status<select name=\"status\"><option value=\"open\"{}>open</option><option value=\"acked\"{}>acknowledged</option><option value=\"all\"{}>all</option></select></label>\
<button type=\"submit\">Filter</button><a href=\"/\" class=\"muted\">reset</a></form></div>",
        v("employee"),
        v("reason"),
        v("since"),
        sel("action", "flag"),
        sel("action", "block"),
        sel("status", "open"),
        sel("status", "acked"),
        sel("status", "all"),
    );
    match ranked {
        Some(r) => body.push_str(&ranking(r, period)),
        None => {
            let _ = write!(
                body,
                "<div class=\"card muted\" id=\"ranking-pending\">Ranking the employees ({})&hellip; reload in a moment.</div>",
                esc(period)
            );
        }
    }
    body.push_str("<div class=\"card\"><table id=\"events\"><thead><tr><th>Time (UTC)</th><th>Action</th><th>Employee</th><th>From</th><th>Reasons</th><th>Review</th></tr></thead><tbody>");
    if page.events.is_empty() {
        body.push_str(
            "<tr><td colspan=\"6\" class=\"muted\">Nothing to review for these filters.</td></tr>",
        );
    }
    for e in &page.events {
        let emp = match &e.employee {
            Some(id) => format!("<a href=\"/employees/{}\">{}</a>", enc(id), esc(id)),
            None => "<span class=\"muted\">unknown</span>".into(),
        };
        let _ = write!(
            body,
            "<tr data-id=\"{}\"><td>{}<div class=\"muted code\">{}</div></td><td>{}</td><td>{emp}</td><td>{}<div class=\"muted\">{}</div></td>\
<td>{}<div class=\"msg muted\">{}</div></td><td>{}</td></tr>",
            esc(&e.id),
            esc(e
                .timestamp
                .get(..19)
                .unwrap_or(&e.timestamp)
                .replace('T', " ")
                .as_str()),
            esc(&e.id),
            pill(&e.action),
            place(e),
            esc(&e.ip),
            codes(e),
            esc(&e.message),
            ack_cell(e),
        );
    }
    body.push_str("</tbody></table>");
    if let Some(next) = &page.next {
        let mut qs: Vec<String> = q
            .iter()
            .filter(|(k, _)| *k != "cursor")
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect();
        qs.push(format!("cursor={}", enc(next)));
        let _ = write!(
            body,
            "<p><a href=\"/?{}\">Older →</a></p>",
            esc(&qs.join("&"))
        );
    }
    body.push_str("</div>");
    shell("Mismatches", &body)
}

/// Employees with evidence over the last 30 days, most first: what to look at before the
/// event list.
fn ranking(ranked: &[EmployeeSummary], period: &str) -> String {
    let rows: Vec<&EmployeeSummary> = ranked
        .iter()
        .filter(|r| r.evidence_score > 0.0)
        .take(20)
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "<div class=\"card\"><h2 style=\"font-size:16px;margin:0 0 8px\">Employees by evidence, {}</h2>\
<table id=\"ranking\"><thead><tr><th>Employee</th><th>Score</th><th>Days away</th><th>Networks</th><th>Signals (days)</th></tr></thead><tbody>",
        esc(period)
    );
    for r in rows {
        let signals: String = r
            .signal_days
            .iter()
            .map(|(code, days)| format!("<span class=\"code\">{} ×{days}</span>", esc(code)))
            .collect();
        let _ = write!(
            out,
            "<tr><td><a href=\"/employees/{}\">{}</a></td><td>{:.0}</td><td>{} of {}</td><td>{}</td><td>{signals}</td></tr>",
            enc(&r.employee),
            esc(&r.employee),
            r.evidence_score,
            r.days_away,
            r.days,
            r.distinct_networks,
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

/// The SVG map: land, borders, the home disc, and sightings; zoomed to what is shown.
pub fn map(home: Option<(f64, f64, f64)>, sightings: &[(f64, f64, &str)]) -> String {
    let mut pts: Vec<(f64, f64)> = sightings.iter().map(|(lat, lon, _)| (*lat, *lon)).collect();
    let mut circle = String::new();
    if let Some((lat, lon, r)) = home {
        let ry = r / 111.2;
        let rx = ry / lat.to_radians().cos().abs().max(0.05);
        pts.push((lat + ry, lon + rx));
        pts.push((lat - ry, lon - rx));
        let _ = write!(
            circle,
            "<ellipse class=\"home\" id=\"home\" cx=\"{lon:.3}\" cy=\"{:.3}\" rx=\"{rx:.3}\" ry=\"{ry:.3}\"><title>declared home, radius {r:.0} km</title></ellipse>\
<circle cx=\"{lon:.3}\" cy=\"{:.3}\" r=\"0.6\" fill=\"#067647\"/>",
            -lat, -lat
        );
    }
    let (mut x0, mut x1, mut y0, mut y1) = (180.0f64, -180.0f64, 90.0f64, -90.0f64);
    for (lat, lon) in &pts {
        x0 = x0.min(*lon);
        x1 = x1.max(*lon);
        y0 = y0.min(-lat);
        y1 = y1.max(-lat);
    }
    let (vx, vy, vw, vh) = if pts.is_empty() {
        (-180.0, -90.0, 360.0, 180.0)
    } else {
        let w = (x1 - x0).max(20.0) * 1.3;
        let h = (y1 - y0).max(10.0) * 1.3;
        let (w, h) = if w / h > 2.0 {
            (w, w / 2.0)
        } else {
            (h * 2.0, h)
        };
        let (w, h) = (w.min(360.0), h.min(180.0));
        let cx = (x0 + x1) / 2.0;
        let cy = (y0 + y1) / 2.0;
        (cx - w / 2.0, cy - h / 2.0, w, h)
    };
    let dot = (vw / 160.0).max(0.15);
    let mut s = format!(
        "<svg class=\"map\" id=\"map\" viewBox=\"{vx:.2} {vy:.2} {vw:.2} {vh:.2}\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"map of sightings\">\
<path class=\"land\" d=\"{}\"/><path class=\"borders\" d=\"{}\"/>{circle}",
        LAND.trim(),
        BORDERS.trim()
    );
    for (lat, lon, action) in sightings {
        let _ = write!(
            s,
            "<circle class=\"sighting s-{}\" cx=\"{lon:.3}\" cy=\"{:.3}\" r=\"{dot:.3}\" fill-opacity=\".8\"/>",
            esc(action),
            -lat
        );
    }
    s.push_str("</svg>");
    s
}

/// The per-employee page: declared home, map, summary, timeline.
pub fn employee(v: &serde_json::Value) -> String {
    let id = v["id"].as_str().unwrap_or("");
    let home = &v["home"];
    let home_disc = match (
        home["lat"].as_f64(),
        home["lon"].as_f64(),
        home["radius_km"].as_f64(),
    ) {
        (Some(a), Some(b), Some(r)) => Some((a, b, r)),
        _ => None,
    };
    let timeline: Vec<StoredEvent> =
        serde_json::from_value(v["timeline"].clone()).unwrap_or_default();
    let sightings: Vec<(f64, f64, &str)> = timeline
        .iter()
        .filter_map(|e| Some((e.lat?, e.lon?, e.action.as_str())))
        .collect();
    let mut body = format!(
        "<h1>{}</h1><div class=\"grid\"><div class=\"card\">",
        esc(id)
    );
    body.push_str(&map(home_disc, &sightings));
    body.push_str("<p class=\"muted\">Green: declared home and its radius. Red: blocks, orange: flags, blue: allows. Natural Earth 110m outline.</p></div><div class=\"card\"><dl>");
    let home_place = home["place"].as_str().unwrap_or("not in the directory");
    let _ = write!(body, "<dt>Declared home</dt><dd>{}</dd>", esc(home_place));
    if let Some(r) = home["radius_km"].as_f64() {
        let _ = write!(body, "<dt>Radius</dt><dd>{r:.0} km</dd>");
    }
    let s = &v["summary"];
    if s.is_object() {
        let pct = |x: Option<f64>| x.map_or("n/a".to_string(), |x| format!("{:.0}%", x * 100.0));
        let list = |k: &str| {
            s[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| Some(format!("{} ({})", p[0].as_str()?, p[1].as_u64()?)))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default()
        };
        let _ = write!(
            body,
            "<dt>Events ({})</dt><dd>{}</dd><dt>Mismatches</dt><dd>{}</dd><dt>Within home radius</dt><dd>{}</dd>\
<dt>Through anonymizers</dt><dd>{}</dd><dt>Countries</dt><dd>{}</dd><dt>Networks</dt><dd>{}</dd><dt>Top reasons</dt><dd>{}</dd><dt>Last seen</dt><dd>{}</dd>",
            esc(v["period"].as_str().unwrap_or("last 30 days")),
            s["connections"].as_u64().unwrap_or(0),
            s["mismatches"].as_u64().unwrap_or(0),
            pct(s["home_radius_share"].as_f64()),
            pct(s["anonymizer_share"].as_f64()),
            esc(&list("countries")),
            esc(&list("networks")),
            esc(&list("top_reasons")),
            esc(s["last_seen"].as_str().unwrap_or("")),
        );
    }
    body.push_str("</dl></div></div><div class=\"card\"><h1>Timeline</h1>");
    body.push_str(&timeline_table(&timeline));
    body.push_str("</div>");
    shell(id, &body)
}

/// A timeline of events, newest first: time, action, where from, reasons and their sentences,
/// and the acknowledgement (or its form).
pub(super) fn timeline_table(events: &[StoredEvent]) -> String {
    let mut body = String::from(
        "<table id=\"timeline\"><thead><tr><th>Time (UTC)</th><th>Action</th><th>Employee</th><th>From</th><th>Reasons</th><th>Review</th></tr></thead><tbody>",
    );
    for e in events {
        let emp = match &e.employee {
            Some(id) => format!("<a href=\"/employees/{}\">{}</a>", enc(id), esc(id)),
            None => "<span class=\"muted\">unknown</span>".into(),
        };
        let _ = write!(
            body,
            "<tr data-id=\"{}\"><td>{}</td><td>{}</td><td>{emp}</td><td>{}<div class=\"muted\">{}{}</div></td><td>{}<div class=\"msg muted\">{}</div></td><td>{}</td></tr>",
            esc(&e.id),
            esc(e
                .timestamp
                .get(..19)
                .unwrap_or(&e.timestamp)
                .replace('T', " ")
                .as_str()),
            pill(&e.action),
            place(e),
            esc(&e.ip),
            e.instance
                .as_deref()
                .map(|i| format!(" · seen by {}", esc(i)))
                .unwrap_or_default(),
            codes(e),
            esc(&e.message),
            if e.action == "allow" && e.ack.is_none() {
                String::new()
            } else {
                ack_cell(e)
            },
        );
    }
    body.push_str("</tbody></table>");
    body
}
