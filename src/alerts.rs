//! Webhook alerts for blocks and chosen reasons: JSON or Slack-compatible, with retries and
//! back-off, deduplicated per employee and reason within an interval.
//!
//! Alerts are offered by the event writer *after* the event is written, and delivered by their
//! own thread through a bounded queue, so neither the request path nor the writer ever waits on
//! a webhook; a failing webhook loses only the notification, never the event (the store and the
//! JSON lines file have it), and every failure is counted.
//!
//! The client speaks plain HTTP/1.1 (std sockets, `Connection: close`): the webhook is expected
//! to be a local relay or an internal endpoint. HTTPS webhooks are refused at config load with a
//! message saying so, rather than silently sent in clear.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use crate::audit::{Event, Stats};
use crate::policy::Action;

/// Payload shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertFormat {
    /// `{"text": "..."}` (Slack, Mattermost, Rocket.Chat incoming webhooks).
    Slack,
    /// The event's key fields as a JSON object.
    Json,
}

/// One `[[alert]]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    /// `http://host:port/path`.
    pub webhook: String,
    /// Host and port to connect to.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path and query.
    pub path: String,
    /// Payload shape.
    pub format: AlertFormat,
    /// Triggers: `block`, `flag`, or reason codes.
    pub on: Vec<String>,
    /// Repeats for the same employee and trigger within this interval are not sent.
    pub dedup_interval: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    /// First back-off; doubled per retry, capped at a minute.
    pub backoff: Duration,
}

impl AlertRule {
    /// Checks a webhook URL: `http://host[:port]/path` only.
    pub fn parse_url(url: &str) -> Result<(String, u16, String), String> {
        if url.starts_with("https://") {
            return Err(
                "https webhooks are not supported by the built-in client (plain HTTP only); \
                 point the webhook at a local relay that forwards over TLS"
                    .into(),
            );
        }
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("`{url}` is not an http:// URL"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("`{url}`: host missing or has credentials"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("`{url}`: `{p}` is not a port"))?;
                (h.trim_start_matches('[').trim_end_matches(']'), port)
            }
            _ => (authority, 80),
        };
        Ok((host.to_owned(), port, path.to_owned()))
    }

    /// The trigger this event matches, if any.
    fn trigger<'e>(&self, e: &'e Event) -> Option<&'e str> {
        let action = e.event.action.as_str();
        if self.on.iter().any(|o| o == action) && e.event.action != Action::Allow {
            return Some(action);
        }
        e.event
            .reason
            .iter()
            .find(|r| self.on.iter().any(|o| o == *r))
            .copied()
    }
}

struct Job {
    rule: usize,
    body: Vec<u8>,
    event_id: String,
}

/// Matches written events against the rules and hands matches to the delivery thread.
pub struct Alerter {
    rules: Arc<Vec<AlertRule>>,
    last: HashMap<(usize, String, String), Instant>,
    tx: Option<mpsc::SyncSender<Job>>,
}

/// Alerts waiting for delivery before new ones are dropped (and counted).
const ALERT_QUEUE: usize = 1024;

impl Alerter {
    /// An alerter for `rules`; delivery starts with [`Alerter::start`].
    pub fn new(rules: Vec<AlertRule>) -> Self {
        Alerter {
            rules: Arc::new(rules),
            last: HashMap::new(),
            tx: None,
        }
    }

