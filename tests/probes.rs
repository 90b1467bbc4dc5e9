//! Never silently blind, and probes are not suspects: the balancer's health checks are answered
//! by locgate without filling the review queue; internal clients get their own reason, noted and
//! throttled; a mistyped data path stops the gateway; rules the data cannot serve are named.

mod common;

use common::*;

#[tokio::test]
async fn health_checks_are_answered_by_locgate_with_no_event_and_nothing_forwarded() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let running = fx
        .start(&listener("app", &up.url(), "mode = \"enforce\""))
        .await;
    let proxy = running.addr("app").unwrap();
    for _ in 0..5 {
        let (parts, body) = get(LOCAL, proxy, "/locgate/health", &[]).await;
        assert_eq!(parts.status, 200);
        assert_eq!(&body[..], b"ok\n");
    }
    // From anywhere, even a sanctioned country: the answer says nothing about the upstream.
    let (parts, _) = get(KP_CLIENT, proxy, "/locgate/health", &[]).await;
    assert_eq!(parts.status, 200);
    // Only the exact path: anything else goes through the spine.
    let (parts, _) = get(KP_CLIENT, proxy, "/locgate/health?x", &[]).await;
    assert_eq!(parts.status, 403);
    let events = fx.events(&running).await;
    running.shutdown().await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["url"]["path"], "/locgate/health");
    assert!(up.seen().is_empty(), "nothing reached the upstream");
}

#[tokio::test]
async fn the_health_path_is_configurable_and_can_be_turned_off() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let running = fx
        .start(&format!(
            "{}{}",
            listener("a", &up.url(), "health_path = \"/healthz\""),
            listener("b", &up.url(), "health_path = \"\"")
        ))
        .await;
    let (parts, body) = get(US_CLIENT, running.addr("a").unwrap(), "/healthz", &[]).await;
    assert_eq!((parts.status.as_u16(), &body[..]), (200, &b"ok\n"[..]));
    let (parts, _) = get(
        US_CLIENT,
        running.addr("b").unwrap(),
        "/locgate/health",
        &[],
    )
    .await;
    assert_eq!(parts.status, UPSTREAM_STATUS, "forwarded like any request");
    running.shutdown().await;
    assert_eq!(up.seen().len(), 1);

    let fx = Fixture::new();
    let text = fx.config_text(&listener(
        "a",
        "http://127.0.0.1:9",
        "health_path = \"x y\"",
    ));
    let err = locgate::config::Config::parse(&text, "t.toml", fx.dir.path()).unwrap_err();
    assert_eq!(err.field, "listener[0].health_path", "{err}");
}

#[tokio::test]
async fn an_internal_client_is_noted_as_internal_not_flagged_unknown_and_throttled() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let running = fx
        .start(&listener("app", &up.url(), "mode = \"enforce\""))
        .await;
    let proxy = running.addr("app").unwrap();
    for _ in 0..5 {
        let (parts, _) = get(LOCAL, proxy, "/status", &[]).await;
        assert_eq!(parts.status, UPSTREAM_STATUS);
    }
    let events = fx.events(&running).await;
    running.shutdown().await;
    let mine = events_from(&events, LOCAL);
    assert_eq!(mine.len(), 1, "five probes, one line: {events:#?}");
    assert_eq!(mine[0]["event"]["action"], "note");
    assert_eq!(reasons(mine[0]), ["internal_address"]);
}

#[test]
fn a_missing_data_directory_or_file_stops_validate_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("locgate.toml");
    std::fs::write(&config, "[data]\n\ndir = \"/nonexistent/GeoIP\"\n").unwrap();
    let out = locgate_bin(&["validate", "-c", config.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", out.stdout);
    assert!(
        out.stderr.contains("locgate.toml:3: data.dir:"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("/nonexistent/GeoIP"), "{}", out.stderr);

    std::fs::write(
        &config,
        "[data]\ncity_db = [\"here.mmdb\", \"gone.mmdb\"]\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("here.mmdb"), common::city_db_bytes()).unwrap();
    let out = locgate_bin(&["validate", "-c", config.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", out.stdout);
    assert!(out.stderr.contains("data.city_db"), "{}", out.stderr);
    assert!(out.stderr.contains("gone.mmdb"), "{}", out.stderr);
    assert!(!out.stderr.contains("here.mmdb"), "{}", out.stderr);

    // `run` refuses it the same way (before binding anything).
    std::fs::write(
        &config,
        format!(
            "{}[data]\ndir = \"/nonexistent/GeoIP\"\n",
            listener("l", "builtin:whoami", "")
        ),
    )
    .unwrap();
    let out = locgate_bin(&["run", "-c", config.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("data.dir"), "{}", out.stderr);

    // The exception: a directory `[update]` fills (a fresh host before its first update) is
    // valid while absent, and said so; the updater writes where the gateway reads, so a typo
    // cannot hide there. Once something else is in the way, it is an error again.
    let fresh = dir.path().join("not-yet");
    let text = format!(
        "[data]\ndir = {}\n[update]\npreset = \"free\"\n",
        common::toml_str(&fresh)
    );
    std::fs::write(&config, &text).unwrap();
    let out = locgate_bin(&["validate", "-c", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("does not exist yet: `locgate update` creates and fills it"),
        "{}",
        out.stderr
    );
    std::fs::write(&fresh, "a file, not a directory").unwrap();
    let out = locgate_bin(&["validate", "-c", config.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", out.stdout);
    assert!(out.stderr.contains("data.dir"), "{}", out.stderr);
}

#[test]
fn radius_rules_without_a_city_database_are_named_as_a_blind_spot() {
    let fx = Fixture::new();
    fx.write_standard_directory();
    // A country-only database: the employees' radius and region rules cannot be served.
    let mut w = mmdb_writer::Writer::builder("country-only")
        .reserved_networks(mmdb_writer::ReservedNetworks::Included)
        .build();
    w.insert_value(
        "127.1.0.0/16".parse::<mmdb_writer::ipnet::IpNet>().unwrap(),
        mmdb_writer::Value::map([("country_code", mmdb_writer::Value::from("US"))]),
    )
    .unwrap();
    std::fs::write(fx.dir.path().join("country.mmdb"), w.to_bytes().unwrap()).unwrap();
    let config = fx.write(
        "locgate.toml",
        &format!(
            "[data]\ncountry_db = \"country.mmdb\"\nembedded = false\n{}",
            employees_section("employees.toml")
        ),
    );
    let out = locgate_bin(&["validate", "-c", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("warning: radius checks need a city database"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("warning: region checks need a city database"),
        "{}",
        out.stderr
    );
    // With the fixture's city database there is nothing to say.
    let config = fx.write(
        "city.toml",
        &fx.config_text_with("", &employees_section("employees.toml")),
    );
    let out = locgate_bin(&["validate", "-c", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        !out.stderr.contains("need a city database"),
        "{}",
        out.stderr
    );
}
