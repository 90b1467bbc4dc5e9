//! Cases: an employee's evidence, or a laptop farm's, grouped into one thing to decide, with a
//! state, an owner and an append-only trail of who did what, when and from where.
//!
//! Cases are opened by a sweep over the stored events, not by the instance that saw them: in a
//! fleet, the members of a laptop farm sign in through different instances, and only the shared
//! store sees them together. Every console sweeps (every few seconds, from a watermark kept in the
//! store, re-reading a margin behind it because PostgreSQL's sequence numbers are not committed
//! in order); the sweep is idempotent (one active case per subject, enforced by a unique index),
//! so consoles sweeping at once open each case once. Two kinds:
//! - `employee`: an employee with a flagged or blocked event;
//! - `egress`: one egress (an IPv4 address, an IPv6 /64) used by at least `egress_employees`
//!   verified employees within `egress_window` (the history's `shared_egress` figures); the
//!   caller says which uses count (directory employees off allowed networks). Names a client
//!   only claimed do not count: a typed-in name must not put colleagues into a laptop-farm case.
//!
//! A decided case (`confirmed_fraud`, `benign`) stays decided: an employee case reopens only for
//! events newer than the decision, an egress case only when an employee not in it joins.
//!
//! Written once for both stores over [`Sql`]; the trail is append-only in the schema itself
//! (triggers refuse UPDATE and DELETE).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use rusqlite::types::Value as V;
use serde::Serialize;

use super::clock::now_ms;
use super::error::{Result, StoreError};
use super::row::Row;
use super::sql::{Cells, Sql, in_transaction};

/// Sequence numbers re-read behind the watermark on every sweep (see the module comment).
const OVERLAP: i64 = 10_000;
/// Events one sweep reads at most: a store that starts with millions of events (a fleet's
/// first console, a replay's 90 days) is caught up over successive sweeps, each short.
const SWEEP_MAX: i64 = 100_000;
/// The days of events the first sweep of a store reads (the console's ranking period).
const FIRST_SWEEP_DAYS: i64 = 30;
/// Egress keys looked up per query.
const EGRESS_CHUNK: usize = 200;

/// Where a case stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseState {
    /// Opened by the sweep, nobody on it yet.
    Open,
    /// Someone is looking.
    Investigating,
    /// Decided: fraud.
    ConfirmedFraud,
    /// Decided: nothing wrong.
    Benign,
}

impl CaseState {
    /// Every state's name, in order.
    pub const NAMES: [&'static str; 4] = ["open", "investigating", "confirmed_fraud", "benign"];

    /// The state named `s`.
    pub fn from_name(s: &str) -> Option<CaseState> {
        Some(match s {
            "open" => CaseState::Open,
            "investigating" => CaseState::Investigating,
            "confirmed_fraud" => CaseState::ConfirmedFraud,
            "benign" => CaseState::Benign,
            _ => return None,
        })
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseState::Open => "open",
            CaseState::Investigating => "investigating",
            CaseState::ConfirmedFraud => "confirmed_fraud",
            CaseState::Benign => "benign",
        }
    }

    /// Whether it is decided (and so no longer the subject's active case).
    pub fn decided(self) -> bool {
        matches!(self, CaseState::ConfirmedFraud | CaseState::Benign)
    }
}

/// A case as the console shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    /// Its number.
    pub id: i64,
    /// `employee` or `egress`.
    pub kind: String,
    /// The employee (lower case) or the egress key.
    pub subject: String,
    /// Where it stands.
    pub state: CaseState,
    /// Who is on it.
    pub owner: Option<String>,
    /// When it was opened (RFC 3339).
    pub opened: String,
    /// When it last changed (RFC 3339).
    pub updated: String,
    /// The reason codes of the evidence that opened it (and joined later).
    pub reasons: Vec<String>,
    /// The employees in it.
    pub members: Vec<String>,
}

