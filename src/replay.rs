//! `locgate replay`: past sign-ins through the current policy.
//!
//! Before putting locgate inline, IT hunts through old VPN and SSO logs: who signed in from where,
//! and what would locgate have said. A replay reads sign-ins (JSON lines or CSV with at least
//! `time`, `ip`, `user`), sorts them by time, and judges each exactly as the proxy would, with the
//! identity taken as verified (it comes from the SSO's own log).

use std::net::IpAddr;

use jiff::Timestamp;
use serde::Deserialize;

/// One past sign-in.
#[derive(Debug, Clone, PartialEq)]
pub struct SignIn {
    /// When it happened.
    pub time: Timestamp,
    /// From which address.
    pub ip: IpAddr,
    /// Who (id or alias); empty means unknown.
    pub user: Option<String>,
    /// Line in the input file, for messages.
    pub line: usize,
}

/// A line that could not be read: its number and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
struct RawSignIn {
    time: String,
    ip: String,
    #[serde(default)]
    user: Option<String>,
}

/// Reads sign-ins from `text`: CSV when the first non-empty line is a header naming `time`, `ip`
/// (and `user`), JSON lines otherwise. Returns them sorted by time (stable: equal times keep file
/// order), plus the lines that could not be read.
pub fn parse(text: &str) -> (Vec<SignIn>, Vec<BadLine>) {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let (mut rows, bad) = if first.trim_start().starts_with('{') {
        parse_jsonl(text)
    } else {
        parse_csv(text)
    };
    rows.sort_by_key(|r| r.time);
    (rows, bad)
}

fn parse_jsonl(text: &str) -> (Vec<SignIn>, Vec<BadLine>) {
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<RawSignIn>(line) {
            Ok(raw) => match convert(raw, i + 1) {
                Ok(r) => rows.push(r),
                Err(e) => bad.push(e),
            },
            Err(e) => bad.push(BadLine {
                line: i + 1,
                message: format!("not a JSON object with time, ip and user: {e}"),
            }),
        }
    }
    (rows, bad)
}

fn parse_csv(text: &str) -> (Vec<SignIn>, Vec<BadLine>) {
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            bad.push(BadLine {
                line: 1,
                message: format!("cannot read the CSV header: {e}"),
            });
            return (rows, bad);
        }
    };
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(t), Some(ip)) = (col("time"), col("ip")) else {
        bad.push(BadLine {
            line: 1,
            message: "the CSV header must name the columns time and ip (and user)".into(),
        });
        return (rows, bad);
    };
    let user = col("user");
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                bad.push(BadLine {
                    line,
                    message: format!("unreadable CSV row: {e}"),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line() as usize);
        let raw = RawSignIn {
            time: record.get(t).unwrap_or("").to_owned(),
            ip: record.get(ip).unwrap_or("").to_owned(),
            user: user.and_then(|u| record.get(u)).map(str::to_owned),
        };
        match convert(raw, line) {
            Ok(r) => rows.push(r),
            Err(e) => bad.push(e),
        }
    }
    (rows, bad)
}

fn convert(raw: RawSignIn, line: usize) -> Result<SignIn, BadLine> {
    let bad = |message: String| BadLine { line, message };
    let time: Timestamp = raw.time.trim().parse().map_err(|e| {
        bad(format!(
            "time `{}` is not an RFC 3339 timestamp: {e}",
            raw.time
        ))
    })?;
    let ip: IpAddr = raw
        .ip
        .trim()
        .parse()
        .map_err(|_| bad(format!("ip `{}` is not an IP address", raw.ip)))?;
    let user = raw
        .user
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty());
    Ok(SignIn {
        time,
        ip,
        user,
        line,
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
        let (rows, bad) = parse(text);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].user.as_deref(), Some("bob"));
        assert_eq!(rows[0].line, 2);
        assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), vec![3, 4]);
    }

    #[test]
    fn csv_with_any_column_order_and_extra_columns() {
        let text = "user,app,ip,time\nann,vpn,8.8.8.8,2026-11-20T10:00:00Z\n,vpn,1.1.1.1,2026-11-20T08:00:00+02:00\nbob,vpn,nope,2026-11-20T10:00:00Z\n";
        let (rows, bad) = parse(text);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].user, None,
            "empty user is anonymous; 06:00Z sorts first"
        );
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].line, 4);
    }

    #[test]
    fn csv_without_required_columns_is_one_clear_error() {
        let (rows, bad) = parse("when,addr\nx,y\n");
        assert!(rows.is_empty());
        assert!(bad[0].message.contains("time and ip"));
    }
}
