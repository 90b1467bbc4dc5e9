//! `locgate replay FILE`: past sign-ins through the current policy, with known answers.
//!
//! The directory is the shared one ([`employees_toml`]: everyone in Austin, Texas; alice travels
//! to MX from 2026-12-20 to 2027-01-03; carol is exempt). Identities in a replay come from the
//! SSO's own log and are taken as verified. Without a listener the policy is judged in enforce
//! mode.

mod common;

use common::*;
use serde_json::Value as Json;

/// One expected output event, in output order.
struct Want {
    time: &'static str,
    ip: &'static str,
    user: Option<&'static str>,
    action: &'static str,
    verdict: &'static str,
    reasons: &'static [&'static str],
}

/// What every input below must give, sorted by time (the inputs list them out of order).
const WANT: [Want; 8] = [
    Want {
        time: "2026-11-20T07:00:00.000Z",
        ip: "127.6.0.9",
        user: None,
        action: "allow",
        verdict: "allow",
        reasons: &[],
    },
    Want {
        time: "2026-11-20T08:00:00.000Z",
        ip: "127.2.0.5",
        user: Some("e1042"),
        action: "block",
        verdict: "block",
        reasons: &[
            "sanctioned_country",
            "outside_home_radius",
            "country_mismatch",
        ],
    },
    Want {
        time: "2026-11-20T08:30:00.000Z",
        ip: "127.5.0.9",
        user: Some("mallory"),
        action: "flag",
        verdict: "flag",
        reasons: &["unknown_employee"],
    },
    Want {
        time: "2026-11-20T09:00:00.000Z",
        ip: "127.4.0.9",
        user: Some("e2001"),
        // A domestic trip is a note: residence_mismatch (history) judges the pattern.
        action: "note",
        verdict: "note",
        reasons: &["outside_home_radius", "region_mismatch"],
    },
    Want {
        time: "2026-11-20T10:00:00.000Z",
        ip: "127.1.0.9",
        user: Some("e1042"),
        action: "allow",
        verdict: "allow",
        reasons: &[],
    },
    Want {
        // alice in Mexico before her trip.
        time: "2026-11-20T11:00:00.000Z",
        ip: "127.5.0.10",
        user: Some("e1042"),
        action: "flag",
        verdict: "flag",
        reasons: &["outside_home_radius", "country_mismatch"],
    },
    Want {
        // carol (exempt) from a hosting provider: let through, verdict kept.
        time: "2026-11-20T12:00:00.000Z",
        ip: "127.3.0.4",
        user: Some("e3007"),
        action: "allow",
        verdict: "flag",
        reasons: &["hosting_provider", "outside_home_radius", "region_mismatch"],
    },
    Want {
        // alice in Mexico during her trip.
        time: "2026-12-24T12:00:00.000Z",
        ip: "127.5.0.9",
        user: Some("e1042"),
        action: "allow",
        verdict: "allow",
        reasons: &[],
    },
];

/// Writes the config and `signins`, runs `locgate replay`, and returns its output and the path
/// of the sign-ins file.
fn replay(name: &str, signins: &str) -> (BinOut, String) {
    let fx = Fixture::new();
    fx.write_standard_directory();
    let config = fx.write(
        "locgate.toml",
        // History off: these answers are the per-employee rules alone (tests/history.rs replays
        // the history signals).
        &fx.config_text_with(
            "",
            &format!(
                "[history]\nenabled = false\n\n{}",
                employees_section("employees.toml")
            ),
        ),
    );
    let file = fx.write(name, signins);
    let out = locgate_bin(&[
        "replay",
        file.to_str().unwrap(),
        "-c",
        config.to_str().unwrap(),
    ]);
    (out, file.display().to_string())
}

