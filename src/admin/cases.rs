//! Cases in the console: the sweep that opens them (every few seconds, on every console; the
//! store makes it idempotent), the API (list, one case with its events and trail, change,
//! the trail for export, a case's events as CSV) and the pages.
//!
//! Every change names who made it ([`Principal`], from the authentication, never from the
//! request body) and from where (the client address and this instance).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use super::case_page::{self, CaseData};
use super::roles::Role;
use super::{ApiError, App, Principal, page, tls, with_store, with_store_apart};
use crate::audit::store::{
    Actor, CATCH_UP_BATCH, Case, CaseChange, CaseState, Filter, ROLL_BATCH, SweepRules,
};
use crate::employees::{Amendment, amend_file};
use crate::state::RuntimeState;

/// How often each console sweeps the store for new cases.
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(3);

/// Sweeps until `stop`: opens and extends cases from new events, and brings the store's day
/// rollup up to date (what the ranking reads, `audit::store::rollup`), both on one connection
/// of their own opened per round.
pub(super) async fn sweep_forever(app: App, mut stop: tokio::sync::watch::Receiver<bool>) {
    let who = Actor {
        name: "locgate".into(),
        source: format!("sweep on {}", app.shared.auditor.instance()),
    };
    // How far behind the last round left the day rollup.
    let mut rolled_behind = 0;
    loop {
        let state = app.shared.state.load_full();
        let rules = SweepRules {
            egress_employees: state.history_rules.shared_egress_employees,
            egress_window_ms: state.history_rules.shared_egress_window.as_millis() as i64,
        };
        let who = who.clone();
        // Far behind (a store older than its rollup): larger batches, still bounded.
        let batch = if rolled_behind > CATCH_UP_BATCH {
            CATCH_UP_BATCH
        } else {
            ROLL_BATCH
        };
        // On a connection of its own: a sweep catching up on a large store runs thousands of
        // statements, and the pages must not wait behind them.
        let result = with_store_apart(&app, move |s| {
            let swept = s.sweep_cases(
                rules,
                &|egress, employee| shares(&state, egress, employee),
                &who,
            )?;
            let rolled = s.roll_up(state.directory.as_ref(), batch)?;
            Ok((swept, rolled))
        })
        .await;
        let mut behind = false;
        match result {
            Ok((s, rolled)) => {
                if s.opened + s.joined > 0 {
                    tracing::info!(
                        opened = s.opened,
                        joined = s.joined,
                        behind = s.behind,
                        "case sweep"
                    );
                }
                if rolled.events > 0 {
                    tracing::debug!(
                        events = rolled.events,
                        days = rolled.days,
                        behind = rolled.behind,
                        "day rollup"
                    );
                }
                rolled_behind = rolled.behind;
                // A full batch rolled up: more is likely waiting.
                behind = s.behind > 0 || rolled.covered >= batch;
            }
            Err(ApiError(_, m)) => tracing::debug!(error = %m, "case sweep skipped"),
        }
        // Catching up on a large store: the next batch at once (each is bounded).
        let pause = if behind {
            Duration::from_millis(50)
        } else {
            SWEEP_EVERY
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            changed = stop.changed() => if changed.is_err() { return; },
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Whether `employee` on `egress` counts as sharing it, as the live shared-egress rule counts:
/// a person of the directory, on a network that is neither the policy's nor their own allowed
/// one (an office, a VPN concentrator).
fn shares(state: &RuntimeState, egress: &str, employee: &str) -> bool {
    let Ok(ip) = egress.trim_end_matches("/64").parse::<IpAddr>() else {
        return false;
    };
    let Some(person) = state.directory.as_ref().and_then(|d| d.get(employee)) else {
        return false;
    };
    !state.policy.allow_networks.lookup(ip).trusted && !person.network_allowed(ip)
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, m.into())
}

/// `state=open,investigating` -> the states; unknown names are an error.
fn states(q: &HashMap<String, String>) -> Result<Vec<CaseState>, ApiError> {
    let Some(list) = q.get("state").map(|s| s.trim()).filter(|s| !s.is_empty()) else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(|s| {
            CaseState::from_name(s.trim()).ok_or_else(|| {
                bad(format!(
                    "state `{s}` is not one of {}",
                    CaseState::NAMES.join(", ")
                ))
            })
        })
        .collect()
}

fn limit(q: &HashMap<String, String>, default: usize, max: usize) -> Result<usize, ApiError> {
    match q.get("limit") {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| bad(format!("limit `{v}` must be 1..={max}"))),
    }
}

fn only_known(q: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match q.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(bad(format!("unknown parameter `{k}`"))),
        None => Ok(()),
    }
}

/// `GET /api/cases?state=open,investigating&limit=N`.
pub(super) async fn api_list(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    only_known(&q, &["state", "limit"])?;
    let (states, limit) = (states(&q)?, limit(&q, 200, 1000)?);
    let cases = with_store(&app, move |s| s.cases(&states, limit)).await?;
    Ok(Json(cases).into_response())
}

