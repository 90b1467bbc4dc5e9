//! The command line: `run`, `check`, `update`, `validate`, `--version`, and the dispatch to
//! `replay` ([`crate::replay_cli`]) and `events`, `report`, `review` ([`crate::review_cli`]).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::audit::{Event, RequestFacts};
use crate::client_addr::AddrSource;
use crate::command::{
    ModeArg, format_time, load_all, load_config, pick_mode, runtime, stop_signal, write_json,
};
use crate::config::Config;
use crate::decide::{Answer, Claim, Question, decide};
use crate::intel::Intel;
use crate::state::RuntimeState;

/// locgate: a reverse proxy that checks where every connection really comes from.
#[derive(Parser, Debug)]
#[command(
    name = "locgate",
    disable_version_flag = true,
    arg_required_else_help = true
)]
struct Cli {
    /// Print the version and the versions of the embedded data.
    #[arg(short = 'V', long)]
    version: bool,
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway (with no -c: the embedded default, monitor mode on 127.0.0.1:8080).
    Run {
        /// Config file.
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Explain the decision for each address. Exit status: 0 allow (or note), 3 flag, 4 block
    /// (the strictest of the addresses), 1 config or data error, 2 bad argument.
    Check {
        /// Addresses to check.
        #[arg(required = true)]
        ips: Vec<String>,
        /// Config file (default: the embedded default).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Print one event per line (the audit schema) instead of text.
        #[arg(long)]
        json: bool,
        /// Mode to judge in (default: the first listener's, else enforce).
        #[arg(long, value_enum)]
        mode: Option<ModeArg>,
        /// Judge as this employee (id or alias), taken as a verified identity.
        #[arg(long)]
        employee: Option<String>,
        /// Judge at this time (RFC 3339, e.g. 2026-12-24T09:00:00Z; default now).
        #[arg(long)]
        at: Option<String>,
    },
    /// Evaluate past sign-ins (Okta, Entra, Google Workspace, Duo, Cloudflare Access exports, or
    /// time,ip,user as JSON lines or CSV) through the current policy, in time order: one event
    /// per line, the per-employee table (--summary), or an event store (--store).
    Replay(crate::replay_cli::ReplayArgs),
    /// Download, check and install the data sources of `[update]` (and MaxMind editions of its
    /// `geoip_conf`); exit 1 naming every source that failed (its installed file is untouched).
    Update {
        /// Config file.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Also fetch a built-in set of key-less sources (`free`: DB-IP Lite, Tor, X4BNet, cloud
        /// ranges); works without a config file given --dir.
        #[arg(long)]
        preset: Option<String>,
        /// Where the preset's files are installed (default: the config's `[data] dir`).
        #[arg(long, requires = "preset")]
        dir: Option<PathBuf>,
        /// Fetch the preset's files from this mirror, as `<mirror>/<host>/<path>`.
        #[arg(long, requires = "preset")]
        mirror: Option<String>,
        /// Print the preset's sources (file, category, stale limit, licence, URL) and exit.
        #[arg(long)]
        list: bool,
        /// With --list: one JSON object per source.
        #[arg(long, requires = "list")]
        json: bool,
    },
    /// List recorded events from the event store (readable table; --json or --csv for tools).
    Events(crate::review_cli::EventsArgs),
    /// Per-employee summary from the event store, most evidence first.
    Report(crate::review_cli::ReportArgs),
    /// Serve the review console over an event store (a replay's `--store`, or a copy of a
    /// gateway's) on loopback, with a fresh token: employees ranked over the whole store.
    Review(crate::review_cli::ReviewArgs),
    /// Check a config file and the data it names; exit 0 if good, 1 with file:line: field: error.
    Validate {
        /// Config file.
        #[arg(short, long)]
        config: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    if cli.version {
        return version();
    }
    if !matches!(cli.command, Some(Command::Run { .. })) {
        quiet_on_closed_stdout();
    }
    match cli.command {
        Some(Command::Run { config }) => run(config.as_deref()),
        Some(Command::Check {
            ips,
            config,
            json,
            mode,
            employee,
            at,
        }) => check(
            &ips,
            config.as_deref(),
            json,
            mode,
            employee.as_deref(),
            at.as_deref(),
        ),
        Some(Command::Replay(args)) => crate::replay_cli::replay(&args),
        Some(Command::Events(args)) => crate::review_cli::events(&args),
        Some(Command::Report(args)) => crate::review_cli::report(&args),
        Some(Command::Review(args)) => crate::review_cli::review(&args),
        Some(Command::Validate { config }) => validate(&config),
        Some(Command::Update {
            config,
            preset,
            dir,
            mirror,
            list,
            json,
        }) => {
            if list {
                return list_preset(preset.as_deref().unwrap_or("free"), json);
            }
            update(
                config.as_deref(),
                preset.as_deref().map(|name| PresetArgs {
                    name,
                    dir: dir.as_deref(),
                    mirror: mirror.as_deref(),
                }),
            )
        }
        None => ExitCode::from(2),
    }
}

/// The one-shot commands print to a pipe (`locgate check --json ... | head`): when the reader
/// goes away, end quietly as other Unix tools do, instead of panicking in `println!`. Not for
/// `run`, whose sockets need SIGPIPE ignored (Rust's default).
fn quiet_on_closed_stdout() {
    // SAFETY: restoring the default disposition of SIGPIPE before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // No colour codes unless a person is watching: journald and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn version() -> ExitCode {
    println!("locgate {}", env!("CARGO_PKG_VERSION"));
    match Intel::embedded() {
        Ok(intel) => {
            println!("embedded data:");
            for v in intel.versions() {
                println!("  {} ({}, built {})", v.source, v.kind, v.built_date());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("embedded data unusable: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(path: Option<&Path>) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let runtime = match runtime(config.runtime.worker_threads) {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        // Listen for SIGTERM before serving, so a stop that arrives right after start still drains.
        let stop = stop_signal();
        let reload_config = match crate::serve::reload::load_config(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(1);
            }
        };
        let running = match crate::serve::start(config).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(1);
            }
        };
        let reloader = std::sync::Arc::new(
            crate::serve::reload::Reloader::new(
                path.map(Path::to_path_buf),
                &reload_config,
                running.shared.clone(),
            )
            .with_listeners(running.listeners.clone()),
        );
        drop(reload_config);
        let (reload_stop, reload_stop_rx) = tokio::sync::watch::channel(false);
        let reload_task = tokio::spawn(reloader.serve(reload_stop_rx));
        // Bound, loaded and reloadable: now systemd (Type=notify) may call it started.
        let serving = running.describe();
        tracing::info!("{serving}");
        crate::serve::notify::ready(&serving);
        stop.await;
        crate::serve::notify::stopping();
        let _ = reload_stop.send(true);
        let _ = reload_task.await;
        tracing::info!("stopping: draining in-flight requests");
        running.shutdown().await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

fn check(
    ips: &[String],
    path: Option<&Path>,
    json: bool,
    mode: Option<ModeArg>,
    employee: Option<&str>,
    at: Option<&str>,
) -> ExitCode {
    let (state, configured, origin) = match load_all(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mode = pick_mode(mode, configured);
    let at = match at {
        None => jiff::Timestamp::now(),
        Some(t) => match t.parse::<jiff::Timestamp>() {
            Ok(t) => t,
            Err(e) => {
                eprintln!("--at `{t}` is not an RFC 3339 time (e.g. 2026-12-24T09:00:00Z): {e}");
                return ExitCode::from(2);
            }
        },
    };
    if let Some(name) = employee {
        match &state.directory {
            None => {
                eprintln!("--employee needs an [employees] file in the config");
                return ExitCode::from(2);
            }
            Some(dir) if dir.get(name).is_none() => {
                eprintln!(
                    "note: `{name}` is not in the employee directory; judged as an unknown employee"
                );
            }
            Some(_) => {}
        }
    }
    let mut failed: Option<ExitCode> = None;
    let mut strictest = crate::policy::Action::Allow;
    for raw in ips {
        let Ok(ip) = raw.trim().parse::<IpAddr>() else {
            eprintln!("`{raw}` is not an IP address");
            failed = Some(ExitCode::from(2));
            continue;
        };
        let obs = state.intel.observe(ip);
        let question = Question {
            trouble: None,
            claim: employee.map(Claim::verified),
            wire: Vec::new(),
            mode,
            at,
        };
        let Answer {
            decision,
            user,
            user_verified,
            ..
        } = decide(&state, None, &obs, question);
        strictest = strictest.max(decision.action);
        if json {
            let facts = RequestFacts {
                listener: "check".into(),
                client_addr_source: AddrSource::Peer.as_str(),
                user,
                user_verified,
                ..RequestFacts::default()
            };
            let mut event = Event::build(
                format!("check-{ip}"),
                format_time(at),
                &obs,
                &decision,
                facts,
                state.intel.shown(),
            );
            event.origin = Some(origin.clone());
            if let Some(code) = print_json(&event) {
                failed = Some(code);
            }
        } else {
            if let Some(user) = &user {
                println!("as employee {user}, at {at}");
            }
            print!("{}", crate::explain::text(&obs, &decision));
        }
    }
    failed.unwrap_or_else(|| verdict_exit(strictest))
}

/// `check`'s exit status for the strictest action it printed, so a script can branch on it:
/// 0 allow (or note), 3 flag, 4 block (1 is a config or data error, 2 a bad argument).
fn verdict_exit(action: crate::policy::Action) -> ExitCode {
    use crate::policy::Action;
    match action {
        Action::Allow | Action::Note => ExitCode::SUCCESS,
        Action::Flag => ExitCode::from(3),
        Action::Block => ExitCode::from(4),
    }
}

/// Prints one event as a JSON line to standard output; `Some(1)` if it could not be written.
fn print_json(event: &Event) -> Option<ExitCode> {
    write_json(&mut std::io::stdout().lock(), event)
}

fn validate(path: &Path) -> ExitCode {
    let mut config = match load_config(Some(path)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let listeners = config.listeners.len();
    // Certificates and keys are read like `run` would, so a bad file fails here, not at start.
    for l in &config.listeners {
        if let Some(tls) = &l.edge.tls
            && let Err(e) = crate::edge::tls::check(&l.name, tls)
        {
            eprintln!("{}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    let state = match RuntimeState::from_config(&mut config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    // The SCIM users join the directory as at start, so their conflicts and unplaceable users
    // are named here too; a store that does not exist yet is created at the first start.
    let state = match &config.scim {
        Some(sc) if sc.store.exists() => {
            match crate::scim::ScimUsers::open(&sc.store, sc.default_radius_km) {
                Ok(users) => {
                    let s = users.snapshot();
                    println!(
                        "SCIM store {}: {} active, {} inactive, {} unplaceable",
                        sc.store.display(),
                        s.active,
                        s.inactive,
                        s.unplaceable
                    );
                    state.with_scim(&s)
                }
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(1);
                }
            }
        }
        _ => state,
    };
    // Valid but probably not meant (an identity_proxies entry as wide as a balancer range).
    for w in config.listeners.iter().flat_map(|l| &l.warnings) {
        eprintln!("warning: {w}");
    }
    for n in &config.data_notes {
        eprintln!("warning: {n}");
    }
    // Old data is valid but worth a warning; the embedded fallback is not the operator's to fix.
    for s in state.stale().iter().filter(|s| !s.embedded) {
        eprintln!("warning: stale data: {}", s.describe());
    }
    for b in state.blind_spots() {
        eprintln!("warning: {b}");
    }
    // An unreachable Redis does not stop the gateway (it decides with local history), so it is
    // a warning here too; the credentials in the URL are never printed.
    if let Some(link) = &config.history_redis
        && let Err(e) = link.ping()
    {
        eprintln!(
            "warning: [history] redis at {}: {e}; the gateway will decide with each instance's own history until it answers",
            link.endpoint()
        );
    }
    println!(
        "{}: configuration is valid ({} listener{})",
        path.display(),
        listeners,
        if listeners == 1 { "" } else { "s" }
    );
    ExitCode::SUCCESS
}

/// `locgate update --preset NAME [--dir DIR] [--mirror URL]`.
struct PresetArgs<'a> {
    name: &'a str,
    dir: Option<&'a Path>,
    mirror: Option<&'a str>,
}

/// `locgate update --list`: the preset's table, one source a line.
fn list_preset(name: &str, json: bool) -> ExitCode {
    use crate::config::preset;
    let Some(table) = preset::named(name) else {
        eprintln!(
            "unknown preset `{name}` (known: {})",
            preset::NAMES.join(", ")
        );
        return ExitCode::from(2);
    };
    if json {
        for s in table {
            let line = serde_json::json!({
                "preset": name,
                "name": s.name,
                "kind": format!("{:?}", s.kind).to_lowercase(),
                "category": s.category_name(),
                "max_age_days": s.max_age_days,
                "file": s.file,
                "licence": s.licence,
                "attribution": s.attribution,
                "url": s.url,
            });
            println!("{line}");
        }
        return ExitCode::SUCCESS;
    }
    println!(
        "preset {name} (table version {}): {} sources, installed into [data] dir or --dir",
        preset::FREE_VERSION,
        table.len()
    );
    println!(
        "{:<22} {:<8} {:<17} {:>6}  {:<26} licence",
        "name", "kind", "category", "stale", "file"
    );
    for s in table {
        let kind = format!("{:?}", s.kind).to_lowercase();
        println!(
            "{:<22} {:<8} {:<17} {:>5}d  {:<26} {}",
            s.name,
            kind,
            s.category_name(),
            s.max_age_days,
            s.file,
            s.licence
        );
        println!("    {}", s.url);
        if let Some(a) = s.attribution {
            println!("    attribution required: \"{a}\"");
        }
    }
    println!(
        "{} in a URL is the year and month (the previous month is tried while the current one is not published)",
        preset::MONTH
    );
    ExitCode::SUCCESS
}

/// The `[update]` to run: the config's, with `preset`'s sources added (the config's own sources
/// win over the preset's of the same name).
fn update_config(
    config: &Config,
    preset: Option<PresetArgs<'_>>,
) -> Result<crate::config::UpdateConfig, String> {
    let Some(p) = preset else {
        return config.update.clone().ok_or_else(|| {
            format!(
                "{}: no [update] section: nothing to update (set `[update] preset = \"free\"`, or run `locgate update --preset free --dir DIR`)",
                config.origin
            )
        });
    };
    let dir = p.dir.or(config.data_dir.as_deref()).ok_or_else(|| {
        format!(
            "--preset {}: where should its files go? give --dir DIR, or a config with [data] dir",
            p.name
        )
    })?;
    if let Some(m) = p.mirror
        && !(m.starts_with("http://") || m.starts_with("https://"))
    {
        return Err(format!("--mirror `{m}` is not an http:// or https:// URL"));
    }
    let sources =
        crate::config::preset_sources(p.name, dir, p.mirror, crate::config::DEFAULT_MAX_SHRINK)
            .ok_or_else(|| {
                format!(
                    "unknown preset `{}` (known: {})",
                    p.name,
                    crate::config::preset::NAMES.join(", ")
                )
            })?;
    Ok(match config.update.clone() {
        Some(mut u) => {
            // The command line's preset replaces one the config names (its --dir wins); the
            // config's own sources still win over the preset's.
            u.sources.retain(|s| s.licence.is_none());
            u.sources = crate::config::merge_sources(sources, u.sources);
            u
        }
        None => crate::config::UpdateConfig {
            geoip_conf: None,
            schedule: None,
            sources,
            timeout: crate::config::DEFAULT_UPDATE_TIMEOUT,
        },
    })
}

/// `locgate update`: runs every source once, prints one line per step, exits 1 if any failed.
fn update(path: Option<&Path>, preset: Option<PresetArgs<'_>>) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let update = match update_config(&config, preset) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let runtime = match runtime(Some(1)) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let env = |k: &str| std::env::var(k).ok();
    let progress = |line: &str| eprintln!("{line}");
    let meter = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let summary = runtime.block_on(crate::update::run_with(&update, &env, &progress, meter));
    for line in &summary.licences {
        eprintln!("{line}");
    }
    if summary.failed.is_empty() {
        eprintln!(
            "update done: {} source{} checked",
            summary.done.len(),
            if summary.done.len() == 1 { "" } else { "s" }
        );
        ExitCode::SUCCESS
    } else {
        for (name, reason) in &summary.failed {
            eprintln!("error: {name}: {reason}");
        }
        ExitCode::from(1)
    }
}
