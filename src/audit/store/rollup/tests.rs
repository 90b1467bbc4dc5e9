//! The rollup gives what the events give: the same summaries, before and after a directory
//! change, from a writable store and a read-only one.

use super::*;
use crate::audit::store::Store;
use crate::employees::Directory;

const DAY: i64 = 86_400_000;
/// 2026-03-02T00:00:00Z.
const T0: i64 = 1_772_409_600_000;

fn directory(alice_zone: &str, alice_lat: f64) -> Directory {
    let text = format!(
        "[[employee]]\nid = \"alice\"\ncountry = \"US\"\nlat = {alice_lat}\nlon = -97.7431\n\
         radius_km = 100\ntime_zone = \"{alice_zone}\"\nallow_networks = [\"10.1.0.0/16\"]\n\n\
         [[employee]]\nid = \"bob\"\ncountry = \"GB\"\n"
    );
    Directory::parse_toml(&text, "team.toml", 100.0).expect("directory")
}

/// One event: (employee, ms, action, reasons, ip, country, asn, lat/lon, rtt, message).
struct Ev<'a>(
    &'a str,
    i64,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    i64,
    Option<(f64, f64)>,
    Option<f64>,
    &'a str,
);

fn insert(store: &mut Store, n: usize, e: &Ev<'_>) {
    let Ev(who, ms, action, reasons, ip, country, asn, at, rtt, message) = e;
    let timestamp = jiff::Timestamp::from_millisecond(*ms)
        .expect("time")
        .to_string();
    let json = serde_json::json!({
        "locgate": {"network": {"rtt_ms": rtt}, "location_precision": "database"}
    });
    store
        .exec(
            "INSERT INTO events (id, ts_ms, timestamp, action, reasons, employee, ip, country,
             asn, as_org, lat, lon, accuracy_km, anonymizer, listener, message, json, instance,
             egress, verified)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'Net', $10, $11, 10, $12, 'l', $13,
             $14, 'gw', $7, 1)",
            &[
                V::Text(format!("ev{n}")),
                V::Integer(*ms),
                V::Text(timestamp),
                V::Text((*action).into()),
                V::Text(if reasons.is_empty() {
                    String::new()
                } else {
                    format!(",{reasons},")
                }),
                V::Text((*who).into()),
                V::Text((*ip).into()),
                V::Text((*country).into()),
                V::Integer(*asn),
                at.map_or(V::Null, |a| V::Real(a.0)),
                at.map_or(V::Null, |a| V::Real(a.1)),
                V::Integer(i64::from(reasons.contains("anonymous_vpn"))),
                V::Text((*message).into()),
                V::Text(json.to_string()),
            ],
        )
        .expect("insert");
}

/// Varied events: three employees (one not in the directory), six days, hours near midnight
/// (so time zones move days), reasons, networks, an allowed network, round-trip times.
fn events() -> Vec<Ev<'static>> {
    let austin = Some((30.2672, -97.7431));
    let paris = Some((48.8566, 2.3522));
    let mut v = Vec::new();
    for d in 0..6 {
        let base = T0 + d * DAY;
        v.push(Ev(
            "alice",
            base + 3_600_000,
            "allow",
            "",
            "203.0.113.5",
            "US",
            7018,
            austin,
            Some(40.0 + d as f64),
            "",
        ));
        v.push(Ev(
            "alice",
            base + 4 * 3_600_000,
            "flag",
            "country_mismatch,off_hours",
            "198.51.100.9",
            "FR",
            3215,
            paris,
            Some(95.5),
            "seen in Paris",
        ));
        v.push(Ev(
            "alice",
            base + 20 * 3_600_000,
            "allow",
            "",
            "10.1.2.3",
            "FR",
            64512,
            paris,
            None,
            "",
        ));
        v.push(Ev(
            "bob",
            base + 23 * 3_600_000 + 59 * 60_000,
            "flag",
            "anonymous_vpn",
            "192.0.2.77",
            "NL",
            9009,
            None,
            Some(12.25 * d as f64),
            "vpn",
        ));
        if d % 2 == 0 {
            v.push(Ev(
                "Carol",
                base + 12 * 3_600_000,
                "block",
                "impossible_travel,tor_exit",
                "192.0.2.1",
                "DE",
                680,
                Some((52.5, 13.4)),
                Some(150.0),
                "travel",
            ));
        }
    }
    v.push(Ev(
        "ALICE",
        T0 + 2 * DAY + 5_000,
        "flag",
        "impossible_travel",
        "198.51.100.10",
        "FR",
        3215,
        paris,
        Some(101.0),
        "latest travel",
    ));
    v
}

fn summaries(store: &mut Store, since: i64, dir: &Directory, only: Option<&str>) -> String {
    serde_json::to_string(&store.report(since, Some(dir), only).expect("report")).expect("json")
}

