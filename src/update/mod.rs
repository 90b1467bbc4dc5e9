//! `locgate update`: fetch databases and lists, check them, and swap them into place.
//!
//! Every source is handled on its own: downloaded (conditionally, with the ETag / Last-Modified
//! of the installed copy), converted ([`convert`]), checked, and only then written atomically
//! ([`install`]). A source that fails leaves its installed file and its validators exactly as
//! they were, and is reported with the reason; the other sources still run. MaxMind editions are
//! fetched with geoipupdate's protocol from the account in an existing `GeoIP.conf`
//! ([`geoipconf`]).
//!
//! Sources may come from a built-in preset ([`crate::config::preset`]): monthly file names
//! (DB-IP's) are tried for the current month, then the previous one while the current file is
//! not published yet, and every line about a preset source names its licence.
//!
//! The same [`run`] serves the command line (cron, the systemd timer in `deploy/`) and the
//! in-process `schedule` ([`crate::serve::reload`]).

pub mod convert;
pub mod geoipconf;
pub mod install;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::preset;
use crate::config::{SourceKind, UpdateConfig, UpdateSource};
use crate::intel::cidr_list::parse_list;
use install::Validators;

/// Largest download accepted (compressed or not).
pub const MAX_DOWNLOAD: u64 = 1 << 30;

/// Environment variable that sets the updater's date (`YYYY-MM-DD`) for monthly file names, in
/// place of the clock: the tests use it to step across a month without waiting for one.
pub const TODAY_ENV: &str = "LOCGATE_UPDATE_TODAY";

/// How a failed download starts when the server said 404 (a monthly file not published yet).
const NOT_FOUND: &str = "HTTP 404";

/// What happened to one source or edition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new file was checked and installed; the text says what it holds.
    Installed {
        /// Installed file.
        path: PathBuf,
        /// "1234 networks" or the database type.
        detail: String,
    },
    /// The server said the installed copy is current (304, or a matching md5).
    Unchanged {
        /// The file left in place.
        path: PathBuf,
    },
}

/// The result of one run.
#[derive(Debug, Default)]
pub struct Summary {
    /// `(source name, outcome)` for every source that succeeded.
    pub done: Vec<(String, Outcome)>,
    /// `(source name, reason)` for every source that failed; its file was not touched.
    pub failed: Vec<(String, String)>,
    /// The licences the sources' data come under, one line each (with the credit a licence
    /// requires), for the run's last lines.
    pub licences: Vec<String>,
}

impl Summary {
    /// Whether at least one file was replaced (a reload is worth doing).
    pub fn changed(&self) -> bool {
        self.done
            .iter()
            .any(|(_, o)| matches!(o, Outcome::Installed { .. }))
    }
}

/// Reads environment variables (the process environment, or a map in tests).
pub type Env<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// Runs every configured source and MaxMind edition once. `progress` gets one plain line per
/// step (the command line prints them; the schedule logs them).
pub async fn run(cfg: &UpdateConfig, env: Env<'_>, progress: &(dyn Fn(&str) + Sync)) -> Summary {
    run_with(cfg, env, progress, false).await
}

/// [`run`], and with `meter` a byte counter redrawn on standard error during each download
/// (for a terminal; never for logs, which get the plain lines only).
pub async fn run_with(
    cfg: &UpdateConfig,
    env: Env<'_>,
    progress: &(dyn Fn(&str) + Sync),
    meter: bool,
) -> Summary {
    let mut summary = Summary::default();
    let client = match client() {
        Ok(c) => c,
        Err(e) => {
            summary.failed.push(("http client".into(), e));
            return summary;
        }
    };
    let today = match today(env) {
        Ok(t) => t,
        Err(e) => {
            summary.failed.push((TODAY_ENV.into(), e));
            return summary;
        }
    };
    let up = Updater {
        client,
        timeout: cfg.timeout,
        meter,
        today,
    };
    if let Some(conf_path) = &cfg.geoip_conf {
        match load_geoip_conf(conf_path, env).and_then(|conf| {
            let client = maxmind_client(&conf, &up.client, progress)?;
            Ok((conf, client))
        }) {
            Ok((conf, client)) => {
                let up = Updater {
                    client,
                    ..up.clone()
                };
                for edition in &conf.edition_ids {
                    progress(&format!("{edition}: checking {}", conf.host));
                    let r = up.edition(&conf, edition).await;
                    report(&mut summary, edition, r, progress);
                }
            }
            Err(e) => {
                progress(&format!("GeoIP.conf: FAILED: {e}"));
                summary.failed.push(("GeoIP.conf".into(), e));
            }
        }
    }
    for s in &cfg.sources {
        let r = up.source(s, progress).await;
        report(&mut summary, &s.name, r, progress);
    }
    summary.licences = licences(&cfg.sources);
    summary
}

