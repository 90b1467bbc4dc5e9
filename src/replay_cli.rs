//! `locgate replay`: reads an export, judges every sign-in in time order, and writes what it
//! found where the hunt needs it: JSON lines on standard output (for a SIEM or `jq`), the
//! per-employee table (`--summary`, `--json` for tools), or an event store (`--store`) that
//! `locgate review` and the admin console read.
//!
//! Judging stays on this thread; with `--store`, a second thread serialises and inserts the
//! events while the next ones are judged, so a million sign-ins load in about the time it takes
//! to judge them.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Args;

use crate::audit::store::{BulkLoad, Loaded, StoreError};
use crate::audit::{Event, RequestFacts};
use crate::client_addr::AddrSource;
use crate::decide::{Answer, Claim, Question, decide};
use crate::replay::summary::Summary;
use crate::replay::{Format, Mapping, Parsed, SignIn};

/// `locgate replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The file of sign-ins (`-` for standard input).
    file: PathBuf,
    /// Config file (default: the embedded default).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Mode to judge in (default: the first listener's, else enforce).
    #[arg(long, value_enum)]
    mode: Option<crate::command::ModeArg>,
    /// The export's format: auto (detected per record), okta, entra, entra-portal, google,
    /// duo, cloudflare, plain (time, ip, user).
    #[arg(long, default_value = "auto")]
    format: String,
    /// Where another log keeps the fields: `time=FIELD,ip=FIELD[,user=FIELD][,outcome=FIELD]`
    /// (dotted paths into JSON; CSV header names). Overrides --format.
    #[arg(long)]
    map: Option<String>,
    /// Print one row per employee (most flagged first) instead of the events; exit 3 when
    /// anything was flagged or blocked.
    #[arg(long)]
    summary: bool,
    /// With --summary: one JSON object per employee instead of the table.
    #[arg(long, requires = "summary")]
    json: bool,
    /// Write the events into this event store (SQLite; created, or with --append added to)
    /// instead of printing them: `locgate review --db FILE` shows them as a ranked queue.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Add to a store that already holds events (sign-ins already in it are not added twice).
    #[arg(long, requires = "store")]
    append: bool,
}

/// Runs `locgate replay`. Exit status: 0 done, 1 unreadable records or an error, 2 a bad
/// argument, 3 (with --summary) something was flagged or blocked.
pub fn replay(a: &ReplayArgs) -> ExitCode {
    let format = match &a.map {
        Some(m) => Mapping::parse(m).map(Format::Mapped),
        None => Format::named(&a.format),
    };
    let format = match format {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "{}: {e}",
                if a.map.is_some() { "--map" } else { "--format" }
            );
            return ExitCode::from(2);
        }
    };
    let (state, configured, origin) = match crate::command::load_all(a.config.as_deref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mode = crate::command::pick_mode(a.mode, configured);
    let text = match read_input(&a.file) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let parsed = crate::replay::parse(&text, &format);
    drop(text);
    report_read(&a.file, &parsed);
    let status = if parsed.bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    let mut sink = match &a.store {
        Some(path) => match StoreSink::start(path, a.append) {
            Ok(s) => Sink::Store(s),
            Err(e) => {
                eprintln!("--store: {e}");
                return ExitCode::from(if matches!(e, StoreError::Invalid(_)) {
                    2
                } else {
                    1
                });
            }
        },
        None if a.summary => Sink::Nothing,
        None => Sink::Stdout(std::io::BufWriter::with_capacity(
            1 << 16,
            std::io::stdout().lock(),
        )),
    };
    // A fresh history, filled in time order: the signals come out as the live proxy would compute.
    let history = crate::history::MemoryHistory::new();
    let mut tally = Summary::default();
    let mut ids = Ids::default();
    let mut progress = Progress::new(parsed.rows.len());
    for row in &parsed.rows {
        progress.tick();
        let obs = state.intel.observe(row.ip);
        // A refused sign-in names whom someone tried to be: it may tighten, never loosen, and is
        // not recorded as that person's sighting.
        let refused = row.succeeded == Some(false);
        let question = Question {
            trouble: None,
            claim: row.user.as_deref().map(|u| {
                if refused {
                    Claim::inferred(u)
                } else {
                    Claim::verified(u)
                }
            }),
            wire: Vec::new(),
            mode,
            at: row.time,
        };
        // The table prints reason codes only: no sentence is written for it.
        let judge = || decide(&state, Some(&history), &obs, question);
        let Answer {
            decision,
            user,
            user_verified,
            ..
        } = if matches!(sink, Sink::Nothing) {
            crate::policy::reason::codes_only(judge)
        } else {
            judge()
        };
        tally.add(user.as_deref(), row.time, refused, &decision);
        if matches!(sink, Sink::Nothing) {
            continue;
        }
        let facts = RequestFacts {
            listener: "replay".into(),
            client_addr_source: AddrSource::Peer.as_str(),
            user,
            user_verified,
            ..RequestFacts::default()
        };
        let mut event = Event::build(
            ids.next(row),
            crate::command::format_time(row.time),
            &obs,
            &decision,
            facts,
            state.intel.shown(),
        );
        // A replayed record is a sign-in: ECS authentication, with the identity provider's
        // outcome when the record says.
        event.origin = Some(origin.clone());
        event.event.category = Some(&["authentication"]);
        event.event.types = Some(&["start"]);
        event.event.outcome = Some(match row.succeeded {
            Some(true) => "success",
            Some(false) => "failure",
            None => "unknown",
        });
        if let Err(code) = sink.put(event) {
            return code;
        }
    }
    progress.done();
    if let Err(code) = sink.finish(a.store.as_deref()) {
        return code;
    }
    if a.summary {
        let printed = if a.json {
            print_summary_json(&tally)
        } else {
            std::io::Write::write_all(&mut std::io::stdout(), tally.render().as_bytes())
        };
        if let Err(e) = printed {
            eprintln!("cannot write the summary: {e}");
            return ExitCode::from(1);
        }
        if tally.any_flagged() && parsed.bad.is_empty() {
            return ExitCode::from(3);
        }
    }
    status
}

