//! Per-employee policy end to end: declared homes, travel windows, allowed countries, exempt
//! employees, unknown identities and home radii, through the running proxy and through
//! `locgate check --employee --at` and `locgate validate`.
//!
//! The shared directory ([`employees_toml`]) declares everyone in Austin, Texas (150 km radius);
//! alice (e1042) travels to MX, carol (e3007) is exempt, dave (e4001) may be in DE. The listener
//! enforces, with DE on the organisation's deny list so that exemptions have something to undo.
//! Each request comes from its own source address, so each event is found by `source.ip`.

mod common;

use common::*;
use http::StatusCode;
use serde_json::Value as Json;

const MX_SENTENCE: &str = "observed Mexico City, MX, 1,213 km from declared home Austin, US \
     (radius 150 km, location accurate to 20 km); observed Mexico (MX), not the declared home \
     country United States (US)";
const NOT_APPLIED: &str = "; the employee's allowed countries and travel were not applied \
     because the identity is not verified";

struct Setup {
    fx: Fixture,
    up: Upstream,
    running: locgate::serve::Running,
    proxy: std::net::SocketAddr,
}

impl Setup {
    async fn new(from: &str, to: &str, rules: &str) -> Setup {
        let fx = Fixture::new();
        fx.write("employees.toml", &employees_toml(from, to));
        fx.hs256_secret_file();
        let up = Upstream::start().await;
        let running = fx
            .start_with(
                &listener(
                    "sso",
                    &up.url(),
                    "mode = \"enforce\"\nidentity = [{ jwt = { header = \"authorization\", \
                     claim = \"sub\", hs256_secret_file = \"hs256.key\" } }, { basic = true }]",
                ),
                // History is off here: these requests move one person between countries within
                // seconds, which tests/history.rs covers as impossible travel.
                &format!(
                    "[policy]\ndeny_countries = [\"DE\"]\n\n[history]\nenabled = false\n\n{}{rules}\n",
                    employees_section("employees.toml")
                ),
            )
            .await;
        let proxy = running.addr("sso").unwrap();
        Setup {
            fx,
            up,
            running,
            proxy,
        }
    }

    /// GET / from `src` as `user`: a verified token (`jwt`) or an unverified Basic name.
    async fn get_as(&self, src: &str, user: Option<(&str, bool)>) -> StatusCode {
        let auth = match user {
            Some((name, true)) => Some(bearer(&hs256_token(name))),
            Some((name, false)) => Some(basic_auth(name, "pw")),
            None => None,
        };
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        get(src, self.proxy, "/", &headers).await.0.status
    }

    async fn events(self) -> (Vec<Json>, Upstream) {
        let events = self.fx.events(&self.running).await;
        self.running.shutdown().await;
        (events, self.up)
    }
}

const VERIFIED: bool = true;
const UNVERIFIED: bool = false;

#[track_caller]
fn assert_decision(e: &Json, action: &str, verdict: &str, want_reasons: &[&str]) {
    assert_eq!(e["event"]["action"], action, "{e:#}");
    assert_eq!(e["locgate"]["verdict"], verdict, "{e:#}");
    assert_eq!(reasons(e), want_reasons, "{e:#}");
}

#[track_caller]
fn assert_user(e: &Json, id: &str, verified: bool) {
    // ECS: `user.id` only for a verified identity, a claimed name in `user.name`.
    let (field, other) = if verified {
        ("id", "name")
    } else {
        ("name", "id")
    };
    assert_eq!(e["user"][field], id, "{e:#}");
    assert!(e["user"][other].is_null(), "{e:#}");
    assert_eq!(e["locgate"]["identity"]["verified"], verified, "{e:#}");
}

