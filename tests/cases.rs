//! Issue 18, point 3, on one instance's SQLite store: the sweep groups a laptop farm (several
//! verified employees on one home line) and a flagged employee into cases; changes are recorded
//! with who and from where in a trail the store itself keeps append-only; a decided case stays
//! decided; the trail exports; a case's events export as CSV; the pages show it.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use locgate::config::Config;
use serde_json::Value as Json;

const TOKEN: &str = "cases-test-token-0123456789abcdef";

/// The Austin team's directory, a listener whose loopback identity proxy names the user, the
/// store and the console.
fn config(fx: &Fixture) -> Config {
    fx.write("team.toml", &austin_team());
    let text = format!(
        "{}sqlite = {}\ninstance = \"gw-solo\"\n\n[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\n\
         [employees]\nfile = \"team.toml\"\n",
        fx.config_text(&listener(
            "sso",
            "builtin:whoami",
            "mode = \"enforce\"\ntrusted_proxies = [\"127.0.0.1/32\"]\nidentity_proxies = [\"127.0.0.1/32\"]\n\
             identity = [ { header = \"X-Remote-User\" }, { basic = true } ]",
        )),
        toml_str(&fx.dir.path().join("events.db")),
    );
    Config::parse(&text, "cases.toml", fx.dir.path())
        .unwrap_or_else(|e| panic!("config does not parse: {e}\n{text}"))
}

async fn visit(proxy: SocketAddr, client: &str, user: &str) -> u16 {
    let (parts, _) = get(
        LOCAL,
        proxy,
        "/login",
        &[("x-forwarded-for", client), ("x-remote-user", user)],
    )
    .await;
    parts.status.as_u16()
}

async fn admin(addr: SocketAddr, method: &str, target: &str, body: Option<&str>) -> (u16, String) {
    let mut b = request(method, target)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("accept", "text/html, application/json");
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    let req = b
        .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
        .expect("request");
    let (parts, bytes) = read_body(send(LOCAL, addr, req).await).await;
    (
        parts.status.as_u16(),
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

async fn api(addr: SocketAddr, target: &str) -> Json {
    let (status, body) = admin(addr, "GET", target, None).await;
    assert_eq!(status, 200, "{target}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{target}: {e}: {body}"))
}

/// The case of `kind` about `subject` once the sweep has opened it.
async fn case_of(adm: SocketAddr, kind: &str, subject: &str) -> Json {
    eventually(
        &format!("a {kind} case for {subject}"),
        Duration::from_secs(20),
        || async {
            let cases = api(adm, "/api/cases?state=open,investigating").await;
            cases
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .find(|c| c["kind"] == kind && c["subject"] == subject)
                        .cloned()
                })
                .ok_or_else(|| cases.to_string())
        },
    )
    .await
}