/// One line per licence among `sources`, naming the sources under it and the credit it needs.
pub fn licences(sources: &[UpdateSource]) -> Vec<String> {
    let mut out: Vec<(String, Vec<&str>)> = Vec::new();
    for s in sources {
        let Some(l) = &s.licence else { continue };
        let key = match &s.attribution {
            Some(a) => format!("{l}: credit \"{a}\" wherever its data is shown or used"),
            None => l.clone(),
        };
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, names)) => names.push(&s.name),
            None => out.push((key, vec![&s.name])),
        }
    }
    out.into_iter()
        .map(|(k, names)| format!("licence of {}: {k}", names.join(", ")))
        .collect()
}

/// The updater's `(year, month)`: [`TODAY_ENV`] when set, else the UTC clock.
fn today(env: Env<'_>) -> Result<(i32, u8), String> {
    match env(TODAY_ENV) {
        Some(v) => {
            let d = time::Date::parse(
                v.trim(),
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .map_err(|e| format!("`{v}` is not a date (YYYY-MM-DD): {e}"))?;
            Ok((d.year(), d.month() as u8))
        }
        None => {
            let now = time::OffsetDateTime::now_utc();
            Ok((now.year(), now.month() as u8))
        }
    }
}

fn report(
    summary: &mut Summary,
    name: &str,
    r: Result<Outcome, String>,
    progress: &(dyn Fn(&str) + Sync),
) {
    match r {
        Ok(o) => {
            match &o {
                Outcome::Installed { path, detail } => {
                    progress(&format!("{name}: installed {} ({detail})", path.display()))
                }
                Outcome::Unchanged { path } => {
                    progress(&format!("{name}: up to date ({})", path.display()))
                }
            }
            summary.done.push((name.to_string(), o));
        }
        Err(e) => {
            progress(&format!(
                "{name}: FAILED: {e}; the installed file was left as it was"
            ));
            summary.failed.push((name.to_string(), e));
        }
    }
}

fn load_geoip_conf(path: &Path, env: Env<'_>) -> Result<geoipconf::GeoIpConf, String> {
    let label = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        // geoipupdate in containers runs on the environment alone.
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && env("GEOIPUPDATE_ACCOUNT_ID").is_some() =>
        {
            String::new()
        }
        Err(e) => return Err(format!("{label}: cannot read: {e}")),
    };
    let read_file = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("{p}: cannot read: {e}"))
    };
    geoipconf::parse(&label, &text, env, &read_file)
}

/// An HTTP client on rustls with the ring provider and the system's trust store (proxies from
/// the environment, see [`crate::http_client`]).
fn client() -> Result<reqwest::Client, String> {
    crate::http_client::build(Duration::from_secs(30))
}

