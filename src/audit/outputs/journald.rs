//! The systemd journal's native protocol: one datagram per event to
//! `/run/systemd/journal/socket`, each field a `KEY=value` line (a value holding a newline is
//! sent as `KEY`, a newline, its length as 64-bit little-endian, the value and a newline).
//!
//! Besides `MESSAGE`, `PRIORITY` and `SYSLOG_IDENTIFIER`, every ECS field becomes a journal
//! field of its own, named by upper-casing its dotted name with `_` for anything else
//! (`source.geo.country_iso_code` -> `SOURCE_GEO_COUNTRY_ISO_CODE`, `@timestamp` ->
//! `TIMESTAMP`), so `journalctl EVENT_ACTION=block SOURCE_IP=203.0.113.9` finds events; an
//! array repeats its field once per element, as the journal allows. `LOCGATE_JSON` holds the
//! whole event for shippers that read the journal.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::flat::{Severity, flatten};
use super::{Deliver, Failure};

/// The journal's socket.
pub const DEFAULT_SOCKET: &str = "/run/systemd/journal/socket";

/// `[events.journald]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournaldConfig {
    /// The journal's native socket.
    pub socket: PathBuf,
    /// Queue bound, in events.
    pub queue: usize,
}

/// The journal output's thread state.
pub struct Journald {
    config: JournaldConfig,
    socket: Option<UnixDatagram>,
}

impl Journald {
    /// An output for `config`; the socket is opened with the first event.
    pub fn new(config: JournaldConfig) -> Journald {
        Journald {
            config,
            socket: None,
        }
    }
}

/// The journal field name for an ECS name: upper case, `_` for everything but letters and
/// digits, no leading `_` (those are the journal's own trusted fields) or digit, at most 64
/// characters.
pub fn field_name(ecs: &str) -> String {
    let mut name: String = ecs
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = name.trim_start_matches(|c: char| c == '_' || c.is_ascii_digit());
    name = trimmed.to_owned();
    name.truncate(64);
    name
}

/// One event as a native-protocol datagram.
pub fn datagram(line: &str) -> Vec<u8> {
    let event: Value = serde_json::from_str(line).unwrap_or_default();
    let mut out = Vec::with_capacity(line.len() * 2 + 128);
    let message = event["message"].as_str().unwrap_or("locgate event");
    field(&mut out, "MESSAGE", message);
    field(
        &mut out,
        "PRIORITY",
        &Severity::of(&event).syslog_code().to_string(),
    );
    field(&mut out, "SYSLOG_IDENTIFIER", "locgate");
    for (name, value) in flatten(&event) {
        if name == "message" {
            continue;
        }
        let key = field_name(&name);
        if key.is_empty() {
            continue;
        }
        match value {
            Value::Array(items) => {
                for item in items {
                    field(&mut out, &key, &text(item));
                }
            }
            v => field(&mut out, &key, &text(v)),
        }
    }
    field(&mut out, "LOCGATE_JSON", line);
    out
}

/// A value as the journal stores it: strings as they are, anything else as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Appends one field in the native protocol's framing.
fn field(out: &mut Vec<u8>, key: &str, value: &str) {
    out.extend_from_slice(key.as_bytes());
    if value.contains('\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

impl Deliver for Journald {
    fn deliver(&mut self, lines: &[Arc<str>]) -> Result<(), Failure> {
        let socket = match self.socket.take() {
            Some(s) => s,
            None => {
                let s =
                    UnixDatagram::unbound().map_err(|e| Failure::Retry(format!("socket: {e}")))?;
                s.connect(&self.config.socket).map_err(|e| {
                    Failure::Retry(format!("{}: {e}", self.config.socket.display()))
                })?;
                s
            }
        };
        for line in lines {
            match socket.send(&datagram(line)) {
                Ok(_) => {}
                // Larger than the socket takes: the journal would need the memfd handover,
                // which this output does not do; the event is in the JSON lines file.
                Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                    return Err(Failure::Refused(format!(
                        "event too large for a datagram: {e}"
                    )));
                }
                Err(e) => return Err(Failure::Retry(format!("send: {e}"))),
            }
        }
        self.socket = Some(socket);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_framing() {
        assert_eq!(
            field_name("source.geo.country_iso_code"),
            "SOURCE_GEO_COUNTRY_ISO_CODE"
        );
        assert_eq!(field_name("@timestamp"), "TIMESTAMP");
        let mut out = Vec::new();
        field(&mut out, "A", "one line");
        field(&mut out, "B", "two\nlines");
        let mut want = b"A=one line\nB\n".to_vec();
        want.extend_from_slice(&9u64.to_le_bytes());
        want.extend_from_slice(b"two\nlines\n");
        assert_eq!(out, want);
    }

    #[test]
    fn arrays_repeat_their_field() {
        let d =
            datagram(r#"{"message":"m","event":{"action":"flag","type":["access","allowed"]}}"#);
        let text = String::from_utf8_lossy(&d);
        assert!(text.contains("MESSAGE=m\n"));
        assert!(text.contains("PRIORITY=4\n"));
        assert!(
            text.contains("EVENT_TYPE=access\nEVENT_TYPE=allowed\n"),
            "{text}"
        );
        assert!(text.contains("EVENT_ACTION=flag\n"));
    }
}
