//! Hot reload: SIGHUP, changed files and the update schedule rebuild the whole runtime state.
//!
//! A reload re-reads the config, reopens every database and list and the employee directory, and
//! only when all of it loaded does it swap the new [`RuntimeState`] in with one atomic store.
//! Requests take their snapshot at their start (`load_full`), so a request never mixes old and
//! new data, and requests already running finish on the state they began with. When anything is
//! wrong the old state keeps serving, the problem is logged with its file and reason, and
//! `reloads_failed` counts it.
//!
//! Files are watched through their parent directories, because data is replaced by rename
//! (`locgate update`, geoipupdate, `mv`): a watch on the file itself would follow the old inode.
//!
//! With [`Reloader::with_listeners`] (as `locgate run` does), listeners added, removed or changed
//! in the config are started, stopped or rebound; unchanged ones keep their sockets.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::listeners::ListenerSet;
use crate::config::{Config, ListenerConfig, UpdateConfig};
use crate::state::{LoadError, RuntimeState, Shared};
use crate::values::ConfigError;

/// Quiet time after a file event before reloading: a replacement often arrives as several
/// events (create, write, rename), and geoipupdate replaces several files in a row.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Longest a reload waits for file events to settle.
pub const DEBOUNCE_MAX: Duration = Duration::from_secs(3);

/// How often data age is checked again while running.
pub const STALE_CHECK: Duration = Duration::from_secs(3600);

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config file is unreadable or wrong.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// A data file or the directory is missing or bad.
    #[error("{0}")]
    Load(#[from] LoadError),
    /// A new or changed listener could not be bound.
    #[error("{0}")]
    Listener(#[from] std::io::Error),
}

/// What a listener is, as far as a reload can tell whether it changed.
fn listener_key(l: &ListenerConfig) -> String {
    format!("{} {} {} {}", l.name, l.bind, l.upstream, l.mode.as_str())
}

/// Rebuilds and swaps the state of a running gateway.
pub struct Reloader {
    config_path: Option<PathBuf>,
    shared: Arc<Shared>,
    /// Listener identities at start, to notice changes that need a restart.
    listeners: Vec<String>,
    /// Files whose change triggers a reload, from the config last loaded.
    watched: Mutex<Vec<PathBuf>>,
    /// `[update]` of the config last loaded (the schedule uses the current one).
    update: Mutex<Option<UpdateConfig>>,
    /// One reload at a time.
    busy: Mutex<()>,
    /// The serving listeners, when the reloader may change them (and the runtime they run on).
    managed: Option<(Arc<ListenerSet>, tokio::runtime::Handle)>,
}

/// Reads the config at `path`, or the embedded default.
pub fn load_config(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        Some(p) => Config::load(p),
        None => Config::embedded_default(),
    }
}

/// Logs the warnings of a valid config (an `identity_proxies` entry as wide as a balancer
/// range), at start and at every reload, so a risky setting is never silent.
pub fn warn_about(config: &Config) {
    for w in config.listeners.iter().flat_map(|l| &l.warnings) {
        tracing::warn!("CONFIG WARNING: {w}");
    }
    for n in &config.data_notes {
        tracing::warn!("{n}");
    }
}

/// Every file a config depends on: itself, the employee directory, databases, lists, ASN table,
/// TLS certificates and keys.
pub fn watched_files(config_path: Option<&Path>, config: &Config) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = config_path.map(Path::to_path_buf).into_iter().collect();
    if let Some(e) = &config.employees {
        files.push(e.file.clone());
    }
    files.extend(config.data.mmdb.iter().cloned());
    files.extend(config.data.lists.iter().map(|(p, _)| p.clone()));
    files.extend(config.data.asn_table.iter().cloned());
    files.extend(config.data.network_kinds.iter().cloned());
    // The files a preset installs in `[data] dir` count before they first appear there, so the
    // first `locgate update --preset` is picked up without a SIGHUP.
    if let Some(dir) = config.data_dir.as_ref().filter(|d| d.is_dir()) {
        files.extend(crate::config::preset::FREE.iter().map(|p| dir.join(p.file)));
    }
    for l in &config.listeners {
        if let Some(tls) = &l.edge.tls {
            files.extend([tls.cert.clone(), tls.key.clone()]);
            files.extend(tls.client_ca.iter().cloned());
            files.extend(tls.sni.iter().flat_map(|p| [p.cert.clone(), p.key.clone()]));
        }
    }
    // Absolute, so they compare equal to the paths the watcher reports.
    files
        .into_iter()
        .map(|f| std::path::absolute(&f).unwrap_or(f))
        .collect()
}

