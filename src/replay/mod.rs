//! `locgate replay`: past sign-ins through the current policy.
//!
//! Before putting locgate inline, IT hunts through the sign-ins its identity provider already
//! logged: who signed in from where, and what would locgate have said. A replay reads the
//! exports as the IdPs write them ([`formats`]: Okta System Log, Microsoft Entra sign-in logs,
//! Google Workspace login audit, Duo authentication log, Cloudflare Access, or locgate's own
//! `time,ip,user`; any other CSV or JSON through a column mapping), sorts the sign-ins by time,
//! and judges each exactly as the proxy would. A successful sign-in's identity is taken as
//! verified (it comes from the IdP's own log); a refused one is kept and marked (someone tried
//! that account from there: evidence too), judged with the name as an unverified claim, which
//! may tighten but never loosens and is not recorded as the person's sighting.

pub mod formats;
pub mod summary;
mod value;

/// For the fuzz target (`fuzzing::replay_formats`), not an API.
#[doc(hidden)]
pub use value::differs_from_serde_json;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use jiff::Timestamp;

pub use formats::{Format, Mapping};

/// One past sign-in.
#[derive(Debug, Clone, PartialEq)]
pub struct SignIn {
    /// When it happened.
    pub time: Timestamp,
    /// From which address.
    pub ip: IpAddr,
    /// Who (id or alias); empty means unknown. Shared by every sign-in of the same name: a
    /// million sign-ins by a few thousand people hold a few thousand strings, which stay in
    /// cache while they are judged.
    pub user: Option<Arc<str>>,
    /// Whether the IdP let them in: `Some(false)` for a refused sign-in, `None` when the log
    /// does not say.
    pub succeeded: Option<bool>,
    /// Where it was in the input, for messages.
    pub at: Place,
}

/// Where a sign-in or a problem is in the input: a line (CSV, JSON lines) or the n-th record of
/// one JSON document (an API response or a console export).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// 1-based line.
    Line(usize),
    /// 1-based record of a JSON document.
    Record(usize),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Line(n) => write!(f, "{n}"),
            Place::Record(n) => write!(f, "record {n}"),
        }
    }
}

/// A sign-in that could not be read: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// Where.
    pub at: Place,
    /// What is wrong.
    pub message: String,
}

/// What a replay file gave: the sign-ins (sorted by time), the ones that could not be read, the
/// format that was read, and how many records were not sign-ins at all (an Okta System Log holds
/// every kind of event; only those with an address and a person are sign-ins).
#[derive(Debug, Default)]
pub struct Parsed {
    /// Sorted by time (stable: equal times keep file order).
    pub rows: Vec<SignIn>,
    /// Unreadable records.
    pub bad: Vec<BadLine>,
    /// The format read (the detected one under `--format auto`).
    pub format: &'static str,
    /// Records skipped because they are not sign-ins.
    pub skipped: usize,
}

/// Reads sign-ins from `text` in `format` (detected from the content under [`Format::Auto`]).
pub fn parse(text: &str, format: &Format) -> Parsed {
    let mut parsed = formats::read(text, format);
    parsed.rows.sort_by_key(|r| r.time);
    parsed
}

/// A timestamp as IdP logs write it: RFC 3339 (any offset, any fraction), `YYYY-MM-DD
/// HH:MM:SS` (UTC, as spreadsheet exports print it), or a number of seconds, milliseconds,
/// microseconds or nanoseconds since the epoch (told apart by size).
pub fn parse_time(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(t);
    }
    if let Ok(n) = s.parse::<i64>() {
        return epoch(n);
    }
    if let Ok(n) = s.parse::<f64>()
        && n.is_finite()
        && n.abs() < 1e19
    {
        // Fractional seconds (`1700000000.123`).
        return Timestamp::from_nanosecond((n * 1e9) as i128).ok();
    }
    let civil: jiff::civil::DateTime = s.replacen(' ', "T", 1).parse().ok()?;
    jiff::tz::TimeZone::UTC.to_timestamp(civil).ok()
}