/// The events a case covers: its members' (an employee case) or its egress's.
fn case_filter(case: &Case, limit: usize) -> Filter {
    let mut f = Filter {
        limit,
        ..Filter::default()
    };
    if case.kind == "egress" {
        f.egress = Some(case.subject.clone());
    } else {
        f.employees = Some(case.members.clone());
    }
    f
}

async fn case_data(app: &App, id: i64) -> Result<CaseData, ApiError> {
    with_store(app, move |s| {
        let case = s.case(id)?;
        let events = s.query(&case_filter(&case, 500))?.events;
        let trail = s.case_trail(Some(id), 0, 10_000)?;
        Ok(CaseData {
            case,
            events,
            trail,
        })
    })
    .await
}

fn case_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| bad(format!("`{raw}` is not a case number")))
}

/// `GET /api/cases/{id}`.
pub(super) async fn api_get(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(case_data(&app, case_id(&id)?).await?).into_response())
}

/// A change as the API takes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ChangeBody {
    #[serde(default)]
    state: Option<String>,
    /// `""` takes the owner off.
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    note: Option<String>,
    /// With `benign`: a network to allow for the case's people (CIDR), written to the
    /// directory file.
    #[serde(default)]
    allow_network: Option<String>,
    /// With `benign`: a trip to add for the case's people.
    #[serde(default)]
    travel: Option<TripBody>,
}

/// A trip as the API takes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TripBody {
    from: String,
    to: String,
    countries: Vec<String>,
}

/// `POST /api/cases/{id}` with JSON `{state, owner, note}` (any of them): the change, each
/// part in the trail with who and from where.
pub(super) async fn api_change(
    State(app): State<App>,
    Extension(who): Extension<Principal>,
    ConnectInfo(tls::Peer(peer)): ConnectInfo<tls::Peer>,
    Path(id): Path<String>,
    body: Result<Json<ChangeBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let id = case_id(&id)?;
    let Json(body) = body.map_err(|e| bad(e.body_text()))?;
    let state = match body.state.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => Some(CaseState::from_name(s).ok_or_else(|| {
            bad(format!(
                "state `{s}` is not one of {}",
                CaseState::NAMES.join(", ")
            ))
        })?),
    };
    let owner = body.owner.map(|o| {
        let o = o.trim().to_owned();
        (!o.is_empty()).then_some(o)
    });
    if owner
        .as_ref()
        .and_then(|o| o.as_ref())
        .is_some_and(|o| o.len() > 200)
    {
        return Err(bad("owner is longer than 200 characters"));
    }
    let note = body
        .note
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    if note.as_ref().is_some_and(|n| n.len() > 4000) {
        return Err(bad("note is longer than 4000 characters"));
    }
    let amendment = match (body.allow_network, body.travel) {
        (None, None) => None,
        (Some(_), Some(_)) => return Err(bad("give allow_network or travel, not both")),
        (Some(n), None) => Some(Amendment::AllowNetwork(
            n.trim()
                .parse()
                .map_err(|e| bad(format!("allow_network `{n}`: {e}")))?,
        )),
        (None, Some(t)) => Some(Amendment::Travel {
            from: t.from.trim().to_owned(),
            to: t.to.trim().to_owned(),
            countries: t
                .countries
                .iter()
                .map(|c| c.trim().to_ascii_uppercase())
                .collect(),
        }),
    };
    let mut change = CaseChange {
        state,
        owner,
        note,
        policy: None,
    };
    if change.state.is_none()
        && change.owner.is_none()
        && change.note.is_none()
        && amendment.is_none()
    {
        return Err(bad(
            "nothing to change: give state, owner, note, allow_network or travel",
        ));
    }
    if let Some(amendment) = amendment {
        change.policy = Some(write_back(&app, &who, id, change.state, amendment).await?);
    }
    let actor = actor(&app, &who.name, peer.ip());
    let case = with_store(&app, move |s| s.change_case(id, &actor, &change)).await?;
    Ok(Json(case).into_response())
}

/// Who a trail entry names: the person, and from which address through which instance.
pub(super) fn actor(app: &App, name: &str, peer: std::net::IpAddr) -> Actor {
    Actor {
        name: name.to_owned(),
        source: format!(
            "{} via {}",
            crate::client_addr::normalize(peer),
            app.shared.auditor.instance()
        ),
    }
}

/// `GET /api/cases/trail?after=SEQ&limit=N`: every case's trail after `after`, oldest first
/// (a SIEM or an archive pulls it from its last `seq`).
pub(super) async fn api_trail(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    only_known(&q, &["after", "limit"])?;
    let after = match q.get("after") {
        None => 0,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| bad(format!("after `{v}` is not a trail position")))?,
    };
    let limit = limit(&q, 1000, 10_000)?;
    let trail = with_store(&app, move |s| s.case_trail(None, after, limit)).await?;
    Ok(Json(trail).into_response())
}

