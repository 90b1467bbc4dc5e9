//! History signals end to end: `locgate replay` files with known answers for every signal, and
//! the live proxy remembering one request for the next.

mod common;

use common::*;
use serde_json::Value as Json;

/// Replays `lines` (JSON lines) and returns one event per input line, in time order.
fn replay(lines: &[String]) -> Vec<Json> {
    let fx = Fixture::new();
    fx.write("employees.toml", &austin_team());
    let config = fx.write(
        "locgate.toml",
        &fx.config_text_with("", &employees_section("employees.toml")),
    );
    let file = fx.write("signins.jsonl", &lines.join("\n"));
    let out = locgate_bin(&[
        "replay",
        file.to_str().unwrap(),
        "-c",
        config.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let events = out.json_lines();
    assert_eq!(events.len(), lines.len(), "{}", out.stdout);
    events
}

fn line(time: &str, user: &str, ip: &str) -> String {
    format!(r#"{{"time":"{time}","ip":"{ip}","user":"{user}"}}"#)
}

fn has(e: &Json, code: &str) -> bool {
    reasons(e).iter().any(|r| r == code)
}

#[test]
fn impossible_travel_is_speed_over_distance_and_a_day_later_is_fine() {
    let events = replay(&[
        line("2026-11-02T10:00:00Z", "ann", US_CLIENT),
        line("2026-11-02T12:00:00Z", "ann", DE_CLIENT),
        line("2026-11-03T12:00:00Z", "ann", US_CLIENT),
    ]);
    assert!(!has(&events[0], "impossible_travel"));
    let e = &events[1];
    assert!(has(e, "impossible_travel"), "{e:#}");
    assert_eq!(e["event"]["action"], "flag");
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains("from the previous sighting 2h00 earlier")
            && msg.contains("km/h, above 900 km/h"),
        "{msg}"
    );
    // Berlin to Austin in 24 hours is a flight, not an impossibility.
    assert!(!has(&events[2], "impossible_travel"), "{:#}", events[2]);
    assert_eq!(events[2]["event"]["action"], "allow");
}

#[test]
fn shared_egress_names_the_cluster_and_expires_after_the_window() {
    const FARM: &str = "127.1.0.77";
    let events = replay(&[
        line("2026-11-02T15:00:00Z", "bob", FARM),
        line("2026-11-03T15:00:00Z", "cat", FARM),
        line("2026-11-04T15:00:00Z", "dan", FARM),
        line("2026-11-05T15:00:00Z", "bob", FARM),
        // Four weeks later only cat is back: the others are outside the 14-day window.
        line("2026-12-01T15:00:00Z", "cat", FARM),
    ]);
    assert!(!has(&events[0], "shared_egress") && !has(&events[1], "shared_egress"));
    let e = &events[2];
    assert!(has(e, "shared_egress"), "{e:#}");
    assert_eq!(e["event"]["action"], "flag");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("3 employees used this address within 14 days: dan and bob, cat"),
        "{e:#}"
    );
    // Every member of the cluster is flagged when seen again.
    assert!(
        events[3]["message"]
            .as_str()
            .unwrap()
            .contains("bob and cat, dan"),
        "{:#}",
        events[3]
    );
    assert!(!has(&events[4], "shared_egress"), "{:#}", events[4]);
}

/// One sign-in a day at 15:00 UTC (09:00 in Austin) from `ips[i]` on day `i + 1` of November.
fn daily(user: &str, ips: &[&str]) -> Vec<String> {
    ips.iter()
        .enumerate()
        .map(|(i, ip)| line(&format!("2026-11-{:02}T15:00:00Z", i + 1), user, ip))
        .collect()
}

#[test]
fn always_working_from_another_state_is_a_residence_mismatch() {
    let mut ips = vec![US_CLIENT; 2];
    ips.extend(vec![SEATTLE_CLIENT; 12]);
    let events = replay(&daily("dan", &ips));
    // A single domestic day outside the radius is only a note...
    assert_eq!(events[2]["event"]["action"], "note", "{:#}", events[2]);
    // ...until seven placed days show fewer than half at home.
    for e in &events[..6] {
        assert!(!has(e, "residence_mismatch"), "{e:#}");
    }
    for e in &events[6..] {
        assert!(has(e, "residence_mismatch"), "{e:#}");
        assert_eq!(e["event"]["action"], "flag");
    }
    let last = events[13]["message"].as_str().unwrap();
    assert!(
        last.contains("on 2 of the last 14 placed days with sign-ins, since ")
            && last.contains("(14%, threshold 50%)"),
        "{last}"
    );
}

#[test]
fn a_weeks_business_trip_is_not() {
    let mut ips = vec![US_CLIENT; 7];
    ips.extend(vec![SEATTLE_CLIENT; 7]);
    let events = replay(&daily("bob", &ips));
    for e in &events {
        assert!(!has(e, "residence_mismatch"), "{e:#}");
    }
    assert_eq!(
        events[13]["event"]["action"], "note",
        "the trip itself is noted"
    );
}

#[test]
fn night_work_in_the_declared_time_zone_is_a_pattern_not_one_late_evening() {
    // 08:00 UTC is 02:00 in Chicago (CST).
    let nights: Vec<String> = (1..=6)
        .map(|d| line(&format!("2026-11-{d:02}T08:00:00Z"), "ann", US_CLIENT))
        .collect();
    let events = replay(&nights);
    for e in &events[..4] {
        assert!(!has(e, "off_hours"), "{e:#}");
    }
    for e in &events[4..] {
        assert!(has(e, "off_hours"), "{e:#}");
        assert_eq!(e["event"]["action"], "note");
        assert!(
            e["message"].as_str().unwrap().contains("America/Chicago"),
            "{e:#}"
        );
    }
    // bob declared no time zone: nights are not judged.
    let events = replay(
        &(1..=6)
            .map(|d| line(&format!("2026-11-{d:02}T08:00:00Z"), "bob", US_CLIENT))
            .collect::<Vec<_>>(),
    );
    assert!(events.iter().all(|e| !has(e, "off_hours")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_proxy_remembers_verified_sightings_only() {
    let fx = Fixture::new();
    fx.write("employees.toml", &austin_team());
    let up = Upstream::start().await;
    let running = fx
        .start_with(
            &listener(
                "sso",
                &up.url(),
                "mode = \"enforce\"\ntrusted_proxies = [\"127.0.0.1/32\"]\nidentity_proxies = [\"127.0.0.1/32\"]\n\
                 identity = [{ header = \"X-Remote-User\" }, { basic = true }]",
            ),
            &employees_section("employees.toml"),
        )
        .await;
    let proxy = running.addr("sso").unwrap();
    // A trusted inner proxy vouches for ann: first from Austin, seconds later from Berlin.
    for client in [US_CLIENT, DE_CLIENT] {
        let (parts, _) = get(
            LOCAL,
            proxy,
            "/",
            &[("x-forwarded-for", client), ("x-remote-user", "ann")],
        )
        .await;
        assert_eq!(parts.status, UPSTREAM_STATUS);
    }
    // Someone types "bob" into a Basic prompt from Berlin (unverified: judged, not remembered)...
    let basic = format!("Basic {}", base64_user("bob"));
    get(DE_CLIENT, proxy, "/", &[("authorization", &basic)]).await;
    // ...so the real bob, vouched for from Austin, is not accused of impossible travel.
    get(
        LOCAL,
        proxy,
        "/",
        &[("x-forwarded-for", US_CLIENT), ("x-remote-user", "bob")],
    )
    .await;

    let events = fx.events(&running).await;
    let ann: Vec<&Json> = events.iter().filter(|e| e["user"]["id"] == "ann").collect();
    assert_eq!(ann.len(), 2, "{events:#?}");
    assert!(!has(ann[0], "impossible_travel"));
    assert!(has(ann[1], "impossible_travel"), "{:#}", ann[1]);
    let bob_verified: Vec<&Json> = events
        .iter()
        .filter(|e| e["user"]["id"] == "bob" && e["locgate"]["identity"]["verified"] == true)
        .collect();
    // An allow may be throttled away; if it was written, it carries no travel accusation.
    assert!(
        bob_verified.iter().all(|e| !has(e, "impossible_travel")),
        "{bob_verified:#?}"
    );
}

fn base64_user(user: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:secret"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_spells_out_the_evidence_behind_history_and_wire_signals() {
    let fx = Fixture::new();
    fx.write("employees.toml", &austin_team());
    let up = Upstream::start().await;
    let text = format!(
        "{}sqlite = \"events.db\"\n",
        fx.config_text_with(
            &listener(
                "sso",
                &up.url(),
                "mode = \"monitor\"\ntrusted_proxies = [\"127.0.0.1/32\"]\nidentity_proxies = [\"127.0.0.1/32\"]\nidentity = [{ header = \"X-Remote-User\" }]",
            ),
            &format!("{}[network]\nlocation = {{ lat = 30.2672, lon = -97.7431 }}\n", employees_section("employees.toml")),
        )
    );
    let config = locgate::config::Config::parse(&text, "test.toml", fx.dir.path()).expect("config");
    let running = within("start", locgate::serve::start(config))
        .await
        .expect("start");
    let proxy = running.addr("sso").unwrap();
    for client in [US_CLIENT, DE_CLIENT] {
        get(
            LOCAL,
            proxy,
            "/",
            &[("x-forwarded-for", client), ("x-remote-user", "ann")],
        )
        .await;
    }
    running.shutdown().await;

    let db = fx.dir.path().join("events.db");
    let out = locgate_bin(&["report", "--db", db.to_str().unwrap()]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("\nann:\n"), "{}", out.stdout);
    assert!(
        out.stdout.contains("  impossible_travel x1: "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("km/h, above 900 km/h"),
        "{}",
        out.stdout
    );
    let json = locgate_bin(&["report", "--db", db.to_str().unwrap(), "--json"]);
    let v: Json = serde_json::from_str(&json.stdout).expect("json report");
    let ann = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["employee"] == "ann")
        .expect("ann row");
    assert_eq!(ann["evidence"][0]["code"], "impossible_travel", "{ann:#}");
}
