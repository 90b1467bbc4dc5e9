//! The day rollup: per employee and calendar day, what their events of that day add up to
//! (the report's accumulator, [`Acc`], as JSON), so the ranking reads a row per employee-day
//! instead of every event of the period (8 million in 30 days at 50 million stored,
//! BENCHMARKS.md section 10).
//!
//! Brought up to date from a watermark, like the case sweep: a bounded batch of the events
//! after it is summed per (employee, day), merged into the stored rows and the watermark moved,
//! in one transaction, so a batch counts once however many consoles roll up at once (each
//! takes the watermark row's lock first). On PostgreSQL the newest events are left for the next
//! round ([`PG_SETTLE`]): sequence numbers are not committed in order, and an event committed
//! behind the watermark would never be counted.
//!
//! A row is only as good as the directory entry it was summed with (home, radius, networks,
//! travel, time zone): each keeps a fingerprint of it ([`fingerprint`]). The report recomputes
//! an employee whose rows carry another fingerprint than the current entry's from their events
//! (and rewrites the rows when it may), so a directory change never gives a stale verdict. The
//! events after the watermark are summed live into the report, so it is as current as the events.
//!
//! Retention deletes events by instant, rows are days in each employee's time zone: the rows of
//! the days around the cutoff ([`prune`]) lose some of their events and are marked, then
//! recomputed from the events that remain, day by day ([`Standing::Cut`]).
//!
//! [`Store::report`] lives here, not beside the accumulator in `report.rs`: it reads the
//! rollup first and falls back to the events, so it stands above both (one direction of
//! imports: this module uses `report.rs`, never the reverse).
//!
//! Consoles given different directories would each rewrite the other's rows on every report;
//! a console that rewrote an employee lately ([`QUIET`]) computes them from the events instead
//! and says so once ([`may_rewrite`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::types::Value as V;
use sha2::{Digest, Sha256};

use super::error::{Result, StoreError};
use super::open::Store;
use super::report::{
    Acc, DAY_MARGIN_MS, EmployeeSummary, REPORT_COLUMNS, ReportRow, add_in_period, local_day,
    ranked,
};
use super::sql::{Cells, Sql, in_transaction};
use crate::employees::{Directory, Employee};

/// Sequence numbers one roll-up of a console's background job covers at most: a round every
/// few seconds, short enough that another console's roll-up never waits long for the lock.
pub const ROLL_BATCH: i64 = 20_000;
/// Sequence numbers one roll-up covers when far behind (a store that had events before its
/// rollup, `locgate report --roll-up`): the events are streamed, not held, so a batch costs
/// only its employee-days in memory, and each employee-day is merged a few times rather than
/// once per 20,000 events.
pub const CATCH_UP_BATCH: i64 = 250_000;
/// Events the report rolls up itself before reading, when it may write: a console's background
/// job normally leaves nothing to do.
const INLINE_MAX: i64 = 100_000;
/// Events after the watermark the report sums live; more, and the rollup is too far behind to
/// help: the report reads the events of the period instead (and says so).
const TAIL_MAX: i64 = 50_000;
/// Sequence numbers a PostgreSQL roll-up leaves behind the newest (the case sweep's margin).
pub(super) const PG_SETTLE: i64 = 10_000;
/// The fingerprint of rows summed with a directory entry that changed since.
const STALE: &str = "stale";
/// Changes when the way a day is summed changes, so rows of an older program are recomputed.
const LOGIC: &str = "day-rollup-1";
/// Marks a row retention cut into, before the fingerprint it was summed with.
const PRUNED: &str = "pruned:";
/// How long after this process rewrote an employee's rows in a store it computes rows found
/// stale again from the events instead of rewriting them: two consoles with different
/// directories would otherwise take turns rewriting the same rows.
const QUIET: Duration = Duration::from_secs(600);

