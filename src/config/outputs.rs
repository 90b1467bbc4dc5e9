//! `[events] instance` and the event outputs beyond the JSON lines file: `[events.syslog]`,
//! `[events.journald]`, `[events.hec]` and `[events.otlp]`. Each table is checked here into
//! an [`OutputConfig`]; every mistake names its file, line and field.
//!
//! ```toml
//! [events]
//! instance = "gw-eu-1"                        # observer.name (default: the host name)
//! [events.syslog]
//! address = "udp://10.0.0.5:514"              # or tcp://host:601, unix:///dev/log
//! facility = "local0"
//! [events.journald]                           # socket = "/run/systemd/journal/socket"
//! [events.hec]
//! url = "https://splunk.example:8088"         # /services/collector/event is added
//! token_file = "/etc/locgate/hec.token"       # sent as `Authorization: Splunk <token>`
//! index = "security"
//! [events.otlp]
//! url = "http://127.0.0.1:4318"               # /v1/logs is added
//! headers = { "X-Scope-OrgID" = "security" }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{ErrAt, secret};
use crate::audit::alerts::AlertRule;
use crate::audit::outputs::http::Headers;
use crate::audit::outputs::{DEFAULT_QUEUE, OutputConfig, hec, journald, otlp, syslog};
use crate::values::ConfigError;

/// Largest queue an output may have, in events (each holds one event's JSON line).
const MAX_QUEUE: usize = 1_000_000;
/// Largest batch an HTTP output may send at once.
const MAX_BATCH: usize = 1000;
/// Default batch for the HTTP outputs.
const DEFAULT_BATCH: usize = 100;

/// `[events.syslog]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSyslog {
    address: Spanned<String>,
    facility: Option<Spanned<String>>,
    app_name: Option<Spanned<String>>,
    queue: Option<Spanned<usize>>,
}

/// `[events.journald]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJournald {
    socket: Option<Spanned<PathBuf>>,
    queue: Option<Spanned<usize>>,
}

/// `[events.hec]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHec {
    url: Spanned<String>,
    token: Option<Spanned<String>>,
    token_file: Option<Spanned<PathBuf>>,
    headers: Option<Spanned<BTreeMap<String, String>>>,
    index: Option<Spanned<String>>,
    source: Option<Spanned<String>>,
    sourcetype: Option<Spanned<String>>,
    batch: Option<Spanned<usize>>,
    queue: Option<Spanned<usize>>,
}

/// `[events.otlp]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOtlp {
    url: Spanned<String>,
    headers: Option<Spanned<BTreeMap<String, String>>>,
    token_file: Option<Spanned<PathBuf>>,
    token_scheme: Option<Spanned<String>>,
    batch: Option<Spanned<usize>>,
    queue: Option<Spanned<usize>>,
}

/// The output tables of `[events]`, as written.
pub(super) struct RawOutputs {
    pub syslog: Option<RawSyslog>,
    pub journald: Option<RawJournald>,
    pub hec: Option<RawHec>,
    pub otlp: Option<RawOtlp>,
}

/// `instance`: a name for `observer.name`, short and plain (it is also a metric and OTLP
/// resource value).
pub(super) fn instance(
    raw: Option<Spanned<String>>,
    err: ErrAt<'_>,
) -> Result<Option<String>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let name = raw.get_ref();
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':');
    if name.is_empty() || name.len() > 64 || !name.chars().all(plain) {
        return Err(err(
            raw.span(),
            format!(
                "`{name}`: the instance name must be 1 to 64 letters, digits, `.`, `_`, `-` or `:`"
            ),
        ));
    }
    Ok(Some(raw.into_inner()))
}

/// Checks every output table, in the order syslog, journald, HEC, OTLP.
pub(super) fn check(
    raw: RawOutputs,
    base: &Path,
    err: ErrAt<'_>,
) -> Result<Vec<OutputConfig>, ConfigError> {
    let mut out = Vec::new();
    if let Some(s) = raw.syslog {
        out.push(OutputConfig::Syslog(check_syslog(s, err)?));
    }
    if let Some(j) = raw.journald {
        out.push(OutputConfig::Journald(journald::JournaldConfig {
            socket: j.socket.map_or_else(
                || PathBuf::from(journald::DEFAULT_SOCKET),
                |s| base.join(s.into_inner()),
            ),
            queue: queue(j.queue, err)?,
        }));
    }
    if let Some(h) = raw.hec {
        out.push(OutputConfig::Hec(check_hec(h, base, err)?));
    }
    if let Some(o) = raw.otlp {
        out.push(OutputConfig::Otlp(otlp::OtlpConfig {
            url: endpoint(&o.url, otlp::LOGS_PATH, err)?,
            headers: headers(o.headers, o.token_file, o.token_scheme, base, err)?,
            batch: batch(o.batch, err)?,
            queue: queue(o.queue, err)?,
        }));
    }
    Ok(out)
}

