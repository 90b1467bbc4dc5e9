//! Unit tests of the per-employee rules, one behaviour each.

use std::net::IpAddr;

use jiff::Timestamp;

use super::*;
use crate::country::CountryCode;
use crate::employees::Directory;
use crate::intel::{Category, LatLon, LocationPrecision, Observation};
use crate::policy::Policy;

// ---- helpers ----------------------------------------------------------------------------------

fn cc(s: &str) -> CountryCode {
    CountryCode::parse(s).unwrap()
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// A summer day with no travel window open.
fn now() -> Timestamp {
    ts("2026-07-01T12:00:00Z")
}

/// One employee from a TOML record (the `[[employee]]` header is added).
fn emp(record: &str) -> Employee {
    let text = format!("[[employee]]\n{record}");
    let dir = Directory::parse_toml(&text, "test.toml", 100.0).unwrap();
    dir.iter().next().unwrap().clone()
}

/// Alice: Austin, Texas, 150 km; Canada always fine; Mexico over Christmas; a static home IP.
fn alice() -> Employee {
    emp(r#"id = "alice"
country = "US"
region = "Texas"
city = "Austin"
lat = 30.2672
lon = -97.7431
radius_km = 150
allow_countries = ["CA"]
travel = [
  { from = 2026-12-20, to = 2027-01-03, countries = ["MX"] },
  { from = 2027-03-01T08:00:00-06:00, to = 2027-03-04T20:00:00+01:00, countries = ["DE"] },
]
allow_networks = ["203.0.113.7/32"]
"#)
}

/// A city-level observation.
fn city(
    ip: &str,
    country: &str,
    region: Option<&'static str>,
    name: &'static str,
    at: (f64, f64),
    accuracy_km: f64,
) -> Observation<'static> {
    let ip: IpAddr = ip.parse().unwrap();
    let mut o = Observation::empty(ip);
    o.country = Some(cc(country));
    o.region = region;
    o.city = Some(name);
    o.location = Some(LatLon {
        lat: at.0,
        lon: at.1,
    });
    o.accuracy_km = Some(accuracy_km);
    o.precision = Some(LocationPrecision::Database);
    o
}

/// A country-only observation, as `Intel::observe` builds it: capital and size stand in.
fn country_only(ip: &str, country: &str) -> Observation<'static> {
    let ip: IpAddr = ip.parse().unwrap();
    let mut o = Observation::empty(ip);
    let code = cc(country);
    let info = crate::country::table().get(code).unwrap();
    o.country = Some(code);
    o.location = Some(LatLon {
        lat: info.lat,
        lon: info.lon,
    });
    o.accuracy_km = Some(info.radius_km);
    o.precision = Some(LocationPrecision::Country);
    o
}

fn austin() -> Observation<'static> {
    city(
        "198.51.100.1",
        "US",
        Some("Texas"),
        "Austin",
        (30.27, -97.74),
        20.0,
    )
}

fn pyongyang() -> Observation<'static> {
    city(
        "175.45.176.1",
        "KP",
        Some("Pyongyang"),
        "Pyongyang",
        (39.0392, 125.7625),
        50.0,
    )
}

fn mexico_city() -> Observation<'static> {
    city(
        "187.188.0.1",
        "MX",
        Some("Mexico City"),
        "Mexico City",
        (19.4326, -99.1332),
        20.0,
    )
}

fn toronto() -> Observation<'static> {
    city(
        "99.224.0.1",
        "CA",
        Some("Ontario"),
        "Toronto",
        (43.6532, -79.3832),
        10.0,
    )
}

fn policy() -> Policy {
    Policy {
        sanctioned: ["KP", "IR", "CU", "SY"].iter().map(|c| cc(c)).collect(),
        flag_anonymizers: [Category::HostingProvider].into_iter().collect(),
        unknown_location: Action::Flag,
        ..Policy::default()
    }
}

fn verified(e: &Employee) -> Subject<'_> {
    Subject::Known {
        employee: e,
        verified: true,
    }
}

fn unverified(e: &Employee) -> Subject<'_> {
    Subject::Known {
        employee: e,
        verified: false,
    }
}