/// `GET /api/cases/{id}/events.csv`: the case's events for HR, legal or a spreadsheet.
pub(super) async fn api_csv(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = case_id(&id)?;
    let events = with_store(&app, move |s| {
        let case = s.case(id)?;
        Ok(s.query(&case_filter(&case, 1000))?.events)
    })
    .await?;
    let body = super::csv::events(&events);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"locgate-case-{id}.csv\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// `GET /cases`: the list page.
pub(super) async fn page_list(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let wanted = match states(&q) {
        Ok(s) if s.is_empty() && !q.contains_key("state") => {
            vec![CaseState::Open, CaseState::Investigating]
        }
        Ok(s) => s,
        Err(ApiError(s, m)) => return (s, Html(page::error(&m))).into_response(),
    };
    let shown = wanted.clone();
    match with_store(&app, move |s| s.cases(&wanted, 500)).await {
        Ok(cases) => Html(case_page::list(&cases, &shown)).into_response(),
        Err(ApiError(s, m)) => (s, Html(page::error(&m))).into_response(),
    }
}

/// `GET /cases/{id}`: the case view.
pub(super) async fn page_case(State(app): State<App>, Path(id): Path<String>) -> Response {
    let data = match case_id(&id) {
        Ok(id) => case_data(&app, id).await,
        Err(e) => Err(e),
    };
    match data {
        Ok(v) => Html(case_page::view(&v)).into_response(),
        Err(ApiError(s, m)) => (s, Html(page::error(&m))).into_response(),
    }
}

/// `GET /cases/{id}/report`: the evidence report (HTML to read or print to PDF).
pub(super) async fn page_report(
    State(app): State<App>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let data = match case_id(&id) {
        Ok(id) => case_data(&app, id).await,
        Err(e) => Err(e),
    };
    let data = match data {
        Ok(d) => d,
        Err(ApiError(s, m)) => return (s, Html(page::error(&m))).into_response(),
    };
    let state = app.shared.state.load();
    let homes: Vec<case_page::Declared> = data
        .case
        .members
        .iter()
        .map(|m| {
            let person = state.directory.as_ref().and_then(|d| d.get(m));
            case_page::Declared {
                employee: m.clone(),
                place: person.map_or_else(|| "not in the directory".to_owned(), |p| p.home.place()),
                disc: person
                    .and_then(|p| crate::audit::store::home_disc(&p.home))
                    .map(|(c, r)| (c.lat, c.lon, r)),
            }
        })
        .collect();
    let at = crate::audit::event::timestamp_now();
    Html(case_page::report(&data, &homes, &who.name, &at)).into_response()
}

/// Writes a benign decision's policy change into the directory file for the case's people and
/// returns what the trail records. Needs the admin role (it loosens the policy) and the state
/// `benign` in the same request.
async fn write_back(
    app: &App,
    who: &Principal,
    id: i64,
    state: Option<CaseState>,
    amendment: Amendment,
) -> Result<serde_json::Value, ApiError> {
    if who.role < Role::Admin {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "{} is a {}: a policy change needs the admin role",
                who.name,
                who.role.as_str()
            ),
        ));
    }
    if state != Some(CaseState::Benign) {
        return Err(bad(
            "a policy change goes with the decision: give \"state\": \"benign\"",
        ));
    }
    let Some((file, radius)) = app.directory_file.clone() else {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "no [employees] file to write to".into(),
        ));
    };
    let case = with_store(app, move |s| s.case(id)).await?;
    let directory = app.shared.state.load_full();
    // The people as the directory file names them (the case keeps lower-case ids).
    let mut ids = Vec::new();
    for m in &case.members {
        let person = directory.directory.as_ref().and_then(|d| d.get(m));
        match person {
            Some(p) => ids.push(p.id.clone()),
            None => {
                return Err(ApiError(
                    StatusCode::CONFLICT,
                    format!(
                        "{m} is not in the directory file (SCIM-provisioned or gone): change it at its source"
                    ),
                ));
            }
        }
    }
    let written = {
        let (file, ids, amendment) = (file.clone(), ids.clone(), amendment.clone());
        tokio::task::spawn_blocking(move || amend_file(&file, radius, &ids, &amendment))
            .await
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    };
    written.map_err(|why| ApiError(StatusCode::CONFLICT, why))?;
    tracing::warn!(by = %who.name, case = id, file = %file.display(), people = ?ids, change = ?amendment, "directory changed from a benign case");
    let what = match &amendment {
        Amendment::AllowNetwork(n) => serde_json::json!({ "allow_network": n.to_string() }),
        Amendment::Travel {
            from,
            to,
            countries,
        } => {
            serde_json::json!({ "travel": { "from": from, "to": to, "countries": countries } })
        }
    };
    Ok(serde_json::json!({ "file": file.display().to_string(), "employees": ids, "added": what }))
}