/// What one roll-up did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rolled {
    /// Events summed.
    pub events: u64,
    /// Employee-day rows written.
    pub days: u64,
    /// Events stored after the new watermark (the next roll-ups take them).
    pub behind: i64,
    /// Sequence numbers the watermark moved: 0 when there was nothing to take (yet).
    pub covered: i64,
}

/// A stable fingerprint of what the report reads from an employee's directory entry (home,
/// radius, own networks, travel windows, time zone), `none` without one.
pub(super) fn fingerprint(employee: Option<&Employee>) -> String {
    let Some(e) = employee else {
        return "none".into();
    };
    let text = format!(
        "{LOGIC}|{:?}|{:?}|{:?}|{:?}",
        e.home, e.time_zone, e.travel, e.allow_networks
    );
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The watermark: every event up to it is in the rows.
fn mark<S: Sql + ?Sized>(conn: &mut S) -> Result<i64> {
    conn.rows("SELECT seq FROM rollup_mark WHERE id = 1", &[])?
        .first()
        .map(|r| r.int(0))
        .transpose()
        .map(|m| m.unwrap_or(0))
}

/// The newest event's sequence number.
fn newest<S: Sql + ?Sized>(conn: &mut S) -> Result<Option<i64>> {
    conn.rows("SELECT max(seq) FROM events", &[])?
        .first()
        .map(|r| r.opt_int(0))
        .transpose()
        .map(Option::flatten)
}

/// Takes the watermark's row lock (PostgreSQL; SQLite's write transaction already excludes
/// other writers), creating the row when absent.
fn lock<S: Sql + ?Sized>(conn: &mut S) -> Result<()> {
    conn.exec(
        "INSERT INTO rollup_mark (id, seq) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
        &[],
    )?;
    conn.exec("UPDATE rollup_mark SET seq = seq WHERE id = 1", &[])?;
    Ok(())
}

/// One employee-day of a batch: its sum and the sequence numbers it spans.
struct Part {
    acc: Acc,
    first: i64,
    last: i64,
}

/// Parts keyed by (employee, day).
type Parts = HashMap<(String, String), Part>;

/// Counts `row` into its (employee, day) part; with `days`, only when its day is one of them.
fn add_part(
    out: &mut Parts,
    row: ReportRow,
    dir: Option<&Directory>,
    days: Option<&BTreeSet<String>>,
) {
    let entry = dir.and_then(|d| d.get(&row.employee));
    let day = local_day(row.ts_ms, entry).to_string();
    if days.is_some_and(|d| !d.contains(&day)) {
        return;
    }
    let seq = row.seq;
    let part = out
        .entry((row.employee.clone(), day))
        .or_insert_with(|| Part {
            acc: Acc::default(),
            first: seq,
            last: seq,
        });
    part.first = part.first.min(seq);
    part.last = part.last.max(seq);
    part.acc.add(row, entry);
}

/// How a stored row stands against the fingerprint of the current directory entry.
#[derive(Debug, PartialEq, Eq)]
enum Standing {
    /// Summed with the current entry, all its events still stored.
    Current,
    /// Summed with the current entry, but retention deleted some of its day's events: the day
    /// is recomputed from those left.
    Cut,
    /// Summed with another entry (or merged across two): the employee is recomputed.
    Stale,
}

fn standing(stored: &str, current: &str) -> Standing {
    match stored.strip_prefix(PRUNED) {
        Some(print) if print == current => Standing::Cut,
        Some(_) => Standing::Stale,
        None if stored == current => Standing::Current,
        None => Standing::Stale,
    }
}

/// The first instant (UTC) of a row's day.
fn day_start_ms(day: &str) -> Result<i64> {
    let date: jiff::civil::Date = day
        .parse()
        .map_err(|e| StoreError::Invalid(format!("a day rollup row has the day {day:?}: {e}")))?;
    date.to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|e| StoreError::Invalid(format!("a day rollup row has the day {day:?}: {e}")))
}

