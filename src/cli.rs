//! The command line: `run`, `check`, `validate`, `--version`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::audit::{Event, RequestFacts};
use crate::client_addr::AddrSource;
use crate::config::Config;
use crate::intel::Intel;
use crate::policy::Mode;

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
    /// Explain the decision for each address.
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
    },
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

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ModeArg {
    Monitor,
    Enforce,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    if cli.version {
        return version();
    }
    match cli.command {
        Some(Command::Run { config }) => run(config.as_deref()),
        Some(Command::Check {
            ips,
            config,
            json,
            mode,
        }) => check(&ips, config.as_deref(), json, mode),
        Some(Command::Validate { config }) => validate(&config),
        None => ExitCode::from(2),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn load_config(path: Option<&Path>) -> Result<Config, ExitCode> {
    let loaded = match path {
        Some(p) => Config::load(p),
        None => Config::embedded_default(),
    };
    loaded.map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(1)
    })
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
    let runtime = match config.runtime.worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        // Listen for SIGTERM before serving, so a stop that arrives right after start still drains.
        let stop = stop_signal();
        let running = match crate::server::start(config).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(1);
            }
        };
        stop.await;
        tracing::info!("stopping: draining in-flight requests");
        running.shutdown().await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// Registers SIGTERM and Ctrl-C handlers now and returns a future that completes on either.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        if let Ok(mut term) = term {
            tokio::select! {
                _ = term.recv() => {}
                _ = ctrl_c => {}
            }
            return;
        }
        let _ = ctrl_c.await;
    }
}

fn check(ips: &[String], path: Option<&Path>, json: bool, mode: Option<ModeArg>) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let intel = match Intel::load(&config.data) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("data: {e}");
            return ExitCode::from(1);
        }
    };
    let mode = match mode {
        Some(ModeArg::Monitor) => Mode::Monitor,
        Some(ModeArg::Enforce) => Mode::Enforce,
        None => config.listeners.first().map_or(Mode::Enforce, |l| l.mode),
    };
    let mut status = ExitCode::SUCCESS;
    for raw in ips {
        let Ok(ip) = raw.trim().parse::<IpAddr>() else {
            eprintln!("`{raw}` is not an IP address");
            status = ExitCode::from(2);
            continue;
        };
        let obs = intel.observe(ip);
        let decision = config.policy.evaluate(&obs, mode);
        if json {
            let facts = RequestFacts {
                listener: "check".into(),
                client_addr_source: AddrSource::Peer.as_str(),
                ..RequestFacts::default()
            };
            let event = Event::build(
                format!("check-{ip}"),
                crate::audit::timestamp_now(),
                &obs,
                &decision,
                facts,
                intel.versions(),
            );
            match serde_json::to_string(&event) {
                Ok(line) => println!("{line}"),
                Err(e) => {
                    eprintln!("cannot encode event: {e}");
                    status = ExitCode::from(1);
                }
            }
        } else {
            print!("{}", crate::explain::text(&obs, &decision));
        }
    }
    status
}

fn validate(path: &Path) -> ExitCode {
    let config = match load_config(Some(path)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = Intel::load(&config.data) {
        eprintln!("{}: data: {e}", path.display());
        return ExitCode::from(1);
    }
    println!(
        "{}: configuration is valid ({} listener{})",
        path.display(),
        config.listeners.len(),
        if config.listeners.len() == 1 { "" } else { "s" }
    );
    ExitCode::SUCCESS
}