fn check_syslog(raw: RawSyslog, err: ErrAt<'_>) -> Result<syslog::SyslogConfig, ConfigError> {
    let transport =
        syslog::Transport::parse(raw.address.get_ref()).map_err(|e| err(raw.address.span(), e))?;
    let facility = match raw.facility {
        None => 16,
        Some(f) => match syslog::FACILITIES.iter().position(|n| *n == f.get_ref()) {
            Some(code) => code as u8,
            None => {
                return Err(err(
                    f.span(),
                    format!(
                        "`{}` is not a syslog facility ({})",
                        f.get_ref(),
                        syslog::FACILITIES.join(", ")
                    ),
                ));
            }
        },
    };
    let app_name = match raw.app_name {
        None => "locgate".to_owned(),
        Some(a) => {
            let name = a.get_ref();
            if name.is_empty() || name.len() > 48 || !name.chars().all(|c| c.is_ascii_graphic()) {
                return Err(err(
                    a.span(),
                    "app_name must be 1 to 48 printable ASCII characters without spaces (RFC 5424 APP-NAME)".into(),
                ));
            }
            a.into_inner()
        }
    };
    Ok(syslog::SyslogConfig {
        transport,
        facility,
        app_name,
        queue: queue(raw.queue, err)?,
    })
}

fn check_hec(raw: RawHec, base: &Path, err: ErrAt<'_>) -> Result<hec::HecConfig, ConfigError> {
    let url = endpoint(&raw.url, hec::EVENT_PATH, err)?;
    let whole = |m: String| err(raw.url.span(), m);
    if raw.token.is_none() && raw.token_file.is_none() {
        return Err(whole(
            "[events.hec] needs token or token_file: the collector takes `Authorization: Splunk <token>`".into(),
        ));
    }
    let token = secret::secret("events.hec", raw.token, raw.token_file, base, err, &whole)?;
    let mut headers = headers(raw.headers, None, None, base, err)?;
    if headers.has("authorization") {
        return Err(whole(
            "give the HEC token as token or token_file, not as an Authorization header".into(),
        ));
    }
    headers
        .add("Authorization", &format!("Splunk {}", token.expose()))
        .map_err(&whole)?;
    let text = |v: Option<Spanned<String>>, what: &str, default: Option<&str>| match v {
        None => Ok(default.map(str::to_owned)),
        Some(s) if s.get_ref().is_empty() || s.get_ref().chars().any(char::is_control) => {
            Err(err(s.span(), format!("{what} must be non-empty text")))
        }
        Some(s) => Ok(Some(s.into_inner())),
    };
    Ok(hec::HecConfig {
        url,
        headers,
        index: text(raw.index, "index", None)?,
        source: text(raw.source, "source", Some("locgate"))?.unwrap_or_default(),
        sourcetype: text(raw.sourcetype, "sourcetype", Some("locgate:event"))?.unwrap_or_default(),
        batch: batch(raw.batch, err)?,
        queue: queue(raw.queue, err)?,
    })
}

/// An `http(s)://` endpoint without credentials; `path` is added when the URL has none.
fn endpoint(url: &Spanned<String>, path: &str, err: ErrAt<'_>) -> Result<String, ConfigError> {
    let (_, _, given) = AlertRule::parse_url(url.get_ref()).map_err(|e| err(url.span(), e))?;
    let u = url.get_ref().trim_end_matches('/');
    Ok(if given == "/" {
        format!("{u}{path}")
    } else {
        url.get_ref().clone()
    })
}

/// Extra request headers for a webhook or an HTTP output: `headers = { Name = "value" }`, and
/// `token_file` (sent as `Authorization: <token_scheme> <token>`, default scheme `Bearer`).
pub(super) fn headers(
    given: Option<Spanned<BTreeMap<String, String>>>,
    token_file: Option<Spanned<PathBuf>>,
    token_scheme: Option<Spanned<String>>,
    base: &Path,
    err: ErrAt<'_>,
) -> Result<Headers, ConfigError> {
    let mut out = Headers::default();
    if let Some(h) = given {
        let span = h.span();
        for (name, value) in h.into_inner() {
            out.add(&name, &value)
                .map_err(|e| err(span.clone(), format!("headers: {e}")))?;
        }
    }
    if let Some(s) = &token_scheme
        && (s.get_ref().is_empty()
            || !s
                .get_ref()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-'))
    {
        return Err(err(
            s.span(),
            format!(
                "`{}` is not an authorization scheme (Bearer, Splunk, ...)",
                s.get_ref()
            ),
        ));
    }
    match token_file {
        Some(f) => {
            let span = f.span();
            let whole = |m: String| err(span.clone(), m);
            let token = secret::secret("token_file", None, Some(f), base, err, &whole)?;
            let scheme = token_scheme.map_or_else(|| "Bearer".to_owned(), Spanned::into_inner);
            out.add("Authorization", &format!("{scheme} {}", token.expose()))
                .map_err(|e| {
                    err(
                        span,
                        format!("{e}: give the token either in headers or as token_file"),
                    )
                })?;
        }
        None => {
            if let Some(s) = token_scheme {
                return Err(err(s.span(), "token_scheme needs a token_file".into()));
            }
        }
    }
    Ok(out)
}

fn queue(raw: Option<Spanned<usize>>, err: ErrAt<'_>) -> Result<usize, ConfigError> {
    match raw {
        None => Ok(DEFAULT_QUEUE),
        Some(q) if (1..=MAX_QUEUE).contains(q.get_ref()) => Ok(q.into_inner()),
        Some(q) => Err(err(
            q.span(),
            format!("queue must be 1..={MAX_QUEUE} events"),
        )),
    }
}

fn batch(raw: Option<Spanned<usize>>, err: ErrAt<'_>) -> Result<usize, ConfigError> {
    match raw {
        None => Ok(DEFAULT_BATCH),
        Some(b) if (1..=MAX_BATCH).contains(b.get_ref()) => Ok(b.into_inner()),
        Some(b) => Err(err(
            b.span(),
            format!("batch must be 1..={MAX_BATCH} events"),
        )),
    }
}
