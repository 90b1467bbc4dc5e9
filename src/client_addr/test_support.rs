//! Test helpers shared by the `client_addr` unit tests (trust lists, socket addresses,
//! header maps), so each file's tests can sit next to the code they test.

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderName, HeaderValue};
use ipnetwork::IpNetwork;

use super::addr::{AddrSource, ClientAddr};
use super::trusted::TrustedProxies;

pub(super) fn nets(list: &[&str]) -> TrustedProxies {
    TrustedProxies::new(
        list.iter()
            .map(|s| s.parse::<IpNetwork>().expect("test net")),
    )
}

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().expect("test ip")
}

pub(super) fn sock(s: &str) -> SocketAddr {
    s.parse().expect("test sock")
}

pub(super) fn hdrs(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).expect("test name"),
            HeaderValue::from_bytes(v).expect("test value"),
        );
    }
    h
}

pub(super) fn lan() -> TrustedProxies {
    nets(&["10.0.0.0/8", "fd00::/8"])
}

pub(super) fn got(c: ClientAddr) -> (IpAddr, Option<u16>, AddrSource) {
    (c.ip, c.port, c.source)
}