/// One line of a case's trail.
#[derive(Debug, Clone, Serialize)]
pub struct TrailEntry {
    /// Its place in the store's trail (export cursor).
    pub seq: i64,
    /// The case.
    pub case_id: i64,
    /// When (RFC 3339).
    pub at: String,
    /// Who: the signed-in person, the API token, or `locgate` for the sweep.
    pub actor: String,
    /// From where: the client address and the console instance.
    pub source: String,
    /// What: `opened`, `member_added`, `evidence`, `state`, `owner`, `note`.
    pub action: String,
    /// The details (JSON).
    pub detail: serde_json::Value,
}

/// Who makes a change, and from where.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The person or token.
    pub name: String,
    /// The client address and the instance.
    pub source: String,
}

/// A change to a case; every part recorded in the trail.
#[derive(Debug, Clone, Default)]
pub struct CaseChange {
    /// A new state.
    pub state: Option<CaseState>,
    /// A new owner (`Some(None)` takes the owner off).
    pub owner: Option<Option<String>>,
    /// A note.
    pub note: Option<String>,
    /// A policy change already written to the directory (what, where): recorded in the trail.
    pub policy: Option<serde_json::Value>,
}

/// What the sweep groups by.
#[derive(Debug, Clone, Copy)]
pub struct SweepRules {
    /// Employees on one egress that make it a case.
    pub egress_employees: usize,
    /// Within this long of each other (ms).
    pub egress_window_ms: i64,
}

/// What a sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Cases opened.
    pub opened: usize,
    /// Employees added to existing egress cases.
    pub joined: usize,
    /// Events stored but not swept yet (the next sweeps take them).
    pub behind: i64,
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

const CASE_COLUMNS: &str = "id, kind, subject, state, owner, opened_ms, updated_ms, reasons";

fn case_of(c: &Cells, members: Vec<String>) -> Result<Case> {
    let state = c.text(3)?;
    Ok(Case {
        id: c.int(0)?,
        kind: c.text(1)?,
        subject: c.text(2)?,
        state: CaseState::from_name(&state)
            .ok_or_else(|| StoreError::Invalid(format!("case state `{state}` unknown")))?,
        owner: c.opt_text(4)?,
        opened: rfc3339(c.int(5)?),
        updated: rfc3339(c.int(6)?),
        reasons: Row::reason_codes(&c.text(7)?),
        members,
    })
}

fn members<S: Sql + ?Sized>(conn: &mut S, id: i64) -> Result<Vec<String>> {
    conn.rows(
        "SELECT employee FROM case_members WHERE case_id = $1 ORDER BY employee",
        &[V::Integer(id)],
    )?
    .iter()
    .map(|r| r.text(0))
    .collect()
}

/// Records `action` in case `case_id`'s trail; the case counts as changed now.
fn trail<S: Sql + ?Sized>(
    conn: &mut S,
    case_id: i64,
    who: &Actor,
    action: &str,
    detail: serde_json::Value,
) -> Result<()> {
    conn.exec(
        "UPDATE cases SET updated_ms = $1 WHERE id = $2",
        &[V::Integer(now_ms()), V::Integer(case_id)],
    )?;
    conn.exec(
        "INSERT INTO case_trail (case_id, at_ms, actor, source, action, detail)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            V::Integer(case_id),
            V::Integer(now_ms()),
            V::Text(who.name.clone()),
            V::Text(who.source.clone()),
            V::Text(action.into()),
            V::Text(detail.to_string()),
        ],
    )?;
    Ok(())
}

/// Cases in `states` (all when empty), most recently changed first.
pub(super) fn list<S: Sql + ?Sized>(
    conn: &mut S,
    states: &[CaseState],
    limit: usize,
) -> Result<Vec<Case>> {
    let mut args = Vec::new();
    let mut sql = format!("SELECT {CASE_COLUMNS} FROM cases");
    if !states.is_empty() {
        let marks: Vec<String> = states
            .iter()
            .map(|s| {
                args.push(V::Text(s.as_str().into()));
                format!("${}", args.len())
            })
            .collect();
        sql.push_str(&format!(" WHERE state IN ({})", marks.join(", ")));
    }
    args.push(V::Integer(limit.clamp(1, 1000) as i64));
    sql.push_str(&format!(
        " ORDER BY updated_ms DESC, id DESC LIMIT ${}",
        args.len()
    ));
    let rows = conn.rows(&sql, &args)?;
    rows.iter()
        .map(|r| {
            let m = members(conn, r.int(0)?)?;
            case_of(r, m)
        })
        .collect()
}

