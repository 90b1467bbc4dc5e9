//! Every kind of event locgate writes, checked against the ECS 8.x field reference
//! (`tests/fixtures/ecs/fields.json`, derived from Elastic's published `ecs_flat`): each field
//! outside `locgate.*` must be an ECS field with a value of the field's ECS type, and the four
//! categorization fields must hold ECS's allowed values, each `event.type` one that one of the
//! event's categories expects. This is what makes the events land in Elastic Security, Splunk
//! ES or Sentinel's ECS content without mapping work.
//!
//! The events come from the real server on loopback (HTTP allow, flag, block, a failed
//! upstream, an unreadable request, verified and claimed identities, a TCP tunnel's connect
//! and close, a UDP flow's) and from the real binary (`check --json`, `replay`).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use common::*;
use serde_json::Value as Json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The trimmed reference.
struct Reference {
    version: String,
    fields: HashMap<String, String>,
    kinds: Vec<String>,
    categories: HashMap<String, Vec<String>>,
    types: Vec<String>,
    outcomes: Vec<String>,
}

fn reference() -> Reference {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ecs/fields.json"
    );
    let text = std::fs::read_to_string(path).expect("ECS reference");
    let v: Json = serde_json::from_str(&text).expect("reference is JSON");
    let strings = |v: &Json| -> Vec<String> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|s| s.as_str().expect("string").to_owned())
            .collect()
    };
    Reference {
        version: v["ecs_version"].as_str().expect("version").to_owned(),
        fields: v["fields"]
            .as_object()
            .expect("fields")
            .iter()
            .map(|(k, t)| (k.clone(), t.as_str().expect("type").to_owned()))
            .collect(),
        kinds: strings(&v["allowed"]["event.kind"]),
        categories: v["allowed"]["event.category"]
            .as_object()
            .expect("categories")
            .iter()
            .map(|(k, t)| (k.clone(), strings(t)))
            .collect(),
        types: strings(&v["allowed"]["event.type"]),
        outcomes: strings(&v["allowed"]["event.outcome"]),
    }
}

/// The event's leaves as `(dotted.name, value)`; a `{lat, lon}` object is one `geo_point` leaf,
/// arrays are one leaf (ECS fields may hold arrays of their type).
fn flatten(v: &Json, name: &str, out: &mut Vec<(String, Json)>) {
    match v {
        Json::Object(m) if !(m.len() == 2 && m.contains_key("lat") && m.contains_key("lon")) => {
            for (k, child) in m {
                let n = if name.is_empty() {
                    k.clone()
                } else {
                    format!("{name}.{k}")
                };
                flatten(child, &n, out);
            }
        }
        leaf => out.push((name.to_owned(), leaf.clone())),
    }
}

/// Whether `v` is a value of ECS type `ty`.
fn compatible(ty: &str, v: &Json) -> bool {
    if let Json::Array(items) = v {
        // An empty array is no value, as Elasticsearch indexes it.
        return items.iter().all(|i| compatible(ty, i));
    }
    match ty {
        "keyword" | "constant_keyword" | "wildcard" | "match_only_text" | "text" => v.is_string(),
        "long" | "integer" | "short" | "byte" | "unsigned_long" => v.is_u64() || v.is_i64(),
        "float" | "double" | "scaled_float" | "half_float" => v.is_number(),
        "boolean" => v.is_boolean(),
        "ip" => v.as_str().is_some_and(|s| s.parse::<IpAddr>().is_ok()),
        "date" => v
            .as_str()
            .is_some_and(|s| s.parse::<jiff::Timestamp>().is_ok()),
        "geo_point" => v["lat"].is_number() && v["lon"].is_number(),
        _ => false,
    }
}