/// The client for the MaxMind update service: through GeoIP.conf's `Proxy` when it names one
/// (as geoipupdate sends it), else the shared client.
fn maxmind_client(
    conf: &geoipconf::GeoIpConf,
    shared: &reqwest::Client,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<reqwest::Client, String> {
    let Some(p) = &conf.proxy else {
        return Ok(shared.clone());
    };
    progress(&format!("GeoIP.conf: through the proxy {}", p.url));
    let credentials = p
        .credentials
        .as_ref()
        .map(|(u, w)| (u.as_str(), w.as_str()));
    crate::http_client::build_with_proxy(Duration::from_secs(30), &p.url, credentials)
}

#[derive(Clone)]
struct Updater {
    client: reqwest::Client,
    timeout: Duration,
    meter: bool,
    /// `(year, month)` for monthly file names.
    today: (i32, u8),
}

/// Redraws "  1.2 / 130.0 MB" on one terminal line.
fn draw_meter(got: usize, total: Option<u64>) {
    let mb = |n: f64| n / 1_048_576.0;
    match total {
        Some(t) => eprint!("\r  {:.1} / {:.1} MB ", mb(got as f64), mb(t as f64)),
        None => eprint!("\r  {:.1} MB ", mb(got as f64)),
    }
}

enum Fetched {
    NotModified,
    Body {
        bytes: Vec<u8>,
        validators: Validators,
    },
}

/// The message of an error and its causes ("error sending request: connection refused").
impl Updater {
    async fn get(
        &self,
        url: &str,
        validators: Option<&Validators>,
        auth: Option<(&str, &str)>,
    ) -> Result<Fetched, String> {
        let mut req = self.client.get(url).timeout(self.timeout);
        if let Some(v) = validators {
            if let Some(etag) = &v.etag {
                req = req.header(http::header::IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &v.last_modified {
                req = req.header(http::header::IF_MODIFIED_SINCE, lm);
            }
        }
        if let Some((user, key)) = auth {
            req = req.basic_auth(user, Some(key));
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| crate::http_client::chain(&e))?;
        let status = resp.status();
        if status == http::StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            let body: String = body.trim().chars().take(200).collect();
            return Err(if body.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {body}")
            });
        }
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &http::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let validators = Validators {
            url: url.to_string(),
            etag: header(http::header::ETAG),
            last_modified: header(http::header::LAST_MODIFIED),
        };
        let expected = resp.content_length();
        let mut drawn = 0usize;
        let meter = self.meter;
        let read = crate::http_client::read_body(&mut resp, MAX_DOWNLOAD, |got, expected| {
            if meter && got - drawn >= 1 << 20 {
                drawn = got;
                draw_meter(drawn, expected);
            }
        })
        .await;
        if drawn > 0 {
            // Clear the meter line before the next plain line.
            eprint!("\r{:40}\r", "");
        }
        let bytes = read.map_err(|e| format!("download: {e}"))?;
        if let Some(n) = expected
            && n != bytes.len() as u64
        {
            return Err(format!(
                "download is truncated: {} of {n} bytes",
                bytes.len()
            ));
        }
        Ok(Fetched::Body { bytes, validators })
    }

    /// Fetches one source; a monthly URL is tried for this month, then for the month before
    /// when this month's file is not there yet (404).
    async fn source(
        &self,
        s: &UpdateSource,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Outcome, String> {
        if !s.url.contains(preset::MONTH) {
            progress(&format!("{}: fetching {}", s.name, s.url));
            return self.source_at(s, &s.url).await;
        }
        let [(y, m), (py, pm)] = preset::months_to_try(self.today.0, self.today.1);
        let url = preset::for_month(&s.url, y, m);
        progress(&format!("{}: fetching {url}", s.name));
        let with_month = |r: Result<Outcome, String>, month: String| {
            r.map(|o| match o {
                Outcome::Installed { path, detail } => Outcome::Installed {
                    path,
                    detail: format!("{detail}, the {month} file"),
                },
                unchanged => unchanged,
            })
        };
        match self.source_at(s, &url).await {
            Err(e) if e.starts_with(NOT_FOUND) => {
                let earlier = preset::for_month(&s.url, py, pm);
                progress(&format!(
                    "{}: {y:04}-{m:02} is not published yet ({NOT_FOUND}); fetching {earlier}",
                    s.name
                ));
                let r = self.source_at(s, &earlier).await.map_err(|e2| {
                    format!(
                        "neither {y:04}-{m:02} ({e}) nor {py:04}-{pm:02} ({e2}) could be fetched"
                    )
                });
                with_month(r, format!("{py:04}-{pm:02}"))
            }
            r => with_month(r, format!("{y:04}-{m:02}")),
        }
    }

    async fn source_at(&self, s: &UpdateSource, url: &str) -> Result<Outcome, String> {
        let validators = install::validators_for(&s.path, url);
        let (bytes, validators) = match self.get(url, validators.as_ref(), None).await? {
            Fetched::NotModified => {
                return Ok(Outcome::Unchanged {
                    path: s.path.clone(),
                });
            }
            Fetched::Body { bytes, validators } => (bytes, validators),
        };
        let s = s.clone();
        blocking(move || {
            let label = s.path.display().to_string();
            let (content, detail) = match s.kind {
                SourceKind::Mmdb => {
                    let (bytes, kind) = convert::prepare_mmdb(&label, bytes)?;
                    (bytes, kind)
                }
                kind => {
                    let nets = convert::networks(kind, &bytes)?;
                    let previous = std::fs::read_to_string(&s.path)
                        .ok()
                        .and_then(|t| parse_list(&t).ok())
                        .map(|n| n.len());
                    convert::check_list(nets.len(), previous, s.max_shrink)?;
                    let category = match s.category {
                        Some(crate::intel::ListCategory::Anonymizer(c)) => c.as_str(),
                        Some(crate::intel::ListCategory::Trusted) => "trusted",
                        None => "-",
                    };
                    let text = convert::render_list(&s.name, &validators.url, category, &nets);
                    (text.into_bytes(), format!("{} networks", nets.len()))
                }
            };
            install::atomic_write(&s.path, &content)
                .map_err(|e| format!("cannot write {label}: {e}"))?;
            if let Err(e) = install::remember(&s.path, validators) {
                tracing::warn!(file = %label, error = %e, "cannot record ETag/Last-Modified; the next update downloads again");
            }
            Ok(Outcome::Installed {
                path: s.path.clone(),
                detail,
            })
        })
        .await
    }

    async fn edition(&self, conf: &geoipconf::GeoIpConf, edition: &str) -> Result<Outcome, String> {
        let path = conf.database_directory.join(format!("{edition}.mmdb"));
        let local = {
            let path = path.clone();
            // No (readable) local copy: nothing to compare, always download.
            blocking(move || Ok(std::fs::read(&path).ok().map(|b| convert::md5_hex(&b)))).await?
        };
        let auth = Some((conf.account_id.as_str(), conf.license_key.as_str()));
        let url = format!("{}/geoip/updates/metadata?edition_id={edition}", conf.host);
        let Fetched::Body { bytes, .. } = self.get(&url, None, auth).await? else {
            return Err("metadata request answered 304 without being conditional".into());
        };
        let meta = parse_metadata(&bytes, edition)?;
        if local.is_some_and(|l| meta.md5.eq_ignore_ascii_case(&l)) {
            return Ok(Outcome::Unchanged { path });
        }
        let url = format!(
            "{}/geoip/databases/{edition}/download?date={}&suffix=tar.gz",
            conf.host,
            meta.date.replace('-', "")
        );
        let Fetched::Body { bytes, .. } = self.get(&url, None, auth).await? else {
            return Err("download answered 304 without being conditional".into());
        };
        blocking(move || {
            let label = path.display().to_string();
            let mmdb = convert::mmdb_from_tar_gz(&bytes)?;
            let got = convert::md5_hex(&mmdb);
            if !got.eq_ignore_ascii_case(&meta.md5) {
                return Err(format!(
                    "checksum mismatch: the server announced md5 {}, the download has {got}",
                    meta.md5
                ));
            }
            let kind = convert::check_mmdb(&label, mmdb.clone())?;
            install::atomic_write(&path, &mmdb)
                .map_err(|e| format!("cannot write {label}: {e}"))?;
            Ok(Outcome::Installed {
                path,
                detail: format!("{kind}, {}", meta.date),
            })
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("internal error: {e}"))?
}

/// One edition's entry in the metadata answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct EditionMeta {
    /// Edition id.
    pub edition_id: String,
    /// md5 of the uncompressed `.mmdb`.
    pub md5: String,
    /// Build date, `YYYY-MM-DD`.
    pub date: String,
}

/// Parses `{"databases":[{"edition_id":..,"md5":..,"date":..}]}` and picks `edition`.
pub fn parse_metadata(bytes: &[u8], edition: &str) -> Result<EditionMeta, String> {
    #[derive(serde::Deserialize)]
    struct Meta {
        databases: Vec<EditionMeta>,
    }
    let meta: Meta = serde_json::from_slice(bytes)
        .map_err(|e| format!("the update service's metadata is not understood: {e}"))?;
    let m = meta
        .databases
        .into_iter()
        .find(|d| d.edition_id == edition)
        .ok_or_else(|| format!("the update service does not list edition {edition}"))?;
    if m.md5.len() != 32 || !m.md5.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("metadata md5 `{}` is not an md5", m.md5));
    }
    let date_ok = m.date.len() == 10 && m.date.chars().all(|c| c.is_ascii_digit() || c == '-');
    if !date_ok {
        return Err(format!("metadata date `{}` is not YYYY-MM-DD", m.date));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata() {
        let m = parse_metadata(
            br#"{"databases":[{"edition_id":"GeoLite2-City","md5":"0123456789abcdef0123456789abcdef","date":"2026-11-20"}]}"#,
            "GeoLite2-City",
        )
        .unwrap();
        assert_eq!(m.date, "2026-11-20");
        assert!(parse_metadata(b"{}", "x").is_err());
        assert!(
            parse_metadata(
                br#"{"databases":[{"edition_id":"A","md5":"zz","date":"2026-11-20"}]}"#,
                "A"
            )
            .is_err()
        );
        assert!(
            parse_metadata(
                br#"{"databases":[{"edition_id":"A","md5":"0123456789abcdef0123456789abcdef","date":"x"}]}"#,
                "B"
            )
            .unwrap_err()
            .contains("does not list")
        );
    }
}
