//! The `locgate` binary as an operator uses it: `check`, `validate`, `--version`, and `run`
//! stopped by SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;

const BIN: &str = env!("CARGO_BIN_EXE_locgate");

/// Runs `locgate args...` to completion (the shared runner in `common`, killed after 20 s).
fn locgate(args: &[&str]) -> BinOut {
    locgate_bin(args)
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

#[test]
fn check_explains_addresses_with_the_embedded_data() {
    let out = locgate(&["check", "--json", "175.45.176.1", "8.8.8.8", "52.94.76.1"]);
    // The strictest verdict is the exit status: a sanctioned country is a block, which the
    // embedded default config (monitor mode) carries out as a flag (3).
    assert_eq!(out.status.code(), Some(3), "{}", out.stderr);
    let events = json_lines(&out.stdout);
    assert_eq!(events.len(), 3, "{}", out.stdout);

    let kp = &events[0];
    assert_eq!(kp["source"]["ip"], "175.45.176.1");
    assert_eq!(kp["source"]["geo"]["country_iso_code"], "KP");
    assert!(
        reasons(kp).iter().any(|r| r == "sanctioned_country"),
        "{kp}"
    );
    assert_eq!(kp["locgate"]["verdict"], "block");

    let google = &events[1];
    assert_eq!(google["source"]["geo"]["country_iso_code"], "US");
    assert_eq!(google["source"]["as"]["number"], 15169);

    let aws = &events[2];
    assert_eq!(aws["source"]["as"]["number"], 16509);
    assert_eq!(aws["locgate"]["anonymizer"]["hosting_provider"], true);
    assert!(
        reasons(aws).iter().any(|r| r == "hosting_provider"),
        "{aws}"
    );

    // Every event names the data it was decided on.
    for e in &events {
        let data = e["locgate"]["data"].as_array().expect("data");
        assert!(
            data.iter().any(|d| d["source"]
                .as_str()
                .unwrap_or_default()
                .starts_with("embedded:")),
            "{e}"
        );
    }
}

#[test]
fn check_in_enforce_mode_blocks_and_explains_in_words() {
    let out = locgate(&["check", "--json", "--mode", "enforce", "175.45.176.1"]);
    assert_eq!(out.status.code(), Some(4), "{}", out.stderr);
    let e = &json_lines(&out.stdout)[0];
    assert_eq!(e["event"]["action"], "block");
    assert_eq!(e["locgate"]["mode"], "enforce");

    let out = locgate(&["check", "--mode", "monitor", "175.45.176.1"]);
    // Monitor mode carries a block out as a flag: 3.
    assert_eq!(out.status.code(), Some(3), "{}", out.stderr);
    assert!(out.stdout.contains("North Korea"), "{}", out.stdout);
    assert!(out.stdout.contains("sanctioned_country"), "{}", out.stdout);
    assert!(out.stdout.contains("monitor"), "{}", out.stdout);
}

/// A script can branch on `check`: the strictest verdict is the exit status.
#[test]
fn check_exits_with_the_strictest_verdict() {
    let fx = Fixture::new();
    let cfg = fx.dir.path().join("c.toml");
    std::fs::write(&cfg, fx.config_text(&listener("app", "builtin:whoami", ""))).unwrap();
    let cfg = cfg.to_str().unwrap();
    let code = |ips: &[&str]| {
        let mut args = vec!["check", "-c", cfg, "--mode", "enforce"];
        args.extend_from_slice(ips);
        let out = locgate(&args);
        (out.status.code(), out.stderr)
    };
    assert_eq!(code(&[US_CLIENT]).0, Some(0), "allow");
    assert_eq!(code(&[US_CLIENT, AWS_CLIENT]).0, Some(3), "hosting: flag");
    assert_eq!(
        code(&[AWS_CLIENT, KP_CLIENT, US_CLIENT]).0,
        Some(4),
        "sanctioned: block"
    );
    assert_eq!(code(&[US_CLIENT, "nowhere"]).0, Some(2), "a bad argument");
    let (status, err) = code_missing_config();
    assert_eq!(status, Some(1), "{err}");
}

fn code_missing_config() -> (Option<i32>, String) {
    let out = locgate(&["check", "-c", "/nonexistent/locgate.toml", US_CLIENT]);
    (out.status.code(), out.stderr)
}

#[test]
fn check_refuses_what_is_not_an_address() {
    let out = locgate(&["check", "not-an-ip"]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("not-an-ip"), "{}", out.stderr);
    assert!(out.stderr.contains("not an IP address"), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

#[test]
fn check_uses_the_databases_a_config_names() {
    let fx = Fixture::new();
    let cfg = fx.dir.path().join("locgate.toml");
    std::fs::write(
        &cfg,
        fx.config_text(&listener("app", "builtin:whoami", "mode = \"enforce\"")),
    )
    .unwrap();
    let out = locgate(&[
        "check",
        "--json",
        "-c",
        cfg.to_str().unwrap(),
        US_CLIENT,
        KP_CLIENT,
        "::1",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", out.stderr);
    let events = json_lines(&out.stdout);
    assert_eq!(events[0]["source"]["geo"]["city_name"], "Austin");
    assert_eq!(events[0]["event"]["action"], "allow");
    assert_eq!(events[1]["source"]["geo"]["country_iso_code"], "KP");
    assert_eq!(
        events[1]["event"]["action"], "block",
        "mode of the first listener"
    );
    assert_eq!(events[2]["source"]["geo"]["country_iso_code"], "CA");
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn validate_accepts_a_good_config() {
    let fx = Fixture::new();
    let cfg = write(
        fx.dir.path(),
        "good.toml",
        &fx.config_text(&listener("app", "http://127.0.0.1:9", "mode = \"enforce\"")),
    );
    let out = locgate(&["validate", "-c", &cfg]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("valid"), "{}", out.stdout);
}

/// The example config validates in a clean checkout, as the guide has the operator run it:
/// its employee directory is named relatively (`deploy/employees.csv` here,
/// `/etc/locgate/employees.csv` installed) and its data directory is the one `[update]` fills.
#[test]
fn validate_accepts_the_example_sso_config_in_a_checkout() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/locgate-sso.toml");
    let out = locgate(&["validate", "-c", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout.contains("configuration is valid (1 listener)"),
        "{}",
        out.stdout
    );
    if !Path::new("/var/lib/locgate").exists() {
        assert!(
            out.stderr.contains("/var/lib/locgate does not exist yet"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn validate_warns_of_an_unreachable_redis_without_showing_its_password() {
    let fx = Fixture::new();
    let cfg = write(
        fx.dir.path(),
        "fleet.toml",
        &fx.config_text_with(
            &listener("app", "http://127.0.0.1:9", ""),
            &format!(
                "[history]\nredis = \"redis://:s3cret-pw@{}\"\nredis_timeout = \"300ms\"\n",
                closed_port()
            ),
        ),
    );
    let out = locgate(&["validate", "-c", &cfg]);
    assert!(
        out.status.success(),
        "an absent Redis is no reason to refuse: {}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("warning: [history] redis at 127.255.255.254:9"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("s3cret-pw") && !out.stdout.contains("s3cret-pw"));
}

#[test]
fn validate_points_at_the_line_and_field_of_a_mistake() {
    let fx = Fixture::new();
    let text = fx.config_text(&listener("app", "builtin:whoami", "mode = \"enforc\""));
    let line = text
        .lines()
        .position(|l| l.contains("enforc"))
        .expect("mode line")
        + 1;
    let cfg = write(fx.dir.path(), "typo.toml", &text);
    let out = locgate(&["validate", "-c", &cfg]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    let prefix = format!("{cfg}:{line}: listener[0].mode:");
    assert!(
        out.stderr.starts_with(&prefix),
        "stderr {:?} does not start with {prefix:?}",
        out.stderr
    );
}

#[test]
fn validate_names_a_missing_database() {
    let fx = Fixture::new();
    let missing = fx.dir.path().join("no-such-city.mmdb");
    let text = fx
        .config_text(&listener("app", "builtin:whoami", ""))
        .replace(&toml_str(&fx.city_db), &toml_str(&missing));
    let cfg = write(fx.dir.path(), "missing.toml", &text);
    let out = locgate(&["validate", "-c", &cfg]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&missing.display().to_string()),
        "{}",
        out.stderr
    );
}

#[test]
fn validate_names_a_corrupt_database() {
    let fx = Fixture::new();
    std::fs::write(&fx.asn_db, pattern(4096, 99)).unwrap();
    let cfg = write(
        fx.dir.path(),
        "corrupt.toml",
        &fx.config_text(&listener("app", "builtin:whoami", "")),
    );
    let out = locgate(&["validate", "-c", &cfg]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&fx.asn_db.display().to_string()),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn version_lists_the_embedded_data() {
    let out = locgate(&["--version"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with(&format!("locgate {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        out.stdout
    );
    for name in [
        "embedded:city.mmdb",
        "embedded:country.mmdb",
        "embedded:asn.mmdb",
        "embedded:asn-categories.csv",
    ] {
        let line = out
            .stdout
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} missing from {}", out.stdout));
        assert!(line.contains("built 20"), "{line}");
    }
}

/// Removes terminal colour sequences (`ESC [ ... m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_then_drains_and_exits_cleanly_on_sigterm() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let cfg = write(
        fx.dir.path(),
        "run.toml",
        &fx.config_text(&listener("edge", &up.url(), "mode = \"enforce\"")),
    );
    let mut child = Command::new(BIN)
        .args(["run", "-c", &cfg])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn locgate run");
    let stderr = child.stderr.take().unwrap();
    let mut guard = Guard(Some(child));
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(strip_ansi(&line)).is_err() {
                break;
            }
        }
    });

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut log = Vec::new();
    let addr: SocketAddr = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no `listening` line within 10 s; log: {log:#?}"));
        log.push(line.clone());
        if line.contains("listening")
            && let Some(at) = line.find("addr=")
        {
            let value = line[at + 5..].split_whitespace().next().unwrap_or_default();
            break value
                .parse()
                .unwrap_or_else(|e| panic!("bad addr in {line:?}: {e}"));
        }
    };
    assert!(line_has(&log, "edge"), "{log:#?}");

    let (parts, body) = get(KP_CLIENT, addr, "/via-binary", &[]).await;
    assert_eq!(parts.status, StatusCode::FORBIDDEN);
    let id = html_reference(&body);
    let (parts, _) = get(US_CLIENT, addr, "/via-binary", &[]).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);

    let pid = guard.0.as_ref().unwrap().id().to_string();
    // `locgate run` logs `listening` (and serves) before it installs its SIGTERM handler, so a
    // SIGTERM sent in that window kills it with the default action, undrained. Wait until the
    // handler is in place (Linux: SigCgt in /proc) so the test checks the drain, not the race.
    wait_for_sigterm_handler(&pid);
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = guard.0.as_mut().unwrap().try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "locgate did not exit within 10 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    guard.0 = None;
    assert!(status.success(), "exit status {status:?}");

    let events = read_events(&fx.events);
    let e = event_with_id(&events, &id);
    assert_eq!(e["event"]["action"], "block");
    assert_eq!(e["source"]["ip"], KP_CLIENT);
    assert_eq!(e["url"]["path"], "/via-binary");
    assert_eq!(e["locgate"]["listener"], "edge");
    let allowed = events_from(&events, US_CLIENT);
    assert_eq!(allowed.len(), 1, "{events:#?}");
    assert_eq!(allowed[0]["http"]["response"]["status_code"], 201);
    // The rest of the log says it drained and stopped.
    let until = Instant::now() + Duration::from_secs(5);
    let mut rest = Vec::new();
    while let Ok(line) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
        rest.push(line);
    }
    assert!(line_has(&rest, "stopped"), "{rest:#?}");
}

fn line_has(lines: &[String], word: &str) -> bool {
    lines.iter().any(|l| l.contains(word))
}

/// Waits (at most 5 s) until process `pid` catches SIGTERM.
fn wait_for_sigterm_handler(pid: &str) {
    let status = format!("/proc/{pid}/status");
    if std::fs::metadata(&status).is_err() {
        std::thread::sleep(Duration::from_millis(500));
        return;
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let caught = std::fs::read_to_string(&status)
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("SigCgt:"))
                    .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            })
            .unwrap_or(0);
        if caught & (1 << (15 - 1)) != 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("locgate never installed a SIGTERM handler");
}

/// `locgate check --json ... | head -1`: the reader leaving early ends `check` quietly.
#[test]
fn check_into_a_closed_pipe_ends_quietly() {
    let ips: Vec<String> = (1..=2000)
        .map(|i| format!("8.8.{}.{}", i / 250, i % 250))
        .collect();
    let mut child = Command::new(BIN)
        .arg("check")
        .arg("--json")
        .args(&ips)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