/// Global reasons from `p`, then the per-employee rules with default actions.
fn decide_with(
    p: &Policy,
    obs: &Observation<'_>,
    who: Subject<'_>,
    mode: Mode,
    at: Timestamp,
) -> Decision {
    evaluate_for_employee(
        p.reasons(obs),
        obs,
        who,
        mode,
        &EmployeeRules::default(),
        at,
    )
}

fn decide(obs: &Observation<'_>, who: Subject<'_>, at: Timestamp) -> Decision {
    decide_with(&policy(), obs, who, Mode::Enforce, at)
}

fn codes(d: &Decision) -> Vec<&'static str> {
    d.reasons.iter().map(|r| r.code.as_str()).collect()
}

fn detail(d: &Decision, code: ReasonCode) -> &str {
    d.reasons
        .iter()
        .find(|r| r.code == code)
        .map(|r| r.detail.as_str())
        .unwrap_or_else(|| panic!("no {code} in {:?}", codes(d)))
}

// ---- who --------------------------------------------------------------------------------------

#[test]
fn anonymous_gets_the_global_decision_under_the_listener_mode() {
    let d = decide_with(
        &policy(),
        &pyongyang(),
        Subject::Anonymous,
        Mode::Enforce,
        now(),
    );
    assert_eq!(codes(&d), ["sanctioned_country"]);
    assert_eq!(
        (d.verdict, d.action, d.mode),
        (Action::Block, Action::Block, Mode::Enforce)
    );
    let d = decide_with(
        &policy(),
        &pyongyang(),
        Subject::Anonymous,
        Mode::Monitor,
        now(),
    );
    assert_eq!(
        (d.verdict, d.action, d.mode),
        (Action::Block, Action::Flag, Mode::Monitor)
    );
    let d = decide(&austin(), Subject::Anonymous, now());
    assert_eq!((d.action, d.reasons.len()), (Action::Allow, 0));
}

#[test]
fn unknown_identity_is_flagged_by_name() {
    let d = decide(
        &austin(),
        Subject::Unknown {
            name: "mallory@example.com",
        },
        now(),
    );
    assert_eq!(codes(&d), ["unknown_employee"]);
    assert_eq!(d.action, Action::Flag);
    assert_eq!(
        d.reasons[0].detail,
        "identity `mallory@example.com` is not in the employee directory"
    );
    // It adds to the global reasons, strongest first.
    let d = decide(&pyongyang(), Subject::Unknown { name: "m" }, now());
    assert_eq!(codes(&d), ["sanctioned_country", "unknown_employee"]);
    // Switched off, it says nothing.
    let rules = EmployeeRules {
        unknown_employee: Action::Allow,
        ..EmployeeRules::default()
    };
    let d = evaluate_for_employee(
        Vec::new(),
        &austin(),
        Subject::Unknown { name: "m" },
        Mode::Enforce,
        &rules,
        now(),
    );
    assert!(d.reasons.is_empty());
}

#[test]
fn subject_resolve_looks_up_case_insensitively() {
    let dir = Directory::parse_toml(
        "[[employee]]\nid = \"e1\"\naliases = [\"Alice@Example.com\"]\ncountry = \"US\"\n",
        "t.toml",
        100.0,
    )
    .unwrap();
    assert!(matches!(
        Subject::resolve(&dir, None, true),
        Subject::Anonymous
    ));
    assert!(matches!(
        Subject::resolve(&dir, Some("bob"), true),
        Subject::Unknown { name: "bob" }
    ));
    assert!(matches!(
        Subject::resolve(&dir, Some("alice@EXAMPLE.com"), false),
        Subject::Known { employee, verified: false } if employee.id == "e1"
    ));
}

// ---- home and radius --------------------------------------------------------------------------

#[test]
fn at_home_is_a_clean_allow() {
    let a = alice();
    let d = decide(&austin(), verified(&a), now());
    assert_eq!((d.verdict, d.action), (Action::Allow, Action::Allow));
    assert!(d.reasons.is_empty(), "{:?}", d.reasons);
    let d = decide(&austin(), unverified(&a), now());
    assert!(d.reasons.is_empty(), "{:?}", d.reasons);
}

