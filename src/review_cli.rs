//! `locgate events` and `locgate report`: reading the event store from the command line.
//!
//! The database is opened read-only (WAL lets this run beside a live gateway); it is found from
//! the config's `[events] sqlite`, or given directly with `--db`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::audit::store::{Filter, Reader, Store, StoreLocation, StoredEvent, parse_since};
use crate::config::Config;
use crate::employees::Directory;

/// Where the store is.
#[derive(Args, Debug)]
pub struct StoreArgs {
    /// Config file naming `[events] sqlite` or `postgres` (and the employee directory for the
    /// report).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// The SQLite file directly (overrides the config's).
    #[arg(long)]
    db: Option<PathBuf>,
}

/// `locgate events`.
#[derive(Args, Debug)]
pub struct EventsArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Only this employee.
    #[arg(long)]
    employee: Option<String>,
    /// Only events since this long ago (24h, 30d) or this RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// Only this action.
    #[arg(long, value_parser = crate::policy::Action::NAMES)]
    action: Option<String>,
    /// Only events with this reason code.
    #[arg(long)]
    reason: Option<String>,
    /// Only open (not acknowledged) or acknowledged events.
    #[arg(long, value_parser = ["open", "acked", "all"], default_value = "all")]
    status: String,
    /// At most this many (newest first).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// One JSON object per line.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// CSV with a header row.
    #[arg(long)]
    csv: bool,
}

/// `locgate report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Period: 24h, 30d, an RFC 3339 time, or `all` (default: 30d for a gateway's store,
    /// everything for a replay's).
    #[arg(long)]
    since: Option<String>,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Bring the store's day rollup up to date first (opens a SQLite file for writing and
    /// migrates it), so this and later reports read days instead of every event. Without it,
    /// a SQLite file is only read: the rollup is used as far as the gateway keeps it current.
    #[arg(long)]
    roll_up: bool,
}

fn open(args: &StoreArgs) -> Result<(Reader, Option<Directory>), ExitCode> {
    open_as(args, false)
}

/// Opens the store (for writing when `write`, else read-only) and the directory.
fn open_as(args: &StoreArgs, write: bool) -> Result<(Reader, Option<Directory>), ExitCode> {
    let config = match &args.config {
        Some(p) => Some(Config::load(p).map_err(|e| {
            eprintln!("{e}");
            ExitCode::from(1)
        })?),
        None => None,
    };
    let db = match (
        &args.db,
        config.as_ref().and_then(|c| c.events.store.as_ref()),
    ) {
        (Some(file), _) => StoreLocation::Sqlite(file.clone()),
        (None, Some(sc)) => sc.location.clone(),
        (None, None) => {
            eprintln!(
                "no event store: give --db FILE, or -c CONFIG with [events] sqlite or postgres"
            );
            return Err(ExitCode::from(2));
        }
    };
    if let StoreLocation::Sqlite(file) = &db
        && !file.is_file()
    {
        eprintln!("{}: no such event store", file.display());
        return Err(ExitCode::from(1));
    }
    let dir = match config.as_ref().and_then(|c| c.employees.as_ref()) {
        Some(e) => Some(
            Directory::load(&e.file, e.default_radius_km, &e.columns).map_err(|e| {
                eprintln!("{e}");
                ExitCode::from(1)
            })?,
        ),
        None => None,
    };
    let store = if write {
        Reader::open(&db)
    } else {
        Reader::open_read_only(&db)
    }
    .map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(1)
    })?;
    Ok((store, dir))
}