/// The whole input: a file, or standard input for `-`.
fn read_input(file: &Path) -> Result<String, ExitCode> {
    if file == Path::new("-") {
        let mut s = String::new();
        return std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map(|_| s)
            .map_err(|e| {
                eprintln!("cannot read standard input: {e}");
                ExitCode::from(1)
            });
    }
    std::fs::read_to_string(file).map_err(|e| {
        eprintln!("{}: cannot read: {e}", file.display());
        ExitCode::from(1)
    })
}

/// Names every unreadable record and says what was read, on standard error.
fn report_read(file: &Path, parsed: &Parsed) {
    for b in &parsed.bad {
        eprintln!("{}:{}: {}", file.display(), b.at, b.message);
    }
    eprintln!(
        "{}: {} sign-ins read as {}{}{}",
        file.display(),
        parsed.rows.len(),
        parsed.format,
        match parsed.bad.len() {
            0 => String::new(),
            n => format!(", {n} unreadable"),
        },
        match parsed.skipped {
            0 => String::new(),
            n => format!(", {n} records without a client address skipped"),
        },
    );
}

fn print_summary_json(tally: &Summary) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for r in tally.ranked() {
        let line = serde_json::json!({
            "employee": r.user,
            "sign_ins": r.sign_ins,
            "flagged": r.flagged,
            "refused": r.refused,
            "reasons": r.reasons(),
            "first": r.first.to_string(),
            "last": r.last.to_string(),
        });
        serde_json::to_writer(&mut out, &line)?;
        std::io::Write::write_all(&mut out, b"\n")?;
    }
    std::io::Write::flush(&mut out)
}

/// Where the judged events go.
enum Sink {
    /// `--summary` alone: nowhere.
    Nothing,
    /// JSON lines on standard output.
    Stdout(std::io::BufWriter<std::io::StdoutLock<'static>>),
    /// An event store, through its loader thread.
    Store(StoreSink),
}

impl Sink {
    fn put(&mut self, event: Event) -> Result<(), ExitCode> {
        match self {
            Sink::Nothing => Ok(()),
            Sink::Stdout(out) => match crate::command::write_json(out, &event) {
                None => Ok(()),
                Some(code) => Err(code),
            },
            Sink::Store(s) => s.put(event),
        }
    }

    fn finish(self, path: Option<&Path>) -> Result<(), ExitCode> {
        match self {
            Sink::Nothing => Ok(()),
            Sink::Stdout(mut out) => std::io::Write::flush(&mut out).map_err(|_| ExitCode::from(1)),
            Sink::Store(s) => {
                let loaded = s.finish()?;
                let path = path.map_or_else(String::new, |p| p.display().to_string());
                let added = loaded.after - loaded.before;
                eprintln!(
                    "{path}: {added} events stored ({} in all{}); review them with: locgate review --db {path}",
                    loaded.after,
                    if loaded.before > 0 {
                        format!(", {} were there before", loaded.before)
                    } else {
                        String::new()
                    }
                );
                Ok(())
            }
        }
    }
}

/// Events per transaction.
const BATCH: usize = 20_000;

/// The store's loader: batches go to a thread that serialises and inserts them.
struct StoreSink {
    batch: Vec<Event>,
    tx: Option<mpsc::SyncSender<Vec<Event>>>,
    loader: Option<std::thread::JoinHandle<Result<Loaded, StoreError>>>,
}

impl StoreSink {
    fn start(path: &Path, append: bool) -> Result<StoreSink, StoreError> {
        let mut load = BulkLoad::start(path, append)?;
        let (tx, rx) = mpsc::sync_channel::<Vec<Event>>(2);
        let loader = std::thread::Builder::new()
            .name("locgate-replay-store".into())
            .spawn(move || {
                for batch in rx {
                    load.add(&batch)?;
                }
                load.finish()
            })
            .map_err(|e| StoreError::Invalid(format!("cannot start the loader thread: {e}")))?;
        Ok(StoreSink {
            batch: Vec::with_capacity(BATCH),
            tx: Some(tx),
            loader: Some(loader),
        })
    }