// ---------------------------------------------------------------------------------------------
// 5. Travel windows
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_travel_window_allows_the_trip_for_a_verified_identity_only() {
    let s = Setup::new(&utc_date(-1), &utc_date(1), "").await;
    // alice is on her announced trip to Mexico (verified token).
    assert_eq!(
        s.get_as("127.5.0.11", Some(("alice", VERIFIED))).await,
        UPSTREAM_STATUS
    );
    // bob announced nothing.
    assert_eq!(
        s.get_as("127.5.0.12", Some(("bob", VERIFIED))).await,
        UPSTREAM_STATUS
    );
    // Someone typing "alice" into a Basic prompt from Mexico does not get her trip.
    assert_eq!(
        s.get_as("127.5.0.13", Some(("alice", UNVERIFIED))).await,
        UPSTREAM_STATUS
    );
    let (events, up) = s.events().await;
    assert_eq!(up.seen().len(), 3, "flags are forwarded");

    let e = one_event_from(&events, "127.5.0.11");
    assert_user(e, "e1042", true);
    assert_decision(e, "allow", "allow", &[]);
    assert_eq!(e["message"], "127.5.0.11 from Mexico City, MX: allowed");

    let e = one_event_from(&events, "127.5.0.12");
    assert_user(e, "e2001", true);
    assert_decision(
        e,
        "flag",
        "flag",
        &["outside_home_radius", "country_mismatch"],
    );
    assert_eq!(e["message"], MX_SENTENCE);

    let e = one_event_from(&events, "127.5.0.13");
    assert_user(e, "e1042", false);
    assert_eq!(e["locgate"]["identity"]["source"], "basic");
    assert_decision(
        e,
        "flag",
        "flag",
        &["outside_home_radius", "country_mismatch"],
    );
    assert_eq!(e["message"], format!("{MX_SENTENCE}{NOT_APPLIED}"));
}