/// `employee`'s parts of `days` from their events up to `mark` (the days' events are read
/// with a margin of a day on each side: a day in any time zone lies within it).
fn day_parts<S: Sql + ?Sized>(
    conn: &mut S,
    employee: &str,
    days: &BTreeSet<String>,
    mark: i64,
    dir: Option<&Directory>,
) -> Result<Parts> {
    let (Some(first), Some(last)) = (days.first(), days.last()) else {
        return Ok(Parts::new());
    };
    let from = day_start_ms(first)?.saturating_sub(DAY_MARGIN_MS);
    let to = day_start_ms(last)?.saturating_add(2 * DAY_MARGIN_MS);
    let mut out = Parts::new();
    conn.each(
        &format!(
            "SELECT {REPORT_COLUMNS} FROM events
             WHERE employee = $1 AND seq <= $2 AND ts_ms >= $3 AND ts_ms < $4"
        ),
        &[
            V::Text(employee.into()),
            V::Integer(mark),
            V::Integer(from),
            V::Integer(to),
        ],
        &mut |c| {
            add_part(&mut out, ReportRow::of_cells(&c)?, dir, Some(days));
            Ok(())
        },
    )?;
    Ok(out)
}

fn decode(acc: &str) -> Result<Acc> {
    serde_json::from_str(acc)
        .map_err(|e| StoreError::Invalid(format!("a day rollup row cannot be read: {e}")))
}

fn encode(acc: &Acc) -> Result<String> {
    serde_json::to_string(acc)
        .map_err(|e| StoreError::Invalid(format!("a day rollup row cannot be written: {e}")))
}

/// Rows one statement reads or writes at most (six values each: well under SQLite's limit of
/// 32,766 parameters).
const CHUNK: usize = 200;

/// The stored rows of `keys` (employee, day), a chunk of keys per query.
fn stored<S: Sql + ?Sized>(
    conn: &mut S,
    keys: &[&(String, String)],
) -> Result<HashMap<(String, String), Cells>> {
    let mut out = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(CHUNK) {
        // `a = .. AND b = ..` terms joined by OR, not a row-value `IN (VALUES ..)`: SQLite
        // reads the latter by scanning the whole table, the former by one primary-key lookup
        // per term (PostgreSQL by a bitmap of them).
        let list = (0..chunk.len())
            .map(|i| format!("(employee = ${} AND day = ${})", 2 * i + 1, 2 * i + 2))
            .collect::<Vec<_>>()
            .join(" OR ");
        let args: Vec<V> = chunk
            .iter()
            .flat_map(|(e, d)| [V::Text(e.clone()), V::Text(d.clone())])
            .collect();
        for row in conn.rows(
            &format!(
                "SELECT employee, day, fingerprint, acc, first_seq, last_seq FROM employee_days
                 WHERE {list}"
            ),
            &args,
        )? {
            out.insert((row.text(0)?, row.text(1)?), row);
        }
    }
    Ok(out)
}

/// A batch's employee-day merged into its stored row (columns as [`stored`] reads them), and
/// the fingerprint the result carries: a row summed with another directory entry is marked
/// stale (the report then recomputes the employee).
fn merged(fingerprint: &str, mut part: Part, old: Option<&Cells>) -> Result<(String, Part)> {
    let Some(o) = old else {
        return Ok((fingerprint.to_owned(), part));
    };
    let mut acc = decode(&o.text(3)?)?;
    acc.merge(part.acc);
    part.acc = acc;
    part.first = part.first.min(o.int(4)?);
    part.last = part.last.max(o.int(5)?);
    let stored = o.text(2)?;
    let print = match standing(&stored, fingerprint) {
        Standing::Current => fingerprint.to_owned(),
        // Still to be recomputed: the whole day is, the new events with it.
        Standing::Cut => stored,
        Standing::Stale => STALE.to_owned(),
    };
    Ok((print, part))
}