    fn put(&mut self, event: Event) -> Result<(), ExitCode> {
        self.batch.push(event);
        if self.batch.len() >= BATCH {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> Result<(), ExitCode> {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(batch).is_ok());
        if sent {
            Ok(())
        } else {
            // The loader stopped: its error says why.
            Err(self.join().err().unwrap_or_else(|| ExitCode::from(1)))
        }
    }

    fn finish(mut self) -> Result<Loaded, ExitCode> {
        if !self.batch.is_empty() {
            self.send()?;
        }
        self.join()
    }

    fn join(&mut self) -> Result<Loaded, ExitCode> {
        self.tx = None;
        let Some(loader) = self.loader.take() else {
            return Err(ExitCode::from(1));
        };
        match loader.join() {
            Ok(Ok(loaded)) => Ok(loaded),
            Ok(Err(e)) => {
                eprintln!("--store: {e}");
                Err(ExitCode::from(1))
            }
            Err(_) => {
                eprintln!("--store: the loader thread failed");
                Err(ExitCode::from(1))
            }
        }
    }
}

/// Event ids derived from the sign-in itself (time, address, user, outcome, and which of
/// several identical records it is), so loading the same export twice adds nothing and an
/// overlapping export adds only what is new.
#[derive(Default)]
struct Ids {
    /// Keys are FNV hashes already: hashed again with the identity, not SipHash.
    seen: std::collections::HashMap<u64, u32, std::hash::BuildHasherDefault<Identity>>,
}

impl Ids {
    fn next(&mut self, row: &SignIn) -> String {
        let mut h = Fnv::default();
        h.write(&row.time.as_nanosecond().to_le_bytes());
        // The address as text (what the ids were always hashed from), formatted on the stack.
        let mut text = [0u8; 48];
        let mut at = std::io::Cursor::new(&mut text[..]);
        let _ = std::io::Write::write_fmt(&mut at, format_args!("{}", row.ip));
        let len = at.position() as usize;
        h.write(&text[..len]);
        h.write(&[0]);
        h.write(row.user.as_deref().unwrap_or("").as_bytes());
        h.write(&[0, row.succeeded.map_or(2, u8::from)]);
        let key = h.0;
        let n = self.seen.entry(key).or_insert(0);
        *n += 1;
        let mut h = Fnv(key);
        h.write(&n.to_le_bytes());
        format!("replay-{:016x}", h.0)
    }
}

/// The hasher of a map whose keys are hashes: the key itself.
#[derive(Default)]
struct Identity(u64);

impl std::hash::Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// FNV-1a, 64 bits: stable across builds and platforms (the std hasher is not promised to be).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A progress line on standard error while judging, only when a person is watching it (a
/// terminal): long exports take a while, and scripts and logs need no carriage returns.
struct Progress {
    on: bool,
    total: usize,
    done: usize,
    started: Instant,
    shown: Instant,
}

impl Progress {
    fn new(total: usize) -> Progress {
        let now = Instant::now();
        Progress {
            on: std::io::stderr().is_terminal() && total > 0,
            total,
            done: 0,
            started: now,
            shown: now,
        }
    }

    fn tick(&mut self) {
        self.done += 1;
        if !self.on || self.done % 4096 != 0 {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.shown) >= Duration::from_millis(200) {
            self.shown = now;
            self.show();
        }
    }

    fn show(&self) {
        const WIDTH: usize = 30;
        let filled = self.done * WIDTH / self.total.max(1);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        eprint!(
            "\r[{}{}] {}/{} sign-ins judged ({:.0}/s)  ",
            "#".repeat(filled),
            " ".repeat(WIDTH - filled),
            self.done,
            self.total,
            self.done as f64 / secs
        );
    }

    fn done(&self) {
        if self.on {
            self.show();
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::Place;

    fn row(user: &str, ok: Option<bool>) -> SignIn {
        SignIn {
            time: jiff::Timestamp::from_second(1_795_168_800).expect("time"),
            ip: "8.8.8.8".parse().expect("ip"),
            user: Some(user.into()),
            succeeded: ok,
            at: Place::Line(2),
        }
    }

    #[test]
    fn ids_are_stable_and_tell_identical_records_apart() {
        let (mut a, mut b) = (Ids::default(), Ids::default());
        let first = a.next(&row("ann", Some(true)));
        assert_eq!(
            first,
            b.next(&row("ann", Some(true))),
            "same input, same id"
        );
        assert_ne!(
            first,
            a.next(&row("ann", Some(true))),
            "a second identical record"
        );
        assert_ne!(first, b.next(&row("ann", Some(false))), "outcome counts");
        assert!(first.starts_with("replay-") && first.len() == 23, "{first}");
    }
}
