//! `[events]`: the JSON lines file, the SQLite store, the writer queue, the instance name and
//! the network outputs (`[events.syslog]`, `.journald`, `.hec`, `.otlp`: [`super::outputs`]).
//!
//! The store and rotation checks themselves live with the review settings in [`super::review`];
//! this file reads the section and assembles [`EventsConfig`]. It is checked in two steps, with
//! `[admin]` and `[[alert]]` in between, because that is the order the loader has always
//! reported mistakes in: a config with several mistakes names the same first one as before.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{ErrAt, StoreConfig, StoreOnError, outputs, review};
use crate::audit::WhenFull;
use crate::values::{ConfigError, Dur};

/// `[events]`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventsConfig {
    /// JSON lines file; `None` disables it, `-` writes to standard output.
    pub jsonl: Option<PathBuf>,
    /// An allow for the same client (and user) is written at most once per this interval.
    pub allow_log_interval: Duration,
    /// The event store (SQLite or PostgreSQL), when configured.
    pub store: Option<StoreConfig>,
    /// What the request path does when the writer queue is full.
    pub when_full: WhenFull,
    /// Writer queue capacity.
    pub queue_capacity: usize,
    /// JSON lines rotation.
    pub rotation: crate::audit::Rotation,
    /// `observer.name` in every event (default: the host name).
    pub instance: Option<String>,
    /// Network outputs (syslog, journald, Splunk HEC, OTLP).
    pub outputs: Vec<crate::audit::outputs::OutputConfig>,
}

/// `[events]` after its first step: the store and queue are checked, rotation is still to do.
pub(super) struct StoreChecked {
    raw: RawEvents,
    store: Option<StoreConfig>,
    when_full: WhenFull,
}

/// First step: the SQLite store, `when_full` (spilling needs a JSON lines file) and the queue.
pub(super) fn check_store(
    mut raw: RawEvents,
    base: &Path,
    err: ErrAt<'_>,
) -> Result<StoreChecked, ConfigError> {
    let when_full_span = raw.when_full.as_ref().map(|w| w.span());
    let when_full = raw
        .when_full
        .take()
        .map(Spanned::into_inner)
        .unwrap_or_default();
    let jsonl = raw.jsonl.as_ref().map(|p| base.join(p));
    let store = review::store(
        raw.sqlite.take(),
        review::RawPostgres {
            url: raw.postgres.take(),
            password_file: raw.postgres_password_file.take(),
            ca_file: raw.postgres_ca_file.take(),
            spool: raw.postgres_spool.take(),
            spool_max_mb: raw.postgres_spool_max_mb.take(),
        },
        raw.jsonl
            .as_ref()
            .filter(|p| *p != Path::new("-"))
            .and(jsonl.as_deref()),
        raw.retention_days.take(),
        raw.on_store_error.unwrap_or_default(),
        when_full,
        when_full_span,
        base,
        err,
    )?;
    if let Some(q) = &raw.queue_capacity
        && *q.get_ref() == 0
    {
        return Err(err(q.span(), "queue_capacity must be at least 1".into()));
    }
    Ok(StoreChecked {
        raw,
        store,
        when_full,
    })
}

impl StoreChecked {
    /// Second step: the JSON lines rotation; then the section is complete.
    pub(super) fn finish(self, base: &Path, err: ErrAt<'_>) -> Result<EventsConfig, ConfigError> {
        let StoreChecked {
            raw,
            store,
            when_full,
        } = self;
        let rotation = review::rotation(
            raw.jsonl_max_mb,
            raw.jsonl_max_age.map(|d| d.0),
            raw.jsonl_keep,
            err,
        )?;
        let instance = outputs::instance(raw.instance, err)?;
        let outputs = outputs::check(
            outputs::RawOutputs {
                syslog: raw.syslog,
                journald: raw.journald,
                hec: raw.hec,
                otlp: raw.otlp,
            },
            base,
            err,
        )?;
        Ok(EventsConfig {
            instance,
            outputs,
            rotation,
            store,
            when_full,
            queue_capacity: raw
                .queue_capacity
                .map_or(crate::audit::QUEUE_CAPACITY, Spanned::into_inner),
            jsonl: raw
                .jsonl
                .map(|p| if p == Path::new("-") { p } else { base.join(p) }),
            allow_log_interval: raw
                .allow_log_interval
                .map_or(Duration::from_secs(600), |d| d.0),
        })
    }
}

/// `[events]` as written; every field optional.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvents {
    jsonl: Option<PathBuf>,
    allow_log_interval: Option<Dur>,
    sqlite: Option<PathBuf>,
    postgres: Option<Spanned<String>>,
    postgres_password_file: Option<Spanned<PathBuf>>,
    postgres_ca_file: Option<Spanned<PathBuf>>,
    postgres_spool: Option<Spanned<PathBuf>>,
    postgres_spool_max_mb: Option<Spanned<u64>>,
    retention_days: Option<Spanned<u32>>,
    when_full: Option<Spanned<WhenFull>>,
    queue_capacity: Option<Spanned<usize>>,
    on_store_error: Option<StoreOnError>,
    jsonl_max_mb: Option<Spanned<u64>>,
    jsonl_max_age: Option<Dur>,
    jsonl_keep: Option<Spanned<u32>>,
    instance: Option<Spanned<String>>,
    syslog: Option<outputs::RawSyslog>,
    journald: Option<outputs::RawJournald>,
    hec: Option<outputs::RawHec>,
    otlp: Option<outputs::RawOtlp>,
}
