//! What several outputs need from an event's JSON line: its fields flattened to dotted ECS
//! names (journald fields, OTLP attributes), its time, and its severity.

use serde_json::Value;

/// How urgent an event is, by the action carried out: allow informational, note notice, flag
/// and block warning (a decision working as intended is no error of locgate's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// `allow`, and events without an action.
    Info,
    /// `note`.
    Notice,
    /// `flag` and `block`.
    Warning,
}

impl Severity {
    /// The severity of an event's `event.action`.
    pub fn of(event: &Value) -> Severity {
        match event["event"]["action"].as_str() {
            Some("note") => Severity::Notice,
            Some("flag" | "block") => Severity::Warning,
            _ => Severity::Info,
        }
    }

    /// The syslog severity code (RFC 5424 §6.2.1; the journal's `PRIORITY`).
    pub fn syslog_code(self) -> u8 {
        match self {
            Severity::Info => 6,
            Severity::Notice => 5,
            Severity::Warning => 4,
        }
    }
}

/// The event's fields as `(dotted.name, value)` pairs, leaves only, in name order. An array
/// of scalars stays one pair (the array); objects inside arrays (`locgate.data`) are flattened
/// with the array's name, once per element. `geo_point`s (`*.location`) stay one pair.
pub fn flatten(event: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    walk(event, &mut String::new(), &mut out);
    out
}

fn walk<'v>(v: &'v Value, name: &mut String, out: &mut Vec<(String, &'v Value)>) {
    match v {
        Value::Object(map) if !is_geo_point(name, map) => {
            for (k, child) in map {
                let len = name.len();
                if !name.is_empty() {
                    name.push('.');
                }
                name.push_str(k);
                walk(child, name, out);
                name.truncate(len);
            }
        }
        Value::Array(items) if items.iter().any(Value::is_object) => {
            for item in items {
                walk(item, name, out);
            }
        }
        Value::Null => {}
        leaf => out.push((name.clone(), leaf)),
    }
}

/// ECS `geo_point` objects (`{lat, lon}` under a `location` field) are one value, not two.
fn is_geo_point(name: &str, map: &serde_json::Map<String, Value>) -> bool {
    (name == "location" || name.ends_with(".location"))
        && map.len() == 2
        && map.contains_key("lat")
        && map.contains_key("lon")
}

/// The event's `@timestamp` in nanoseconds since the epoch (0 when absent or unreadable).
pub fn time_nanos(event: &Value) -> i128 {
    event["@timestamp"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or(0, |t| t.as_nanosecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_to_ecs_names_keeping_geo_points_and_arrays() {
        let v: Value = serde_json::from_str(
            r#"{"@timestamp":"2026-11-25T08:33:31.027Z","event":{"action":"block","reason":["a","b"]},
                "source":{"geo":{"location":{"lat":1.5,"lon":2.5}}},"user":null,
                "locgate":{"data":[{"source":"x"},{"source":"y"}]}}"#,
        )
        .expect("json");
        let names: Vec<String> = flatten(&v).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "@timestamp",
                "event.action",
                "event.reason",
                "locgate.data.source",
                "locgate.data.source",
                "source.geo.location",
            ]
        );
        assert_eq!(Severity::of(&v), Severity::Warning);
        assert_eq!(time_nanos(&v), 1_795_595_611_027_000_000);
    }
}
