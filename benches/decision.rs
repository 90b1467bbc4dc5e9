//! The decision path without the network: client-address resolution, every lookup, the policy.
//! Target: 1 µs median per request on the embedded data (see BENCHMARKS.md).

use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};

use criterion::{Criterion, criterion_group, criterion_main};
use locgate::client_addr::{ChainHeader, TrustedProxies, resolve_with};
use locgate::config::Config;
use locgate::intel::Intel;
use locgate::policy::Mode;

const IPS: &[&str] = &[
    "8.8.8.8",
    "175.45.176.1",
    "52.94.76.1",
    "81.2.69.142",
    "2001:4860:4860::8888",
    "140.248.36.149",
    "195.88.39.53",
    "2804:4e04:ec8b:e537:58ab:4778:143b:45e3",
];

fn decision(c: &mut Criterion) {
    let config = Config::embedded_default().expect("embedded config");
    let intel = Intel::embedded().expect("embedded data");
    let ips: Vec<IpAddr> = IPS.iter().map(|s| s.parse().expect("ip")).collect();

    c.bench_function("observe+evaluate (embedded data)", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % ips.len();
            let obs = intel.observe(black_box(ips[i]));
            black_box(config.policy.evaluate(&obs, Mode::Enforce));
        })
    });

    // Every lookup a cache miss: the 1,000 public addresses of bench/addresses-1000.txt (the
    // precision list), each walked through every embedded tree (city, country, ASN) afresh.
    let spread: Vec<IpAddr> = include_str!("../bench/addresses-1000.txt")
        .lines()
        .filter_map(|l| l.split('#').next()?.trim().parse().ok())
        .collect();
    assert!(spread.len() >= 1000, "address list");
    c.bench_function(
        "observe_uncached+evaluate (embedded city data, 1,000 addresses)",
        |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % spread.len();
                let obs = intel.observe_uncached(black_box(spread[i]));
                black_box(config.policy.evaluate(&obs, Mode::Enforce));
            })
        },
    );

    let trusted = TrustedProxies::new(["127.0.0.1/32".parse().expect("net")]);
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("peer");
    let headers: Vec<http::HeaderMap> = IPS
        .iter()
        .map(|ip| {
            let mut h = http::HeaderMap::new();
            h.insert("x-forwarded-for", ip.parse().expect("header"));
            h
        })
        .collect();
    c.bench_function("resolve XFF + observe + evaluate", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % headers.len();
            let client = resolve_with(
                peer,
                &trusted,
                black_box(&headers[i]),
                ChainHeader::XForwardedFor,
            );
            let obs = intel.observe(client.ip);
            black_box(config.policy.evaluate(&obs, Mode::Enforce));
        })
    });
}

criterion_group!(benches, decision);
criterion_main!(benches);
