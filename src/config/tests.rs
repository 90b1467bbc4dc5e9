//! Config parsing: what operators write, and what they are told when it is wrong.

use std::path::PathBuf;

use super::*;
use crate::country::CountryCode;
use crate::intel::{Category, ListCategory};
use crate::policy::Mode;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "test.toml", Path::new("/etc/locgate"))
}

const GOOD: &str = r#"
[[listener]]
name = "sso"
bind = "127.0.0.1:8443"
upstream = "http://127.0.0.1:9000"
mode = "enforce"
trusted_proxies = ["127.0.0.1/32"]
annotate = true
[data]
dir = "data"
[policy]
sanctioned_countries = ["KP", "IR", "CU", "SY"]
deny_countries = ["RU"]
allow_countries = []
block_anonymizers = ["tor_exit"]
flag_anonymizers = ["anonymous_vpn", "hosting_provider", "public_proxy", "residential_proxy"]
allow_networks = ["198.51.100.0/24"]
unknown_location = "flag"
[events]
jsonl = "locgate-events.jsonl"
[runtime]
worker_threads = 1
"#;

#[test]
fn the_documented_example_parses() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.listeners.len(), 1);
    let l = &c.listeners[0];
    assert_eq!(
        (l.name.as_str(), l.mode, l.annotate),
        ("sso", Mode::Enforce, true)
    );
    assert_eq!(c.runtime.worker_threads, Some(1));
    assert_eq!(
        c.events.jsonl,
        Some(PathBuf::from("/etc/locgate/locgate-events.jsonl"))
    );
    assert!(c.policy.deny.contains(CountryCode::parse("RU").unwrap()));
    assert!(
        c.policy
            .allow_networks
            .lookup("198.51.100.7".parse().unwrap())
            .trusted
    );
}

#[test]
fn embedded_default_parses_and_is_monitor_on_loopback() {
    let c = Config::embedded_default().unwrap();
    let l = &c.listeners[0];
    assert_eq!(l.mode, Mode::Monitor);
    assert!(l.bind.ip().is_loopback());
    assert_eq!(l.upstream, Upstream::Whoami);
}