/// An integer epoch time, its unit told by its size (seconds until the year 5138).
pub fn epoch(n: i64) -> Option<Timestamp> {
    let a = n.unsigned_abs();
    let nanos = if a >= 100_000_000_000_000_000 {
        i128::from(n)
    } else if a >= 100_000_000_000_000 {
        i128::from(n) * 1_000
    } else if a >= 100_000_000_000 {
        i128::from(n) * 1_000_000
    } else {
        i128::from(n) * 1_000_000_000
    };
    Timestamp::from_nanosecond(nanos).ok()
}

/// One sign-in from its fields as read, or why not; `names` holds the names met so far.
fn sign_in(
    time: Option<&str>,
    ip: Option<&str>,
    user: Option<&str>,
    succeeded: Option<bool>,
    at: Place,
    names: &mut HashSet<Arc<str>>,
) -> Result<SignIn, BadLine> {
    let bad = |message: String| BadLine { at, message };
    let time = time.ok_or_else(|| bad("no time".into()))?;
    let time = parse_time(time).ok_or_else(|| {
        bad(format!(
            "time `{time}` is not a timestamp (RFC 3339 or epoch)"
        ))
    })?;
    let ip_text = ip.ok_or_else(|| bad("no client address".into()))?;
    let ip: IpAddr = ip_text
        .trim()
        .parse()
        .map_err(|_| bad(format!("ip `{ip_text}` is not an IP address")))?;
    let user = user
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| match names.get(u) {
            Some(name) => name.clone(),
            None => {
                let name: Arc<str> = Arc::from(u);
                names.insert(name.clone());
                name
            }
        });
    Ok(SignIn {
        time,
        ip: crate::client_addr::normalize(ip),
        user,
        succeeded,
        at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_is_sorted_by_time_and_bad_lines_reported() {
        let text = r#"{"time":"2026-11-20T10:00:00Z","ip":"8.8.8.8","user":"ann"}
{"time":"2026-11-20T09:00:00Z","ip":"175.45.176.1","user":"bob"}
not json
{"time":"yesterday","ip":"1.1.1.1","user":"x"}
"#;
        let p = parse(text, &Format::Auto);
        assert_eq!(p.rows.len(), 2);
        assert_eq!(p.rows[0].user.as_deref(), Some("bob"));
        assert_eq!(p.rows[0].at, Place::Line(2));
        assert_eq!(
            p.bad.iter().map(|b| b.at).collect::<Vec<_>>(),
            vec![Place::Line(3), Place::Line(4)]
        );
    }

    #[test]
    fn csv_with_any_column_order_and_extra_columns() {
        let text = "user,app,ip,time\nann,vpn,8.8.8.8,2026-11-20T10:00:00Z\n,vpn,1.1.1.1,2026-11-20T08:00:00+02:00\nbob,vpn,nope,2026-11-20T10:00:00Z\n";
        let p = parse(text, &Format::Auto);
        assert_eq!(p.rows.len(), 2);
        assert_eq!(
            p.rows[0].user, None,
            "empty user is anonymous; 06:00Z sorts first"
        );
        assert_eq!(p.bad.len(), 1);
        assert_eq!(p.bad[0].at, Place::Line(4));
    }

    #[test]
    fn csv_without_known_columns_is_one_clear_error() {
        let p = parse("when,addr\nx,y\n", &Format::Auto);
        assert!(p.rows.is_empty());
        assert!(p.bad[0].message.contains("--map"), "{:?}", p.bad);
    }

    #[test]
    fn times_as_idps_write_them() {
        let t = |s: &str| parse_time(s).map(|t| t.to_string());
        let want = Some("2026-11-20T10:00:00Z".to_string());
        assert_eq!(t("2026-11-20T10:00:00Z"), want);
        assert_eq!(t("2026-11-20T11:00:00+01:00"), want);
        assert_eq!(t("2026-11-20 10:00:00"), want);
        assert_eq!(t("1795168800"), want);
        assert_eq!(t("1795168800000"), want);
        assert_eq!(t("1795168800000000000"), want);
        assert_eq!(t("yesterday"), None);
    }
}
