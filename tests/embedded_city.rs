//! The embedded city database (issue 13, point 3): with no data configured, locgate places a US
//! address in its state and metro area, so the declared-home checks fire out of the box.
//!
//! Addresses are taken from the data (DB-IP City Lite via `data/city.mmdb`): `24.19.0.1` is
//! Comcast in the Seattle area (DB-IP: Burien, WA; merged into the Seattle metro point) and
//! `73.57.0.1` Comcast in the Miami area (North Miami, FL).

mod common;

use common::*;
use http::StatusCode;

const SEATTLE_CLIENT: &str = "24.19.0.1";
const MIAMI_CLIENT: &str = "73.57.0.1";
/// Downtown Seattle and Miami.
const SEATTLE: (f64, f64) = (47.6062, -122.3321);
const MIAMI: (f64, f64) = (25.7617, -80.1918);

/// Great-circle distance in km (written out here so the test does not trust the crate's own).
fn km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, la2) = (a.0.to_radians(), b.0.to_radians());
    let (dla, dlo) = ((b.0 - a.0).to_radians(), (b.1 - a.1).to_radians());
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().asin()
}

fn point(e: &serde_json::Value) -> (f64, f64) {
    let loc = &e["source"]["geo"]["location"];
    (
        loc["lat"]
            .as_f64()
            .unwrap_or_else(|| panic!("no latitude: {e}")),
        loc["lon"]
            .as_f64()
            .unwrap_or_else(|| panic!("no longitude: {e}")),
    )
}

#[test]
fn check_with_no_configuration_places_us_addresses_in_their_state_and_metro() {
    let out = locgate_bin(&["check", "--json", SEATTLE_CLIENT, MIAMI_CLIENT]);
    assert!(out.status.success(), "{}", out.stderr);
    let events = out.json_lines();
    assert_eq!(events.len(), 2, "{}", out.stdout);

    for (e, region, metro) in [
        (&events[0], "Washington", SEATTLE),
        (&events[1], "Florida", MIAMI),
    ] {
        assert_eq!(e["source"]["geo"]["country_iso_code"], "US", "{e}");
        assert_eq!(e["source"]["geo"]["region_name"], region, "{e}");
        assert!(e["source"]["geo"]["city_name"].is_string(), "{e}");
        let d = km(point(e), metro);
        assert!(d < 50.0, "{d:.0} km from the metro: {e}");
        assert_eq!(e["locgate"]["location_precision"], "database", "{e}");
        let first = &e["locgate"]["data"][0];
        assert_eq!(first["source"], "embedded:city.mmdb", "{e}");
    }
    assert_eq!(events[0]["source"]["geo"]["city_name"], "Seattle");

    // The text form names the city and the region.
    let out = locgate_bin(&["check", SEATTLE_CLIENT]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout.contains("Seattle, US, region Washington"),
        "{}",
        out.stdout
    );
}

/// A directory of one employee who declared Seattle, and a config naming only it: no `[data]`,
/// so the embedded databases answer.
fn seattle_employee() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("employees.toml"),
        "[[employee]]\nid = \"e5001\"\naliases = [\"erin\"]\ncountry = \"US\"\nregion = \"Washington\"\n\
         city = \"Seattle\"\nlat = 47.6062\nlon = -122.3321\nradius_km = 100\n",
    )
    .expect("write employees");
    let cfg = dir.path().join("locgate.toml");
    std::fs::write(&cfg, employees_section("employees.toml")).expect("write config");
    let cfg = cfg.to_str().expect("utf-8 path").to_string();
    (dir, cfg)
}