fn err_of(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn bad_mode_names_line_and_field() {
    let e = err_of(
        "[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:1\"\nupstream = \"builtin:whoami\"\nmode = \"enforc\"\n",
    );
    assert!(e.starts_with("test.toml:5: listener[0].mode: "), "{e}");
    assert!(e.contains("enforce"), "{e}");
}

#[test]
fn unknown_field_is_an_error() {
    let e = err_of("[policy]\nsanctioned = [\"KP\"]\n");
    assert!(e.starts_with("test.toml:2: policy.sanctioned: "), "{e}");
}

#[test]
fn bad_country_code_is_explained() {
    let e = err_of("[policy]\ndeny_countries = [\"UK\"]\n");
    assert!(
        e.contains("test.toml:2: policy.deny_countries:") && e.contains("GB"),
        "{e}"
    );
}

#[test]
fn bad_cidr_in_second_listener() {
    let text = "[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:1\"\nupstream = \"builtin:whoami\"\n\
                [[listener]]\nname = \"b\"\nbind = \"127.0.0.1:2\"\nupstream = \"builtin:whoami\"\ntrusted_proxies = [\"10.0.0.0/40\"]\n";
    let e = err_of(text);
    assert!(
        e.starts_with("test.toml:9: listener[1].trusted_proxies: "),
        "{e}"
    );
}

#[test]
fn duplicate_listener_names_are_refused() {
    let text = "[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:1\"\nupstream = \"builtin:whoami\"\n\
                [[listener]]\nname = \"a\"\nbind = \"127.0.0.1:2\"\nupstream = \"builtin:whoami\"\n";
    let e = err_of(text);
    assert!(
        e.starts_with("test.toml:6: listener[1].name: ") && e.contains("twice"),
        "{e}"
    );
}

#[test]
fn category_in_both_lists_is_refused() {
    let e =
        err_of("[policy]\nblock_anonymizers = [\"tor_exit\"]\nflag_anonymizers = [\"tor_exit\"]\n");
    assert!(
        e.starts_with("test.toml:3: policy.flag_anonymizers: "),
        "{e}"
    );
}

#[test]
fn missing_required_field_points_at_table() {
    let e = err_of("[[listener]]\nname = \"a\"\nupstream = \"builtin:whoami\"\n");
    assert!(e.contains("test.toml:1:") && e.contains("bind"), "{e}");
}

#[test]
fn syntax_error_has_a_line() {
    let e = err_of("[policy\n");
    assert!(e.starts_with("test.toml:1"), "{e}");
}

#[test]
fn empty_file_is_an_error() {
    assert_eq!(err_of("  \n"), "test.toml: config file is empty");
}

#[test]
fn zero_workers_is_refused() {
    let e = err_of("[runtime]\nworker_threads = 0\n");
    assert!(
        e.starts_with("test.toml:2: runtime.worker_threads: "),
        "{e}"
    );
}

#[test]
fn bad_duration_and_upstream() {
    let e = err_of("[events]\nallow_log_interval = \"10\"\n");
    assert!(
        e.contains("events.allow_log_interval") && e.contains("no unit"),
        "{e}"
    );
    let e = err_of("[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:1\"\nupstream = \"ftp://x\"\n");
    assert!(e.starts_with("test.toml:4: listener[0].upstream: "), "{e}");
}

#[test]
fn data_paths_resolve_against_config_dir_and_lists_carry_categories() {
    let c = parse("[data]\ncountry_db = \"geo/GeoLite2-Country.mmdb\"\nlists = [{ path = \"tor.txt\", category = \"tor_exit\" }]\n").unwrap();
    assert_eq!(
        c.data.mmdb,
        vec![PathBuf::from("/etc/locgate/geo/GeoLite2-Country.mmdb")]
    );
    assert_eq!(
        c.data.lists[0].1,
        ListCategory::Anonymizer(Category::TorExit)
    );
    assert!(c.data.embedded_mmdb);
    let e = err_of("[data]\nlists = [{ path = \"x\", category = \"cafe\" }]\n");
    assert!(e.contains("data.lists") && e.contains("cafe"), "{e}");
}

/// A pass-through listener with one `[[listener.vpn]]` whose body is `vpn`.
fn with_vpn(vpn: &str) -> String {
    format!(
        "[[listener]]\nname = \"ovpn\"\nbind = \"127.0.0.1:1194\"\nupstream = \"127.0.0.1:11194\"\nkind = \"udp\"\n\n[[listener.vpn]]\n{vpn}\n"
    )
}

#[test]
fn vpn_sources_are_checked_where_they_are_written() {
    let c = parse(&with_vpn(
        "kind = \"openvpn\"\nmanagement = \"127.0.0.1:7505\"",
    ))
    .unwrap();
    let v = &c.listeners[0].vpn[0];
    assert_eq!((v.name.as_str(), v.verified), ("ovpn/openvpn", true));
    assert_eq!(v.poll, std::time::Duration::from_secs(2));
    // A field of another kind is a mistake, not ignored.
    let e = err_of(&with_vpn(
        "kind = \"openvpn\"\nmanagement = \"127.0.0.1:7505\"\nfile = \"x.log\"",
    ));
    assert!(e.contains("not a setting of kind = \"openvpn\""), "{e}");
    let e = err_of(&with_vpn(
        "kind = \"openvpn\"\nmanagement = \"vpn.example.com:7505\"",
    ));
    assert!(e.starts_with("test.toml:9: "), "{e}");
    let e = err_of(&with_vpn(
        "kind = \"log\"\nfile = \"a.log\"\npattern = 'user (?P<user>\\S+)'",
    ));
    assert!(e.contains("needs a named capture `(?P<ip>...)`"), "{e}");
    let e = err_of(&with_vpn("kind = \"wireguard\"\nuser = \"common_name\""));
    assert!(
        e.contains("vpn.user: not a setting of kind = \"wireguard\""),
        "{e}"
    );
    let e = err_of(&with_vpn(
        "kind = \"log\"\nfile = \"a.log\"\npattern = '(?P<user>u)(?P<ip>i)'\npoll = \"1s\"",
    ));
    assert!(
        e.contains("vpn.poll: not a setting of kind = \"log\""),
        "{e}"
    );
    let e = err_of(&with_vpn("kind = \"ipsec\"\nfile = \"a.log\""));
    assert!(e.contains("is not one of openvpn, wireguard, log"), "{e}");
    let e = err_of(&with_vpn("kind = \"wireguard\"\npoll = \"10ms\""));
    assert!(e.contains("between 100ms and 5m"), "{e}");
    // On an HTTP listener there is no tunnel to name.
    let e = err_of(&with_vpn("kind = \"wireguard\"").replace("kind = \"udp\"\n", ""));
    assert!(e.contains("vpn"), "{e}");
}

#[test]
fn log_sources_only_tighten_unless_vouched_for_and_never_from_the_network() {
    let log = "kind = \"log\"\npattern = 'u=(?P<user>\\S+) ip=(?P<ip>\\S+)'\n";
    let c = parse(&with_vpn(&format!("{log}file = \"/var/log/vpn.log\""))).unwrap();
    assert!(
        !c.listeners[0].vpn[0].verified,
        "text is not proof by default"
    );
    let c = parse(&with_vpn(&format!(
        "{log}syslog = \"127.0.0.1:5514\"\nverified = true"
    )))
    .unwrap();
    assert!(c.listeners[0].vpn[0].verified);
    let e = err_of(&with_vpn(&format!(
        "{log}syslog = \"0.0.0.0:5514\"\nverified = true"
    )));
    assert!(e.contains("cannot be verified"), "{e}");
    let e = err_of(&with_vpn(
        "kind = \"openvpn\"\nmanagement = \"/run/ovpn.sock\"\nverified = false",
    ));
    assert!(e.contains("vpn.verified: not a setting"), "{e}");
}
