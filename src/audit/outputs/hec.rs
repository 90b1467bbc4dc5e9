//! Splunk HTTP Event Collector: batches of events posted to `/services/collector/event` with
//! `Authorization: Splunk <token>`, each in HEC's JSON envelope:
//!
//! ```json
//! {"time":1795595611.027,"host":"gw-1","source":"locgate","sourcetype":"locgate:event",
//!  "index":"security","event":{ ...the ECS event... }}
//! ```
//!
//! A batch is the envelopes one after another (HEC's batch form: no array, no separator).
//! `time` is the event's `@timestamp` (seconds, milliseconds as the fraction), so Splunk indexes
//! it at the decision's time rather than its arrival; `host` is the instance name.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::http::{Headers, LazyPoster};
use super::{Deliver, Failure};
use crate::audit::event::Origin;

/// The collector's event endpoint, added to a `url` given without a path.
pub const EVENT_PATH: &str = "/services/collector/event";

/// `[events.hec]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct HecConfig {
    /// The endpoint (`https://splunk:8088/services/collector/event`).
    pub url: String,
    /// `Authorization: Splunk <token>` (and any extra headers); never printed.
    pub headers: Headers,
    /// Target index; the token's default when absent.
    pub index: Option<String>,
    /// `source`; default `locgate`.
    pub source: String,
    /// `sourcetype`; default `locgate:event`.
    pub sourcetype: String,
    /// Events per request.
    pub batch: usize,
    /// Queue bound, in events.
    pub queue: usize,
}

/// The HEC output's thread state.
pub struct Hec {
    config: HecConfig,
    host: String,
    poster: LazyPoster,
}

#[derive(Serialize)]
struct Envelope<'a> {
    time: f64,
    host: &'a str,
    source: &'a str,
    sourcetype: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<&'a str>,
    event: &'a Value,
}

impl Hec {
    /// An output for `config`; the HTTP client is built on the output's thread.
    pub fn new(config: HecConfig, origin: &Origin) -> Hec {
        Hec {
            config,
            host: origin.observer.name.clone(),
            poster: LazyPoster::default(),
        }
    }

    /// The request body for a batch: one envelope per event.
    pub fn body(&self, lines: &[Arc<str>]) -> Vec<u8> {
        let mut body = Vec::with_capacity(lines.iter().map(|l| l.len() + 160).sum());
        for line in lines {
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let envelope = Envelope {
                time: super::flat::time_nanos(&event) as f64 / 1e9,
                host: &self.host,
                source: &self.config.source,
                sourcetype: &self.config.sourcetype,
                index: self.config.index.as_deref(),
                event: &event,
            };
            if serde_json::to_writer(&mut body, &envelope).is_ok() {
                body.push(b'\n');
            }
        }
        body
    }
}

impl Deliver for Hec {
    fn batch_size(&self) -> usize {
        self.config.batch
    }

    fn deliver(&mut self, lines: &[Arc<str>]) -> Result<(), Failure> {
        let body = self.body(lines);
        self.poster
            .get()?
            .post(
                &self.config.url,
                "application/json",
                &self.config.headers,
                body,
            )
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_carries_the_event_whole_at_its_time() {
        let hec = Hec::new(
            HecConfig {
                url: "http://127.0.0.1:1/services/collector/event".into(),
                headers: Headers::default(),
                index: Some("security".into()),
                source: "locgate".into(),
                sourcetype: "locgate:event".into(),
                batch: 10,
                queue: 10,
            },
            &Origin::new(Some("gw-1")),
        );
        let line: Arc<str> =
            Arc::from(r#"{"@timestamp":"2026-11-25T08:33:31.027Z","event":{"action":"block"}}"#);
        let body = hec.body(&[line.clone(), line]);
        let text = String::from_utf8(body).expect("utf8");
        let mut n = 0;
        for envelope in serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>() {
            let e = envelope.expect("json");
            assert_eq!(e["host"], "gw-1");
            assert_eq!(e["index"], "security");
            assert_eq!(e["sourcetype"], "locgate:event");
            assert_eq!(e["event"]["event"]["action"], "block");
            assert!((e["time"].as_f64().unwrap_or(0.0) - 1_795_595_611.027).abs() < 1e-3);
            n += 1;
        }
        assert_eq!(n, 2);
    }
}