#[test]
fn pyongyang_is_far_from_austin_with_the_numbers() {
    let a = alice();
    let d = decide(&pyongyang(), verified(&a), now());
    assert_eq!(
        codes(&d),
        [
            "sanctioned_country",
            "outside_home_radius",
            "country_mismatch"
        ]
    );
    assert_eq!(d.action, Action::Block);
    assert_eq!(
        detail(&d, ReasonCode::OutsideHomeRadius),
        "observed Pyongyang, KP, 11,090 km from declared home Austin, US (radius 150 km, location accurate to 50 km)"
    );
    assert_eq!(
        detail(&d, ReasonCode::CountryMismatch),
        "observed North Korea (KP), not the declared home country United States (US)"
    );
}

/// Alice's home point; an observation `km` kilometres due north of it (on the same meridian).
fn north_of_home(km: f64, accuracy_km: f64) -> Observation<'static> {
    let dlat = km / (crate::geo::EARTH_RADIUS_KM * std::f64::consts::PI / 180.0);
    city(
        "198.51.100.9",
        "US",
        None,
        "Somewhere",
        (30.2672 + dlat, -97.7431),
        accuracy_km,
    )
}

#[test]
fn radius_boundary_is_inclusive() {
    let a = alice();
    let home = a.home.location.unwrap();
    // Exactly at the radius (150 km): inside.
    let obs = north_of_home(150.0, 0.0);
    let d_km = crate::geo::distance_km(home, obs.location.unwrap());
    assert!((d_km - 150.0).abs() < 1e-6, "{d_km}");
    assert!(decide(&obs, verified(&a), now()).reasons.is_empty());
    // One kilometre beyond: outside.
    let d = decide(&north_of_home(151.0, 0.0), verified(&a), now());
    assert_eq!(codes(&d), ["outside_home_radius"]);
    assert_eq!(
        d.reasons[0].detail,
        "observed Somewhere, US, 151 km from declared home Austin, US (radius 150 km)"
    );
    // 250 km away but accurate only to 100 km: it may be inside, so no accusation.
    assert!(
        decide(&north_of_home(250.0, 100.0), verified(&a), now())
            .reasons
            .is_empty()
    );
    assert_eq!(
        codes(&decide(&north_of_home(250.0, 99.0), verified(&a), now())),
        ["outside_home_radius"]
    );
}

#[test]
fn accuracy_larger_than_the_distance_gives_no_reason() {
    let a = emp("id = \"a\"\ncountry = \"US\"\nlat = 30.0\nlon = -97.0\nradius_km = 10\n");
    let obs = city("198.51.100.2", "US", None, "X", (30.5, -97.0), 1000.0);
    assert!(decide(&obs, verified(&a), now()).reasons.is_empty());
}

#[test]
fn missing_or_bad_accuracy_counts_as_exact() {
    let a = emp("id = \"a\"\ncountry = \"US\"\nlat = 30.0\nlon = -97.0\nradius_km = 10\n");
    let mut obs = city("198.51.100.2", "US", None, "X", (30.5, -97.0), 0.0);
    obs.accuracy_km = None;
    obs.precision = None;
    assert_eq!(
        codes(&decide(&obs, verified(&a), now())),
        ["outside_home_radius"]
    );
    obs.accuracy_km = Some(f64::NAN);
    assert_eq!(
        codes(&decide(&obs, verified(&a), now())),
        ["outside_home_radius"]
    );
}

#[test]
fn antimeridian_home_in_fiji() {
    let sefa = emp(
        "id = \"sefa\"\ncountry = \"FJ\"\ncity = \"Suva\"\nlat = -18.1416\nlon = 178.4419\nradius_km = 300\n",
    );
    // Taveuni's eastern shore lies across the 180th meridian: about 250 km from Suva.
    let across = city("103.1.0.1", "FJ", None, "Lovonivonu", (-16.8, -179.9), 5.0);
    let d = decide(&across, verified(&sefa), now());
    assert!(d.reasons.is_empty(), "{:?}", d.reasons);
    // Nuku'alofa (Tonga), also across the line: about 780 km, a mismatch and outside the radius.
    let tonga = city(
        "202.134.24.1",
        "TO",
        None,
        "Nuku'alofa",
        (-21.1393, -175.2049),
        5.0,
    );
    let d = decide(&tonga, verified(&sefa), now());
    assert_eq!(codes(&d), ["outside_home_radius", "country_mismatch"]);
    let s = detail(&d, ReasonCode::OutsideHomeRadius);
    assert!(
        s.starts_with("observed Nuku'alofa, TO, 7")
            && s.contains("km from declared home Suva, FJ (radius 300 km"),
        "{s}"
    );
}