fn live(store: &Store, since: i64, dir: &Directory, only: Option<&str>) -> String {
    serde_json::to_string(
        &store
            .report_from_events(since, Some(dir), only)
            .expect("live"),
    )
    .expect("json")
}

fn assert_same(store: &mut Store, dir: &Directory) {
    for since in [0, T0 + DAY, T0 + 3 * DAY + 7 * 3_600_000] {
        for only in [None, Some("alice"), Some("BOB")] {
            let want = live(store, since, dir, only);
            assert!(only.is_some() || want.len() > 2, "something to compare");
            assert_eq!(
                summaries(store, since, dir, only),
                want,
                "since {since} {only:?}"
            );
        }
    }
}

#[test]
fn the_rollup_gives_what_the_events_give_before_and_after_a_directory_change() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("events.db");
    let mut store = Store::open(&path, None).expect("open");
    let dir = directory("America/Chicago", 30.2672);
    let all = events();
    let (first, rest) = all.split_at(20);
    for (n, e) in first.iter().enumerate() {
        insert(&mut store, n, e);
    }
    // Rolled in small batches, so days are merged across batches.
    let mut rolled = 0;
    loop {
        let r = store.roll_up(Some(&dir), 7).expect("roll up");
        rolled += r.events;
        if r.behind == 0 {
            break;
        }
    }
    assert_eq!(rolled, 20);
    // The rest is after the watermark: a read-only reader (the CLI), which cannot roll up,
    // sums it live into the report, and recomputes a changed employee in memory.
    for (n, e) in rest.iter().enumerate() {
        insert(&mut store, 100 + n, e);
    }
    let moved = directory("Europe/Paris", 48.8566);
    assert_ne!(
        live(&store, 0, &dir, None),
        live(&store, 0, &moved, None),
        "the move changes the verdicts"
    );
    let mut reader = Store::open_read_only(&path).expect("read-only");
    assert_same(&mut reader, &dir);
    assert_same(&mut reader, &moved);
    assert!(mark(&mut store).expect("mark") < newest(&mut store).expect("newest").expect("some"));
    // A writable store rolls up first.
    assert_same(&mut store, &dir);
    assert_eq!(
        mark(&mut store).expect("mark"),
        newest(&mut store).expect("newest").expect("some")
    );

    // Alice moved to Paris: her rows are recomputed and rewritten, Bob's are kept.
    let before = store
        .rows(
            "SELECT employee, fingerprint FROM employee_days ORDER BY employee, day",
            &[],
        )
        .expect("rows");
    assert_same(&mut store, &moved);
    let after = store
        .rows(
            "SELECT employee, fingerprint FROM employee_days ORDER BY employee, day",
            &[],
        )
        .expect("rows");
    let print = |rows: &[Cells], who: &str| -> BTreeSet<String> {
        rows.iter()
            .filter(|r| r.text(0).expect("employee") == who)
            .map(|r| r.text(1).expect("print"))
            .collect()
    };
    assert_eq!(
        print(&after, "alice"),
        BTreeSet::from([fingerprint(moved.get("alice"))])
    );
    assert_ne!(print(&before, "alice"), print(&after, "alice"));
    assert_eq!(print(&before, "bob"), print(&after, "bob"));
    assert_eq!(print(&after, "Carol"), BTreeSet::from(["none".to_owned()]));
}

#[test]
fn a_merged_day_marks_a_changed_entry_stale_and_retention_drops_old_days() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(&tmp.path().join("events.db"), None).expect("open");
    let all = events();
    insert(&mut store, 0, &all[0]);
    store
        .roll_up(Some(&directory("America/Chicago", 30.2672)), 100)
        .expect("roll");
    // Same day, another entry: the row can no longer be trusted as it is.
    insert(&mut store, 1, &all[1]);
    let moved = directory("America/Chicago", 31.0);
    store.roll_up(Some(&moved), 100).expect("roll");
    let rows = store
        .rows("SELECT fingerprint FROM employee_days", &[])
        .expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].text(0).expect("print"), STALE);
    let want = live(&store, 0, &moved, None);
    assert!(want.contains("seen in Paris"));
    assert_eq!(summaries(&mut store, 0, &moved, None), want);

    let gone = prune(&mut store, T0 + 2 * DAY).expect("prune");
    assert_eq!(gone, 1, "the day before the cutoff's goes");
}

/// The fingerprints of `who`'s rows.
fn prints(store: &mut Store, who: &str) -> BTreeSet<String> {
    store
        .rows(
            "SELECT fingerprint FROM employee_days WHERE employee = $1",
            &[V::Text(who.into())],
        )
        .expect("rows")
        .iter()
        .map(|r| r.text(0).expect("print"))
        .collect()
}