/// One case with its members.
pub(super) fn get<S: Sql + ?Sized>(conn: &mut S, id: i64) -> Result<Case> {
    let rows = conn.rows(
        &format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = $1"),
        &[V::Integer(id)],
    )?;
    let row = rows
        .first()
        .ok_or_else(|| StoreError::NotFound(format!("case {id}")))?;
    let m = members(conn, id)?;
    case_of(row, m)
}

/// The trail, oldest first: of one case, or (for export) every case's after `after`.
pub(super) fn trail_of<S: Sql + ?Sized>(
    conn: &mut S,
    case_id: Option<i64>,
    after: i64,
    limit: usize,
) -> Result<Vec<TrailEntry>> {
    let mut sql = String::from(
        "SELECT seq, case_id, at_ms, actor, source, action, detail FROM case_trail WHERE seq > $1",
    );
    let mut args = vec![V::Integer(after)];
    if let Some(id) = case_id {
        args.push(V::Integer(id));
        sql.push_str(" AND case_id = $2");
    }
    args.push(V::Integer(limit.clamp(1, 10_000) as i64));
    sql.push_str(&format!(" ORDER BY seq LIMIT ${}", args.len()));
    conn.rows(&sql, &args)?
        .iter()
        .map(|r| {
            Ok(TrailEntry {
                seq: r.int(0)?,
                case_id: r.int(1)?,
                at: rfc3339(r.int(2)?),
                actor: r.text(3)?,
                source: r.text(4)?,
                action: r.text(5)?,
                detail: serde_json::from_str(&r.text(6)?).unwrap_or(serde_json::Value::Null),
            })
        })
        .collect()
}

/// Applies `change` to case `id`, each part recorded in the trail, in one transaction.
pub(super) fn change<S: Sql + ?Sized>(
    conn: &mut S,
    id: i64,
    who: &Actor,
    change: &CaseChange,
) -> Result<Case> {
    in_transaction(conn, |conn| {
        let before = get(conn, id)?;
        if let Some(state) = change.state
            && state != before.state
        {
            if !state.decided() && before.state.decided() {
                let active = conn.rows(
                    "SELECT id FROM cases WHERE kind = $1 AND subject = $2
                     AND state IN ('open', 'investigating')",
                    &[
                        V::Text(before.kind.clone()),
                        V::Text(before.subject.clone()),
                    ],
                )?;
                if let Some(other) = active.first() {
                    return Err(StoreError::Invalid(format!(
                        "case {id} cannot reopen: case {} is already open for {}",
                        other.int(0)?,
                        before.subject
                    )));
                }
            }
            conn.exec(
                "UPDATE cases SET state = $1,
                 closed_seq = CASE WHEN CAST($2 AS BIGINT) = 1 THEN (SELECT max(seq) FROM events) ELSE NULL END
                 WHERE id = $3",
                &[
                    V::Text(state.as_str().into()),
                    V::Integer(i64::from(state.decided())),
                    V::Integer(id),
                ],
            )?;
            trail(
                conn,
                id,
                who,
                "state",
                serde_json::json!({"from": before.state, "to": state}),
            )?;
        }
        if let Some(owner) = &change.owner
            && *owner != before.owner
        {
            conn.exec(
                "UPDATE cases SET owner = $1 WHERE id = $2",
                &[owner.clone().map_or(V::Null, V::Text), V::Integer(id)],
            )?;
            trail(
                conn,
                id,
                who,
                "owner",
                serde_json::json!({"from": before.owner, "to": owner}),
            )?;
        }
        if let Some(policy) = &change.policy {
            trail(conn, id, who, "policy_change", policy.clone())?;
        }
        if let Some(note) = &change.note {
            trail(conn, id, who, "note", serde_json::json!({ "text": note }))?;
        }
        get(conn, id)
    })
}