fn names(v: &Json) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_group_a_laptop_farm_and_a_flagged_employee_with_an_append_only_trail() {
    let fx = Fixture::new();
    let running = within("start", locgate::serve::start(config(&fx)))
        .await
        .expect("start");
    let proxy = running.addr("sso").expect("proxy");
    let adm = running.admin_addr.expect("admin");

    // Three of the team on one Austin home line (each allowed on its own), two names outside
    // the directory on the same line, dan's name only typed in there (Basic), and dan himself
    // from Pyongyang.
    for who in ["ann", "bob", "cat"] {
        visit(proxy, US_CLIENT, who).await;
    }
    for who in ["mallory", "trudy"] {
        visit(proxy, US_CLIENT, who).await;
    }
    let basic = basic_auth("dan", "guess");
    let (parts, _) = get(
        LOCAL,
        proxy,
        "/login",
        &[("x-forwarded-for", US_CLIENT), ("authorization", &basic)],
    )
    .await;
    assert_eq!(parts.status, 200);
    assert_eq!(visit(proxy, KP_CLIENT, "dan").await, 403);

    // The laptop farm: one case for the line, with exactly the verified employees in it.
    let farm = case_of(adm, "egress", US_CLIENT).await;
    assert_eq!(farm["state"], "open");
    assert_eq!(
        names(&farm["members"]),
        BTreeSet::from(["ann".into(), "bob".into(), "cat".into()]),
        "names outside the directory, or only typed in, do not join a laptop-farm case: {farm}"
    );
    assert!(names(&farm["reasons"]).contains("shared_egress"));
    let farm_id = farm["id"].as_i64().expect("id");
    // dan: an employee case with the evidence's codes.
    let dan = case_of(adm, "employee", "dan").await;
    assert!(names(&dan["reasons"]).contains("country_mismatch"), "{dan}");
    let dan_id = dan["id"].as_i64().expect("id");

    // One case's view: the case, its events (the three members' sign-ins), its trail.
    let view = api(adm, &format!("/api/cases/{farm_id}")).await;
    let users: BTreeSet<String> = view["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["employee"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        users,
        BTreeSet::from([
            "ann".into(),
            "bob".into(),
            "cat".into(),
            "dan".into(),
            "mallory".into(),
            "trudy".into()
        ]),
        "the line's events, claimed names included (they are evidence too)"
    );
    let trail = view["trail"].as_array().expect("trail");
    assert_eq!(trail[0]["action"], "opened");
    assert_eq!(trail[0]["actor"], "locgate");
    assert_eq!(trail[0]["source"], "sweep on gw-solo");

    // Working it: state, owner and a note, each recorded with who and from where.
    let (status, body) = admin(
        adm,
        "POST",
        &format!("/api/cases/{farm_id}"),
        Some(r#"{"state":"investigating","owner":"sam","note":"three badges, one home line"}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let changed: Json = serde_json::from_str(&body).expect("json");
    assert_eq!(changed["state"], "investigating");
    assert_eq!(changed["owner"], "sam");
    let trail = api(adm, &format!("/api/cases/{farm_id}")).await["trail"].clone();
    let by_action = |a: &str| -> Json {
        trail
            .as_array()
            .and_then(|t| t.iter().find(|e| e["action"] == a).cloned())
            .unwrap_or(Json::Null)
    };
    assert_eq!(by_action("state")["detail"]["to"], "investigating");
    assert_eq!(by_action("owner")["detail"]["to"], "sam");
    assert_eq!(
        by_action("note")["detail"]["text"],
        "three badges, one home line"
    );
    for a in ["state", "owner", "note"] {
        assert_eq!(by_action(a)["actor"], "admin token (API)");
        assert_eq!(by_action(a)["source"], "127.0.0.1 via gw-solo");
    }

    // Acknowledging one of dan's events is in his case's trail, under the reviewer's name.
    let dan_event = api(adm, &format!("/api/cases/{dan_id}")).await["events"][0]["id"]
        .as_str()
        .expect("an event of dan's case")
        .to_owned();
    let (status, body) = admin(
        adm,
        "POST",
        &format!("/api/events/{dan_event}/ack"),
        Some(r#"{"reviewer":"sam","note":"called him: on a trip"}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let trail = api(adm, &format!("/api/cases/{dan_id}")).await["trail"].clone();
    let ack = trail
        .as_array()
        .and_then(|t| t.iter().find(|e| e["action"] == "ack").cloned())
        .expect("the acknowledgement is in the case's trail");
    assert_eq!(ack["actor"], "sam");
    assert_eq!(ack["source"], "127.0.0.1 via gw-solo");
    assert_eq!(ack["detail"]["event"], dan_event.as_str());
    assert_eq!(ack["detail"]["note"], "called him: on a trip");

    // Bad changes are refused with a reason and change nothing.
    for (body, want) in [
        (r#"{"state":"closed"}"#, 400),
        (r#"{"state":"benign","reviewer":"someone else"}"#, 400),
        (r#"{}"#, 400),
        ("not json", 400),
    ] {
        let (status, text) = admin(adm, "POST", &format!("/api/cases/{farm_id}"), Some(body)).await;
        assert_eq!(status, want, "{body}: {text}");
    }
    assert_eq!(admin(adm, "GET", "/api/cases/999", None).await.0, 404);
    assert_eq!(admin(adm, "GET", "/api/cases/x", None).await.0, 400);
    assert_eq!(
        admin(adm, "GET", "/api/cases?state=shut", None).await.0,
        400
    );
    let (status, _) = {
        let req = request("GET", "/api/cases")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let (parts, bytes) = read_body(send(LOCAL, adm, req).await).await;
        (parts.status.as_u16(), bytes)
    };
    assert_eq!(status, 401, "no token, no cases");

    // A decided case stays decided: the sweep re-reads recent events, and opens no new case
    // for dan until he signs in from Pyongyang again.
    let (status, body) = admin(
        adm,
        "POST",
        &format!("/api/cases/{dan_id}"),
        Some(r#"{"state":"benign","note":"sanctioned trip"}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_secs(7)).await;
    let open = api(adm, "/api/cases?state=open,investigating").await;
    assert!(
        !open
            .as_array()
            .expect("cases")
            .iter()
            .any(|c| c["subject"] == "dan"),
        "{open}"
    );
    assert_eq!(visit(proxy, KP_CLIENT, "dan").await, 403);
    let again = case_of(adm, "employee", "dan").await;
    assert_ne!(again["id"].as_i64(), Some(dan_id), "new evidence, new case");
    // The old case cannot reopen while the new one is active.
    let (status, body) = admin(
        adm,
        "POST",
        &format!("/api/cases/{dan_id}"),
        Some(r#"{"state":"open"}"#),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("already open"), "{body}");

    // The trail exports from a position, oldest first, for a SIEM or an archive.
    let all = api(adm, "/api/cases/trail?after=0").await;
    let seqs: Vec<i64> = all
        .as_array()
        .expect("trail")
        .iter()
        .filter_map(|e| e["seq"].as_i64())
        .collect();
    assert!(seqs.len() >= 8, "{all}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    let last = seqs.last().copied().unwrap_or(0);
    let none = api(adm, &format!("/api/cases/trail?after={last}")).await;
    assert_eq!(none.as_array().map(Vec::len), Some(0));

    // The trail is append-only in the store itself.
    let conn = rusqlite::Connection::open(fx.dir.path().join("events.db")).expect("open");
    for sql in [
        "UPDATE case_trail SET actor = 'nobody'",
        "DELETE FROM case_trail",
    ] {
        let err = conn.execute(sql, []).expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }

    // CSV export of the case's events, formulas defused.
    let (status, csv) = admin(
        adm,
        "GET",
        &format!("/api/cases/{farm_id}/events.csv"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .expect("header")
            .starts_with("\"time\",\"action\",\"employee\"")
    );
    assert_eq!(lines.count(), 6, "{csv}");

    // The filtered queue as CSV.
    let (status, csv) = admin(adm, "GET", "/api/events.csv?action=block", None).await;
    assert_eq!(status, 200);
    assert_eq!(csv.lines().count(), 3, "header and dan's two blocks: {csv}");
    assert!(csv.contains("\"dan\""));

    // The evidence report: the homes, the map, each event's sentences, the trail.
    let (status, report) = admin(adm, "GET", &format!("/cases/{farm_id}/report"), None).await;
    assert_eq!(status, 200);
    for want in [
        "Evidence report: case #",
        "Austin, US",
        "<svg",
        "shared_egress",
        "three badges, one home line",
        "admin token (API)",
    ] {
        assert!(report.contains(want), "{want} in the report");
    }
    assert!(!report.contains("<script"), "the report runs no script");

    // A benign decision that becomes policy: cat's own case (the live shared-egress flag) is
    // decided benign with her home line allowed, written into the directory file.
    let cat = case_of(adm, "employee", "cat").await;
    let cat_id = cat["id"].as_i64().expect("id");
    let team = fx.dir.path().join("team.toml");
    let before = std::fs::read_to_string(&team).expect("team");
    let (status, body) = admin(
        adm,
        "POST",
        &format!("/api/cases/{cat_id}"),
        Some(r#"{"state":"benign","travel":{"from":"soon","to":"2027-01-03","countries":["MX"]}}"#),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        std::fs::read_to_string(&team).expect("team"),
        before,
        "left as it was"
    );
    let (status, body) = admin(
        adm,
        "POST",
        &format!("/api/cases/{cat_id}"),
        Some(r#"{"allow_network":"127.1.0.0/16"}"#),
    )
    .await;
    assert_eq!(
        status, 400,
        "a policy change goes with the benign decision: {body}"
    );
    let (status, body) = admin(
        adm,
        "POST",
        &format!("/api/cases/{cat_id}"),
        Some(r#"{"state":"benign","allow_network":"127.1.0.0/16","note":"her own fibre line"}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let dir = locgate::employees::Directory::parse_toml(
        &std::fs::read_to_string(&team).expect("team"),
        "team.toml",
        150.0,
    )
    .expect("the changed directory loads");
    let cat_now = dir.get("cat").expect("cat");
    assert!(cat_now.network_allowed(US_CLIENT.parse().expect("ip")));
    assert!(
        !dir.get("bob")
            .expect("bob")
            .network_allowed(US_CLIENT.parse().expect("ip"))
    );
    let trail = api(adm, &format!("/api/cases/{cat_id}")).await["trail"].clone();
    let change = trail
        .as_array()
        .and_then(|t| t.iter().find(|e| e["action"] == "policy_change").cloned())
        .expect("the policy change is in the trail");
    assert_eq!(change["detail"]["added"]["allow_network"], "127.1.0.0/16");
    assert_eq!(change["detail"]["employees"], serde_json::json!(["cat"]));
    assert!(
        change["detail"]["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("team.toml"))
    );

    // The pages.
    let (status, page) = admin(adm, "GET", "/cases", None).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!("href=\"/cases/{farm_id}\"")),
        "{page}"
    );
    let (status, page) = admin(adm, "GET", &format!("/cases/{farm_id}"), None).await;
    assert_eq!(status, 200);
    for want in [
        "Trail",
        "sam",
        "three badges, one home line",
        "shared egress",
    ] {
        assert!(page.contains(want), "{want} in the case page");
    }
}
