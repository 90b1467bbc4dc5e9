//! The databases people bring, read right: MaxMind's own published test databases (every
//! GeoIP2 product layout, committed under `tests/data/maxmind/` with their MIT/Apache licence),
//! a slice of the ip-location-db DB-IP City Lite files rebuilt here in their exact byte layout
//! (32-bit float coordinates, IPv4 and IPv6 as two files), and hostile files that must be refused
//! with a reason, never a panic. Every check runs the real binary (`locgate check --json`) and
//! asserts what an operator reads in the event.

mod common;

use std::path::{Path, PathBuf};

use common::locgate_bin;
use mmdb_writer::{IpVersion, ReservedNetworks, Value, Writer, ipnet::IpNet};
use serde_json::Value as Json;

fn maxmind(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/maxmind")
        .join(name)
}

/// Writes a config naming `files` as `city_db` (with the embedded data after them) and runs
/// `locgate check --json` on `ips`: one event per address.
fn check(dir: &Path, files: &[PathBuf], ips: &[&str]) -> Vec<Json> {
    let list: Vec<String> = files
        .iter()
        .map(|f| toml::Value::String(f.display().to_string()).to_string())
        .collect();
    let config = dir.join("locgate.toml");
    std::fs::write(
        &config,
        format!("[data]\ncity_db = [{}]\n", list.join(", ")),
    )
    .unwrap();
    let mut args = vec!["check", "--json", "-c", config.to_str().unwrap()];
    args.extend_from_slice(ips);
    let out = locgate_bin(&args);
    assert!(out.judged(), "{}", out.stderr);
    let events = out.json_lines();
    assert_eq!(events.len(), ips.len(), "{}", out.stdout);
    events
}

fn close(a: &Json, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-3)
}

#[test]
fn maxmind_city_and_country_test_databases_place_their_addresses() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["GeoIP2-City-Test.mmdb", "GeoLite2-City-Test.mmdb"] {
        let e = check(
            dir.path(),
            &[maxmind(file)],
            &["81.2.69.142", "2001:218::1"],
        );
        let geo = &e[0]["source"]["geo"];
        assert_eq!(geo["city_name"], "London", "{file}: {geo}");
        assert_eq!(geo["region_name"], "England", "{file}: {geo}");
        assert_eq!(geo["country_iso_code"], "GB", "{file}: {geo}");
        assert!(close(&geo["location"]["lat"], 51.5142), "{file}: {geo}");
        assert!(close(&geo["location"]["lon"], -0.0931), "{file}: {geo}");
        assert_eq!(e[0]["locgate"]["accuracy_radius_km"], 10.0, "{file}");
        assert_eq!(e[0]["locgate"]["location_precision"], "database", "{file}");
        // An IPv6 network with coordinates but no city.
        let geo = &e[1]["source"]["geo"];
        assert_eq!(geo["country_iso_code"], "JP", "{file}: {geo}");
        assert!(close(&geo["location"]["lat"], 35.6854), "{file}: {geo}");
        assert_eq!(e[1]["locgate"]["accuracy_radius_km"], 100.0, "{file}");
    }
    for file in ["GeoIP2-Country-Test.mmdb", "GeoLite2-Country-Test.mmdb"] {
        let e = check(dir.path(), &[maxmind(file)], &["81.2.69.160"]);
        assert_eq!(e[0]["source"]["geo"]["country_iso_code"], "GB", "{file}");
        // The embedded city data behind it may add a British point, never another country's.
        assert_eq!(
            e[0]["locgate"]["data"][0]["type"],
            file.trim_end_matches("-Test.mmdb")
        );
    }
}

