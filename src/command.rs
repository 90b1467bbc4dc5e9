//! What the one-shot commands share (`check`, `replay`, `review`, `validate`, `update`, `run`):
//! loading the config and the data it names, the `--mode` argument, the async runtime and the
//! stop signal, and writing events as JSON lines. Below [`crate::cli`] and the command modules
//! ([`crate::replay_cli`], [`crate::review_cli`]), so they share it without importing each other.

use std::path::Path;
use std::process::ExitCode;

use clap::ValueEnum;

use crate::audit::Event;
use crate::audit::event::Origin;
use crate::config::Config;
use crate::policy::Mode;
use crate::state::RuntimeState;

/// `--mode` of `check` and `replay`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum ModeArg {
    Monitor,
    Enforce,
}

pub(crate) fn load_config(path: Option<&Path>) -> Result<Config, ExitCode> {
    let loaded = match path {
        Some(p) => Config::load(p),
        None => Config::embedded_default(),
    };
    loaded.map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(1)
    })
}

/// The async runtime with `threads` workers (1: on this thread; none: one per core), or the
/// message and exit status 1.
pub(crate) fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime, ExitCode> {
    let built = match threads {
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
    built.map_err(|e| {
        eprintln!("cannot start the async runtime: {e}");
        ExitCode::from(1)
    })
}

/// Registers SIGTERM and Ctrl-C handlers now and returns a future that completes on either.
pub(crate) fn stop_signal() -> impl std::future::Future<Output = ()> {
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

/// What `check` and `replay` decide with: the state, the first listener's mode, and the
/// `observer.*` / `host.*` their JSON events carry.
pub(crate) type Loaded = (RuntimeState, Option<Mode>, std::sync::Arc<Origin>);

/// Loads the config and everything it names; prints the problem and gives the exit code if not.
pub(crate) fn load_all(path: Option<&Path>) -> Result<Loaded, ExitCode> {
    let config = load_config(path)?;
    let first_mode = config.listeners.first().map(|l| l.mode);
    let origin = std::sync::Arc::new(Origin::new(config.events.instance.as_deref()));
    let state = RuntimeState::load(
        &config.data,
        config.policy,
        config.employees.as_ref(),
        config.history,
    )
    .map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(1)
    })?;
    Ok((state, first_mode, origin))
}

pub(crate) fn pick_mode(arg: Option<ModeArg>, configured: Option<Mode>) -> Mode {
    match arg {
        Some(ModeArg::Monitor) => Mode::Monitor,
        Some(ModeArg::Enforce) => Mode::Enforce,
        None => configured.unwrap_or(Mode::Enforce),
    }
}

/// Writes one event as a JSON line to `out` (a buffered writer for long outputs: one system
/// call per line costs more than the decision); `Some(1)` if it could not be written.
pub(crate) fn write_json(out: &mut impl std::io::Write, event: &Event) -> Option<ExitCode> {
    let written = serde_json::to_writer(&mut *out, event)
        .map_err(std::io::Error::from)
        .and_then(|()| out.write_all(b"\n"));
    match written {
        Ok(()) => None,
        Err(e) => {
            eprintln!("cannot write event: {e}");
            Some(ExitCode::from(1))
        }
    }
}

/// RFC 3339 with milliseconds, like live events.
pub(crate) fn format_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}