/// Writes rows ((employee, day), fingerprint, part), replacing what was there, a chunk per
/// statement.
fn put_all<S: Sql + ?Sized>(conn: &mut S, rows: &[((String, String), String, Part)]) -> Result<()> {
    for chunk in rows.chunks(CHUNK) {
        let list = (0..chunk.len())
            .map(|i| {
                let n = 6 * i;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, ${})",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4,
                    n + 5,
                    n + 6
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut args = Vec::with_capacity(6 * chunk.len());
        for ((employee, day), print, part) in chunk {
            args.extend([
                V::Text(employee.clone()),
                V::Text(day.clone()),
                V::Text(print.clone()),
                V::Text(encode(&part.acc)?),
                V::Integer(part.first),
                V::Integer(part.last),
            ]);
        }
        conn.exec(
            &format!(
                "INSERT INTO employee_days (employee, day, fingerprint, acc, first_seq, last_seq)
                 VALUES {list}
                 ON CONFLICT (employee, day) DO UPDATE SET fingerprint = excluded.fingerprint,
                 acc = excluded.acc, first_seq = excluded.first_seq, last_seq = excluded.last_seq"
            ),
            &args,
        )?;
    }
    Ok(())
}

/// Sums at most `max_events` events after the watermark into the rows and moves the watermark,
/// in one transaction; leaves the newest `settle` sequence numbers for later.
pub(super) fn roll_up<S: Sql + ?Sized>(
    conn: &mut S,
    dir: Option<&Directory>,
    max_events: i64,
    settle: i64,
) -> Result<Rolled> {
    in_transaction(conn, |conn| {
        lock(conn)?;
        let mark = mark(conn)?;
        let Some(newest) = newest(conn)? else {
            return Ok(Rolled::default());
        };
        let top = newest
            .saturating_sub(settle)
            .min(mark.saturating_add(max_events.max(1)));
        if top <= mark {
            return Ok(Rolled {
                behind: newest - mark,
                ..Rolled::default()
            });
        }
        let mut events = 0;
        let mut parts = Parts::new();
        conn.each(
            &format!(
                "SELECT {REPORT_COLUMNS} FROM events
                 WHERE seq > $1 AND seq <= $2 AND employee IS NOT NULL"
            ),
            &[V::Integer(mark), V::Integer(top)],
            &mut |c| {
                events += 1;
                add_part(&mut parts, ReportRow::of_cells(&c)?, dir, None);
                Ok(())
            },
        )?;
        let days = parts.len() as u64;
        // Two statements per chunk of rows, not two per row: a batch of a fleet's traffic
        // touches thousands of employee-days, and each round trip to PostgreSQL counts.
        let keys: Vec<&(String, String)> = parts.keys().collect();
        let old = stored(conn, &keys)?;
        let mut prints: HashMap<String, String> = HashMap::new();
        let mut rows = Vec::with_capacity(parts.len());
        for (key, part) in parts {
            let print = prints
                .entry(key.0.clone())
                .or_insert_with(|| fingerprint(dir.and_then(|d| d.get(&key.0))));
            let (print, part) = merged(print, part, old.get(&key))?;
            rows.push((key, print, part));
        }
        drop(old);
        put_all(conn, &rows)?;
        conn.exec(
            "UPDATE rollup_mark SET seq = $1 WHERE id = 1",
            &[V::Integer(top)],
        )?;
        Ok(Rolled {
            events,
            days,
            behind: newest - top,
            covered: top - mark,
        })
    })
}

/// Recomputes all of `employee`'s rows from their events (up to the watermark) with the
/// current directory entry.
fn rewrite<S: Sql + ?Sized>(conn: &mut S, employee: &str, dir: Option<&Directory>) -> Result<()> {
    in_transaction(conn, |conn| {
        lock(conn)?;
        let mark = mark(conn)?;
        let mut parts = Parts::new();
        conn.each(
            &format!("SELECT {REPORT_COLUMNS} FROM events WHERE employee = $1 AND seq <= $2"),
            &[V::Text(employee.into()), V::Integer(mark)],
            &mut |c| {
                add_part(&mut parts, ReportRow::of_cells(&c)?, dir, None);
                Ok(())
            },
        )?;
        let print = fingerprint(dir.and_then(|d| d.get(employee)));
        conn.exec(
            "DELETE FROM employee_days WHERE employee = $1",
            &[V::Text(employee.into())],
        )?;
        let rows: Vec<_> = parts
            .into_iter()
            .map(|(key, part)| (key, print.clone(), part))
            .collect();
        put_all(conn, &rows)
    })
}

/// Recomputes the rows of the given days (per employee) from their events up to the
/// watermark, with the current directory entry: the days retention cut into.
fn rewrite_days<S: Sql + ?Sized>(
    conn: &mut S,
    cut: &BTreeMap<String, BTreeSet<String>>,
    dir: Option<&Directory>,
) -> Result<()> {
    in_transaction(conn, |conn| {
        lock(conn)?;
        let mark = mark(conn)?;
        for (employee, days) in cut {
            let parts = day_parts(conn, employee, days, mark, dir)?;
            let print = fingerprint(dir.and_then(|d| d.get(employee)));
            for day in days {
                conn.exec(
                    "DELETE FROM employee_days WHERE employee = $1 AND day = $2",
                    &[V::Text(employee.clone()), V::Text(day.clone())],
                )?;
            }
            let rows: Vec<_> = parts
                .into_iter()
                .map(|(key, part)| (key, print.clone(), part))
                .collect();
            put_all(conn, &rows)?;
        }
        Ok(())
    })
}

/// After retention deleted the events before `cutoff_ms`: deletes the rows of the days all of
/// whose events went, and marks those of the days around the cutoff (time zones are up to 14
/// hours off UTC, so a day from the one before the cutoff's UTC day to the one after may hold
/// events on both sides) to be recomputed from what is left. Returns the rows deleted.
pub(super) fn prune<S: Sql + ?Sized>(conn: &mut S, cutoff_ms: i64) -> Result<u64> {
    let day = local_day(cutoff_ms, None);
    let before = day.yesterday().unwrap_or(day).to_string();
    let after = day.tomorrow().unwrap_or(day).to_string();
    in_transaction(conn, |conn| {
        let gone = conn.exec(
            "DELETE FROM employee_days WHERE day < $1",
            &[V::Text(before.clone())],
        )?;
        conn.exec(
            &format!(
                "UPDATE employee_days SET fingerprint = '{PRUNED}' || fingerprint
                 WHERE day >= $1 AND day <= $2 AND fingerprint NOT LIKE '{PRUNED}%'"
            ),
            &[V::Text(before.clone()), V::Text(after.clone())],
        )?;
        Ok(gone)
    })
}

/// Employees this process rewrote lately, per store: (store, employee) -> when, and whether
/// a contest for them was reported.
static REWRITTEN: Mutex<BTreeMap<(String, String), (Instant, bool)>> = Mutex::new(BTreeMap::new());

/// Whether this process may rewrite `employee`'s rows in `store` now (it has not in the last
/// [`QUIET`]); records the rewrite when it may. `Err` carries whether the refusal is news
/// (to be reported).
fn may_rewrite(store: &str, employee: &str) -> std::result::Result<(), bool> {
    let Ok(mut done) = REWRITTEN.lock() else {
        return Err(false);
    };
    let now = Instant::now();
    done.retain(|_, (at, _)| now.duration_since(*at) < QUIET);
    match done.get_mut(&(store.to_owned(), employee.to_owned())) {
        Some((_, told)) => Err(!std::mem::replace(told, true)),
        None => {
            done.insert((store.to_owned(), employee.to_owned()), (now, false));
            Ok(())
        }
    }
}

/// Where a report over the rollup reads: the period and whom.
pub(super) struct Ask<'a> {
    /// The period's first instant (its day is the first day).
    pub(super) since_ms: i64,
    /// The directory.
    pub(super) dir: Option<&'a Directory>,
    /// One employee (case-insensitive) or all.
    pub(super) only: Option<&'a str>,
    /// Whether the report may roll up and rewrite rows.
    pub(super) writable: bool,
    /// Sequence numbers a roll-up leaves behind the newest.
    pub(super) settle: i64,
}

