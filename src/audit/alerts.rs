//! Webhook alerts for blocks and chosen reasons: JSON or Slack-compatible, with retries and
//! back-off, deduplicated per employee and reason within an interval.
//!
//! Alerts are offered by the event writer *after* the event is written, and delivered by their
//! own thread through a bounded queue, so neither the request path nor the writer ever waits on
//! a webhook; a failing webhook loses only the notification, never the event (the store and the
//! JSON lines file have it), and every failure is counted.
//!
//! **Event text is attacker input.** Typed-in names, request paths and the details inside
//! reasons come from clients, so every piece of text that goes into an alert is escaped for
//! the format that carries it: Slack mrkdwn gets `&`, `<` and `>` as entities, so `<!channel>`,
//! `<@U123>` and `<http://x|click>` arrive as text, not as a mention or a disguised link, and
//! control characters (a newline that would fake a second line) become spaces ([`slack_text`]).
//! The JSON format carries each field as a JSON string (serde escapes it), never as markup.
//!
//! Delivery uses the project's one HTTP client (`http_client`: rustls on ring, system trust
//! store), so Slack and other HTTPS webhooks are reached directly, through the poster the
//! event outputs use ([`super::outputs::http::Poster`]), with the rule's headers (an
//! `Authorization` for Splunk HEC, a bearer token from `token_file`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use super::event::Event;
use super::outputs::http::{Headers, Poster};
use super::stats::Stats;
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
    /// Extra request headers (`headers`, `token_file`); values never printed.
    pub headers: Headers,
}

impl AlertRule {
    /// Checks a webhook URL: `http://` or `https://`, a host, no credentials in the URL (they
    /// would end up in logs); returns host, port and path for messages.
    pub fn parse_url(url: &str) -> Result<(String, u16, String), String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        let default_port = match parsed.scheme() {
            "http" => 80,
            "https" => 443,
            other => return Err(format!("`{url}`: scheme {other} is not http or https")),
        };
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(format!("`{url}`: host missing or has credentials"));
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("`{url}`: host missing or has credentials"))?;
        let mut path = parsed.path().to_owned();
        if let Some(q) = parsed.query() {
            path.push('?');
            path.push_str(q);
        }
        Ok((
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            parsed.port().unwrap_or(default_port),
            path,
        ))
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
    /// (rule, employee or address, trigger) -> when last sent. The keys are attacker input
    /// (blocks from any number of addresses), and this runs on the event writer's thread, so it
    /// is bounded without scans; a key forgotten early only lets one more alert out.
    last: super::Generations<(usize, String, String), Instant>,
    tx: Option<mpsc::SyncSender<Job>>,
}

/// Alerts waiting for delivery before new ones are dropped (and counted).
const ALERT_QUEUE: usize = 1024;

/// Most deduplication keys per generation (two are kept).
const DEDUP_GENERATION: usize = 65_536;

impl Alerter {
    /// An alerter for `rules`; delivery starts with [`Alerter::start`].
    pub fn new(rules: Vec<AlertRule>) -> Self {
        let longest = rules
            .iter()
            .map(|r| r.dedup_interval)
            .max()
            .unwrap_or_default();
        Alerter {
            rules: Arc::new(rules),
            last: super::Generations::new(longest, DEDUP_GENERATION, Instant::now()),
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
                // One small runtime and client for the thread's life: alerts are rare, and the
                // request path never waits on them.
                let sender = match Poster::new() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "alerts cannot be sent: no HTTP client");
                        return;
                    }
                };
                while let Ok(job) = rx.recv() {
                    let Some(rule) = rules.get(job.rule) else {
                        continue;
                    };
                    deliver(&sender, rule, &job, &stats);
                }
            })?;
        self.tx = Some(tx);
        Ok(())
    }

    /// Offers a written event; sends an alert if a rule matches and it is not a repeat.
    pub fn offer(&mut self, e: &Event, stats: &Stats) {
        let Some(tx) = &self.tx else { return };
        if e.is_tunnel_close() {
            return; // not a decision: its connect event was offered already
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let Some(trigger) = rule.trigger(e) else {
                continue;
            };
            let who = e
                .user
                .as_ref()
                .map_or_else(|| e.source.ip.to_string(), |u| u.employee().to_owned());
            let key = (i, who, trigger.to_owned());
            let now = Instant::now();
            self.last.rotate_if_due(now);
            if let Some(t) = self.last.get(&key)
                && now.duration_since(*t) < rule.dedup_interval
            {
                stats.alerts_deduplicated.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.last.insert(key, now, now);
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
    let who = e.user.as_ref().map_or("unknown user", |u| u.employee());
    let country = e.source.geo.country_iso_code.as_deref().unwrap_or("??");
    let value = match format {
        AlertFormat::Slack => serde_json::json!({
            "text": slack_text(&format!(
                "locgate {}: {} from {} ({}) [{}]: {} (ref {})",
                e.event.action.as_str(), who, e.source.ip, country, trigger, e.message, e.event.id
            ))
        }),
        AlertFormat::Json => serde_json::json!({
            "event_id": e.event.id,
            "timestamp": e.timestamp,
            "trigger": trigger,
            "action": e.event.action.as_str(),
            "reasons": e.event.reason,
            "employee": e.user.as_ref().map(|u| u.employee()),
            "ip": e.source.ip.to_string(),
            "country": e.source.geo.country_iso_code,
            "message": e.message,
        }),
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

/// `text` made inert for Slack mrkdwn (and the Mattermost and Rocket.Chat dialects): `&`, `<`
/// and `>` as the entities Slack documents, so no part of it can become a mention
/// (`<!channel>`, `<@U123>`) or a link with a chosen label (`<http://x|click>`); control
/// characters become spaces, so a value cannot start a line of its own.
pub fn slack_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn deliver(sender: &Poster, rule: &AlertRule, job: &Job, stats: &Stats) {
    let mut backoff = rule.backoff;
    for attempt in 0..=rule.retries {
        match sender.post(
            &rule.webhook,
            "application/json",
            &rule.headers,
            job.body.clone(),
        ) {
            Ok(_) => {
                stats.alerts_sent.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(super::outputs::Failure::Retry(e) | super::outputs::Failure::Refused(e)) => {
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
        assert_eq!(
            AlertRule::parse_url("https://hooks.example.com/services/T0/B0/x").unwrap(),
            (
                "hooks.example.com".to_owned(),
                443,
                "/services/T0/B0/x".to_owned()
            )
        );
        assert!(AlertRule::parse_url("ftp://hooks.invalid/x").is_err());
        assert!(AlertRule::parse_url("https://user:pw@hooks.invalid/x").is_err());
        assert!(AlertRule::parse_url("ftp://x").is_err());
        assert!(AlertRule::parse_url("http://u:p@h/").is_err());
        assert!(AlertRule::parse_url("http://h:99999/").is_err());
    }

    /// The attack: a typed-in name that Slack would turn into an @channel ping, a user
    /// mention and a link whose label hides its target.
    #[test]
    fn slack_text_is_inert() {
        let hostile = "<!channel> <@U123> <http://evil.example|click> a&b\nfake line";
        let out = slack_text(hostile);
        assert_eq!(
            out,
            "&lt;!channel&gt; &lt;@U123&gt; &lt;http://evil.example|click&gt; a&amp;b fake line"
        );
        assert!(!out.contains('<') && !out.contains('>') && !out.contains('\n'));
    }
}
