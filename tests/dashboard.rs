//! `deploy/grafana-dashboard.json` is built on the metric names locgate exports: every PromQL
//! query in it (panel targets and template variables) names only metrics that a live server's
//! `/metrics` shows. A renamed metric breaks this test instead of a panel going quietly empty.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::Value as Json;

const TOKEN: &str = "dashboard-test-token-0123456789";

/// PromQL words that are not metric names: functions, aggregations and keywords.
const PROMQL_WORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "topk",
    "bottomk",
    "quantile",
    "stddev",
    "stdvar",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "histogram_quantile",
    "clamp_min",
    "clamp_max",
    "clamp",
    "time",
    "label_values",
    "abs",
    "round",
    "ceil",
    "floor",
    "sort",
    "sort_desc",
    "absent",
    "changes",
    "resets",
    "vector",
    "scalar",
    "max_over_time",
    "min_over_time",
    "avg_over_time",
    "sum_over_time",
    "count_over_time",
    "inf",
    "nan",
];

/// Every query string in the dashboard.
fn queries(v: &Json, out: &mut Vec<String>) {
    match v {
        Json::Object(m) => {
            for (k, child) in m {
                match (k.as_str(), child) {
                    ("expr" | "definition", Json::String(s)) => out.push(s.clone()),
                    ("query", Json::String(s)) if s.contains('(') => out.push(s.clone()),
                    _ => queries(child, out),
                }
            }
        }
        Json::Array(a) => a.iter().for_each(|c| queries(c, out)),
        _ => {}
    }
}

/// The metric names a PromQL query selects: identifiers outside strings, label matchers
/// (`{...}`), ranges (`[...]`) and grouping lists (`by (...)`), that are no PromQL word and no
/// function call.
fn metric_names(q: &str) -> BTreeSet<String> {
    // A Grafana variable's `label_values(metric{...}, label)`: the metric is the first argument.
    let q = match q.strip_prefix("label_values(") {
        Some(args) => args.rsplit_once(',').map_or(args, |(metric, _)| metric),
        None => q,
    };
    // Drop strings, `{...}` and `[...]`.
    let mut plain = String::new();
    let (mut depth_brace, mut depth_bracket, mut in_str) = (0, 0, false);
    for c in q.chars() {
        match c {
            '"' => in_str = !in_str,
            _ if in_str => {}
            '{' => depth_brace += 1,
            '}' => depth_brace -= 1,
            '[' => depth_bracket += 1,
            ']' => depth_bracket -= 1,
            c if depth_brace == 0 && depth_bracket == 0 => plain.push(c),
            _ => {}
        }
    }
    // Drop grouping label lists: `by (a, b)`, `without (...)`, `on (...)`, `ignoring (...)`.
    let mut words: Vec<(String, Option<char>)> = Vec::new();
    let chars: Vec<char> = plain.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' || c == ':' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | ':' | '$'))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace()).copied();
            words.push((word, next));
        } else if c.is_ascii_digit() || c == '.' {
            // A number, with its exponent (`1e-9`).
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '.' | '-'))
            {
                if chars[i] == '-' && !matches!(chars[i - 1], 'e' | 'E') {
                    break;
                }
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    let mut out = BTreeSet::new();
    let mut skip_group = false;
    for (word, next) in words {
        if skip_group {
            // Inside `by (...)`: label names until the list ends (no way to see `)` here, so
            // the list is every word followed by `,` or `)`).
            if matches!(next, Some(',')) {
                continue;
            }
            skip_group = false;
            continue;
        }
        if matches!(word.as_str(), "by" | "without" | "on" | "ignoring") {
            skip_group = true;
            continue;
        }
        if word.starts_with('$') || PROMQL_WORDS.contains(&word.as_str()) || next == Some('(') {
            continue;
        }
        out.insert(word);
    }
    out
}

#[test]
fn the_promql_reader_finds_metrics_not_labels_or_functions() {
    let q = r#"histogram_quantile(0.99, sum by (le, listener) (rate(locgate_decision_seconds_bucket{instance=~"$instance"}[5m]))) / clamp_min(sum(rate(locgate_requests_total{action="block"}[5m])), 1e-9) + time() - process_start_time_seconds"#;
    assert_eq!(
        metric_names(q).into_iter().collect::<Vec<_>>(),
        [
            "locgate_decision_seconds_bucket",
            "locgate_requests_total",
            "process_start_time_seconds"
        ]
    );
    let v = r#"label_values(locgate_requests_total{instance=~"$instance"}, listener)"#;
    assert_eq!(
        metric_names(v).into_iter().collect::<Vec<_>>(),
        ["locgate_requests_total"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_names_a_metric_the_server_exports() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    // A journald output (to a socket of the test's own), so output metrics have samples.
    let journal = fx.dir.path().join("journal.sock");
    let _journal = std::os::unix::net::UnixDatagram::bind(&journal).expect("socket");
    let text = fx.config_text_with(
        &listener("app", &up.url(), "mode = \"enforce\""),
        &format!("[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n"),
    ) + &format!("[events.journald]\nsocket = \"{}\"\n", journal.display());
    let running = fx.start_text(&text).await;
    let proxy = running.addr("app").expect("app");
    get(US_CLIENT, proxy, "/", &[]).await;
    get(KP_CLIENT, proxy, "/", &[]).await;
    let admin = running.admin_addr.expect("admin");
    let (parts, body) = get(
        LOCAL,
        admin,
        "/metrics",
        &[("authorization", &format!("Bearer {TOKEN}"))],
    )
    .await;
    assert_eq!(parts.status, 200);
    assert_eq!(
        header(&parts, "content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let exposition = String::from_utf8(body.to_vec()).expect("utf8");
    let exported: BTreeSet<String> = exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect();
    for want in [
        "locgate_build_info",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
        "locgate_output_up",
    ] {
        assert!(
            exported.contains(want),
            "{want} not exported:\n{exposition}"
        );
    }
    assert!(
        exposition.contains("locgate_requests_total{listener=\"app\",action=\"note\"} 0"),
        "{exposition}"
    );

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana-dashboard.json");
    let dashboard: Json =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("JSON");
    let mut all = Vec::new();
    queries(&dashboard, &mut all);
    assert!(all.len() >= 20, "found only {} queries", all.len());
    let mut missing = Vec::new();
    let mut used = BTreeSet::new();
    for q in &all {
        let names = metric_names(q);
        assert!(!names.is_empty(), "no metric in `{q}`");
        for n in names {
            if !exported.contains(&n) {
                missing.push(format!("{n} (in `{q}`)"));
            }
            used.insert(n);
        }
    }
    assert!(missing.is_empty(), "not exported:\n{}", missing.join("\n"));
    // The dashboard covers the request counters by listener and the process metrics.
    for n in [
        "locgate_requests_total",
        "locgate_connections_total",
        "process_cpu_seconds_total",
    ] {
        assert!(used.contains(n), "{n} is on no panel");
    }
    running.shutdown().await;
}