/// The per-employee sums of the period from the rollup (plus the events after its watermark);
/// `None` when the rollup is too far behind to help (then the events must be read).
pub(super) fn rolled_report<S: Sql + ?Sized>(
    conn: &mut S,
    ask: &Ask<'_>,
) -> Result<Option<HashMap<String, Acc>>> {
    if ask.writable {
        let mut budget = INLINE_MAX;
        while budget > 0 {
            let r = roll_up(conn, ask.dir, ROLL_BATCH.min(budget), ask.settle)?;
            budget -= r.covered.max(1);
            if r.covered == 0 || r.behind <= ask.settle {
                break;
            }
        }
    }
    // A roll-up committed between reading the watermark and the rows shows in the rows'
    // last sequence numbers: read again.
    for _ in 0..3 {
        let mark = mark(conn)?;
        let behind = newest(conn)?.unwrap_or(0) - mark;
        if behind > TAIL_MAX {
            tracing::info!(
                behind,
                "the day rollup is far behind: the report reads the events of the period"
            );
            return Ok(None);
        }
        if let Some(by) = read_rows(conn, ask, mark)? {
            return Ok(Some(by));
        }
    }
    tracing::info!("the day rollup kept changing: the report reads the events of the period");
    Ok(None)
}

/// The sums of the period as of watermark `mark`; `None` when the rows moved meanwhile or
/// stale ones were rewritten (read again).
fn read_rows<S: Sql + ?Sized>(
    conn: &mut S,
    ask: &Ask<'_>,
    mark: i64,
) -> Result<Option<HashMap<String, Acc>>> {
    let first = local_day(ask.since_ms.saturating_sub(DAY_MARGIN_MS), None).to_string();
    let (sql, args) = match ask.only {
        Some(who) => (
            "SELECT employee, day, fingerprint, acc, last_seq FROM employee_days
             WHERE lower(employee) = lower($2) AND day >= $1",
            vec![V::Text(first), V::Text(who.into())],
        ),
        None => (
            "SELECT employee, day, fingerprint, acc, last_seq FROM employee_days WHERE day >= $1",
            vec![V::Text(first)],
        ),
    };
    let mut by: HashMap<String, Acc> = HashMap::new();
    let mut stale = BTreeSet::new();
    let mut cut: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut prints: HashMap<String, (String, String)> = HashMap::new();
    let mut moved = false;
    conn.each(sql, &args, &mut |r| {
        if moved || r.int(4)? > mark {
            moved = true;
            return Ok(());
        }
        let employee = r.text(0)?;
        let (print, since_day) = prints.entry(employee.clone()).or_insert_with(|| {
            let entry = ask.dir.and_then(|d| d.get(&employee));
            (
                fingerprint(entry),
                local_day(ask.since_ms, entry).to_string(),
            )
        });
        let day = r.text(1)?;
        match standing(&r.text(2)?, print) {
            Standing::Stale => {
                stale.insert(employee);
            }
            _ if day < *since_day => {}
            Standing::Cut => {
                cut.entry(employee).or_default().insert(day);
            }
            Standing::Current => {
                by.entry(employee).or_default().merge(decode(&r.text(3)?)?);
            }
        }
        Ok(())
    })?;
    if moved {
        return Ok(None);
    }
    cut.retain(|employee, _| !stale.contains(employee));
    if ask.writable && (!cut.is_empty() || !stale.is_empty()) {
        if !cut.is_empty() {
            rewrite_days(conn, &cut, ask.dir)?;
        }
        let mut contested = Vec::new();
        let mut rewrote = !cut.is_empty();
        for employee in &stale {
            match may_rewrite(conn.label(), employee) {
                Ok(()) => {
                    rewrite(conn, employee, ask.dir)?;
                    rewrote = true;
                }
                Err(news) => {
                    if news {
                        contested.push(employee.as_str());
                    }
                }
            }
        }
        if !contested.is_empty() {
            tracing::warn!(
                employees = contested.len(),
                first = %contested.iter().take(5).copied().collect::<Vec<_>>().join(", "),
                "day rollup rows summed with another directory entry again within minutes of \
                 this console rewriting them: another console reads this store with a different \
                 directory (or the entries keep changing); computed from their events instead \
                 until the console may rewrite them again. Give every console the same directory."
            );
        }
        if rewrote {
            return Ok(None);
        }
    }
    let from = ask.since_ms.saturating_sub(DAY_MARGIN_MS);
    for employee in &stale {
        by.remove(employee);
    }
    for (employee, days) in &cut {
        for ((employee, _), part) in day_parts(conn, employee, days, mark, ask.dir)? {
            by.entry(employee).or_default().merge(part.acc);
        }
    }
    let mut add = |c: Cells| {
        add_in_period(&mut by, ReportRow::of_cells(&c)?, ask.dir, ask.since_ms);
        Ok(())
    };
    for employee in stale {
        conn.each(
            &format!(
                "SELECT {REPORT_COLUMNS} FROM events
                 WHERE employee = $1 AND seq <= $2 AND ts_ms >= $3"
            ),
            &[V::Text(employee), V::Integer(mark), V::Integer(from)],
            &mut add,
        )?;
    }
    let mut args = vec![V::Integer(mark), V::Integer(from)];
    let mut sql = format!(
        "SELECT {REPORT_COLUMNS} FROM events
         WHERE seq > $1 AND ts_ms >= $2 AND employee IS NOT NULL"
    );
    if let Some(who) = ask.only {
        args.push(V::Text(who.into()));
        sql.push_str(" AND lower(employee) = lower($3)");
    }
    conn.each(&sql, &args, &mut add)?;
    Ok(Some(by))
}

