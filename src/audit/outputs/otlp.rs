//! OpenTelemetry logs over HTTP, JSON encoding (OTLP/HTTP `POST /v1/logs`,
//! `Content-Type: application/json`), for an OpenTelemetry Collector or any OTLP backend.
//!
//! One request per batch: a `resourceLogs` entry whose resource names the service
//! (`service.name` `locgate`, `service.version`, `service.instance.id` the instance name,
//! `host.name`), one scope `locgate`, and a log record per event: `timeUnixNano` from
//! `@timestamp`, severity from the action (allow `INFO` 9, note `INFO2` 10, flag and block
//! `WARN` 13), the event's `message` as the body, and every other ECS field as an attribute
//! under its dotted name (`source.ip`, `event.action`, `locgate.verdict`), typed as OTLP's JSON
//! mapping wants: 64-bit integers as strings, arrays as `arrayValue`. `eventName` is
//! `locgate.decision`.

use std::sync::Arc;

use serde_json::{Value, json};

use super::flat::{Severity, flatten, time_nanos};
use super::http::{Headers, LazyPoster};
use super::{Deliver, Failure};
use crate::audit::event::Origin;

/// The logs path, added to a `url` given without one.
pub const LOGS_PATH: &str = "/v1/logs";

/// `[events.otlp]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    /// The endpoint (`http://collector:4318/v1/logs`).
    pub url: String,
    /// Extra headers (`headers`, `token_file`); never printed.
    pub headers: Headers,
    /// Events per request.
    pub batch: usize,
    /// Queue bound, in events.
    pub queue: usize,
}

/// The OTLP output's thread state.
pub struct Otlp {
    config: OtlpConfig,
    resource: Value,
    poster: LazyPoster,
}

impl Otlp {
    /// An output for `config`; the HTTP client is built on the output's thread.
    pub fn new(config: OtlpConfig, origin: &Origin) -> Otlp {
        let resource = json!({
            "attributes": [
                attribute("service.name", &json!("locgate")),
                attribute("service.version", &json!(env!("CARGO_PKG_VERSION"))),
                attribute("service.instance.id", &json!(origin.observer.name)),
                attribute("host.name", &json!(origin.host.name)),
            ]
        });
        Otlp {
            config,
            resource,
            poster: LazyPoster::default(),
        }
    }

    /// The `ExportLogsServiceRequest` for a batch, as JSON.
    pub fn body(&self, lines: &[Arc<str>]) -> Value {
        let records: Vec<Value> = lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|e| record(&e))
            .collect();
        json!({
            "resourceLogs": [{
                "resource": self.resource,
                "scopeLogs": [{
                    "scope": {"name": "locgate", "version": env!("CARGO_PKG_VERSION")},
                    "logRecords": records,
                }],
            }]
        })
    }
}

/// One event as an OTLP `LogRecord`.
fn record(event: &Value) -> Value {
    let (number, text) = match Severity::of(event) {
        Severity::Info => (9, "INFO"),
        Severity::Notice => (10, "INFO2"),
        Severity::Warning => (13, "WARN"),
    };
    // One attribute per name: the fields of objects inside an array (`locgate.data.source`
    // once per data source) become one array attribute.
    let mut grouped: Vec<(String, Vec<&Value>)> = Vec::new();
    for (name, v) in flatten(event) {
        if name == "message" || name == "@timestamp" {
            continue;
        }
        match grouped.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(v),
            None => grouped.push((name, vec![v])),
        }
    }
    let attributes: Vec<Value> = grouped
        .into_iter()
        .map(|(name, values)| match values.as_slice() {
            [one] => attribute(&name, one),
            many => json!({"key": name, "value": {"arrayValue": {"values":
                many.iter().map(|v| any_value(v)).collect::<Vec<_>>()}}}),
        })
        .collect();
    let nanos = time_nanos(event).max(0).to_string();
    json!({
        "timeUnixNano": nanos,
        "observedTimeUnixNano": jiff::Timestamp::now().as_nanosecond().max(0).to_string(),
        "severityNumber": number,
        "severityText": text,
        "eventName": "locgate.decision",
        "body": {"stringValue": event["message"].as_str().unwrap_or("")},
        "attributes": attributes,
    })
}

