//! The ranking at the top of the review page: employees by their evidence over a period.
//!
//! Ranking reads the store's day rollup (a row per employee and day, `audit::store::rollup`,
//! kept current by the console's sweep job) plus the events after its watermark, which is
//! quick at any size. While the rollup is far behind (a fleet's first console on 50 million
//! events) the report reads every event of the period instead: minutes (BENCHMARKS.md section
//! 10). So it adapts: a ranking that took under [`CHEAP`] is computed afresh on every page load
//! (always current); a dearer one is kept and recomputed in the background at most every
//! [`REFRESH`], the page showing the kept one (and when it was made) meanwhile, until the
//! rollup has caught up and rankings are cheap again. A fixed store (`locgate review` over a
//! replay) is ranked once, in the background, at start.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::{ApiError, App, with_store, with_store_apart};
use crate::audit::store::EmployeeSummary;

/// A ranking computed faster than this is computed on every page load.
const CHEAP: Duration = Duration::from_secs(1);
/// A dearer ranking is recomputed in the background at most this often.
const REFRESH: Duration = Duration::from_secs(300);

/// A ranking kept for the live period (made by this module only).
pub struct Kept {
    at: Instant,
    took: Duration,
    ranked: Arc<Vec<EmployeeSummary>>,
}

/// The period the console ranks employees over.
pub enum Period {
    /// A live gateway: the last 30 days.
    Recent {
        /// The last ranking, when one was made.
        kept: Mutex<Option<Kept>>,
        /// Whether a background ranking is running.
        running: AtomicBool,
    },
    /// A fixed store (`locgate review` over a replay): everything in it, ranked once in the
    /// background at start (a million events take a while) and kept.
    Whole {
        /// The first event's time (ms since the epoch).
        since_ms: i64,
        /// What the page calls the period.
        label: String,
        /// The ranking, once computed.
        ranked: OnceLock<Vec<EmployeeSummary>>,
    },
}

impl Period {
    /// The live period (the last 30 days).
    pub fn recent() -> Period {
        Period::Recent {
            kept: Mutex::new(None),
            running: AtomicBool::new(false),
        }
    }

    pub(super) fn since_ms(&self) -> i64 {
        match self {
            Period::Recent { .. } => crate::audit::store::now_ms() - 30 * 86_400_000,
            Period::Whole { since_ms, .. } => *since_ms,
        }
    }

    pub(super) fn label(&self) -> &str {
        match self {
            Period::Recent { .. } => "last 30 days",
            Period::Whole { label, .. } => label,
        }
    }
}

/// Ranks the store over the app's period; `None` when the store cannot.
async fn rank(app: &App) -> Option<(Vec<EmployeeSummary>, Duration)> {
    let dir = app.shared.state.load_full();
    let since = app.period.since_ms();
    let started = Instant::now();
    match with_store_apart(app, move |s| s.report(since, dir.directory.as_ref(), None)).await {
        Ok(ranked) => Some((ranked, started.elapsed())),
        Err(ApiError(_, m)) => {
            tracing::error!(error = %m, "cannot rank the store");
            None
        }
    }
}

/// Starts ranking in the background (at start, and when a kept ranking is old).
pub(super) fn start(app: &App) {
    let app = app.clone();
    match &*app.period {
        Period::Whole { .. } => {
            tokio::spawn(async move {
                if let Some((ranked, took)) = rank(&app).await {
                    tracing::info!(
                        employees = ranked.len(),
                        secs = took.as_secs_f64(),
                        "ranking done"
                    );
                    if let Period::Whole { ranked: cell, .. } = &*app.period {
                        let _ = cell.set(ranked);
                    }
                }
            });
        }
        Period::Recent { running, .. } => {
            if running.swap(true, Ordering::AcqRel) {
                return;
            }
            tokio::spawn(async move {
                let done = rank(&app).await;
                if let Period::Recent { kept, running } = &*app.period {
                    if let Some((ranked, took)) = done {
                        *kept.lock().unwrap_or_else(PoisonError::into_inner) = Some(Kept {
                            at: Instant::now(),
                            took,
                            ranked: Arc::new(ranked),
                        });
                    }
                    running.store(false, Ordering::Release);
                }
            });
        }
    }
}

/// The ranking for a page load: `Ok(Some)` a kept or fresh one, `Ok(None)` still being made.
pub(super) async fn for_page(app: &App) -> Result<Option<Arc<Vec<EmployeeSummary>>>, ApiError> {
    let Period::Recent { kept, running } = &*app.period else {
        if let Period::Whole { ranked, .. } = &*app.period {
            return Ok(ranked.get().cloned().map(Arc::new));
        }
        return Ok(None);
    };
    let now = Instant::now();
    let dear = {
        let kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
        match kept.as_ref() {
            Some(k) if k.took >= CHEAP => Some((k.ranked.clone(), now.duration_since(k.at))),
            _ => None,
        }
    };
    if let Some((ranked, age)) = dear {
        if age >= REFRESH {
            start(app);
        }
        return Ok(Some(ranked));
    }
    if running.load(Ordering::Acquire) && kept.lock().map(|k| k.is_none()).unwrap_or(true) {
        return Ok(None);
    }
    let dir = app.shared.state.load_full();
    let since = app.period.since_ms();
    let started = Instant::now();
    let ranked = with_store(app, move |s| s.report(since, dir.directory.as_ref(), None)).await?;
    let ranked = Arc::new(ranked);
    *kept.lock().unwrap_or_else(PoisonError::into_inner) = Some(Kept {
        at: Instant::now(),
        took: started.elapsed(),
        ranked: ranked.clone(),
    });
    Ok(Some(ranked))
}