#[test]
fn poles() {
    let polar = emp(
        "id = \"p\"\ncountry = \"AQ\"\ncity = \"McMurdo Station\"\nlat = -77.846\nlon = 166.676\nradius_km = 50\n",
    );
    let pole = city(
        "192.0.2.90",
        "AQ",
        None,
        "Amundsen-Scott Station",
        (-90.0, 0.0),
        10.0,
    );
    let d = decide(&pole, verified(&polar), now());
    assert_eq!(codes(&d), ["outside_home_radius"]);
    assert_eq!(
        d.reasons[0].detail,
        "observed Amundsen-Scott Station, AQ, 1,351 km from declared home McMurdo Station, AQ (radius 50 km, location accurate to 10 km)"
    );
    // At the pole every longitude is the same point.
    let at_pole = emp("id = \"q\"\ncountry = \"AQ\"\nlat = -90.0\nlon = 45.0\nradius_km = 1\n");
    assert!(decide(&pole, verified(&at_pole), now()).reasons.is_empty());
}

#[test]
fn observation_without_location_gives_no_radius_reason() {
    let a = alice();
    let obs = Observation::empty("192.0.2.1".parse().unwrap());
    let d = decide(&obs, verified(&a), now());
    // The global rule covers it.
    assert_eq!(codes(&d), ["unknown_location"]);
}

#[test]
fn observation_with_only_a_country_code_uses_the_capital() {
    let a = alice();
    let mut obs = Observation::empty("187.188.0.9".parse().unwrap());
    obs.country = Some(cc("KP"));
    let d = decide(&obs, unverified(&a), now());
    let s = detail(&d, ReasonCode::OutsideHomeRadius);
    assert!(
        s.ends_with(
            "; country-level location: the observation is KP only, measured from its capital"
        ),
        "{s}"
    );
}

// ---- country-level data -----------------------------------------------------------------------

#[test]
fn country_level_observation_in_the_home_country_gives_no_radius_reason() {
    let a = alice();
    // Washington is 2,100 km from Austin, but "somewhere in the US" is all the data says.
    let d = decide(&country_only("8.8.8.8", "US"), verified(&a), now());
    assert!(d.reasons.is_empty(), "{:?}", d.reasons);
}

#[test]
fn country_level_observation_abroad_is_measured_from_its_capital() {
    let a = alice();
    let d = decide(&country_only("187.188.0.1", "MX"), unverified(&a), now());
    assert_eq!(codes(&d), ["outside_home_radius", "country_mismatch"]);
    assert_eq!(
        detail(&d, ReasonCode::OutsideHomeRadius),
        "observed Mexico (MX), 1,213 km from declared home Austin, US (radius 150 km, location accurate to 792 km); country-level location: the observation is MX only, measured from its capital"
    );
}

#[test]
fn country_only_home() {
    let bob = emp("id = \"bob\"\ncountry = \"GB\"\n");
    // Anywhere in the home country: nothing to say, even far from London.
    let edinburgh = city(
        "81.2.69.1",
        "GB",
        Some("Scotland"),
        "Edinburgh",
        (55.9533, -3.1883),
        5.0,
    );
    assert!(decide(&edinburgh, verified(&bob), now()).reasons.is_empty());
    // Paris: 344 km from London, beyond the UK's size radius (279 km) plus 20 km accuracy.
    let paris = city(
        "81.2.70.1",
        "FR",
        Some("Île-de-France"),
        "Paris",
        (48.8566, 2.3522),
        20.0,
    );
    let d = decide(&paris, verified(&bob), now());
    assert_eq!(codes(&d), ["outside_home_radius", "country_mismatch"]);
    assert_eq!(
        detail(&d, ReasonCode::OutsideHomeRadius),
        "observed Paris, FR, 344 km from declared home United Kingdom (GB) (radius 279 km, location accurate to 20 km); country-level location: the home is declared only as GB, measured from its capital"
    );
    // Both sides country-level.
    let d = decide(&country_only("81.2.71.1", "KP"), verified(&bob), now());
    assert!(
        detail(&d, ReasonCode::OutsideHomeRadius)
            .ends_with("; country-level location on both sides, measured between the capitals")
    );
}