#[test]
fn check_employee_at_opens_and_closes_a_date_window_where_the_dates_exist_anywhere() {
    let fx = Fixture::new();
    let config = fx.directory_config();
    let config = config.as_str();
    // A date-only window opens at `from` 00:00 in UTC+14 and closes at the end of `to` in UTC-12.
    for (at, allowed) in [
        ("2026-06-01T12:00:00Z", false),
        ("2026-12-19T09:59:59Z", false),
        ("2026-12-19T10:00:00Z", true),
        ("2026-12-24T09:00:00-06:00", true),
        ("2027-01-04T11:59:59Z", true),
        ("2027-01-04T12:00:00Z", false),
        ("2027-06-01T12:00:00Z", false),
    ] {
        let out = locgate_bin(&[
            "check",
            "-c",
            config,
            "--json",
            "--employee",
            "alice@example.com",
            "--at",
            at,
            MX_CLIENT,
        ]);
        assert!(out.judged(), "{at}: {}", out.stderr);
        let events = out.json_lines();
        assert_eq!(events.len(), 1, "{}", out.stdout);
        let e = &events[0];
        assert_eq!(e["user"]["id"], "e1042", "{e:#}");
        assert_eq!(e["source"]["geo"]["country_iso_code"], "MX");
        let when: jiff::Timestamp = at.parse().unwrap();
        assert_eq!(
            e["@timestamp"],
            when.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            "the event is dated --at"
        );
        if allowed {
            assert_decision(e, "allow", "allow", &[]);
        } else {
            assert_decision(
                e,
                "flag",
                "flag",
                &["outside_home_radius", "country_mismatch"],
            );
            assert_eq!(e["message"], MX_SENTENCE, "{at}");
        }
    }

    // The text form says whose rules and when.
    let out = locgate_bin(&[
        "check",
        "-c",
        config,
        "--employee",
        "e1042",
        "--at",
        "2026-12-24T12:00:00Z",
        MX_CLIENT,
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with("as employee e1042, at 2026-12-24T12:00:00Z\n"),
        "{}",
        out.stdout
    );

    // Someone the directory does not know is judged as such, with a note.
    let out = locgate_bin(&[
        "check",
        "-c",
        config,
        "--json",
        "--employee",
        "mallory",
        US_CLIENT,
    ]);
    assert!(out.judged(), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("note: `mallory` is not in the employee directory"),
        "{}",
        out.stderr
    );
    let e = &out.json_lines()[0];
    assert_eq!(e["user"]["id"], "mallory");
    assert_decision(e, "flag", "flag", &["unknown_employee"]);

    // A bad --at is refused before anything is judged.
    let out = locgate_bin(&[
        "check",
        "-c",
        config,
        "--employee",
        "alice",
        "--at",
        "Christmas",
        MX_CLIENT,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("--at `Christmas` is not an RFC 3339 time"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
}

// ---------------------------------------------------------------------------------------------
// 6 and 7. Exempt employees, allowed countries, and unverified identities
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exempt_and_allowed_countries_loosen_only_for_verified_identities_and_are_recorded() {
    let s = Setup::new("2026-12-20", "2027-01-03", "").await;
    let cases = [
        // carol is exempt: with a verified token she is let through from a denied country ...
        ("127.6.0.21", ("carol", VERIFIED), UPSTREAM_STATUS),
        // ... but not from a sanctioned one: sanctions are not an HR exception.
        ("127.2.0.22", ("carol", VERIFIED), StatusCode::FORBIDDEN),
        // Typing her name into a Basic prompt exempts nobody.
        ("127.6.0.23", ("carol", UNVERIFIED), StatusCode::FORBIDDEN),
        // dave may be in DE: verified, the organisation's deny list yields to his declaration.
        ("127.6.0.25", ("dave", VERIFIED), UPSTREAM_STATUS),
        // Unverified, it does not.
        ("127.6.0.24", ("dave", UNVERIFIED), StatusCode::FORBIDDEN),
        // bob declared nothing of the kind.
        ("127.6.0.26", ("bob", VERIFIED), StatusCode::FORBIDDEN),
    ];
    for (src, who, status) in cases {
        assert_eq!(s.get_as(src, Some(who)).await, status, "{who:?} from {src}");
    }
    let (events, up) = s.events().await;
    let forwarded: Vec<String> = up
        .seen()
        .iter()
        .map(|r| r.header("x-forwarded-for").unwrap())
        .collect();
    assert_eq!(forwarded, ["127.6.0.21", "127.6.0.25"]);

    let de = "observed Germany (DE), which is on the deny list; observed Berlin, DE, 8,657 km from \
              declared home Austin, US (radius 150 km, location accurate to 20 km); observed \
              Germany (DE), not the declared home country United States (US)";

    let e = one_event_from(&events, "127.6.0.21");
    assert_user(e, "e3007", true);
    assert_eq!(e["http"]["response"]["status_code"], 201);
    // Exempt: carried out as allow, but the verdict and every reason stay on record.
    assert_decision(
        e,
        "allow",
        "block",
        &[
            "country_not_allowed",
            "outside_home_radius",
            "country_mismatch",
        ],
    );
    assert_eq!(e["message"], de);

    // Exempt has the same sanctions carve-out as allow_networks: blocked, and recorded as such.
    let e = one_event_from(&events, "127.2.0.22");
    assert_user(e, "e3007", true);
    assert_eq!(e["http"]["response"]["status_code"], 403);
    assert_decision(
        e,
        "block",
        "block",
        &[
            "sanctioned_country",
            "outside_home_radius",
            "country_mismatch",
        ],
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("observed North Korea (KP), a sanctioned country; "),
        "{e:#}"
    );

    let e = one_event_from(&events, "127.6.0.23");
    assert_user(e, "e3007", false);
    assert_eq!(e["http"]["response"]["status_code"], 403);
    assert_decision(
        e,
        "block",
        "block",
        &[
            "country_not_allowed",
            "outside_home_radius",
            "country_mismatch",
        ],
    );
    assert_eq!(
        e["message"], de,
        "carol's exemption is no allowance: no 'not applied' note"
    );

    let e = one_event_from(&events, "127.6.0.25");
    assert_user(e, "e4001", true);
    assert_decision(e, "allow", "allow", &[]);

    let e = one_event_from(&events, "127.6.0.24");
    assert_user(e, "e4001", false);
    assert_decision(
        e,
        "block",
        "block",
        &[
            "country_not_allowed",
            "outside_home_radius",
            "country_mismatch",
        ],
    );
    assert_eq!(e["message"], format!("{de}{NOT_APPLIED}"));

    let e = one_event_from(&events, "127.6.0.26");
    assert_user(e, "e2001", true);
    assert_decision(
        e,
        "block",
        "block",
        &[
            "country_not_allowed",
            "outside_home_radius",
            "country_mismatch",
        ],
    );
    assert_eq!(e["message"], de);
}

// ---------------------------------------------------------------------------------------------
// 8. Unknown employees, 9. the home radius, and configurable rules
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_identities_are_flagged_and_distance_from_home_is_measured_in_km() {
    let s = Setup::new("2026-12-20", "2027-01-03", "").await;
    assert_eq!(
        s.get_as("127.1.0.31", Some(("mallory", VERIFIED))).await,
        UPSTREAM_STATUS
    );
    assert_eq!(
        s.get_as("127.1.0.32", Some(("mallory@example.com", UNVERIFIED)))
            .await,
        UPSTREAM_STATUS
    );
    assert_eq!(s.get_as("127.1.0.33", None).await, UPSTREAM_STATUS);
    assert_eq!(
        s.get_as("127.4.0.41", Some(("bob@example.com", VERIFIED)))
            .await,
        UPSTREAM_STATUS
    );
    assert_eq!(
        s.get_as("127.1.0.42", Some(("bob", VERIFIED))).await,
        UPSTREAM_STATUS
    );
    let (events, _) = s.events().await;

    let e = one_event_from(&events, "127.1.0.31");
    assert_user(e, "mallory", true);
    assert_decision(e, "flag", "flag", &["unknown_employee"]);
    assert_eq!(
        e["message"],
        "identity `mallory` is not in the employee directory"
    );

    let e = one_event_from(&events, "127.1.0.32");
    assert_user(e, "mallory@example.com", false);
    assert_decision(e, "flag", "flag", &["unknown_employee"]);

    // No identity at all is not an unknown employee: the global rules alone decide.
    let e = one_event_from(&events, "127.1.0.33");
    assert!(e["user"].is_null(), "{e:#}");
    assert_decision(e, "allow", "allow", &[]);

    // bob (Austin, 150 km) seen in Seattle: 2,848 km away, and another region.
    let e = one_event_from(&events, "127.4.0.41");
    assert_user(e, "e2001", true);
    assert_eq!(e["locgate"]["identity"]["presented"], "bob@example.com");
    // A domestic trip is a note: residence_mismatch (history) judges the pattern.
    assert_decision(
        e,
        "note",
        "note",
        &["outside_home_radius", "region_mismatch"],
    );
    assert_eq!(
        e["message"],
        "observed Seattle, US, 2,848 km from declared home Austin, US (radius 150 km, location \
         accurate to 20 km); observed region Washington, US, not the declared home region Texas"
    );

    // At home: 0.4 km from the declared coordinates.
    let e = one_event_from(&events, "127.1.0.42");
    assert_user(e, "e2001", true);
    assert_decision(e, "allow", "allow", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_employee_rules_can_block_or_be_switched_off() {
    let s = Setup::new(
        "2026-12-20",
        "2027-01-03",
        "country_mismatch = \"block\"\nunknown_employee = \"allow\"\nregion_mismatch = \"allow\"",
    )
    .await;
    assert_eq!(
        s.get_as("127.5.0.51", Some(("bob", VERIFIED))).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.get_as("127.1.0.52", Some(("mallory", VERIFIED))).await,
        UPSTREAM_STATUS
    );
    assert_eq!(
        s.get_as("127.4.0.53", Some(("bob", VERIFIED))).await,
        UPSTREAM_STATUS
    );
    let (events, up) = s.events().await;
    assert_eq!(up.seen().len(), 2);

    let e = one_event_from(&events, "127.5.0.51");
    assert_user(e, "e2001", true);
    // Sorted strongest first.
    assert_decision(
        e,
        "block",
        "block",
        &["country_mismatch", "outside_home_radius"],
    );
    let e = one_event_from(&events, "127.1.0.52");
    assert_user(e, "mallory", true);
    assert_decision(e, "allow", "allow", &[]);
    let e = one_event_from(&events, "127.4.0.53");
    assert_decision(e, "note", "note", &["outside_home_radius"]);
}

// ---------------------------------------------------------------------------------------------
// 10. Directory validation
// ---------------------------------------------------------------------------------------------

/// Writes a config naming `file` (with `text`) and runs `locgate validate -c` on it.
fn validate_directory(file: &str, text: &str) -> (BinOut, String) {
    let fx = Fixture::new();
    let dir = fx.write(file, text);
    let config = fx.write(
        "locgate.toml",
        &fx.config_text_with("", &employees_section(file)),
    );
    let out = locgate_bin(&["validate", "-c", config.to_str().unwrap()]);
    (out, dir.display().to_string())
}

/// An HR export as it comes: its own header names, mapped in the config, and columns the
/// directory has no field for, which are ignored and named once, where `validate` prints
/// warnings (and the start-up log and `/readyz`).
#[test]
fn validate_reads_an_hr_export_through_a_column_mapping_and_names_what_it_ignores() {
    let fx = Fixture::new();
    fx.write(
        "hr.csv",
        "Employee ID,Work Email,Country,Department,contry_code\n1042,alice@example.com,US,Sales,US\n",
    );
    let config = fx.write(
        "locgate.toml",
        &fx.config_text_with(
            "",
            "[employees]\nfile = \"hr.csv\"\ncolumns = { id = \"Employee ID\", aliases = \"Work Email\" }\n",
        ),
    );
    let out = locgate_bin(&["validate", "-c", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("columns ignored"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", out.stderr);
    assert!(
        warnings[0].contains("Department, contry_code"),
        "{}",
        out.stderr
    );
    let check = locgate_bin(&[
        "check",
        "-c",
        config.to_str().unwrap(),
        "--json",
        "--employee",
        "alice@example.com",
        US_CLIENT,
    ]);
    assert!(check.judged(), "{}", check.stderr);
    assert_eq!(check.json_lines()[0]["user"]["id"], "1042");
    // A mapping naming a field that does not exist stops the config where it is written.
    let bad = fx.write(
        "bad.toml",
        &fx.config_text_with(
            "",
            "[employees]\nfile = \"hr.csv\"\ncolumns = { ID = \"Employee ID\" }\n",
        ),
    );
    let out = locgate_bin(&["validate", "-c", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("`ID` is not a directory field"),
        "{}",
        out.stderr
    );
}

#[test]
fn validate_points_at_the_line_and_field_of_a_bad_directory() {
    let alice =
        "[[employee]]\nid = \"e1\"\naliases = [\"alice@example.com\"]\ncountry = \"US\"\n\n";
    let cases: [(&str, String, &str); 6] = [
        (
            "employees.toml",
            format!(
                "{alice}[[employee]]\nid = \"e2\"\naliases = [\"bob\", \"Alice@Example.com\"]\ncountry = \"US\"\n"
            ),
            ":8: employee[1].aliases: `Alice@Example.com` is already used by employee `e1` \
             (line 2); ids and aliases must be unique, ignoring case",
        ),
        (
            "employees.toml",
            format!("{alice}[[employee]]\nid = \"e2\"\ncountry = \"UK\"\n"),
            ":8: employee[1].country: `UK` is not an assigned ISO 3166-1 country code \
             (the United Kingdom is GB)",
        ),
        (
            "employees.toml",
            format!(
                "{alice}[[employee]]\nid = \"e2\"\ncountry = \"US\"\nlat = 95.0\nlon = -97.7\n"
            ),
            ":9: employee[1].lat: 95 is not a latitude (-90..90)",
        ),
        (
            "employees.toml",
            format!(
                "{alice}[[employee]]\nid = \"e2\"\ncountry = \"US\"\n\
                 travel = [{{ from = 2026-12-20, to = 2026-12-01, countries = [\"MX\"] }}]\n"
            ),
            ":9: employee[1].travel[0].to: `to` (2026-12-01) is before `from` (2026-12-20)",
        ),
        (
            "employees.csv",
            "id,contry\ne1,US\n".to_string(),
            ":1: country: required column is missing from the header row (the header's other \
             columns: contry; map one with [employees] columns = { country = \"...\" })",
        ),
        (
            "employees.csv",
            "id,aliases,country,lat,lon\ne1,alice,US,30.2,-97.7\ne2,bob,US,30.2,-197.7\n"
                .to_string(),
            ":3: lon: -197.7 is not a longitude (-180..180)",
        ),
    ];
    for (file, text, want) in cases {
        let (out, path) = validate_directory(file, &text);
        assert_eq!(out.status.code(), Some(1), "{text}\nstdout: {}", out.stdout);
        let want = format!("{path}{want}");
        assert!(
            out.stderr.lines().any(|l| l == want),
            "expected the line\n{want}\nin stderr:\n{}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }

    // The shared directory itself is valid, in both forms the examples show.
    let (out, _) = validate_directory(
        "employees.toml",
        &employees_toml("2026-12-20", "2027-01-03"),
    );
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout.contains("configuration is valid"),
        "{}",
        out.stdout
    );
    for example in ["employees.example.toml", "employees.example.csv"] {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/employees")
                .join(example),
        )
        .unwrap();
        let (out, _) = validate_directory(example, &text);
        assert!(out.status.success(), "{example}: {}", out.stderr);
    }
}
