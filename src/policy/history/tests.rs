//! History signals at their boundaries.

use super::*;
use crate::country::CountryCode;
use crate::employees::Directory;
use crate::intel::LatLon;

fn emp(record: &str) -> Employee {
    let text = format!("[[employee]]\n{record}");
    let dir = Directory::parse_toml(&text, "test.toml", 100.0).unwrap();
    dir.iter().next().unwrap().clone()
}

fn seattle_home() -> Employee {
    emp(
        "id = \"s\"\ncountry = \"US\"\ncity = \"Seattle\"\nlat = 47.61\nlon = -122.33\nradius_km = 50\ntime_zone = \"America/Los_Angeles\"\n",
    )
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn sighting(t: &str, lat: f64, lon: f64, acc: f64) -> Sighting {
    Sighting {
        at: at(t),
        country: None,
        location: Some(LatLon { lat, lon }),
        accuracy_km: acc,
    }
}

const AUSTIN: (f64, f64) = (30.2672, -97.7431);
const PYONGYANG: (f64, f64) = (39.0339, 125.7543);

#[test]
fn austin_then_pyongyang_two_hours_later_is_impossible() {
    let r = impossible_travel(
        &sighting("2026-11-20T10:00:00Z", AUSTIN.0, AUSTIN.1, 20.0),
        &sighting("2026-11-20T12:00:00Z", PYONGYANG.0, PYONGYANG.1, 50.0),
        &HistoryRules::default(),
    )
    .unwrap();
    assert_eq!(r.code, ReasonCode::ImpossibleTravel);
    assert!(
        r.detail.contains("11,09") && r.detail.contains("2h00") && r.detail.contains("km/h"),
        "{}",
        r.detail
    );
}

#[test]
fn exactly_at_the_speed_limit_is_not_above_it() {
    // Two points 1,000 km apart (beyond accuracy), reached in 1,000/900 h: exactly 900 km/h.
    let rules = HistoryRules {
        travel_min_km: 100.0,
        ..HistoryRules::default()
    };
    let a = sighting("2026-11-20T00:00:00Z", 0.0, 0.0, 0.0);
    let deg = 1000.0 / (geo::EARTH_RADIUS_KM * std::f64::consts::PI / 180.0);
    let secs = (1000.0 / 900.0 * 3600.0_f64).round() as i64;
    let b = Sighting {
        at: a.at + SignedDuration::from_secs(secs),
        ..sighting("2026-11-20T00:00:00Z", 0.0, deg, 0.0)
    };
    assert!(impossible_travel(&a, &b, &rules).is_none(), "at the limit");
    let c = Sighting {
        at: a.at + SignedDuration::from_secs(secs - 60),
        ..b
    };
    assert!(impossible_travel(&a, &c, &rules).is_some(), "just above");
}

#[test]
fn accuracy_radii_larger_than_the_distance_absorb_it() {
    // Country-level data on both sides (capital +- country size): no travel claim.
    let a = sighting("2026-11-20T10:00:00Z", 38.9, -77.0, 1751.0);
    let b = sighting("2026-11-20T10:05:00Z", 41.88, -87.63, 20.0); // Chicago, ~960 km
    assert!(impossible_travel(&a, &b, &HistoryRules::default()).is_none());
}

#[test]
fn under_the_minimum_distance_is_not_travel_and_order_does_not_matter() {
    let rules = HistoryRules::default();
    // Austin -> Dallas (~300 km) in 5 minutes: fast, but under 500 km.
    let a = sighting("2026-11-20T10:00:00Z", AUSTIN.0, AUSTIN.1, 5.0);
    let b = sighting("2026-11-20T10:05:00Z", 32.78, -96.80, 5.0);
    assert!(impossible_travel(&a, &b, &rules).is_none());
    // Out of order (replay, clock skew): the gap is absolute.
    let p = sighting("2026-11-20T12:00:00Z", PYONGYANG.0, PYONGYANG.1, 50.0);
    let q = sighting("2026-11-20T10:00:00Z", AUSTIN.0, AUSTIN.1, 20.0);
    assert!(impossible_travel(&p, &q, &rules).is_some());
    let same = sighting("2026-11-20T12:00:00Z", AUSTIN.0, AUSTIN.1, 20.0);
    assert!(
        impossible_travel(&p, &same, &rules)
            .unwrap()
            .detail
            .contains("same instant")
    );
}

#[test]
fn shared_egress_needs_three_distinct_employees() {
    let rules = HistoryRules::default();
    let t = at("2026-11-20T10:00:00Z");
    let two = vec![
        (Arc::from("ann"), t),
        (Arc::from("ann"), t),
        (Arc::from("me"), t),
    ];
    assert!(shared_egress("me", &two, &rules).is_none());
    let three = vec![(Arc::from("bob"), t), (Arc::from("ann"), t)];
    let r = shared_egress("me", &three, &rules).unwrap();
    assert_eq!(r.code, ReasonCode::SharedEgress);
    assert!(
        r.detail.starts_with("3 employees") && r.detail.ends_with("me and ann, bob"),
        "{}",
        r.detail
    );
}

fn day(date: &str, home: bool, placed: bool, night: bool) -> Day {
    Day {
        date: date.parse().unwrap(),
        home,
        placed,
        night,
    }
}

fn days(pattern: &[(bool, bool)]) -> Vec<Day> {
    pattern
        .iter()
        .enumerate()
        .map(|(i, (home, night))| day(&format!("2026-11-{:02}", i + 1), *home, true, *night))
        .collect()
}

#[test]
fn a_week_long_business_trip_is_not_a_residence_mismatch() {
    // 14 days with sign-ins: 7 at home, 7 on a trip within the country.
    let mut pattern = vec![(true, false); 7];
    pattern.extend(vec![(false, false); 7]);
    assert!(
        residence_mismatch(&days(&pattern), &seattle_home(), &HistoryRules::default()).is_none()
    );
}

#[test]
fn always_working_from_another_state_is() {
    let mut pattern = vec![(false, false); 12];
    pattern.extend(vec![(true, false); 2]);
    let r = residence_mismatch(&days(&pattern), &seattle_home(), &HistoryRules::default()).unwrap();
    assert_eq!(r.code, ReasonCode::ResidenceMismatch);
    assert!(
        r.detail.contains("on 2 of the last 14 placed days") && r.detail.contains("14%"),
        "{}",
        r.detail
    );
}

#[test]
fn too_few_placed_days_are_not_judged() {
    let mut d = days(&[(false, false); 6]);
    d.extend((10..20).map(|i| day(&format!("2026-11-{i}"), false, false, false)));
    assert!(residence_mismatch(&d, &seattle_home(), &HistoryRules::default()).is_none());
}

#[test]
fn off_hours_is_a_pattern_not_one_late_evening() {
    let rules = HistoryRules::default();
    let one = days(&[(true, true), (true, false), (true, false)]);
    assert!(off_hours(&one, &seattle_home(), &rules).is_none());
    let many = days(&[(true, true); 6]);
    let r = off_hours(&many, &seattle_home(), &rules).unwrap();
    assert_eq!((r.code, r.action), (ReasonCode::OffHours, Action::Note));
    assert!(
        r.detail.contains("America/Los_Angeles") && r.detail.contains("6 of the last 6"),
        "{}",
        r.detail
    );
    let no_zone = emp("id = \"z\"\ncountry = \"US\"\n");
    assert!(off_hours(&many, &no_zone, &rules).is_none());
}

#[test]
fn day_of_uses_the_declared_time_zone_and_radius() {
    let e = seattle_home();
    let rules = HistoryRules::default();
    let mut obs = Observation::empty("192.0.2.1".parse().unwrap());
    obs.country = CountryCode::parse("US");
    obs.location = Some(LatLon {
        lat: 47.62,
        lon: -122.35,
    });
    obs.accuracy_km = Some(5.0);
    obs.precision = Some(LocationPrecision::Database);
    // 09:30 UTC is 01:30 in Seattle (PST): night. 04:30 UTC is 20:30 on the previous date.
    let d = day_of(&e, &obs, at("2026-11-21T09:30:00Z"), &rules);
    assert_eq!(d.date.to_string(), "2026-11-21");
    assert_eq!(
        day_of(&e, &obs, at("2026-11-21T04:30:00Z"), &rules)
            .date
            .to_string(),
        "2026-11-20"
    );
    assert!(d.night && d.home && d.placed);
    // Miami, city-level: placed, not home.
    obs.location = Some(LatLon {
        lat: 25.76,
        lon: -80.19,
    });
    let d = day_of(&e, &obs, at("2026-11-21T20:00:00Z"), &rules);
    assert!(d.placed && !d.home && !d.night);
    // Country-level in the home country says nothing about the radius.
    obs.precision = Some(LocationPrecision::Country);
    assert!(!day_of(&e, &obs, at("2026-11-21T20:00:00Z"), &rules).placed);
    // Another country is placed and not home.
    obs.country = CountryCode::parse("MX");
    let d = day_of(&e, &obs, at("2026-11-21T20:00:00Z"), &rules);
    assert!(d.placed && !d.home);
}

#[test]
fn a_day_on_a_gateway_located_network_is_neither_home_nor_away() {
    // Starlink places a Seattle subscriber at a ground station 1,100 km away: the day says
    // nothing about the radius, so residence neither counts it home nor away.
    let e = seattle_home();
    let rules = HistoryRules::default();
    let mut obs = Observation::empty("192.0.2.1".parse().unwrap());
    obs.country = CountryCode::parse("US");
    obs.location = Some(LatLon {
        lat: 37.77,
        lon: -122.42,
    });
    obs.accuracy_km = Some(1000.0);
    obs.precision = Some(LocationPrecision::Database);
    for kind in [
        crate::intel::NetworkKind::Satellite,
        crate::intel::NetworkKind::Mobile,
        crate::intel::NetworkKind::FixedWireless,
    ] {
        obs.network_kind = Some(kind);
        let d = day_of(&e, &obs, at("2026-11-21T20:00:00Z"), &rules);
        assert!(!d.placed && !d.home, "{kind:?}");
    }
    // Abroad is still abroad, whatever the network.
    obs.country = CountryCode::parse("CA");
    assert!(day_of(&e, &obs, at("2026-11-21T20:00:00Z"), &rules).placed);
}

/// `n` consecutive days from `start` (a date), each `home`/`placed` as given.
fn run(start: &str, n: i64, home: bool, placed: bool) -> Vec<Day> {
    let first: jiff::civil::Date = start.parse().unwrap();
    (0..n)
        .map(|i| Day {
            date: first.checked_add(jiff::Span::new().days(i)).unwrap(),
            home,
            placed,
            night: false,
        })
        .collect()
}

fn nomad() -> Employee {
    emp(
        "id = \"n\"\ncountry = \"US\"\ncity = \"Seattle\"\nlat = 47.61\nlon = -122.33\nradius_km = 50\ntravel = [{ from = 2026-11-01, to = 2026-11-12, countries = [\"PT\", \"ES\"] }]\n",
    )
}

#[test]
fn a_day_inside_a_travel_window_is_neither_home_nor_away() {
    let e = nomad();
    let rules = HistoryRules::default();
    let mut obs = Observation::empty("192.0.2.1".parse().unwrap());
    obs.country = CountryCode::parse("PT");
    obs.location = Some(LatLon {
        lat: 38.72,
        lon: -9.14,
    });
    obs.accuracy_km = Some(10.0);
    obs.precision = Some(LocationPrecision::Database);
    let d = day_of(&e, &obs, at("2026-11-05T12:00:00Z"), &rules);
    assert!(!d.placed && !d.home, "Lisbon inside the window");
    // The same place after the window is a day away.
    let d = day_of(&e, &obs, at("2026-11-20T12:00:00Z"), &rules);
    assert!(d.placed && !d.home, "Lisbon after the window");
    // A window is announced travel, whatever the place: another city at home is not away either.
    obs.country = CountryCode::parse("US");
    obs.location = Some(LatLon {
        lat: 25.76,
        lon: -80.19,
    });
    assert!(!day_of(&e, &obs, at("2026-11-05T12:00:00Z"), &rules).placed);
}

#[test]
fn a_nomad_back_from_a_window_is_judged_on_the_days_before_it() {
    let e = nomad();
    let rules = HistoryRules::default();
    // Three weeks at home, twelve days abroad inside the window, four days home again.
    let mut d = run("2026-10-10", 21, true, true);
    d.extend(run("2026-11-01", 12, false, false));
    d.extend(run("2026-11-13", 4, true, true));
    assert!(residence_mismatch(&d, &e, &rules).is_none());
    // Counted as days away (what happened before windows were taken into account), the same
    // trip condemned the days after it: 4 home of the last 16, 25%.
    let mut counted = run("2026-10-10", 21, true, true);
    counted.extend(run("2026-11-01", 12, false, true));
    counted.extend(run("2026-11-13", 4, true, true));
    assert!(residence_mismatch(&counted, &e, &rules).is_some());
}

#[test]
fn reaching_back_past_a_window_still_finds_a_life_elsewhere() {
    // Away on every placed day before the window: skipping the window days does not hide it.
    let rules = HistoryRules::default();
    let mut d = run("2026-10-20", 12, false, true);
    d.extend(run("2026-11-01", 12, false, false));
    d.extend(run("2026-11-13", 3, true, true));
    let r = residence_mismatch(&d, &nomad(), &rules).unwrap();
    assert!(
        r.detail.contains("on 3 of the last 14 placed days")
            && r.detail.contains("since 2026-10-21"),
        "{}",
        r.detail
    );
}

#[test]
fn residence_reaches_back_no_further_than_the_lookback() {
    let rules = HistoryRules {
        residence_lookback_days: 30,
        ..HistoryRules::default()
    };
    // Away in August, then a month on a satellite line (unplaced), then three home days: the
    // August days are past the lookback, so three placed days are too few to judge.
    let mut d = run("2026-08-01", 20, false, true);
    d.extend(run("2026-09-01", 40, false, false));
    d.extend(run("2026-10-11", 3, true, true));
    assert!(residence_mismatch(&d, &nomad(), &rules).is_none());
    let wide = HistoryRules {
        residence_lookback_days: 90,
        ..rules
    };
    assert!(residence_mismatch(&d, &nomad(), &wide).is_some());
}