impl Reloader {
    /// A reloader for the gateway started from `config` (read from `config_path`, or the
    /// embedded default when `None`).
    pub fn new(config_path: Option<PathBuf>, config: &Config, shared: Arc<Shared>) -> Self {
        Reloader {
            listeners: config.listeners.iter().map(listener_key).collect(),
            watched: Mutex::new(watched_files(config_path.as_deref(), config)),
            update: Mutex::new(config.update.clone()),
            config_path,
            shared,
            busy: Mutex::new(()),
            managed: None,
        }
    }

    /// Lets reloads start, stop and rebind listeners. Must be called inside the Tokio runtime
    /// the listeners run on.
    pub fn with_listeners(mut self, set: Arc<ListenerSet>) -> Self {
        self.managed = Some((set, tokio::runtime::Handle::current()));
        self
    }

    /// Rebuilds the state from the config file and swaps it in; on error the old state stays.
    /// Blocking (reads files): call from a blocking thread. `why` is logged.
    pub fn reload_now(&self, why: &str) -> Result<(), ReloadError> {
        let _one = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        let stats = &self.shared.auditor.stats;
        let started = std::time::Instant::now();
        match self.build() {
            Ok(state) => {
                self.shared.install(state);
                report_data(&self.shared.state.load(), stats);
                self.shared.verdicts_may_have_changed(None);
                stats.reloads_ok.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    trigger = why,
                    ms = started.elapsed().as_millis() as u64,
                    "reloaded: new data and rules in service"
                );
                Ok(())
            }
            Err(e) => {
                stats.reloads_failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(trigger = why, error = %e, "reload refused; still serving the previous data and rules");
                Err(e)
            }
        }
    }

    fn build(&self) -> Result<RuntimeState, ReloadError> {
        let mut config = load_config(self.config_path.as_deref())?;
        warn_about(&config);
        let watched = watched_files(self.config_path.as_deref(), &config);
        let listeners = std::mem::take(&mut config.listeners);
        let update = config.update.clone();
        let state = RuntimeState::from_config(&mut config)?;
        // The history store outlives reloads (it is what happened, not configuration).
        let running_redis = self
            .shared
            .history_sync
            .as_ref()
            .map(|h| h.endpoint.clone());
        if running_redis != config.history_redis.as_ref().map(|r| r.endpoint()) {
            tracing::warn!(
                "[history] redis changed: restart locgate to apply it; policy, data and employees are reloaded now"
            );
        }
        // The SCIM store is opened once, at start (the routes hold it).
        if config.scim.is_some() != self.shared.scim.is_some() {
            tracing::warn!(
                "[scim] added or removed: restart locgate to apply it; policy, data and employees are reloaded now"
            );
        }
        // Listeners change only once everything else loaded, so a bad data file cannot leave
        // new listeners behind.
        match &self.managed {
            Some((set, runtime)) => {
                runtime.block_on(crate::identity::start_key_refresh(super::KEY_FETCH_WAIT));
                let change = runtime.block_on(set.apply(listeners))?;
                if !change.is_empty() {
                    tracing::info!(started = ?change.started, stopped = ?change.stopped, "listeners changed");
                }
            }
            None => {
                let keys: Vec<String> = listeners.iter().map(listener_key).collect();
                if keys != self.listeners {
                    tracing::warn!(
                        "[[listener]] sections changed: restart locgate to apply them; policy, data and employees are reloaded now"
                    );
                }
            }
        }
        // Certificates of TLS listeners that kept their socket: new handshakes use the new
        // files; a bad file keeps the old certificate (the data reload still goes ahead).
        for (listener, result) in crate::edge::reload_tls() {
            if let Err(e) = result {
                tracing::error!(%listener, error = %e, "TLS certificate reload failed; the previous certificate stays in use");
            }
        }
        *self.watched.lock().unwrap_or_else(|p| p.into_inner()) = watched;
        *self.update.lock().unwrap_or_else(|p| p.into_inner()) = update;
        Ok(state)
    }

    /// Reloads on a blocking thread, telling systemd ([`super::notify`]) that a reload runs and,
    /// whatever its outcome, that the gateway serves again.
    pub async fn reload(self: &Arc<Self>, why: &'static str) -> Result<(), ReloadError> {
        super::notify::reloading();
        let me = self.clone();
        let result = match tokio::task::spawn_blocking(move || me.reload_now(why)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "reload task failed");
                self.shared
                    .auditor
                    .stats
                    .reloads_failed
                    .fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        };
        super::notify::ready(&match &result {
            Ok(()) => format!("serving; reloaded ({why})"),
            Err(e) => format!("serving the previous state; reload ({why}) refused: {e}"),
        });
        result
    }

    /// Files whose change triggers a reload.
    pub fn watched(&self) -> Vec<PathBuf> {
        self.watched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether a change of `path` should trigger a reload: a watched file, or a new database
    /// appearing in a watched directory (`[data] dir` picks databases up by name).
    pub fn is_relevant(&self, path: &Path) -> bool {
        let watched = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        watched.iter().any(|w| w == path)
            || (path.extension().is_some_and(|x| x == "mmdb")
                && watched.iter().any(|w| w.parent() == path.parent()))
    }

    /// Runs until `stop` fires: SIGHUP, file changes, the update schedule and the periodic
    /// stale-data check. Must be called inside a Tokio runtime.
    ///
    /// SIGHUP is taken over when this is called, not when the future first runs: `run` tells
    /// systemd it is ready right after, and a `systemctl reload` in between must reload, not
    /// end the process (SIGHUP's default action).
    pub fn serve(
        self: Arc<Self>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        #[cfg(unix)]
        let hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload by file change only");
                None
            }
        };
        #[cfg(not(unix))]
        let hup: Option<()> = None;
        self.serve_with(hup, stop)
    }

    async fn serve_with(
        self: Arc<Self>,
        #[cfg(unix)] mut hup: Option<tokio::signal::unix::Signal>,
        #[cfg(not(unix))] _hup: Option<()>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
        let mut watcher = FileWatcher::new(tx);
        watcher.watch(&self.watched());
        tracing::info!(
            files = self.watched().len(),
            "reload ready: SIGHUP or a change of a watched file reloads config, employees and data"
        );
        let schedule = self
            .update
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|u| u.schedule);
        // The schedule runs in a task of its own, so a long download never delays a SIGHUP.
        let scheduled = schedule.map(|every| tokio::spawn(self.clone().scheduled_updates(every)));
        let mut stale_tick =
            tokio::time::interval_at(tokio::time::Instant::now() + STALE_CHECK, STALE_CHECK);
        loop {
            #[cfg(unix)]
            let hup_fut = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hup_fut = std::future::pending::<Option<()>>();
            tokio::select! {
                _ = stop.changed() => break,
                _ = hup_fut => {
                    tracing::info!("SIGHUP: reloading");
                    let _ = self.reload("sighup").await;
                }
                Some(path) = rx.recv() => {
                    if !self.is_relevant(&path) {
                        continue;
                    }
                    // Let the burst of events from one replacement settle. Only relevant events
                    // extend the wait (the event log may share the directory and change with
                    // every request), and never beyond DEBOUNCE_MAX.
                    let give_up = tokio::time::Instant::now() + DEBOUNCE_MAX;
                    loop {
                        let quiet = (tokio::time::Instant::now() + DEBOUNCE).min(give_up);
                        match tokio::time::timeout_at(quiet, async {
                            loop {
                                match rx.recv().await {
                                    Some(p) if self.is_relevant(&p) => return true,
                                    Some(_) => continue,
                                    None => return false,
                                }
                            }
                        })
                        .await
                        {
                            Ok(true) => continue,
                            _ => break,
                        }
                    }
                    tracing::info!(file = %path.display(), "data or config changed: reloading");
                    let _ = self.reload("file change").await;
                }
                _ = stale_tick.tick() => {
                    report_stale(&self.shared.state.load(), &self.shared.auditor.stats);
                }
            }
            watcher.watch(&self.watched());
        }
        if let Some(task) = scheduled {
            task.abort();
        }
    }

    /// Every `every`: runs the update with the current `[update]` section, then reloads if a file
    /// was replaced. (The schedule's period is read at start; changing it needs a restart.)
    async fn scheduled_updates(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let update = self
                .update
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let Some(u) = update else { continue };
            let env = |k: &str| std::env::var(k).ok();
            let progress = |line: &str| tracing::info!("update: {line}");
            let summary = crate::update::run(&u, &env, &progress).await;
            let stats = &self.shared.auditor.stats;
            stats
                .updates_ok
                .fetch_add(summary.done.len() as u64, Ordering::Relaxed);
            stats
                .updates_failed
                .fetch_add(summary.failed.len() as u64, Ordering::Relaxed);
            for (name, reason) in &summary.failed {
                tracing::error!(source = %name, %reason, "scheduled update failed; the installed data stays");
            }
            if summary.changed() {
                let _ = self.reload("scheduled update").await;
            }
        }
    }
}