impl Store {
    /// Per-employee summary since `since_ms` (of one employee, case-insensitive, when `only`
    /// names one), employees with the most evidence first. The period is whole days: from the
    /// start of the calendar day (the employee's time zone) `since_ms` falls on. Read from the
    /// day rollup ([`super::rollup`]) when it is near enough to current, else from the events.
    pub fn report(
        &mut self,
        since_ms: i64,
        dir: Option<&Directory>,
        only: Option<&str>,
    ) -> Result<Vec<EmployeeSummary>> {
        if self.has_rollup()? {
            let ask = Ask {
                since_ms,
                dir,
                only,
                writable: !self.read_only,
                settle: 0,
            };
            if let Some(by) = rolled_report(self, &ask)? {
                return Ok(ranked(by));
            }
        }
        self.report_from_events(since_ms, dir, only)
    }

    /// Sums the events after the rollup's watermark (at most `max_events`) into the day
    /// rollup; the console runs it every few seconds so its ranking reads days, not events.
    pub fn roll_up(&mut self, dir: Option<&Directory>, max_events: i64) -> Result<Rolled> {
        if self.read_only {
            return Err(StoreError::Invalid(format!(
                "{}: opened read-only, the day rollup cannot be brought up to date",
                self.path
            )));
        }
        roll_up(self, dir, max_events, 0)
    }

    /// Whether the file has the day rollup (schema 4; a read-only open cannot add it).
    fn has_rollup(&self) -> Result<bool> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.sq(e))?;
        Ok(version >= 4)
    }
}

#[cfg(test)]
mod tests;