#[test]
fn maxmind_network_databases_give_asn_isp_and_connection_type() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["GeoLite2-ASN-Test.mmdb", "GeoIP2-ISP-Test.mmdb"] {
        let e = check(dir.path(), &[maxmind(file)], &["1.128.0.0"]);
        assert_eq!(e[0]["source"]["as"]["number"], 1221, "{file}: {}", e[0]);
        assert_eq!(
            e[0]["source"]["as"]["organization"]["name"], "Telstra Pty Ltd",
            "{file}"
        );
    }
    let e = check(
        dir.path(),
        &[maxmind("GeoIP2-Connection-Type-Test.mmdb")],
        &["1.0.1.0", "1.0.0.0"],
    );
    assert_eq!(e[0]["locgate"]["connection_type"], "cellular", "{}", e[0]);
    assert_eq!(e[1]["locgate"]["connection_type"], "cable_dsl", "{}", e[1]);
    // Enterprise: city, region, accuracy, ASN and connection type from `traits`, in one record.
    let e = check(
        dir.path(),
        &[maxmind("GeoIP2-Enterprise-Test.mmdb")],
        &["74.209.24.0"],
    );
    let geo = &e[0]["source"]["geo"];
    assert_eq!(geo["city_name"], "Chatham", "{geo}");
    assert_eq!(geo["region_name"], "New York", "{geo}");
    assert!(close(&geo["location"]["lat"], 42.3478), "{geo}");
    assert_eq!(e[0]["locgate"]["accuracy_radius_km"], 27.0);
    assert_eq!(e[0]["source"]["as"]["number"], 14671);
    assert_eq!(e[0]["locgate"]["connection_type"], "cable_dsl");
}

#[test]
fn maxmind_anonymizer_databases_flag_and_carry_provider_confidence_and_last_seen() {
    let dir = tempfile::tempdir().unwrap();
    let e = check(
        dir.path(),
        &[maxmind("GeoIP2-Anonymous-IP-Test.mmdb")],
        &["81.2.69.142", "71.160.223.1", "1.2.0.0"],
    );
    let flags = &e[0]["locgate"]["anonymizer"];
    for f in [
        "anonymous_vpn",
        "hosting_provider",
        "tor_exit",
        "public_proxy",
        "residential_proxy",
    ] {
        assert_eq!(flags[f], true, "{f}: {flags}");
    }
    assert_eq!(e[1]["locgate"]["anonymizer"]["hosting_provider"], true);
    assert_eq!(e[1]["locgate"]["anonymizer"]["anonymous_vpn"], false);
    assert_eq!(e[2]["locgate"]["anonymizer"]["anonymous_vpn"], true);

    // Anonymous Plus: the detail goes into the event and the reason's sentence.
    let e = check(
        dir.path(),
        &[maxmind("GeoIP-Anonymous-Plus-Test.mmdb")],
        &["1.2.0.1"],
    );
    let a = &e[0]["locgate"]["anonymizer"];
    assert_eq!(a["anonymous_vpn"], true, "{a}");
    assert_eq!(a["provider"], "foo", "{a}");
    assert_eq!(a["confidence"], 30, "{a}");
    assert_eq!(a["last_seen"], "2025-04-14", "{a}");
    assert_eq!(e[0]["event"]["reason"][0], "anonymous_vpn", "{}", e[0]);
    let message = e[0]["message"].as_str().unwrap();
    assert!(
        message.contains("foo, confidence 30, seen 2025-04-14"),
        "{message}"
    );

    // Residential Proxy: its records carry no flag; the database type says what they are.
    let e = check(
        dir.path(),
        &[maxmind("GeoIP-Residential-Proxy-Test.mmdb")],
        &["6.0.42.17"],
    );
    let a = &e[0]["locgate"]["anonymizer"];
    assert_eq!(a["residential_proxy"], true, "{a}");
    assert_eq!(a["provider"], "novada", "{a}");
    assert_eq!(a["confidence"], 95, "{a}");
}

#[test]
fn a_minimum_confidence_turns_a_weak_lone_anonymizer_flag_into_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let db = toml::Value::String(
        maxmind("GeoIP-Anonymous-Plus-Test.mmdb")
            .display()
            .to_string(),
    );
    let config = dir.path().join("locgate.toml");
    std::fs::write(
        &config,
        format!("[data]\nanonymous_db = {db}\n[policy]\nanonymizer_min_confidence = 50\n"),
    )
    .unwrap();
    // 1.2.0.1: confidence 30 (below); 1.2.0.2: confidence 99 (above).
    let out = locgate_bin(&[
        "check",
        "--json",
        "-c",
        config.to_str().unwrap(),
        "1.2.0.1",
        "1.2.0.2",
    ]);
    assert!(out.judged(), "{}", out.stderr);
    let e = out.json_lines();
    assert_eq!(e[0]["event"]["reason"][0], "anonymous_vpn", "{}", e[0]);
    assert_eq!(e[0]["event"]["action"], "note", "{}", e[0]);
    let message = e[0]["message"].as_str().unwrap();
    assert!(message.contains("below the policy minimum 50"), "{message}");
    assert_eq!(e[1]["event"]["reason"][0], "anonymous_vpn", "{}", e[1]);
    assert_eq!(e[1]["event"]["action"], "flag", "{}", e[1]);
}