/// Runs `locgate events`.
pub fn events(a: &EventsArgs) -> ExitCode {
    let since_ms = match a.since.as_deref().map(parse_since).transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("--since: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = Filter {
        employee: a.employee.clone(),
        since_ms,
        action: a.action.clone(),
        reason: a.reason.clone(),
        acked: match a.status.as_str() {
            "open" => Some(false),
            "acked" => Some(true),
            _ => None,
        },
        mismatches_only: false,
        before: None,
        limit: a.limit.clamp(1, 1000),
        ..Filter::default()
    };
    if let Err(e) = filter.validate() {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    let (mut store, _) = match open(&a.store) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let page = match store.query(&filter) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    if a.json {
        for e in &page.events {
            match serde_json::to_string(e) {
                Ok(l) => println!("{l}"),
                Err(e) => eprintln!("cannot encode: {e}"),
            }
        }
    } else if a.csv {
        let mut w = csv::Writer::from_writer(std::io::stdout());
        let _ = w.write_record([
            "time", "id", "action", "employee", "ip", "country", "asn", "reasons", "acked_by",
            "note", "message",
        ]);
        for e in &page.events {
            let _ = w.write_record([
                e.timestamp.as_str(),
                &e.id,
                &e.action,
                e.employee.as_deref().unwrap_or(""),
                &e.ip,
                e.country.as_deref().unwrap_or(""),
                &e.asn.map(|a| a.to_string()).unwrap_or_default(),
                &e.reasons.join(" "),
                e.ack.as_ref().map_or("", |a| a.reviewer.as_str()),
                e.ack.as_ref().map_or("", |a| a.note.as_str()),
                &e.message,
            ]);
        }
        let _ = w.flush();
    } else {
        print_table(&page.events);
    }
    ExitCode::SUCCESS
}

fn print_table(events: &[StoredEvent]) {
    println!(
        "{:<19}  {:<20}  {:<5}  {:<12}  {:<15}  {:<2}  {:<30}  REVIEW",
        "TIME (UTC)", "ID", "ACT", "EMPLOYEE", "IP", "CC", "REASONS"
    );
    for e in events {
        println!(
            "{:<19}  {:<20}  {:<5}  {:<12}  {:<15}  {:<2}  {:<30}  {}",
            e.timestamp
                .get(..19)
                .unwrap_or(&e.timestamp)
                .replace('T', " "),
            e.id,
            e.action,
            e.employee.as_deref().unwrap_or("-"),
            e.ip,
            e.country.as_deref().unwrap_or("??"),
            if e.reasons.is_empty() {
                "-".into()
            } else {
                e.reasons.join(",")
            },
            e.ack.as_ref().map_or_else(
                || "open".to_string(),
                |a| format!("acked by {}: {}", a.reviewer, a.note)
            ),
        );
    }
    if events.is_empty() {
        println!("(no events match)");
    }
}

/// Brings the day rollup up to date, a bounded batch at a time; says how far it went.
fn roll_up(
    store: &mut Reader,
    dir: Option<&Directory>,
) -> Result<(), crate::audit::store::StoreError> {
    let started = std::time::Instant::now();
    let mut events = 0;
    loop {
        let r = store.roll_up(dir, crate::audit::store::CATCH_UP_BATCH)?;
        events += r.events;
        if r.covered == 0 || r.behind == 0 {
            break;
        }
    }
    eprintln!(
        "day rollup: {events} events summed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs `locgate report`.
pub fn report(a: &ReportArgs) -> ExitCode {
    let (mut store, dir) = match open_as(&a.store, a.roll_up) {
        Ok(s) => s,
        Err(c) => return c,
    };
    if a.roll_up
        && let Err(e) = roll_up(&mut store, dir.as_ref())
    {
        eprintln!("{e}");
        return ExitCode::from(1);
    }
    // A replay's store is a past period: by default all of it, not the 30 days before today.
    let since_text = match a.since.as_deref() {
        Some(given) => given,
        None => match store.only_replayed() {
            Ok(true) => "all",
            Ok(false) => "30d",
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(1);
            }
        },
    };
    let since = match parse_since(since_text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("--since: {e}");
            return ExitCode::from(2);
        }
    };
    let rows = match store.report(since, dir.as_ref(), None) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    if a.json {
        match serde_json::to_string_pretty(&rows) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("cannot encode: {e}"),
        }
        return ExitCode::SUCCESS;
    }
    let join = |v: &[(String, u64)], n: usize| {
        v.iter()
            .take(n)
            .map(|(k, c)| format!("{k} ({c})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // Ranked by evidence over the period (days, not events: see `audit::store::report`).
    println!("period: {}", period_label(&mut store, since, since_text));
    println!(
        "{:<14} {:>5} {:>6} {:>5} {:>5} {:>6} {:>6} {:>8} {:>6}  {:<20}  {:<40}  LAST SEEN",
        "EMPLOYEE",
        "SCORE",
        "EVENTS",
        "DAYS",
        "AWAY",
        "NETS",
        "MISM.",
        "IN HOME",
        "ANON",
        "COUNTRIES",
        "SIGNALS (DAYS)"
    );
    for r in &rows {
        println!(
            "{:<14} {:>5.0} {:>6} {:>5} {:>5} {:>6} {:>6} {:>8} {:>5.0}%  {:<20}  {:<40}  {}",
            r.employee,
            r.evidence_score,
            r.connections,
            r.days,
            r.days_away,
            r.distinct_networks,
            r.mismatches,
            r.home_radius_share
                .map_or("n/a".into(), |s| format!("{:.0}%", s * 100.0)),
            r.anonymizer_share * 100.0,
            join(&r.countries, 4),
            join(&r.signal_days, 4),
            r.last_seen
                .get(..19)
                .unwrap_or(&r.last_seen)
                .replace('T', " "),
        );
    }
    // The evidence behind history and wire signals, which no single event shows.
    for r in rows
        .iter()
        .filter(|r| !r.evidence.is_empty() || r.rtt_ms.is_some())
    {
        println!("\n{}:", r.employee);
        if !r.networks.is_empty() {
            println!("  networks: {}", join(&r.networks, 3));
        }
        for e in &r.evidence {
            println!("  {} x{}: {}", e.code, e.count, e.latest);
        }
        if let Some(rtt) = &r.rtt_ms {
            println!(
                "  round trip (direct connections, {} samples): median {:.1} ms, p90 {:.1} ms, max {:.1} ms",
                rtt.samples, rtt.p50, rtt.p90, rtt.max
            );
        }
    }
    if rows.is_empty() {
        println!("(no events with a known employee in this period)");
    }
    ExitCode::SUCCESS
}

/// The period a report or the console covers, as people read it: the first and last event
/// in it, and how it was chosen.
fn period_label(store: &mut Reader, since_ms: i64, chosen: &str) -> String {
    let day = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| t.strftime("%Y-%m-%d").to_string())
            .unwrap_or_default()
    };
    match store.span_ms() {
        Ok(Some((first, last))) => format!(
            "{} to {} (--since {chosen})",
            day(first.max(since_ms)),
            day(last)
        ),
        _ => format!("empty store (--since {chosen})"),
    }
}

/// `locgate review`.
#[derive(Args, Debug)]
pub struct ReviewArgs {
    /// The event store to review (a replay's `--store` file, or a copy of a gateway's).
    #[arg(long)]
    db: PathBuf,
    /// Config with the employee directory (declared homes on the employee pages) and data
    /// (default: the embedded default).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Where to serve the console: a loopback address (it is plain HTTP; reach it from
    /// elsewhere through an SSH tunnel).
    #[arg(long, default_value = "127.0.0.1:9800")]
    bind: std::net::SocketAddr,
}

/// Runs `locgate review`: the admin console over one store, until Ctrl-C or SIGTERM.
/// Acknowledgements are written into that store.
pub fn review(a: &ReviewArgs) -> ExitCode {
    if !a.bind.ip().is_loopback() {
        eprintln!(
            "--bind {}: the review console is plain HTTP and stays on loopback; reach it through an SSH tunnel, or review on a gateway's admin listener with [admin] tls",
            a.bind
        );
        return ExitCode::from(2);
    }
    if !a.db.is_file() {
        eprintln!("{}: no such event store", a.db.display());
        return ExitCode::from(1);
    }
    let span = match Store::open_read_only(&a.db).and_then(|s| Ok((s.span_ms()?, s.count()?))) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let (state, _, _) = match crate::command::load_all(a.config.as_deref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let Some(token) = crate::admin::random_token() else {
        eprintln!("no randomness for a token: the console would be open to anyone");
        return ExitCode::from(1);
    };
    let day = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| t.strftime("%Y-%m-%d").to_string())
            .unwrap_or_default()
    };
    let (since_ms, label) = match span {
        (Some((first, last)), n) => (
            first,
            format!("{} to {} ({n} events)", day(first), day(last)),
        ),
        (None, _) => (0, "empty store".to_string()),
    };
    let runtime = match crate::command::runtime(Some(2)) {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let stop_signal = crate::command::stop_signal();
        let auditor = match crate::audit::Auditor::start(None, std::time::Duration::ZERO) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(1);
            }
        };
        let shared = std::sync::Arc::new(crate::state::Shared::new(state, auditor));
        // No listeners to bind: the console is ready once served (`/readyz`).
        shared
            .serving
            .store(true, std::sync::atomic::Ordering::Release);
        let cfg = crate::config::AdminConfig {
            bind: a.bind,
            token: token.clone(),
            tls: None,
            oidc: None,
            directory_file: None,
        };
        let period = crate::admin::Period::Whole {
            since_ms,
            label,
            ranked: std::sync::OnceLock::new(),
        };
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let addr = match crate::admin::serve_ranking(
            &cfg,
            None,
            Some(StoreLocation::Sqlite(a.db.clone())),
            shared,
            period,
            stop_rx,
        )
        .await
        {
            Ok(addr) => addr,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(1);
            }
        };
        eprintln!("review console for {}: http://{addr}/login", a.db.display());
        eprintln!(
            "token (paste it at the login; API: Authorization: Bearer ...): {}",
            token.expose()
        );
        eprintln!("Ctrl-C stops it");
        stop_signal.await;
        let _ = stop.send(true);
        ExitCode::SUCCESS
    })
}