/// Records in the trail that event `event_id` was acknowledged (by `who`, with `note`): in the
/// newest case of its employee and the newest case of its egress, where there are such cases.
/// Returns those cases. An acknowledgement is a reviewer's judgement of evidence a case holds,
/// so the case's record must show it, not only the event.
pub(super) fn note_ack<S: Sql + ?Sized>(
    conn: &mut S,
    event_id: &str,
    who: &Actor,
    note: &str,
) -> Result<Vec<i64>> {
    in_transaction(conn, |conn| {
        let event = conn.rows(
            "SELECT employee, egress FROM events WHERE id = $1",
            &[V::Text(event_id.into())],
        )?;
        let Some(event) = event.first() else {
            return Ok(Vec::new());
        };
        let subjects = [
            ("employee", event.opt_text(0)?),
            ("egress", event.opt_text(1)?),
        ];
        let mut noted = Vec::new();
        for (kind, subject) in subjects {
            let Some(subject) = subject else { continue };
            let newest = conn.rows(
                "SELECT max(id) FROM cases WHERE kind = $1 AND subject = $2",
                &[V::Text(kind.into()), V::Text(subject)],
            )?;
            if let Some(id) = newest.first().map(|r| r.opt_int(0)).transpose()?.flatten() {
                trail(
                    conn,
                    id,
                    who,
                    "ack",
                    serde_json::json!({ "event": event_id, "note": note }),
                )?;
                noted.push(id);
            }
        }
        Ok(noted)
    })
}

/// The active case of `kind`/`subject`, opened when there is none (and the loser of a race
/// with another console finds the winner's). Returns its id and whether this call opened it.
fn active_case<S: Sql + ?Sized>(
    conn: &mut S,
    kind: &str,
    subject: &str,
    reasons: &BTreeSet<String>,
    who: &Actor,
) -> Result<(i64, bool)> {
    let now = now_ms();
    let codes = if reasons.is_empty() {
        String::new()
    } else {
        format!(
            ",{},",
            reasons.iter().cloned().collect::<Vec<_>>().join(",")
        )
    };
    let opened = conn.rows(
        "INSERT INTO cases (kind, subject, state, opened_ms, updated_ms, reasons)
         VALUES ($1, $2, 'open', $3, $3, $4) ON CONFLICT DO NOTHING RETURNING id",
        &[
            V::Text(kind.into()),
            V::Text(subject.into()),
            V::Integer(now),
            V::Text(codes),
        ],
    )?;
    if let Some(row) = opened.first() {
        let id = row.int(0)?;
        trail(
            conn,
            id,
            who,
            "opened",
            serde_json::json!({"kind": kind, "subject": subject, "reasons": reasons}),
        )?;
        return Ok((id, true));
    }
    let found = conn.rows(
        "SELECT id, reasons FROM cases WHERE kind = $1 AND subject = $2
         AND state IN ('open', 'investigating')",
        &[V::Text(kind.into()), V::Text(subject.into())],
    )?;
    let row = found.first().ok_or_else(|| {
        StoreError::Invalid(format!(
            "no active {kind} case for {subject} after opening one"
        ))
    })?;
    let id = row.int(0)?;
    let known: BTreeSet<String> = Row::reason_codes(&row.text(1)?).into_iter().collect();
    let new: Vec<&String> = reasons.difference(&known).collect();
    if !new.is_empty() {
        let all: Vec<String> = known.union(reasons).cloned().collect();
        conn.exec(
            "UPDATE cases SET reasons = $1 WHERE id = $2",
            &[V::Text(format!(",{},", all.join(","))), V::Integer(id)],
        )?;
        trail(
            conn,
            id,
            who,
            "evidence",
            serde_json::json!({ "reasons": new }),
        )?;
    }
    Ok((id, false))
}

/// Adds `employee` to case `id`; whether it was new to it.
fn join<S: Sql + ?Sized>(conn: &mut S, id: i64, employee: &str, who: &Actor) -> Result<bool> {
    let n = conn.exec(
        "INSERT INTO case_members (case_id, employee, added_ms) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
        &[
            V::Integer(id),
            V::Text(employee.into()),
            V::Integer(now_ms()),
        ],
    )?;
    if n > 0 {
        trail(
            conn,
            id,
            who,
            "member_added",
            serde_json::json!({ "employee": employee }),
        )?;
    }
    Ok(n > 0)
}