#[test]
fn country_only_home_keeps_a_larger_declared_radius() {
    let bob = emp("id = \"bob\"\ncountry = \"GB\"\nradius_km = 400\n");
    let paris = city("81.2.70.1", "FR", None, "Paris", (48.8566, 2.3522), 20.0);
    assert_eq!(
        codes(&decide(&paris, verified(&bob), now())),
        ["country_mismatch"]
    );
}

// ---- region -----------------------------------------------------------------------------------

#[test]
fn region_mismatch_in_the_home_country() {
    let a = alice();
    let la = city(
        "198.51.100.3",
        "US",
        Some("California"),
        "Los Angeles",
        (34.0522, -118.2437),
        10.0,
    );
    let d = decide(&la, verified(&a), now());
    // A domestic trip is a note (residence_mismatch judges the pattern).
    assert_eq!(codes(&d), ["outside_home_radius", "region_mismatch"]);
    assert_eq!(
        (d.action, d.reasons[1].action),
        (Action::Note, Action::Note)
    );
    assert_eq!(
        detail(&d, ReasonCode::RegionMismatch),
        "observed region California, US, not the declared home region Texas"
    );
    // Case does not matter.
    let mut obs = austin();
    obs.region = Some("TEXAS");
    assert!(decide(&obs, verified(&a), now()).reasons.is_empty());
    // No observed region: nothing to compare.
    obs.region = None;
    assert!(decide(&obs, verified(&a), now()).reasons.is_empty());
    // Another country: the country mismatch says it; regions of different countries are not
    // compared.
    let d = decide(&toronto(), unverified(&a), now());
    assert!(!codes(&d).contains(&"region_mismatch"), "{:?}", codes(&d));
}

#[test]
fn region_not_declared_is_not_compared() {
    let e = emp("id = \"e\"\ncountry = \"US\"\nlat = 34.05\nlon = -118.24\nradius_km = 50\n");
    let la = city(
        "198.51.100.3",
        "US",
        Some("California"),
        "Los Angeles",
        (34.0522, -118.2437),
        10.0,
    );
    assert!(decide(&la, verified(&e), now()).reasons.is_empty());
}

// ---- allow_countries and travel ---------------------------------------------------------------

#[test]
fn allowed_country_clears_mismatch_and_radius_when_verified() {
    let a = alice();
    let d = decide(&toronto(), verified(&a), now());
    assert!(d.reasons.is_empty(), "{:?}", d.reasons);
    assert_eq!(d.action, Action::Allow);
}

#[test]
fn travel_window_inside_outside_and_edges() {
    let a = alice();
    let mx = mexico_city();
    let inside = ts("2026-12-25T12:00:00Z");
    assert!(decide(&mx, verified(&a), inside).reasons.is_empty());
    let outside = ts("2027-02-01T12:00:00Z");
    assert_eq!(
        codes(&decide(&mx, verified(&a), outside)),
        ["outside_home_radius", "country_mismatch"]
    );
    // Opens at 20 December 00:00 in UTC+14 ...
    let open = ts("2026-12-20T00:00:00+14:00");
    assert!(decide(&mx, verified(&a), open).reasons.is_empty());
    let before = ts("2026-12-19T09:59:59.999999999Z");
    assert_eq!(decide(&mx, verified(&a), before).reasons.len(), 2);
    // ... and closes at the end of 3 January in UTC-12.
    let last = ts("2027-01-03T23:59:59-12:00");
    assert!(decide(&mx, verified(&a), last).reasons.is_empty());
    let closed = ts("2027-01-04T00:00:00-12:00");
    assert_eq!(decide(&mx, verified(&a), closed).reasons.len(), 2);
    // A window covers only its countries.
    assert_eq!(
        codes(&decide(&pyongyang(), verified(&a), inside)),
        [
            "sanctioned_country",
            "outside_home_radius",
            "country_mismatch"
        ]
    );
}