/// The DB-IP City Lite slice, rebuilt with the original types: IPv4 and IPv6 as two files.
fn dbip_slice(dir: &Path) -> (PathBuf, PathBuf, Json) {
    let fixture: Json = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dbip-city-lite-slice.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut paths = Vec::new();
    for (key, version) in [("ipv4", IpVersion::V4), ("ipv6", IpVersion::V6)] {
        let mut w = Writer::builder(format!("city {key}"))
            .ip_version(version)
            .reserved_networks(ReservedNetworks::Included)
            .build();
        for entry in fixture[key].as_array().unwrap() {
            let rec = entry["record"].as_object().unwrap();
            let fields: Vec<(&str, Value)> = rec
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        // 32-bit floats, as in the published file (MaxMind type 15).
                        Json::Number(n) => Value::Float(n.as_f64().unwrap() as f32),
                        other => Value::from(other.as_str().unwrap()),
                    };
                    (k.as_str(), v)
                })
                .collect();
            let net: IpNet = entry["network"].as_str().unwrap().parse().unwrap();
            w.insert_value(net, Value::map(fields)).unwrap();
        }
        let path = dir.join(format!("dbip-city-{key}.mmdb"));
        std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
        paths.push(path);
    }
    (paths[0].clone(), paths[1].clone(), fixture)
}

#[test]
fn dbip_city_lite_in_the_ip_location_db_layout_is_read_with_its_float_coordinates() {
    let dir = tempfile::tempdir().unwrap();
    let (v4, v6, fixture) = dbip_slice(dir.path());
    let probes: Vec<&Json> = fixture["ipv4"]
        .as_array()
        .unwrap()
        .iter()
        .chain(fixture["ipv6"].as_array().unwrap())
        .collect();
    let ips: Vec<&str> = probes
        .iter()
        .map(|p| p["probe"].as_str().unwrap())
        .collect();
    let events = check(dir.path(), &[v4, v6], &ips);
    for (probe, e) in probes.iter().zip(&events) {
        let rec = &probe["record"];
        let geo = &e["source"]["geo"];
        assert_eq!(geo["city_name"], rec["city"], "{}: {e}", probe["probe"]);
        assert_eq!(geo["region_name"], rec["state1"], "{}: {e}", probe["probe"]);
        assert_eq!(geo["country_iso_code"], rec["country_code"]);
        let lat = rec["latitude"].as_f64().unwrap();
        assert!(close(&geo["location"]["lat"], lat), "{geo} vs {lat}");
        assert_eq!(e["locgate"]["location_precision"], "database");
    }
}

#[test]
fn a_file_whose_records_cannot_be_read_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut refused = 0;
    let bad = maxmind("bad-data");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&bad)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.push(maxmind("GeoIP2-City-Test-Broken-Double-Format.mmdb"));
    files.sort();
    for file in &files {
        let config = dir.path().join("bad.toml");
        let db = toml::Value::String(file.display().to_string());
        std::fs::write(&config, format!("[data]\ncity_db = {db}\n")).unwrap();
        let out = locgate_bin(&["validate", "-c", config.to_str().unwrap()]);
        // Never a crash: either refused with a reason naming the file, or read.
        assert!(
            out.status.code().is_some(),
            "{}: killed by a signal",
            file.display()
        );
        if !out.status.success() {
            refused += 1;
            let name = file.file_name().unwrap().to_str().unwrap();
            assert!(out.stderr.contains(name), "{name}: {}", out.stderr);
        }
    }
    // The broken-double file must be refused: its coordinates cannot be read.
    let config = dir.path().join("double.toml");
    let db = toml::Value::String(
        maxmind("GeoIP2-City-Test-Broken-Double-Format.mmdb")
            .display()
            .to_string(),
    );
    std::fs::write(&config, format!("[data]\ncity_db = {db}\n")).unwrap();
    let out = locgate_bin(&["validate", "-c", config.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", out.stdout);
    assert!(out.stderr.contains("cannot be read"), "{}", out.stderr);
    assert_eq!(refused, files.len(), "every hostile file is refused");
}