/// A `KeyValue`.
fn attribute(key: &str, v: &Value) -> Value {
    json!({"key": key, "value": any_value(v)})
}

/// A JSON value as an OTLP `AnyValue` (JSON mapping: `intValue` as a string).
fn any_value(v: &Value) -> Value {
    match v {
        Value::String(s) => json!({"stringValue": s}),
        Value::Bool(b) => json!({"boolValue": b}),
        Value::Number(n) => match n.as_i64() {
            Some(i) => json!({"intValue": i.to_string()}),
            None => match n.as_u64() {
                Some(u) => json!({"intValue": u.to_string()}),
                None => json!({"doubleValue": n.as_f64().unwrap_or(0.0)}),
            },
        },
        Value::Array(items) => {
            json!({"arrayValue": {"values": items.iter().map(any_value).collect::<Vec<_>>()}})
        }
        Value::Object(map) => json!({"kvlistValue": {"values": map
            .iter()
            .map(|(k, v)| attribute(k, v))
            .collect::<Vec<_>>()}}),
        Value::Null => json!({}),
    }
}

impl Deliver for Otlp {
    fn batch_size(&self) -> usize {
        self.config.batch
    }

    fn deliver(&mut self, lines: &[Arc<str>]) -> Result<(), Failure> {
        let body = serde_json::to_vec(&self.body(lines))
            .map_err(|e| Failure::Refused(format!("cannot encode: {e}")))?;
        let answer = self.poster.get()?.post(
            &self.config.url,
            "application/json",
            &self.config.headers,
            body,
        )?;
        // A partial success names records the backend rejected for good: say so.
        if let Ok(v) = serde_json::from_slice::<Value>(&answer)
            && let Some(rejected) = v["partialSuccess"]["rejectedLogRecords"]
                .as_str()
                .and_then(|r| r.parse::<u64>().ok())
                .or_else(|| v["partialSuccess"]["rejectedLogRecords"].as_u64())
            && rejected > 0
        {
            tracing::warn!(rejected, message = %v["partialSuccess"]["errorMessage"], "OTLP backend rejected some events");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_carries_the_event_as_typed_attributes() {
        let otlp = Otlp::new(
            OtlpConfig {
                url: "http://127.0.0.1:1/v1/logs".into(),
                headers: Headers::default(),
                batch: 10,
                queue: 10,
            },
            &Origin::new(Some("gw-1")),
        );
        let line: Arc<str> = Arc::from(
            r#"{"@timestamp":"2026-11-25T08:33:31.027Z","message":"observed KP","event":{"action":"block","duration":81234,"type":["access","denied"]},"source":{"ip":"175.45.176.1"}}"#,
        );
        let body = otlp.body(&[line]);
        let rl = &body["resourceLogs"][0];
        let res = rl["resource"]["attributes"].as_array().expect("attrs");
        assert!(
            res.iter()
                .any(|a| a["key"] == "service.instance.id" && a["value"]["stringValue"] == "gw-1")
        );
        let rec = &rl["scopeLogs"][0]["logRecords"][0];
        assert_eq!(rec["timeUnixNano"], "1795595611027000000");
        assert_eq!(rec["severityNumber"], 13);
        assert_eq!(rec["body"]["stringValue"], "observed KP");
        let attr = |k: &str| {
            rec["attributes"]
                .as_array()
                .and_then(|a| a.iter().find(|x| x["key"] == k))
                .map(|x| x["value"].clone())
                .unwrap_or_default()
        };
        assert_eq!(attr("source.ip")["stringValue"], "175.45.176.1");
        assert_eq!(attr("event.duration")["intValue"], "81234");
        assert_eq!(
            attr("event.type")["arrayValue"]["values"][1]["stringValue"],
            "denied"
        );
        assert!(attr("message").is_null(), "message is the body");
    }
}