/// Everything wrong with one event, as sentences; empty when it is clean ECS.
fn problems(e: &Json, r: &Reference) -> Vec<String> {
    let mut out = Vec::new();
    let mut leaves = Vec::new();
    flatten(e, "", &mut leaves);
    for (name, value) in &leaves {
        if name.starts_with("locgate.") {
            continue;
        }
        match r.fields.get(name) {
            None => out.push(format!("`{name}` is not an ECS field")),
            Some(ty) if !compatible(ty, value) => {
                out.push(format!("`{name}` = {value} is not of ECS type {ty}"))
            }
            Some(_) => {}
        }
    }
    for required in [
        "@timestamp",
        "message",
        "ecs.version",
        "event.kind",
        "event.category",
        "event.type",
        "event.outcome",
        "observer.name",
        "observer.hostname",
        "observer.type",
        "observer.vendor",
        "observer.product",
        "observer.version",
        "host.name",
    ] {
        if !leaves.iter().any(|(n, _)| n == required) {
            out.push(format!("`{required}` is missing"));
        }
    }
    if e["ecs"]["version"] != r.version.as_str() {
        out.push(format!("ecs.version is not {}", r.version));
    }
    if e["observer"]["type"] != "proxy" {
        out.push("observer.type is not proxy".into());
    }
    let one = |field: &str, allowed: &[String], out: &mut Vec<String>| {
        let v = &e["event"][field];
        if !v.as_str().is_some_and(|s| allowed.iter().any(|a| a == s)) {
            out.push(format!("event.{field} {v} is not one of {allowed:?}"));
        }
    };
    one("kind", &r.kinds, &mut out);
    one("outcome", &r.outcomes, &mut out);
    let list = |field: &str| -> Vec<String> {
        e["event"][field]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let categories = list("category");
    let types = list("type");
    if categories.is_empty() || types.is_empty() {
        out.push("event.category and event.type must be non-empty arrays".into());
    }
    for c in &categories {
        if !r.categories.contains_key(c) {
            out.push(format!("event.category `{c}` is not an ECS category"));
        }
    }
    for t in &types {
        if !r.types.contains(t) {
            out.push(format!("event.type `{t}` is not an ECS type"));
        } else if !categories.iter().any(|c| {
            r.categories
                .get(c)
                .is_some_and(|expected| expected.contains(t))
        }) {
            out.push(format!(
                "event.type `{t}` is expected by none of the categories {categories:?}"
            ));
        }
    }
    out
}

/// A tiny TCP echo upstream for the pass-through listener.
async fn echo_tcp() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A tiny UDP echo upstream for the flow listener.
async fn echo_udp() -> std::net::SocketAddr {
    let s = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = s.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            let _ = s.send_to(&buf[..n], from).await;
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_kind_is_ecs_with_allowed_categorization() {
    let r = reference();
    let fx = Fixture::new();
    fx.write_standard_directory();
    let up = Upstream::start().await;
    let tcp_up = echo_tcp().await;
    let udp_up = echo_udp().await;
    let listeners = format!(
        "{}{}{}{}",
        listener(
            "web",
            &up.url(),
            "mode = \"enforce\"\ntrusted_proxies = [\"127.0.0.1/32\"]\nidentity_proxies = [\"127.0.0.1/32\"]\n\
             identity = [{ header = \"X-Remote-User\" }, { basic = true }]",
        ),
        listener(
            "down",
            &format!("http://{}", closed_port()),
            "mode = \"enforce\""
        ),
        listener(
            "rdp",
            &tcp_up.to_string(),
            "kind = \"tcp\"\nmode = \"enforce\""
        ),
        listener(
            "wg",
            &udp_up.to_string(),
            "kind = \"udp\"\nmode = \"enforce\"\nidle_timeout = \"1s\"",
        ),
    );
    // `[events]` is the config's last table: the instance name joins it.
    let text = fx.config_text_with(&listeners, &employees_section("employees.toml"))
        + "instance = \"gw-test-1\"\n";
    let running = fx.start_text(&text).await;
    let web = running.addr("web").expect("web");
    let down = running.addr("down").expect("down");
    let rdp = running.addr("rdp").expect("rdp");
    let wg = running.addr("wg").expect("wg");

    // HTTP: allow, flag (hosting), block (sanctioned), a verified and a claimed identity.
    get(US_CLIENT, web, "/", &[]).await;
    get(AWS_CLIENT, web, "/", &[]).await;
    get(KP_CLIENT, web, "/", &[]).await;
    get(
        LOCAL,
        web,
        "/sso",
        &[("x-remote-user", "alice@example.com")],
    )
    .await;
    get(
        SEATTLE_CLIENT,
        web,
        "/basic",
        &[("authorization", &basic_auth("alice", "pw"))],
    )
    .await;
    // An upstream that is down (502), and a request that cannot be read (400).
    get(DE_CLIENT, down, "/", &[]).await;
    raw_exchange(MX_CLIENT, web, b"GARBAGE\r\n\r\n".to_vec()).await;
    // A TCP tunnel, allowed, used and closed; and one blocked.
    // (Other clients than the HTTP allow's: the allow throttle is per client, whatever the
    // listener.)
    let mut c = connect_from("127.1.0.21", rdp).await;
    c.write_all(b"ping").await.expect("write");
    let mut back = [0u8; 4];
    within("echo", c.read_exact(&mut back)).await.expect("echo");
    drop(c);
    let mut blocked = connect_from(KP_CLIENT, rdp).await;
    let _ = within("closed", blocked.read(&mut back)).await;
    // A UDP flow, closed by its idle timeout.
    let u = tokio::net::UdpSocket::bind("127.1.0.22:0")
        .await
        .expect("bind");
    u.send_to(b"ping", wg).await.expect("send");
    let mut buf = [0u8; 16];
    within("udp echo", u.recv_from(&mut buf))
        .await
        .expect("recv");

    let is_udp_close = |e: &Json| {
        e["network"]["transport"] == "udp" && e["locgate"]["tunnel"]["end"] == "idle_timeout"
    };
    let events = fx.events_until(&running, is_udp_close).await;
    running.shutdown().await;

    // The binary: `check --json` and `replay`.
    let config = fx.write(
        "locgate.toml",
        &fx.config_text_with("", &employees_section("employees.toml")),
    );
    let check = locgate_bin(&[
        "check",
        "--json",
        "-c",
        config.to_str().unwrap(),
        KP_CLIENT,
        US_CLIENT,
    ]);
    let signins = fx.write(
        "signins.jsonl",
        &format!(
            "{{\"time\":\"2026-11-25T08:00:00Z\",\"ip\":\"{US_CLIENT}\",\"user\":\"alice\"}}\n"
        ),
    );
    let replay = locgate_bin(&[
        "replay",
        signins.to_str().unwrap(),
        "-c",
        config.to_str().unwrap(),
    ]);
    let mut all: Vec<(String, Json)> = events
        .iter()
        .map(|e| ("server".to_owned(), e.clone()))
        .collect();
    all.extend(
        check
            .json_lines()
            .into_iter()
            .map(|e| ("check".to_owned(), e)),
    );
    all.extend(
        replay
            .json_lines()
            .into_iter()
            .map(|e| ("replay".to_owned(), e)),
    );

    // Each kind is there, so the walk covers it.
    let kinds: BTreeSet<String> = all
        .iter()
        .map(|(from, e)| {
            let transport = e["network"]["transport"].as_str().unwrap_or("");
            let what = if e["locgate"]["tunnel"].is_object() {
                "close"
            } else if e["http"].is_object() {
                "http"
            } else {
                "connect"
            };
            format!(
                "{from} {what} {transport} {}",
                e["event"]["action"].as_str().unwrap_or("")
            )
        })
        .collect();
    for want in [
        "server http tcp allow",
        "server http tcp flag",
        "server http tcp block",
        "server connect tcp allow",
        "server connect tcp block",
        "server close tcp allow",
        "server connect udp allow",
        "server close udp allow",
        "check connect tcp block",
    ] {
        assert!(kinds.contains(want), "no `{want}` event in {kinds:#?}");
    }
    assert!(kinds.iter().any(|k| k.starts_with("replay ")), "{kinds:#?}");
    assert!(
        events
            .iter()
            .any(|e| e["http"]["response"]["status_code"] == 502)
    );
    assert!(
        events
            .iter()
            .any(|e| e["http"]["response"]["status_code"] == 400)
    );

    let mut bad = Vec::new();
    for (from, e) in &all {
        for p in problems(e, &r) {
            bad.push(format!("{from} {}: {p}", e["event"]["id"]));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));

    // The instance name tells instances apart; identities land in user.id only when verified.
    assert!(events.iter().all(|e| e["observer"]["name"] == "gw-test-1"));
    let sso = events
        .iter()
        .find(|e| e["url"]["path"] == "/sso")
        .expect("sso event");
    assert_eq!(sso["user"]["id"], "e1042", "{sso:#}");
    let basic = events
        .iter()
        .find(|e| e["url"]["path"] == "/basic")
        .expect("basic event");
    assert!(basic["user"]["id"].is_null(), "{basic:#}");
    assert_eq!(basic["user"]["name"], "e1042", "{basic:#}");
    // The tunnel's destination is split as ECS wants it.
    let close = events
        .iter()
        .find(|e| e["network"]["transport"] == "tcp" && e["locgate"]["tunnel"].is_object())
        .expect("tcp close");
    assert_eq!(close["destination"]["address"], tcp_up.ip().to_string());
    assert_eq!(close["destination"]["port"], tcp_up.port());
}

/// The reference itself is what the test trusts: it must know the fields it is asked about.
#[test]
fn the_reference_is_ecs_8() {
    let r = reference();
    assert!(r.version.starts_with("8."), "{}", r.version);
    assert_eq!(r.fields.get("source.ip").map(String::as_str), Some("ip"));
    assert_eq!(
        r.fields.get("source.geo.location").map(String::as_str),
        Some("geo_point")
    );
    assert!(r.categories["network"].iter().any(|t| t == "denied"));
    assert!(r.kinds.iter().any(|k| k == "alert"));
}