#[test]
fn date_only_window_holds_at_2330_on_the_last_day_in_utc_minus_10() {
    let a = alice();
    // Alice is in Hawaii... no: she reports from Mexico, but her laptop clock says Honolulu.
    // Whatever the zone, 23:30 on 3 January somewhere on Earth is inside the window.
    let at = ts("2027-01-03T23:30:00-10:00");
    assert!(decide(&mexico_city(), verified(&a), at).reasons.is_empty());
}

#[test]
fn rfc3339_window_is_exact() {
    let a = alice();
    let berlin = city(
        "91.0.0.1",
        "DE",
        Some("Berlin"),
        "Berlin",
        (52.52, 13.405),
        10.0,
    );
    assert!(
        decide(&berlin, verified(&a), ts("2027-03-01T14:00:00Z"))
            .reasons
            .is_empty()
    );
    assert_eq!(
        decide(&berlin, verified(&a), ts("2027-03-01T13:59:59Z"))
            .reasons
            .len(),
        2
    );
    assert!(
        decide(&berlin, verified(&a), ts("2027-03-04T19:00:00Z"))
            .reasons
            .is_empty()
    );
    assert_eq!(
        decide(&berlin, verified(&a), ts("2027-03-04T19:00:01Z"))
            .reasons
            .len(),
        2
    );
}

#[test]
fn employee_allowance_lifts_global_allow_list_but_not_sanctions() {
    let p = Policy {
        allow: [cc("US")].into_iter().collect(),
        ..policy()
    };
    let a = emp(
        "id = \"a\"\ncountry = \"US\"\nlat = 30.27\nlon = -97.74\nallow_countries = [\"CA\", \"IR\"]\n",
    );
    let d = decide_with(&p, &toronto(), verified(&a), Mode::Enforce, now());
    assert!(d.reasons.is_empty(), "{:?}", d.reasons);
    assert_eq!(d.action, Action::Allow);
    // Unverified: the global allow list still blocks, and the mismatch is added.
    let d = decide_with(&p, &toronto(), unverified(&a), Mode::Enforce, now());
    assert_eq!(
        codes(&d),
        [
            "country_not_allowed",
            "outside_home_radius",
            "country_mismatch"
        ]
    );
    assert_eq!(d.action, Action::Block);
    // Sanctions stay whatever the record says.
    let tehran = city(
        "2.176.0.1",
        "IR",
        Some("Tehran"),
        "Tehran",
        (35.6892, 51.389),
        10.0,
    );
    let d = decide_with(&p, &tehran, verified(&a), Mode::Enforce, now());
    assert_eq!(codes(&d), ["sanctioned_country"]);
    assert_eq!(d.action, Action::Block);
}

#[test]
fn employee_allowance_also_lifts_the_deny_list() {
    let p = Policy {
        deny: [cc("CA")].into_iter().collect(),
        ..policy()
    };
    let a = alice();
    assert!(
        decide_with(&p, &toronto(), verified(&a), Mode::Enforce, now())
            .reasons
            .is_empty()
    );
}

// ---- networks ---------------------------------------------------------------------------------

#[test]
fn own_network_allows_everything_but_sanctions_when_verified() {
    let a = alice();
    let mut obs = city("203.0.113.7", "NL", None, "Amsterdam", (52.37, 4.89), 5.0);
    obs.anonymizers.insert(Category::HostingProvider);
    let d = decide(&obs, verified(&a), now());
    assert!(d.reasons.is_empty(), "{:?}", d.reasons);
    assert_eq!(d.action, Action::Allow);
    let mut kp = pyongyang();
    kp.ip = "203.0.113.7".parse().unwrap();
    let d = decide(&kp, verified(&a), now());
    assert_eq!(codes(&d), ["sanctioned_country"]);
}

// ---- mode -------------------------------------------------------------------------------------

#[test]
fn exempt_allows_but_keeps_verdict_and_reasons() {
    let boss =
        emp("id = \"boss\"\ncountry = \"US\"\nlat = 30.27\nlon = -97.74\nmode = \"exempt\"\n");
    let d = decide(&mexico_city(), verified(&boss), now());
    assert_eq!(d.action, Action::Allow);
    assert_eq!(d.verdict, Action::Flag);
    assert_eq!(codes(&d), ["outside_home_radius", "country_mismatch"]);
    assert_eq!(d.mode, Mode::Enforce);
}