#[track_caller]
fn assert_known_answers(events: &[Json]) {
    assert_eq!(events.len(), WANT.len(), "{events:#?}");
    let ids: std::collections::HashSet<&str> = events
        .iter()
        .filter_map(|e| e["event"]["id"].as_str())
        .collect();
    assert_eq!(ids.len(), WANT.len(), "one id per sign-in");
    for (i, (e, w)) in events.iter().zip(WANT.iter()).enumerate() {
        let at = format!("output line {}: {e:#}", i + 1);
        assert_eq!(e["@timestamp"], w.time, "{at}");
        // Ids come from the sign-in (time, address, user, outcome): the same in every format.
        let id = e["event"]["id"].as_str().unwrap_or("");
        assert!(id.starts_with("replay-") && id.len() == 23, "{at}");
        assert_eq!(e["source"]["ip"], w.ip, "{at}");
        match w.user {
            Some(id) => assert_eq!(e["user"]["id"], id, "{at}"),
            None => assert!(e["user"].is_null(), "{at}"),
        }
        assert_eq!(e["event"]["action"], w.action, "{at}");
        assert_eq!(e["locgate"]["verdict"], w.verdict, "{at}");
        assert_eq!(reasons(e), w.reasons, "{at}");
        assert_eq!(e["locgate"]["listener"], "replay", "{at}");
        assert_eq!(e["locgate"]["mode"], "enforce", "{at}");
    }
    let times: Vec<&str> = events
        .iter()
        .map(|e| e["@timestamp"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "events are in time order");

    // The numbers behind two of the answers.
    assert_eq!(
        events[3]["message"],
        "observed Seattle, US, 2,848 km from declared home Austin, US (radius 150 km, location \
         accurate to 20 km); observed region Washington, US, not the declared home region Texas"
    );
    assert_eq!(
        events[2]["message"],
        "identity `mallory` is not in the employee directory"
    );
}

#[test]
fn replay_of_json_lines_judges_in_time_order_and_reports_bad_lines() {
    let signins = r#"{"time":"2026-11-20T10:00:00Z","ip":"127.1.0.9","user":"alice@example.com"}
{"time":"2026-11-20T08:00:00Z","ip":"127.2.0.5","user":"e1042"}
this line is not JSON
{"time":"2026-11-20T09:30:00+01:00","ip":"127.5.0.9","user":"mallory"}
{"time":"2026-12-24T12:00:00Z","ip":"127.5.0.9","user":"alice"}
{"time":"2026-11-20T09:00:00Z","ip":"127.4.0.9","user":"bob"}
{"time":"2026-11-20T07:00:00Z","ip":"127.6.0.9"}
{"time":"last Tuesday","ip":"127.1.0.9","user":"bob"}

{"time":"2026-11-20T11:00:00Z","ip":"127.5.0.10","user":"ALICE@Example.COM"}
{"time":"2026-11-20T12:00:00Z","ip":"127.3.0.4","user":"carol","app":"vpn"}
{"time":"2026-11-20T13:00:00Z","ip":"127.1.0.300","user":"bob"}
"#;
    let (out, path) = replay("signins.jsonl", signins);
    assert_eq!(out.status.code(), Some(1), "bad lines make the exit 1");
    assert_known_answers(&out.json_lines());
    let errors: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(errors.len(), 4, "{}", out.stderr);
    assert_eq!(
        errors[3],
        format!("{path}: 8 sign-ins read as plain, 3 unreadable")
    );
    assert!(
        errors[0].starts_with(&format!("{path}:3: not a JSON object: ")),
        "{}",
        out.stderr
    );
    assert!(
        errors[1].starts_with(&format!(
            "{path}:8: time `last Tuesday` is not a timestamp (RFC 3339 or epoch)"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(
        errors[2],
        format!("{path}:12: ip `127.1.0.300` is not an IP address")
    );
}

#[test]
fn replay_of_csv_gives_the_same_answers() {
    let signins = "user,app,ip,time
alice@example.com,vpn,127.1.0.9,2026-11-20T10:00:00Z
e1042,vpn,127.2.0.5,2026-11-20T08:00:00Z
bob,vpn,127.1.0.9,yesterday
mallory,sso,127.5.0.9,2026-11-20T09:30:00+01:00
alice,sso,127.5.0.9,2026-12-24T12:00:00Z
bob,sso,127.4.0.9,2026-11-20T09:00:00Z
,sso,127.6.0.9,2026-11-20T07:00:00Z
ALICE@Example.COM,vpn,127.5.0.10,2026-11-20T11:00:00Z
carol,vpn,127.3.0.4,2026-11-20T12:00:00Z
bob,vpn,not-an-ip,2026-11-20T13:00:00Z
";
    let (out, path) = replay("signins.csv", signins);
    assert_eq!(out.status.code(), Some(1), "bad lines make the exit 1");
    assert_known_answers(&out.json_lines());
    let errors: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(errors.len(), 3, "{}", out.stderr);
    assert!(
        errors[0].starts_with(&format!(
            "{path}:4: time `yesterday` is not a timestamp (RFC 3339 or epoch)"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(
        errors[1],
        format!("{path}:11: ip `not-an-ip` is not an IP address")
    );

    // A clean file exits 0.
    let clean: String = signins
        .lines()
        .filter(|l| !l.contains("yesterday") && !l.contains("not-an-ip"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (out, _) = replay("clean.csv", &clean);
    assert!(out.status.success(), "{}", out.stderr);
    assert_known_answers(&out.json_lines());
    assert_eq!(
        out.stderr.lines().count(),
        1,
        "only the summary: {}",
        out.stderr
    );
}

/// What the IdPs export, read as they export it (tests/fixtures/replay/README.md): each file has
/// alice from Austin, alice from Pyongyang two hours later, and a refused sign-in as bob from
/// Pyongyang. Each is read in its own format (detected), alice's KP sign-in is blocked with her
/// id, and bob's refused one is kept, marked `event.outcome = failure`, and judged too.
#[test]
fn idp_exports_are_read_as_exported_and_the_kp_sign_in_is_flagged_with_the_right_user() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/replay");
    let cases: [(&str, &str, &[&str]); 9] = [
        ("okta-system-log.json", "okta", &[]),
        ("okta-system-log.jsonl", "okta", &[]),
        ("entra-signins-graph.json", "entra", &[]),
        ("entra-signins-portal.csv", "entra-portal", &[]),
        ("google-login-audit.json", "google", &[]),
        ("duo-authlog-v2.json", "duo", &[]),
        ("cloudflare-access-logpush.jsonl", "cloudflare", &[]),
        ("cloudflare-access-api.json", "cloudflare", &[]),
        (
            "vpn-concentrator.csv",
            "mapped",
            &[
                "--map",
                "time=EventTime,ip=SourceAddress,user=Account,outcome=Result",
            ],
        ),
    ];
    for (file, format, extra) in cases {
        let fx = Fixture::new();
        let config = fx.directory_config();
        let path = dir.join(file);
        let mut args = vec!["replay", path.to_str().unwrap(), "-c", config.as_str()];
        args.extend_from_slice(extra);
        let out = locgate_bin(&args);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("3 sign-ins read as {format}")),
            "{file}: {}",
            out.stderr
        );
        let events = out.json_lines();
        assert_eq!(events.len(), 3, "{file}: {events:#?}");
        let (home, kp, refused) = (&events[0], &events[1], &events[2]);
        assert_eq!(home["source"]["ip"], "127.1.0.20", "{file}");
        assert_eq!(home["user"]["id"], "e1042", "{file}: {home:#}");
        assert_eq!(home["event"]["action"], "allow", "{file}: {home:#}");
        assert_eq!(home["event"]["outcome"], "success", "{file}: {home:#}");
        assert_eq!(kp["source"]["ip"], "127.2.0.7", "{file}");
        assert_eq!(kp["user"]["id"], "e1042", "{file}: {kp:#}");
        assert_eq!(kp["event"]["action"], "block", "{file}: {kp:#}");
        let r = reasons(kp);
        for want in [
            "sanctioned_country",
            "country_mismatch",
            "impossible_travel",
        ] {
            assert!(r.contains(&want.to_string()), "{file}: {want} in {r:?}");
        }
        // A refused sign-in names whom someone tried to be: claimed, so `user.name`.
        assert_eq!(refused["user"]["name"], "e2001", "{file}: {refused:#}");
        assert_eq!(
            refused["event"]["outcome"], "failure",
            "{file}: {refused:#}"
        );
        assert_eq!(refused["event"]["action"], "block", "{file}: {refused:#}");
    }
}

/// A format named wrongly, or a mapping that does not parse, is a usage error naming the option.
#[test]
fn a_wrong_format_or_mapping_is_named() {
    let out = locgate_bin(&["replay", "-", "--format", "splunk"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr.contains("--format: `splunk` is not a format"),
        "{}",
        out.stderr
    );
    let out = locgate_bin(&["replay", "-", "--map", "time=a"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr.contains("--map: a mapping needs"),
        "{}",
        out.stderr
    );
}

/// The hunt's result as a table: one row per employee with flags, most flagged first, and exit
/// status 3 when anything was flagged, so a script can tell.
#[test]
fn replay_summary_ranks_employees_and_exits_3_when_anything_was_flagged() {
    let fx = Fixture::new();
    let config = fx.directory_config();
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/replay/okta-system-log.json");
    let out = locgate_bin(&[
        "replay",
        file.to_str().unwrap(),
        "-c",
        config.as_str(),
        "--summary",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("EMPLOYEE"), "{}", out.stdout);
    let alice = lines
        .iter()
        .find(|l| l.starts_with("e1042"))
        .expect("alice's row");
    let cells: Vec<&str> = alice.split_whitespace().collect();
    assert_eq!(
        &cells[1..4],
        ["2", "1", "0"],
        "2 sign-ins, 1 flagged, 0 refused: {alice}"
    );
    assert!(
        alice.contains("2026-11-20 08:00") && alice.contains("2026-11-20 10:00"),
        "{alice}"
    );
    assert!(alice.contains("sanctioned_country 1"), "{alice}");
    let bob = lines
        .iter()
        .find(|l| l.starts_with("e2001"))
        .expect("bob's row");
    assert_eq!(
        &bob.split_whitespace().collect::<Vec<_>>()[1..4],
        ["1", "1", "1"],
        "{bob}"
    );
    assert!(
        out.stdout
            .contains("2 of 2 employees flagged; 0 with nothing flagged; 0 sign-ins named nobody"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("\"event\""),
        "no events with --summary"
    );
}

/// One plain HTTP/1.1 GET with the bearer token; the status and the body.
fn http_get(addr: &str, target: &str, token: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the console");
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .expect("timeout");
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/html\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let status = raw
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

/// The hunt as IT runs it: an Okta export replayed into a store, read back by `events` and
/// `report` (the whole replayed period by default, not the 30 days before today), refused as
/// a second hunt into the same file, added to only with `--append` (and then nothing twice),
/// and served by `locgate review` as a ranked queue.
#[test]
fn replay_into_a_store_then_events_report_and_the_review_console() {
    let fx = Fixture::new();
    let config = fx.directory_config();
    let config = config.as_str();
    let export = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/replay/okta-system-log.json");
    let export = export.to_str().unwrap();
    let db = fx.dir.path().join("hunt.db");
    let db = db.to_str().unwrap();

    let out = locgate_bin(&["replay", export, "-c", config, "--store", db]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout.is_empty(),
        "events go to the store: {}",
        out.stdout
    );
    assert!(
        out.stderr.contains("3 events stored (3 in all)")
            && out.stderr.contains(&format!("locgate review --db {db}")),
        "{}",
        out.stderr
    );
    assert!(
        !std::path::Path::new(&format!("{db}.partial")).exists(),
        "the partial file became the store"
    );

    // The KP sign-in, with its user, from the store.
    let events = locgate_bin(&["events", "--db", db, "--json", "--action", "block"]);
    assert_eq!(events.status.code(), Some(0), "{}", events.stderr);
    let blocked: Vec<Json> = events
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    // alice's sign-in from Pyongyang, and the refused try on bob's account from there.
    assert_eq!(blocked.len(), 2, "{}", events.stdout);
    let alice = blocked
        .iter()
        .find(|e| e["employee"] == "e1042")
        .expect("alice's KP sign-in");
    assert_eq!(alice["ip"], "127.2.0.7");
    assert!(
        alice["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "sanctioned_country"),
        "{alice}"
    );
    assert!(
        alice["id"].as_str().unwrap().starts_with("replay-"),
        "{alice}"
    );

    // The replay happened in November: the report covers it without --since.
    let report = locgate_bin(&["report", "--db", db, "-c", config]);
    assert_eq!(report.status.code(), Some(0), "{}", report.stderr);
    assert!(
        report
            .stdout
            .starts_with("period: 2026-11-20 to 2026-11-20 (--since all)"),
        "{}",
        report.stdout
    );
    assert!(report.stdout.contains("\ne1042 "), "{}", report.stdout);

    // A second hunt into the same file is refused; --append adds nothing already there.
    let again = locgate_bin(&["replay", export, "-c", config, "--store", db]);
    assert_eq!(again.status.code(), Some(2), "{}", again.stderr);
    assert!(again.stderr.contains("--append"), "{}", again.stderr);
    let append = locgate_bin(&["replay", export, "-c", config, "--store", db, "--append"]);
    assert_eq!(append.status.code(), Some(0), "{}", append.stderr);
    assert!(
        append
            .stderr
            .contains("0 events stored (3 in all, 3 were there before)"),
        "{}",
        append.stderr
    );

    // The console over the store: loopback only, a fresh token, everyone ranked.
    let wide = locgate_bin(&["review", "--db", db, "--bind", "0.0.0.0:0"]);
    assert_eq!(wide.status.code(), Some(2), "{}", wide.stderr);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_locgate"))
        .args(["review", "--db", db, "-c", config, "--bind", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn review");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let mut addr = String::new();
    let mut token = String::new();
    for line in lines.by_ref().take(10) {
        let line = line.expect("line");
        if let Some(rest) = line.split("http://").nth(1) {
            addr = rest.trim_end_matches("/login").to_owned();
        }
        if line.starts_with("token") {
            token = line.rsplit(' ').next().unwrap_or("").to_owned();
            break;
        }
    }
    assert!(!addr.is_empty() && token.len() == 64, "{addr} {token}");
    let (status, _) = http_get(&addr, "/api/report", "wrong-token");
    assert_eq!(status, 401);
    let (status, body) = http_get(&addr, "/readyz", "none");
    assert_eq!((status, body.trim()), (200, "ready"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let page = loop {
        let (status, body) = http_get(&addr, "/", &token);
        assert_eq!(status, 200, "{body}");
        if !body.contains("ranking-pending") || std::time::Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        page.contains("Employees by evidence, 2026-11-20 to 2026-11-20 (3 events)"),
        "{page}"
    );
    assert!(page.contains("/employees/e1042"), "{page}");
    let (status, person) = http_get(&addr, "/api/employees/e1042", &token);
    assert_eq!(status, 200, "{person}");
    let person: Json = serde_json::from_str(&person).expect("json");
    assert_eq!(person["summary"]["connections"], 2, "{person}");
    let _ = child.kill();
    let _ = child.wait();
}

/// A person watching a long replay sees a progress line on the terminal (`script` gives the
/// run one); a pipe or a log gets none.
#[test]
fn progress_only_on_a_terminal() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no `script` (util-linux) to give the replay a terminal");
        return;
    }
    let fx = Fixture::new();
    let config = fx.directory_config();
    let export = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/replay/okta-system-log.json");
    let db = fx.dir.path().join("t.db");
    let cmd = format!(
        "{} replay {} -c {} --store {}",
        env!("CARGO_BIN_EXE_locgate"),
        export.display(),
        config,
        db.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("script");
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{seen}");
    assert!(seen.contains("3/3 sign-ins judged"), "{seen}");
    let piped = locgate_bin(&[
        "replay",
        export.to_str().unwrap(),
        "-c",
        config.as_str(),
        "--summary",
    ]);
    assert!(
        !piped.stderr.contains("sign-ins judged"),
        "{}",
        piped.stderr
    );
}