#[test]
fn after_retention_the_days_around_the_cutoff_count_only_the_events_left() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("events.db");
    let mut store = Store::open(&path, None).expect("open");
    let dir = directory("America/Chicago", 30.2672);
    for (n, e) in events().iter().enumerate() {
        insert(&mut store, n, e);
    }
    while store.roll_up(Some(&dir), 1_000).expect("roll").behind > 0 {}
    // Everything before 02:00 UTC on the third day goes. In Chicago that is the evening of the
    // second day: Alice's row of that day keeps one of its two events.
    let cutoff = T0 + 2 * DAY + 2 * 3_600_000;
    store
        .exec("DELETE FROM events WHERE ts_ms < $1", &[V::Integer(cutoff)])
        .expect("retention");
    prune(&mut store, cutoff).expect("prune");
    assert!(
        prints(&mut store, "alice")
            .iter()
            .any(|p| p.starts_with(PRUNED)),
        "the days around the cutoff are marked"
    );
    // A reader that cannot write computes the cut days from their events; a writable store
    // rewrites them.
    let mut reader = Store::open_read_only(&path).expect("read-only");
    assert_same(&mut reader, &dir);
    assert_same(&mut store, &dir);
    assert_eq!(
        prints(&mut store, "alice"),
        BTreeSet::from([fingerprint(dir.get("alice"))])
    );
    // New events merged into a marked day keep the mark until the day is recomputed.
    prune(&mut store, cutoff).expect("prune again");
    insert(
        &mut store,
        500,
        &Ev(
            "alice",
            T0 + 3 * DAY + 3_600_000,
            "allow",
            "",
            "203.0.113.5",
            "US",
            7018,
            None,
            None,
            "",
        ),
    );
    store.roll_up(Some(&dir), 1_000).expect("roll");
    assert!(
        prints(&mut store, "alice")
            .iter()
            .any(|p| p.starts_with(PRUNED))
    );
    assert_same(&mut store, &dir);
}

#[test]
fn consoles_with_different_directories_do_not_take_turns_rewriting_the_rows() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(&tmp.path().join("events.db"), None).expect("open");
    let chicago = directory("America/Chicago", 30.2672);
    let paris = directory("Europe/Paris", 48.8566);
    for (n, e) in events().iter().enumerate() {
        insert(&mut store, n, e);
    }
    while store.roll_up(Some(&chicago), 1_000).expect("roll").behind > 0 {}
    let chicago_print = BTreeSet::from([fingerprint(chicago.get("alice"))]);
    let paris_print = BTreeSet::from([fingerprint(paris.get("alice"))]);
    assert_eq!(prints(&mut store, "alice"), chicago_print);
    // The console with the other directory rewrites Alice's rows once...
    assert_same(&mut store, &paris);
    assert_eq!(prints(&mut store, "alice"), paris_print);
    // ...and a console of this process with the first directory, finding them changed again
    // within minutes, computes her from her events and leaves the rows as they are.
    assert_same(&mut store, &chicago);
    assert_eq!(prints(&mut store, "alice"), paris_print);
    assert_same(&mut store, &paris);
}

#[test]
fn a_row_stands_by_its_fingerprint() {
    assert_eq!(standing("abc", "abc"), Standing::Current);
    assert_eq!(standing("pruned:abc", "abc"), Standing::Cut);
    assert_eq!(standing("pruned:abd", "abc"), Standing::Stale);
    assert_eq!(standing(STALE, "abc"), Standing::Stale);
    assert_eq!(standing("abd", "abc"), Standing::Stale);
}

#[test]
fn batches_of_many_employee_days_merge_in_chunks() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(&tmp.path().join("events.db"), None).expect("open");
    let dir = directory("America/Chicago", 30.2672);
    // 450 people (more than two chunks of rows), two events each on the same day, the second
    // in a later batch: every row of the second batch merges into one the first wrote.
    let names: Vec<String> = (0..450).map(|i| format!("p{i}")).collect();
    let mut n = 0;
    for (hour, reasons) in [(2, ""), (9, "country_mismatch")] {
        for name in &names {
            insert(
                &mut store,
                n,
                &Ev(
                    name,
                    T0 + hour * 3_600_000 + n as i64,
                    if reasons.is_empty() { "allow" } else { "flag" },
                    reasons,
                    "198.51.100.9",
                    "FR",
                    3215,
                    Some((48.8566, 2.3522)),
                    Some(20.0 + (n % 7) as f64),
                    "seen",
                ),
            );
            n += 1;
        }
    }
    assert_eq!(store.roll_up(Some(&dir), 450).expect("first").days, 450);
    assert_eq!(store.roll_up(Some(&dir), 450).expect("second").days, 450);
    let rows = store
        .rows("SELECT count(*) FROM employee_days", &[])
        .expect("count");
    assert_eq!(rows[0].int(0).expect("n"), 450);
    let want = live(&store, 0, &dir, None);
    assert!(want.contains("p449"));
    assert_eq!(summaries(&mut store, 0, &dir, None), want);
}