#[test]
fn a_seattle_employee_in_miami_is_outside_the_home_radius_on_the_embedded_data_alone() {
    let (_dir, cfg) = seattle_employee();
    let check = |ip: &str| {
        let out = locgate_bin(&[
            "check",
            "-c",
            &cfg,
            "--json",
            "--mode",
            "enforce",
            "--employee",
            "erin",
            ip,
        ]);
        assert!(out.status.success(), "{}", out.stderr);
        let mut events = out.json_lines();
        assert_eq!(events.len(), 1, "{}", out.stdout);
        events.remove(0)
    };

    let away = check(MIAMI_CLIENT);
    assert_eq!(away["user"]["id"], "e5001", "{away}");
    assert_eq!(
        reasons(&away),
        ["outside_home_radius", "region_mismatch"],
        "{away}"
    );
    // One day away inside the home country is a trip: noted; the pattern is judged below.
    assert_eq!(away["event"]["action"], "note", "{away}");
    let message = away["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("km from declared home Seattle, US (radius 100 km, location accurate to")
            && message
                .contains("observed region Florida, US, not the declared home region Washington"),
        "{message}"
    );

    let home = check(SEATTLE_CLIENT);
    assert_eq!(home["event"]["action"], "allow", "{home}");
    assert!(reasons(&home).is_empty(), "{home}");
}

#[test]
fn a_seattle_employee_who_always_works_from_miami_is_flagged_on_the_embedded_data_alone() {
    let (dir, cfg) = seattle_employee();
    // The SSO log of ten working days, every one from Miami.
    let mut log = String::from("time,ip,user\n");
    for day in 1..=10 {
        log.push_str(&format!("2026-11-{day:02}T15:00:00Z,{MIAMI_CLIENT},erin\n"));
    }
    let file = dir.path().join("signins.csv");
    std::fs::write(&file, log).expect("write sign-ins");
    let out = locgate_bin(&["replay", "-c", &cfg, file.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}", out.stderr);
    let events = out.json_lines();
    assert_eq!(events.len(), 10, "{}", out.stdout);
    // Six days are trips (notes); from the seventh placed day, fewer than half at home: flagged.
    for e in &events[..6] {
        assert_eq!(e["event"]["action"], "note", "{e}");
    }
    for e in &events[6..] {
        assert_eq!(e["event"]["action"], "flag", "{e}");
        let r = reasons(e);
        assert!(r.iter().any(|r| r == "residence_mismatch"), "{r:?}: {e}");
        assert!(r.iter().any(|r| r == "outside_home_radius"), "{r:?}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_whoami_page_names_the_city_and_credits_db_ip() {
    // The embedded default config as `locgate run` uses it, on a free port.
    let text = locgate::config::DEFAULT_CONFIG.replace("127.0.0.1:8080", "127.0.0.1:0");
    assert_ne!(text, locgate::config::DEFAULT_CONFIG, "default bind moved");
    let dir = tempfile::tempdir().expect("tempdir");
    let events = dir.path().join("events.jsonl");
    let text = text.replace("jsonl = \"-\"", &format!("jsonl = {}", toml_str(&events)));
    let config = locgate::config::Config::parse(&text, "default.toml", std::path::Path::new("."))
        .expect("default config parses");
    let running = within("server start", locgate::serve::start(config))
        .await
        .expect("server starts");
    let proxy = running.addrs[0].1;

    let (parts, body) = get(
        "127.0.0.1",
        proxy,
        "/",
        &[("x-forwarded-for", SEATTLE_CLIENT)],
    )
    .await;
    assert_eq!(parts.status, StatusCode::OK);
    let page = String::from_utf8_lossy(&body);
    assert!(page.contains("Seattle, US, region Washington"), "{page}");
    assert!(
        page.contains("<a href=\"https://db-ip.com\">IP Geolocation by DB-IP</a>"),
        "{page}"
    );
    assert!(page.contains("embedded:city.mmdb"), "{page}");
}

#[test]
fn the_embedded_city_data_never_contradicts_the_operators_country_database() {
    // The operator's country database says 24.19.0.0/16 is in Germany; DB-IP says Seattle.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = mmdb_writer::Writer::builder("test-Country").build();
    w.insert_value(
        "24.19.0.0/16"
            .parse::<mmdb_writer::ipnet::IpNet>()
            .expect("network"),
        mmdb_writer::Value::map([(
            "country",
            mmdb_writer::Value::map([("iso_code", mmdb_writer::Value::from("DE"))]),
        )]),
    )
    .expect("insert");
    let db = dir.path().join("country.mmdb");
    std::fs::write(&db, w.to_bytes().expect("country db")).expect("write db");
    let cfg = dir.path().join("locgate.toml");
    std::fs::write(&cfg, format!("[data]\ncountry_db = {}\n", toml_str(&db))).expect("config");

    let out = locgate_bin(&[
        "check",
        "--json",
        "-c",
        cfg.to_str().expect("utf-8 path"),
        SEATTLE_CLIENT,
        MIAMI_CLIENT,
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let events = out.json_lines();
    let de = &events[0]["source"]["geo"];
    assert_eq!(de["country_iso_code"], "DE", "{de}");
    assert!(
        de["city_name"].is_null() && de["region_name"].is_null(),
        "{de}"
    );
    assert_eq!(events[0]["locgate"]["location_precision"], "country");
    // Where the operator's file is silent, the embedded city data still answers.
    assert_eq!(events[1]["source"]["geo"]["region_name"], "Florida");
}
