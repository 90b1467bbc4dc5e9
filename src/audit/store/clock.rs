//! Times as the store keeps them (Unix milliseconds) and the `--since` values the CLI and the
//! admin API accept.

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Parses an RFC 3339 time to Unix ms.
pub fn parse_ts_ms(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// Parses `--since` values: a duration back from now (`24h`, `30d`, `90m`), an RFC 3339 time,
/// or `all` (everything the store holds).
pub fn parse_since(s: &str) -> std::result::Result<i64, String> {
    if s.trim() == "all" {
        return Ok(i64::MIN);
    }
    if let Some(ms) = parse_ts_ms(s) {
        return Ok(ms);
    }
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (24h, 30d), an RFC 3339 time or `all`"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("`{s}`: unit must be s, m, h, d or w")),
    };
    n.checked_mul(secs * 1000)
        .map(|back| now_ms() - back)
        .ok_or_else(|| format!("`{s}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_parses_durations_and_times() {
        let now = now_ms();
        let d = parse_since("24h").expect("24h");
        assert!((now - d - 86_400_000).abs() < 5_000);
        assert_eq!(
            parse_since("2026-01-01T00:00:00Z").expect("time"),
            1_767_225_600_000
        );
        assert_eq!(parse_since("all"), Ok(i64::MIN));
        assert!(parse_since("24x").is_err());
        assert!(parse_since("abc").is_err());
        assert!(parse_since("99999999999999999d").is_err());
    }
}
