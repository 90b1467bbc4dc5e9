//! Continuous verification of pass-through tunnels (issue 15, point 3): an open TCP tunnel is
//! decided again when a reload brings new data and when a login binds its address; in enforce
//! mode a block closes it, with the new reasons, its bytes and its duration in the close event;
//! monitor mode records and keeps it. Real server, real reload, clients on loopback.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use locgate::config::Config;
use locgate::serve::reload::Reloader;
use serde_json::Value as Json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `msg` and reads it back.
async fn echo(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).await.expect("write");
    let mut buf = vec![0u8; msg.len()];
    within("echo", s.read_exact(&mut buf)).await.expect("read");
    assert_eq!(buf, msg);
}

/// Whether the gateway closes `s` within a few seconds.
async fn closed_by_gateway(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

async fn reload(r: &Arc<Reloader>) {
    let r = r.clone();
    tokio::task::spawn_blocking(move || r.reload_now("test"))
        .await
        .expect("reload task")
        .expect("reload succeeds");
}

fn from(events: &[Json], ip: &str) -> Vec<Json> {
    events
        .iter()
        .filter(|e| e["source"]["ip"] == ip && e["http"].is_null())
        .cloned()
        .collect()
}

async fn udp_echo_upstream() -> SocketAddr {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = sock.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let _ = sock.send_to(&buf[..n], from).await;
        }
    });
    addr
}