/// The most recently decided case of `kind`/`subject`: when it was decided (the newest event
/// then) and its members.
fn last_decided<S: Sql + ?Sized>(
    conn: &mut S,
    kind: &str,
    subject: &str,
) -> Result<Option<(i64, HashSet<String>)>> {
    let rows = conn.rows(
        "SELECT id, closed_seq FROM cases WHERE kind = $1 AND subject = $2
         AND state IN ('confirmed_fraud', 'benign') ORDER BY id DESC LIMIT 1",
        &[V::Text(kind.into()), V::Text(subject.into())],
    )?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let id = row.int(0)?;
    let seq = row.opt_int(1)?.unwrap_or(i64::MAX);
    Ok(Some((seq, members(conn, id)?.into_iter().collect())))
}

/// Where the first sweep of a store starts (no watermark yet): before the first event of the
/// last [`FIRST_SWEEP_DAYS`] days of the store (counted back from its newest event, so a
/// replay's store is swept too). Cases are about recent evidence; sweeping years of history
/// first would keep a new console busy for hours on a large store.
fn first_mark<S: Sql + ?Sized>(conn: &mut S) -> Result<i64> {
    let newest_ms = conn
        .rows("SELECT max(ts_ms) FROM events", &[])?
        .first()
        .and_then(|r| r.opt_int(0).transpose())
        .transpose()?
        .unwrap_or(0);
    let since = newest_ms.saturating_sub(FIRST_SWEEP_DAYS * 86_400_000);
    let first = conn
        .rows(
            "SELECT min(seq) FROM events WHERE ts_ms >= $1",
            &[V::Integer(since)],
        )?
        .first()
        .and_then(|r| r.opt_int(0).transpose())
        .transpose()?
        .unwrap_or(1);
    Ok((first - 1).max(0))
}