    /// Starts the delivery thread.
    pub fn start(&mut self, stats: Arc<Stats>) -> std::io::Result<()> {
        let (tx, rx) = mpsc::sync_channel::<Job>(ALERT_QUEUE);
        let rules = self.rules.clone();
        std::thread::Builder::new()
            .name("locgate-alerts".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    let Some(rule) = rules.get(job.rule) else {
                        continue;
                    };
                    deliver(rule, &job, &stats);
                }
            })?;
        self.tx = Some(tx);
        Ok(())
    }

    /// Offers a written event; sends an alert if a rule matches and it is not a repeat.
    pub fn offer(&mut self, e: &Event, stats: &Stats) {
        let Some(tx) = &self.tx else { return };
        for (i, rule) in self.rules.iter().enumerate() {
            let Some(trigger) = rule.trigger(e) else {
                continue;
            };
            let who = e
                .user
                .as_ref()
                .map_or_else(|| e.source.ip.to_string(), |u| u.id.clone());
            let key = (i, who, trigger.to_owned());
            let now = Instant::now();
            if let Some(t) = self.last.get(&key)
                && now.duration_since(*t) < rule.dedup_interval
            {
                stats.alerts_deduplicated.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.last.insert(key, now);
            if self.last.len() > 100_000 {
                let keep = rule.dedup_interval;
                self.last.retain(|_, t| now.duration_since(*t) < keep);
            }
            let job = Job {
                rule: i,
                body: payload(rule.format, e, trigger),
                event_id: e.event.id.clone(),
            };
            if tx.try_send(job).is_err() {
                stats.alerts_dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(event = %e.event.id, "alert queue full; alert dropped (event is stored)");
            }
        }
    }
}

/// The request body for one alert.
pub fn payload(format: AlertFormat, e: &Event, trigger: &str) -> Vec<u8> {
    let who = e.user.as_ref().map_or("unknown user", |u| u.id.as_str());
    let country = e.source.geo.country_iso_code.as_deref().unwrap_or("??");
    let value = match format {
        AlertFormat::Slack => serde_json::json!({
            "text": format!(
                "locgate {}: {} from {} ({}) [{}]: {} (ref {})",
                e.event.action.as_str(), who, e.source.ip, country, trigger, e.message, e.event.id
            )
        }),
        AlertFormat::Json => serde_json::json!({
            "event_id": e.event.id,
            "timestamp": e.timestamp,
            "trigger": trigger,
            "action": e.event.action.as_str(),
            "reasons": e.event.reason,
            "employee": e.user.as_ref().map(|u| u.id.as_str()),
            "ip": e.source.ip.to_string(),
            "country": e.source.geo.country_iso_code,
            "message": e.message,
        }),
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

fn deliver(rule: &AlertRule, job: &Job, stats: &Stats) {
    let mut backoff = rule.backoff;
    for attempt in 0..=rule.retries {
        match post(rule, &job.body) {
            Ok(()) => {
                stats.alerts_sent.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                tracing::warn!(webhook = %rule.host, event = %job.event_id, attempt, error = %e, "alert delivery failed");
                if attempt < rule.retries {
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    }
    stats.alerts_failed.fetch_add(1, Ordering::Relaxed);
    tracing::error!(webhook = %rule.host, event = %job.event_id, "alert not delivered after retries; the event is in the store");
}

/// One POST; `Ok` for a 2xx answer.
fn post(rule: &AlertRule, body: &[u8]) -> Result<(), String> {
    let addrs: Vec<SocketAddr> = (rule.host.as_str(), rule.port)
        .to_socket_addrs()
        .map_err(|e| format!("resolve: {e}"))?
        .collect();
    let addr = addrs.first().ok_or("no address")?;
    let mut s = TcpStream::connect_timeout(addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nUser-Agent: locgate/{}\r\nConnection: close\r\n\r\n",
        rule.path,
        rule.host,
        body.len(),
        env!("CARGO_PKG_VERSION")
    );
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body))
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        match s.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&buf[..got]);
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.get(..3))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("no HTTP status in `{}`", line.trim()))?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            AlertRule::parse_url("http://127.0.0.1:9000/hook?x=1").ok(),
            Some(("127.0.0.1".into(), 9000, "/hook?x=1".into()))
        );
        assert_eq!(
            AlertRule::parse_url("http://relay").ok(),
            Some(("relay".into(), 80, "/".into()))
        );
        assert!(AlertRule::parse_url("https://hooks.invalid/x").is_err());
        assert!(AlertRule::parse_url("ftp://x").is_err());
        assert!(AlertRule::parse_url("http://u:p@h/").is_err());
        assert!(AlertRule::parse_url("http://h:99999/").is_err());
    }
}