#[test]
fn exempt_does_not_override_sanctions() {
    let boss =
        emp("id = \"boss\"\ncountry = \"US\"\nlat = 30.27\nlon = -97.74\nmode = \"exempt\"\n");
    let d = decide(&pyongyang(), verified(&boss), now());
    assert_eq!((d.action, d.verdict), (Action::Block, Action::Block));
    assert_eq!(
        codes(&d),
        [
            "sanctioned_country",
            "outside_home_radius",
            "country_mismatch"
        ]
    );
}

#[test]
fn verified_mode_overrides_the_listener() {
    let watched = emp("id = \"w\"\ncountry = \"US\"\nmode = \"enforce\"\n");
    let d = decide_with(
        &policy(),
        &pyongyang(),
        verified(&watched),
        Mode::Monitor,
        now(),
    );
    assert_eq!((d.mode, d.action), (Mode::Enforce, Action::Block));
    let gentle = emp("id = \"g\"\ncountry = \"US\"\nmode = \"monitor\"\n");
    let d = decide_with(
        &policy(),
        &pyongyang(),
        verified(&gentle),
        Mode::Enforce,
        now(),
    );
    assert_eq!(
        (d.mode, d.verdict, d.action),
        (Mode::Monitor, Action::Block, Action::Flag)
    );
}

// ---- unverified identities tighten, never loosen ----------------------------------------------

#[test]
fn unverified_identity_cannot_use_exemption_or_mode() {
    let boss = emp("id = \"boss\"\ncountry = \"US\"\nmode = \"exempt\"\n");
    let d = decide(&pyongyang(), unverified(&boss), now());
    assert_eq!(d.action, Action::Block);
    let gentle = emp("id = \"g\"\ncountry = \"US\"\nmode = \"monitor\"\n");
    let d = decide(&pyongyang(), unverified(&gentle), now());
    assert_eq!((d.mode, d.action), (Mode::Enforce, Action::Block));
    let watched = emp("id = \"w\"\ncountry = \"US\"\nmode = \"enforce\"\n");
    let d = decide_with(
        &policy(),
        &pyongyang(),
        unverified(&watched),
        Mode::Monitor,
        now(),
    );
    assert_eq!((d.mode, d.action), (Mode::Monitor, Action::Flag));
}

#[test]
fn unverified_identity_cannot_use_allowed_countries_or_travel() {
    let a = alice();
    let d = decide(&toronto(), unverified(&a), now());
    assert_eq!(codes(&d), ["outside_home_radius", "country_mismatch"]);
    assert_eq!(
        detail(&d, ReasonCode::CountryMismatch),
        "observed Canada (CA), not the declared home country United States (US); the employee's allowed countries and travel were not applied because the identity is not verified"
    );
    let d = decide(&mexico_city(), unverified(&a), ts("2026-12-25T12:00:00Z"));
    assert_eq!(codes(&d), ["outside_home_radius", "country_mismatch"]);
}

#[test]
fn unverified_identity_cannot_use_own_networks() {
    let a = alice();
    let mut obs = city("203.0.113.7", "NL", None, "Amsterdam", (52.37, 4.89), 5.0);
    obs.anonymizers.insert(Category::HostingProvider);
    let d = decide(&obs, unverified(&a), now());
    assert_eq!(
        codes(&d),
        [
            "hosting_provider",
            "outside_home_radius",
            "country_mismatch"
        ]
    );
}

// ---- rules ------------------------------------------------------------------------------------

#[test]
fn rules_choose_actions_and_allow_switches_a_rule_off() {
    let a = alice();
    let rules = EmployeeRules {
        country_mismatch: Action::Block,
        outside_home_radius: Action::Allow,
        outside_home_radius_domestic: Action::Allow,
        region_mismatch: Action::Allow,
        unknown_employee: Action::Block,
    };
    let d = evaluate_for_employee(
        Vec::new(),
        &mexico_city(),
        unverified(&a),
        Mode::Enforce,
        &rules,
        now(),
    );
    assert_eq!(codes(&d), ["country_mismatch"]);
    assert_eq!(d.action, Action::Block);
    let la = city(
        "198.51.100.3",
        "US",
        Some("California"),
        "Los Angeles",
        (34.05, -118.24),
        10.0,
    );
    let d = evaluate_for_employee(Vec::new(), &la, verified(&a), Mode::Enforce, &rules, now());
    assert!(d.reasons.is_empty());
}