/// Opens and extends cases from the events stored since the last sweep. `shares` says whether
/// an employee's use of an egress counts as sharing it (a directory employee, not on an
/// allowed network).
pub(super) fn sweep<S: Sql + ?Sized>(
    conn: &mut S,
    rules: SweepRules,
    shares: &dyn Fn(&str, &str) -> bool,
    who: &Actor,
) -> Result<Swept> {
    let Some(newest) = conn
        .rows("SELECT max(seq) FROM events", &[])?
        .first()
        .and_then(|r| r.opt_int(0).transpose())
        .transpose()?
    else {
        return Ok(Swept::default());
    };
    let (mark, from) = match conn
        .rows("SELECT seq FROM case_sweep WHERE id = 1", &[])?
        .first()
    {
        Some(r) => {
            let mark = r.int(0)?;
            (mark, (mark - OVERLAP).max(0))
        }
        None => {
            let mark = first_mark(conn)?;
            (mark, mark)
        }
    };
    let top = newest.min(mark.saturating_add(SWEEP_MAX));
    let mut swept = Swept::default();

    // Employees with flagged or blocked events, and the codes and newest event of each.
    let mut flagged: BTreeMap<String, (BTreeSet<String>, i64)> = BTreeMap::new();
    for r in conn.rows(
        "SELECT lower(employee), reasons, max(seq) FROM events
         WHERE seq > $1 AND seq <= $2 AND action <> 'allow' AND employee IS NOT NULL
         GROUP BY lower(employee), reasons",
        &[V::Integer(from), V::Integer(top)],
    )? {
        let entry = flagged.entry(r.text(0)?).or_default();
        entry.0.extend(Row::reason_codes(&r.text(1)?));
        entry.1 = entry.1.max(r.int(2)?);
    }
    for (employee, (reasons, newest)) in &flagged {
        in_transaction(conn, |conn| {
            if let Some((decided_at, _)) = last_decided(conn, "employee", employee)?
                && *newest <= decided_at
            {
                return Ok(());
            }
            let (id, opened) = active_case(conn, "employee", employee, reasons, who)?;
            join(conn, id, employee, who)?;
            swept.opened += usize::from(opened);
            Ok(())
        })?;
    }

    // Egresses used in the new events, then who used each within the window.
    let keys: Vec<String> = conn
        .rows(
            "SELECT DISTINCT egress FROM events
             WHERE seq > $1 AND seq <= $2 AND verified AND egress IS NOT NULL",
            &[V::Integer(from), V::Integer(top)],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect::<Result<_>>()?;
    let newest_ms = conn
        .rows(
            "SELECT max(ts_ms) FROM events WHERE seq > $1 AND seq <= $2",
            &[V::Integer(from), V::Integer(top)],
        )?
        .first()
        .and_then(|r| r.opt_int(0).transpose())
        .transpose()?
        .unwrap_or_else(now_ms);
    let since = newest_ms.saturating_sub(rules.egress_window_ms);
    for chunk in keys.chunks(EGRESS_CHUNK) {
        let mut args = vec![V::Integer(since)];
        let marks: Vec<String> = chunk
            .iter()
            .map(|k| {
                args.push(V::Text(k.clone()));
                format!("${}", args.len())
            })
            .collect();
        let pairs = conn.rows(
            &format!(
                "SELECT egress, lower(employee) FROM events
                 WHERE egress IN ({}) AND ts_ms >= $1 AND verified
                 GROUP BY egress, lower(employee)",
                marks.join(", ")
            ),
            &args,
        )?;
        let mut users: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for p in &pairs {
            let (egress, employee) = (p.text(0)?, p.text(1)?);
            if shares(&egress, &employee) {
                users.entry(egress).or_default().insert(employee);
            }
        }
        for (egress, employees) in users {
            if employees.len() < rules.egress_employees.max(2) {
                continue;
            }
            in_transaction(conn, |conn| {
                if let Some((_, decided)) = last_decided(conn, "egress", &egress)?
                    && employees.iter().all(|e| decided.contains(e))
                {
                    return Ok(());
                }
                let codes = BTreeSet::from(["shared_egress".to_owned()]);
                let (id, opened) = active_case(conn, "egress", &egress, &codes, who)?;
                swept.opened += usize::from(opened);
                for e in &employees {
                    let new = join(conn, id, e, who)?;
                    swept.joined += usize::from(new && !opened);
                }
                Ok(())
            })?;
        }
    }
    conn.exec(
        "INSERT INTO case_sweep (id, seq) VALUES (1, $1)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq WHERE case_sweep.seq < excluded.seq",
        &[V::Integer(top)],
    )?;
    swept.behind = newest - top;
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::store::Store;

    fn flagged(store: &mut Store, id: &str, who: &str, ts_ms: i64) {
        store
            .exec(
                "INSERT INTO events (id, ts_ms, timestamp, action, reasons, employee, ip,
                 anonymizer, listener, message, json, verified)
                 VALUES ($1, $2, 't', 'flag', ',country_mismatch,', $3, '192.0.2.1', 0, 'l', '',
                 '{}', 1)",
                &[V::Text(id.into()), V::Integer(ts_ms), V::Text(who.into())],
            )
            .expect("insert");
    }

    #[test]
    fn the_first_sweep_of_a_store_starts_at_its_last_30_days() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&tmp.path().join("events.db"), None).expect("open");
        let day = 86_400_000;
        let newest = 1_772_409_600_000;
        flagged(&mut store, "old", "olga", newest - 45 * day);
        flagged(&mut store, "recent", "rita", newest - 29 * day);
        flagged(&mut store, "new", "nina", newest);
        let who = Actor {
            name: "locgate".into(),
            source: "test".into(),
        };
        let rules = SweepRules {
            egress_employees: 3,
            egress_window_ms: day,
        };
        let swept = sweep(&mut store, rules, &|_, _| false, &who).expect("sweep");
        assert_eq!((swept.opened, swept.behind), (2, 0));
        let subjects: Vec<String> = list(&mut store, &[], 10)
            .expect("cases")
            .into_iter()
            .map(|c| c.subject)
            .collect();
        assert!(!subjects.contains(&"olga".to_owned()), "{subjects:?}");
        assert!(subjects.contains(&"rita".to_owned()) && subjects.contains(&"nina".to_owned()));
        // From then on, from the watermark: an event of any time is swept.
        flagged(&mut store, "late", "olga", newest - 45 * day);
        let swept = sweep(&mut store, rules, &|_, _| false, &who).expect("sweep");
        assert_eq!(swept.opened, 1);
    }
}
