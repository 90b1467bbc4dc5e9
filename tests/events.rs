//! The audit trail: what is written, what is folded, what is counted.

mod common;

use common::*;
use http::StatusCode;
use locgate::policy::Action;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allows_are_throttled_per_client_blocks_never_and_all_are_counted() {
    let App {
        fx,
        up,
        running,
        proxy,
    } = App::start("mode = \"enforce\"").await;

    for i in 0..5 {
        let (parts, _) = get(US_CLIENT, proxy, &format!("/page/{i}"), &[]).await;
        assert_eq!(parts.status, UPSTREAM_STATUS);
    }
    let mut refs = Vec::new();
    for i in 0..5 {
        let (parts, body) = get(KP_CLIENT, proxy, &format!("/page/{i}"), &[]).await;
        assert_eq!(parts.status, StatusCode::FORBIDDEN);
        refs.push(html_reference(&body));
    }
    // A second allowed client gets its own first event.
    let (parts, _) = get("127.1.0.77", proxy, "/", &[]).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);
    assert_eq!(up.seen().len(), 6);

    let stats = &running.shared.auditor.stats;
    assert_eq!(stats.requests(Action::Allow), 6);
    assert_eq!(stats.requests(Action::Block), 5);
    assert_eq!(stats.requests(Action::Flag), 0);

    running.shutdown().await;
    let events = read_events(&fx.events);
    let allows = events_from(&events, US_CLIENT);
    assert_eq!(allows.len(), 1, "{events:#?}");
    assert_eq!(allows[0]["event"]["action"], "allow");
    assert_eq!(
        allows[0]["url"]["path"], "/page/0",
        "the first allow is the one written"
    );
    assert_eq!(events_from(&events, "127.1.0.77").len(), 1);

    let blocks = events_from(&events, KP_CLIENT);
    assert_eq!(blocks.len(), 5, "{events:#?}");
    for id in &refs {
        assert_eq!(event_with_id(&events, id)["event"]["action"], "block");
    }
    assert_eq!(events.len(), 7);

    // Every id is unique.
    let mut ids: Vec<&str> = events
        .iter()
        .map(|e| e["event"]["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), events.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folded_allow_count_is_reported_when_the_interval_has_passed() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let listeners = listener("app", &up.url(), "mode = \"enforce\"");
    let text = fx
        .config_text(&listeners)
        .replace("[events]\n", "[events]\nallow_log_interval = \"500ms\"\n");
    let config = locgate::config::Config::parse(&text, "test.toml", fx.dir.path()).unwrap();
    let running = within("start", locgate::serve::start(config))
        .await
        .unwrap();
    let proxy = running.addr("app").unwrap();

    for _ in 0..4 {
        get(US_CLIENT, proxy, "/", &[]).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    get(US_CLIENT, proxy, "/later", &[]).await;

    running.shutdown().await;
    let events = read_events(&fx.events);
    let allows = events_from(&events, US_CLIENT);
    assert_eq!(allows.len(), 2, "{events:#?}");
    assert_eq!(allows[1]["url"]["path"], "/later");
    assert_eq!(
        allows[1]["locgate"]["suppressed_allows"], 3,
        "{}",
        allows[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_file_is_appended_across_restarts() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    for round in 0..2 {
        let running = fx
            .start(&listener("app", &up.url(), "mode = \"enforce\""))
            .await;
        let (parts, _) = get(KP_CLIENT, running.addr("app").unwrap(), "/", &[]).await;
        assert_eq!(parts.status, StatusCode::FORBIDDEN);
        running.shutdown().await;
        assert_eq!(read_events(&fx.events).len(), round + 1);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&fx.events).unwrap().permissions().mode();
        assert_eq!(mode & 0o007, 0, "event file is world-accessible: {mode:o}");
    }
}