#[test]
fn default_rules_flag_abroad_and_note_domestic_trips() {
    let r = EmployeeRules::default();
    assert_eq!(
        [
            r.country_mismatch,
            r.outside_home_radius,
            r.unknown_employee
        ],
        [Action::Flag; 3]
    );
    assert_eq!(
        [r.outside_home_radius_domestic, r.region_mismatch],
        [Action::Note; 2]
    );
    let parsed: EmployeeRules = toml::from_str("country_mismatch = \"block\"").unwrap();
    assert_eq!(parsed.country_mismatch, Action::Block);
    assert_eq!(parsed.region_mismatch, Action::Note);
    assert!(toml::from_str::<EmployeeRules>("colour = \"block\"").is_err());
}

#[test]
fn kilometres_are_written_for_people() {
    assert_eq!(km(11_090.07), "11,090");
    assert_eq!(km(1_352.4), "1,352");
    assert_eq!(km(344.0), "344");
    assert_eq!(km(150.0), "150");
    assert_eq!(km(10.0), "10");
    assert_eq!(km(0.42), "0.4");
    assert_eq!(km(1_234_567.0), "1,234,567");
}

#[test]
fn region_comparison_ignores_case_and_spaces() {
    assert!(same_text("Île-de-France", "ÎLE-DE-FRANCE"));
    assert!(same_text(" Texas", "texas "));
    assert!(!same_text("Texas", "Texa"));
}

/// A Seattle point from a gateway-located network (Starlink, a carrier's 5G home internet):
/// widened accuracy, as `Intel::observe` sets it.
fn gateway(kind: crate::intel::NetworkKind) -> Observation<'static> {
    let mut o = city(
        "198.51.100.9",
        "US",
        Some("Washington"),
        "Seattle",
        (47.61, -122.33),
        20.0,
    );
    o.network_kind = Some(kind);
    o.accuracy_km = Some(kind.typical_error_km());
    o
}

#[test]
fn a_gateway_located_network_at_home_country_is_not_outside_the_radius_or_region() {
    use crate::intel::NetworkKind;
    for kind in [
        NetworkKind::Satellite,
        NetworkKind::Mobile,
        NetworkKind::FixedWireless,
    ] {
        let d = decide(&gateway(kind), verified(&alice()), now());
        assert!(codes(&d).is_empty(), "{kind:?}: {:?}", codes(&d));
    }
    // The same point from a fixed line is 2,700 km from Austin: radius and region fire.
    let mut fixed = gateway(NetworkKind::Satellite);
    fixed.network_kind = None;
    fixed.accuracy_km = Some(20.0);
    let d = decide(&fixed, verified(&alice()), now());
    assert!(
        codes(&d).contains(&"outside_home_radius"),
        "{:?}",
        codes(&d)
    );
    assert!(codes(&d).contains(&"region_mismatch"), "{:?}", codes(&d));
}

#[test]
fn a_gateway_located_network_abroad_is_still_a_country_mismatch_and_sanctions_still_block() {
    use crate::intel::NetworkKind;
    let mut abroad = gateway(NetworkKind::Satellite);
    abroad.country = Some(cc("DE"));
    abroad.location = Some(LatLon {
        lat: 52.52,
        lon: 13.40,
    });
    let d = decide(&abroad, verified(&alice()), now());
    assert!(codes(&d).contains(&"country_mismatch"), "{:?}", codes(&d));
    let radius = detail(&d, ReasonCode::OutsideHomeRadius);
    assert!(
        radius.contains("satellite internet: the location is the ground station's"),
        "{radius}"
    );
    let mut kp = pyongyang();
    kp.network_kind = Some(NetworkKind::Mobile);
    let d = decide(&kp, Subject::Anonymous, now());
    assert_eq!(codes(&d), ["sanctioned_country"]);
}