/// A gateway with one pass-through listener (`kind`, `mode`) and a Tor exit list, and its
/// reloader.
async fn gateway(
    kind: &str,
    mode: &str,
) -> (Fixture, locgate::serve::Running, Arc<Reloader>, SocketAddr) {
    let fx = Fixture::new();
    let upstream = if kind == "udp" {
        udp_echo_upstream().await
    } else {
        tcp_echo_upstream().await
    };
    fx.write("tor.txt", "# an exit elsewhere\n203.0.113.99\n");
    let text = fx.config_text(&listener(
        "vpn",
        &upstream.to_string(),
        &format!("kind = \"{kind}\"\nmode = \"{mode}\""),
    ));
    let text = text.replace(
        "embedded = false\n",
        "embedded = false\nlists = [{ path = \"tor.txt\", category = \"tor_exit\" }]\n",
    );
    let path = fx.write("locgate.toml", &text);
    let running = within(
        "start",
        locgate::serve::start(Config::load(&path).expect("config")),
    )
    .await
    .expect("starts");
    let reloader = Arc::new(
        Reloader::new(
            Some(path.clone()),
            &Config::load(&path).expect("config"),
            running.shared.clone(),
        )
        .with_listeners(running.listeners.clone()),
    );
    let vpn = running.addr("vpn").expect("vpn");
    (fx, running, reloader, vpn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_tunnel_whose_address_becomes_a_tor_exit_is_closed_with_an_event() {
    let (fx, running, reloader, vpn) = gateway("tcp", "enforce").await;
    let client = "127.1.0.70";
    let mut tunnel = connect_from(client, vpn).await;
    echo(&mut tunnel, b"before the update").await;
    // Another client's tunnel is not touched by the update.
    let mut other = connect_from("127.1.0.71", vpn).await;
    echo(&mut other, b"bystander").await;

    fx.write("tor.txt", "127.1.0.70\n");
    reload(&reloader).await;
    assert!(
        closed_by_gateway(&mut tunnel).await,
        "the tunnel stayed open"
    );
    echo(&mut other, b"still here").await;

    let events = fx.events(&running).await;
    let mine = from(&events, client);
    let block = mine
        .iter()
        .find(|e| e["event"]["action"] == "block" && e["locgate"]["tunnel"].is_null())
        .unwrap_or_else(|| panic!("no re-decision event: {mine:#?}"));
    assert!(
        reasons(block).contains(&"tor_exit".to_string()),
        "{block:#}"
    );
    let close = mine
        .iter()
        .find(|e| !e["locgate"]["tunnel"].is_null())
        .unwrap_or_else(|| panic!("no close event: {mine:#?}"));
    assert_eq!(close["locgate"]["tunnel"]["end"], "blocked", "{close:#}");
    assert_eq!(close["event"]["action"], "block", "{close:#}");
    assert!(
        reasons(close).contains(&"tor_exit".to_string()),
        "{close:#}"
    );
    assert_eq!(close["source"]["bytes"], 17, "bytes so far: {close:#}");
    assert_eq!(close["destination"]["bytes"], 17, "{close:#}");
    assert!(
        close["event"]["duration"].as_u64().unwrap_or(0) > 0,
        "{close:#}"
    );
    assert!(
        close["message"]
            .as_str()
            .unwrap_or("")
            .contains("blocked on re-decision"),
        "{close:#}"
    );
    assert!(
        from(&events, "127.1.0.71")
            .iter()
            .all(|e| e["event"]["action"] == "allow"),
        "the bystander was re-judged: {events:#?}"
    );
    drop(other);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_mode_records_the_new_verdict_and_keeps_the_tunnel() {
    let (fx, running, reloader, vpn) = gateway("tcp", "monitor").await;
    let client = "127.1.0.72";
    let mut tunnel = connect_from(client, vpn).await;
    echo(&mut tunnel, b"hello").await;
    fx.write("tor.txt", "127.1.0.72\n");
    reload(&reloader).await;
    // A second reload with nothing new records nothing more.
    reload(&reloader).await;
    echo(&mut tunnel, b"still open").await;
    let is_flag = |e: &Json| e["source"]["ip"] == client && e["event"]["action"] == "flag";
    let events = fx.events_until(&running, is_flag).await;
    let flags: Vec<Json> = from(&events, client)
        .into_iter()
        .filter(|e| e["event"]["action"] == "flag")
        .collect();
    assert_eq!(flags.len(), 1, "{flags:#?}");
    assert!(reasons(&flags[0]).contains(&"tor_exit".to_string()));
    assert_eq!(flags[0]["locgate"]["verdict"], "block", "{:#}", flags[0]);
    drop(tunnel);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_flow_whose_address_becomes_a_tor_exit_is_dropped_with_an_event() {
    let (fx, running, reloader, vpn) = gateway("udp", "enforce").await;
    let client = "127.1.0.80";
    let sock = tokio::net::UdpSocket::bind((ip(client), 0))
        .await
        .expect("bind");
    sock.connect(vpn).await.expect("connect");
    let mut buf = [0u8; 64];
    sock.send(b"handshake").await.expect("send");
    let n = within("reply", sock.recv(&mut buf)).await.expect("reply");
    assert_eq!(&buf[..n], b"handshake");

    fx.write("tor.txt", "127.1.0.80\n");
    reload(&reloader).await;
    let closes = |e: &Json| e["source"]["ip"] == client && !e["locgate"]["tunnel"].is_null();
    let events = fx.events_until(&running, closes).await;
    let close = from(&events, client)
        .into_iter()
        .find(|e| !e["locgate"]["tunnel"].is_null())
        .expect("the flow's close event");
    assert_eq!(close["locgate"]["tunnel"]["end"], "blocked", "{close:#}");
    assert!(
        reasons(&close).contains(&"tor_exit".to_string()),
        "{close:#}"
    );
    assert_eq!(close["source"]["bytes"], 9, "{close:#}");
    // The next datagram is decided afresh: dropped.
    sock.send(b"again").await.expect("send");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), sock.recv(&mut buf))
            .await
            .is_err(),
        "a reply came through"
    );
    running.shutdown().await;
}

/// An upstream that reads no PROXY header sees locgate's socket as its client; the events carry
/// that address as `source.nat.*`, so the gateway's own log lines can be matched to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_name_the_address_the_upstream_saw_as_source_nat() {
    let fx = Fixture::new();
    let up = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let up_addr = up.local_addr().expect("addr");
    let tcp_up = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let tcp_addr = tcp_up.local_addr().expect("addr");
    let listeners = format!(
        "{}{}",
        listener("udp", &up_addr.to_string(), "kind = \"udp\""),
        listener("tcp", &tcp_addr.to_string(), "kind = \"tcp\"")
    );
    let running = fx.start(&listeners).await;

    let sock = tokio::net::UdpSocket::bind((ip("127.1.0.90"), 0))
        .await
        .expect("bind");
    sock.send_to(b"hello", running.addr("udp").expect("udp"))
        .await
        .expect("send");
    let mut buf = [0u8; 16];
    let (_, seen_udp) = within("datagram upstream", up.recv_from(&mut buf))
        .await
        .expect("recv");
    let client = connect_from("127.1.0.91", running.addr("tcp").expect("tcp")).await;
    let (conn, seen_tcp) = within("tcp upstream", tcp_up.accept())
        .await
        .expect("accept");
    drop((client, conn));

    // The TCP connect event is written by the tunnel's task once its upstream connection is
    // made, which may be just after the upstream accepted it.
    let events = fx
        .events_until(&running, |e| e["source"]["ip"] == "127.1.0.91")
        .await;
    for (ip, seen) in [("127.1.0.90", seen_udp), ("127.1.0.91", seen_tcp)] {
        let e = from(&events, ip)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no event for {ip}: {events:#?}"));
        assert_eq!(e["source"]["nat"]["ip"], seen.ip().to_string(), "{e:#}");
        assert_eq!(e["source"]["nat"]["port"], seen.port(), "{e:#}");
    }
    running.shutdown().await;
}