/// Logs what each loaded database answers, then [`report_stale`]: at start and after a reload.
pub fn report_data(state: &RuntimeState, stats: &crate::audit::Stats) {
    for (version, caps) in state.intel.databases() {
        tracing::info!(source = %version.source, kind = %version.kind, "database answers: {}", caps.describe());
    }
    report_stale(state, stats);
}

/// Logs every stale source and every blind spot (rules the data cannot serve), and records the
/// counts for the metrics; also hourly, so neither is said once and forgotten.
pub fn report_stale(state: &RuntimeState, stats: &crate::audit::Stats) {
    let stale = state.stale();
    for s in &stale {
        if s.embedded {
            tracing::info!(source = %s.source, "embedded data is old: {}; `locgate update --preset free --dir DIR` fetches fresh free data (no account), then set `[data] dir = DIR`", s.describe());
        } else {
            tracing::warn!(source = %s.source, "stale data: {}; run `locgate update`", s.describe());
        }
    }
    stats
        .stale_sources
        .store(stale.len() as u64, Ordering::Relaxed);
    let blind = state.blind_spots();
    for b in &blind {
        tracing::warn!("{b}");
    }
    stats
        .blind_spots
        .store(blind.len() as u64, Ordering::Relaxed);
}

/// Watches the parent directories of files and sends the paths of changes.
struct FileWatcher {
    inner: Option<notify::RecommendedWatcher>,
    dirs: HashSet<PathBuf>,
}

impl FileWatcher {
    fn new(tx: tokio::sync::mpsc::UnboundedSender<PathBuf>) -> Self {
        let handler = move |res: notify::Result<notify::Event>| match res {
            Ok(ev) => {
                if matches!(ev.kind, notify::EventKind::Access(_)) {
                    return;
                }
                for p in ev.paths {
                    let _ = tx.send(p);
                }
            }
            Err(e) => tracing::warn!(error = %e, "file watch error"),
        };
        let inner = match notify::recommended_watcher(handler) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch files; reload with SIGHUP");
                None
            }
        };
        FileWatcher {
            inner,
            dirs: HashSet::new(),
        }
    }

    /// Adds watches for the parent directories of `files` not watched yet.
    fn watch(&mut self, files: &[PathBuf]) {
        use notify::Watcher;
        let Some(w) = self.inner.as_mut() else { return };
        for f in files {
            let dir = match f.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            if self.dirs.contains(&dir) {
                continue;
            }
            match w.watch(&dir, notify::RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.dirs.insert(dir);
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory; reload with SIGHUP");
                }
            }
        }
    }
}
