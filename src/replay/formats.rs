//! The shapes sign-in logs come in, as the identity providers export them.
//!
//! Every input becomes a list of JSON records first: a JSON document (an array, or an API
//! response that wraps one: Graph's `value`, Google's `items`, Duo's `response.authlogs`,
//! Cloudflare's `result`), JSON lines, or CSV (each row an object, a dotted header such as
//! `client.ipAddress` nested as in the JSON). Each record is then read by the first [`Shape`]
//! whose marks it carries (or the one `--format` names), and a [`Mapping`] reads any other log.
//!
//! | format | time | address | person | refused when |
//! | --- | --- | --- | --- | --- |
//! | `okta` (System Log API, console export) | `published` | `client.ipAddress` | `actor.alternateId` | `outcome.result` FAILURE or DENY |
//! | `entra` (Graph `signIns`, portal JSON/CSV) | `createdDateTime` | `ipAddress` | `userPrincipalName` | `status.errorCode` not 0 |
//! | `entra-portal` (portal CSV) | `Date (UTC)` | `IP address` | `Username` | `Status` Failure |
//! | `google` (Reports API, login) | `id.time` | `ipAddress` | `actor.email` | an event named `login_failure` |
//! | `duo` (Admin API authentication log v2, v1) | `isotimestamp`, `timestamp` | `access_device.ip`, `ip` | `user.name`, `username` | `result` not success |
//! | `cloudflare` (Access requests: Logpush, API) | `CreatedAt`, `created_at` | `IPAddress`, `ip_address` | `Email`, `user_email` | `Allowed` false |
//! | `plain` (locgate's own) | `time` | `ip` | `user` | `outcome` failure |

use std::borrow::Cow;
use std::collections::HashSet;

use serde_json::{Map, Value};

use super::value::{Scratch, Val};
use super::{BadLine, Parsed, Place, sign_in};

/// Which shape to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// Each record by the first shape whose marks it carries.
    Auto,
    /// One named shape (`okta`, `entra`, ...).
    Named(&'static str),
    /// Fields named on the command line (`--map`).
    Mapped(Mapping),
}

impl Format {
    /// The names `--format` takes.
    pub fn names() -> impl Iterator<Item = &'static str> {
        std::iter::once("auto").chain(SHAPES.iter().map(|s| s.name))
    }

    /// The format `--format NAME` names.
    pub fn named(name: &str) -> Result<Format, String> {
        if name == "auto" {
            return Ok(Format::Auto);
        }
        SHAPES
            .iter()
            .find(|s| s.name == name)
            .map(|s| Format::Named(s.name))
            .ok_or_else(|| {
                format!(
                    "`{name}` is not a format; the formats are {}",
                    Format::names().collect::<Vec<_>>().join(", ")
                )
            })
    }
}

/// Where a log keeps each field: `--map time=createdDateTime,ip=ipAddress,user=userPrincipalName`
/// (dotted paths into JSON records; CSV header names), and optionally `outcome=FIELD`, read as
/// success or failure by its words (`success`, `failure`, `denied`, `true`, `0`...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    time: String,
    ip: String,
    user: Option<String>,
    outcome: Option<String>,
}

impl Mapping {
    /// Reads `time=...,ip=...[,user=...][,outcome=...]`.
    pub fn parse(spec: &str) -> Result<Mapping, String> {
        let (mut time, mut ip, mut user, mut outcome) = (None, None, None, None);
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, field)) = pair.split_once('=') else {
                return Err(format!("`{pair}` is not key=field"));
            };
            let field = field.trim();
            if field.is_empty() {
                return Err(format!("`{key}` names no field"));
            }
            let slot = match key.trim() {
                "time" => &mut time,
                "ip" => &mut ip,
                "user" => &mut user,
                "outcome" => &mut outcome,
                other => {
                    return Err(format!(
                        "`{other}` is not a field to map; map time, ip, user and outcome"
                    ));
                }
            };
            *slot = Some(field.to_owned());
        }
        match (time, ip) {
            (Some(time), Some(ip)) => Ok(Mapping {
                time,
                ip,
                user,
                outcome,
            }),
            _ => Err("a mapping needs at least time=FIELD and ip=FIELD".into()),
        }
    }
}

/// How one log names its fields. Each list holds alternative paths, first found wins.
struct Shape {
    name: &'static str,
    /// Groups of alternatives; a record is this shape when every group has one path present.
    marks: &'static [&'static [&'static str]],
    time: &'static [&'static str],
    ip: &'static [&'static str],
    user: &'static [&'static str],
    /// Whether the IdP let the person in (`None`: the record does not say).
    outcome: fn(&Val<'_>) -> Option<bool>,
}

const SHAPES: &[Shape] = &[
    Shape {
        name: "okta",
        marks: &[&["published"], &["eventType"]],
        time: &["published"],
        ip: &["client.ipAddress"],
        user: &["actor.alternateId"],
        outcome: |r| match &*field(r, &["outcome.result"])? {
            "SUCCESS" | "ALLOW" => Some(true),
            "FAILURE" | "DENY" => Some(false),
            _ => None,
        },
    },
    Shape {
        name: "entra",
        marks: &[&["createdDateTime"], &["userPrincipalName"]],
        time: &["createdDateTime"],
        ip: &["ipAddress"],
        user: &["userPrincipalName"],
        outcome: |r| {
            let code = field(r, &["status.errorCode", "ResultType"])?;
            Some(code.trim() == "0")
        },
    },
    Shape {
        name: "entra-portal",
        marks: &[&["Date (UTC)"], &["IP address"]],
        time: &["Date (UTC)"],
        ip: &["IP address"],
        user: &["Username", "User"],
        outcome: |r| words(&field(r, &["Status"])?),
    },
    Shape {
        name: "google",
        marks: &[&["id.time"], &["id.applicationName"]],
        time: &["id.time"],
        ip: &["ipAddress"],
        user: &["actor.email"],
        outcome: |r| {
            let names: Vec<&str> = r
                .get("events")?
                .as_array()?
                .iter()
                .filter_map(|e| e.get("name")?.as_str())
                .collect();
            if names.contains(&"login_failure") {
                Some(false)
            } else if names.contains(&"login_success") {
                Some(true)
            } else {
                None
            }
        },
    },
    Shape {
        name: "duo",
        marks: &[
            &["txid", "factor"],
            &["result"],
            &["isotimestamp", "timestamp"],
        ],
        time: &["isotimestamp", "timestamp"],
        ip: &["access_device.ip", "ip"],
        user: &["user.name", "username"],
        outcome: |r| words(&field(r, &["result"])?),
    },
    Shape {
        name: "cloudflare",
        marks: &[&["CreatedAt", "created_at"], &["IPAddress", "ip_address"]],
        time: &["CreatedAt", "created_at"],
        ip: &["IPAddress", "ip_address"],
        user: &["Email", "user_email", "UserEmail"],
        outcome: |r| words(&field(r, &["Allowed", "allowed"])?),
    },
    Shape {
        name: "plain",
        marks: &[&["time"], &["ip"]],
        time: &["time"],
        ip: &["ip"],
        user: &["user"],
        outcome: |r| words(&field(r, &["outcome", "result"])?),
    },
];

/// Success or failure as logs spell it; `None` for anything else (`interrupted`, `challenge`).
fn words(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "success" | "succeeded" | "successful" | "true" | "allowed" | "allow" | "ok" | "0" => {
            Some(true)
        }
        "failure" | "failed" | "fail" | "false" | "denied" | "deny" | "fraud" | "error"
        | "blocked" | "rejected" => Some(false),
        n if n.parse::<i64>().is_ok() => Some(false), // a non-zero error code
        _ => None,
    }
}

/// The value at a dotted path, as text (numbers and booleans as written); a string is
/// borrowed from the record, not copied.
fn field<'r>(record: &'r Val<'_>, paths: &[&str]) -> Option<Cow<'r, str>> {
    paths.iter().find_map(|p| {
        let v = p.split('.').try_fold(record, |v, key| v.get(key))?;
        match v {
            Val::Str(s) => Some(Cow::Borrowed(&**s)),
            Val::Num(n) => Some(Cow::Owned(n.to_string())),
            Val::Bool(b) => Some(Cow::Owned(b.to_string())),
            _ => None,
        }
    })
}

fn has(record: &Val<'_>, path: &str) -> bool {
    path.split('.')
        .try_fold(record, |v, key| v.get(key))
        .is_some()
}

impl Shape {
    fn fits(&self, record: &Val<'_>) -> bool {
        self.marks
            .iter()
            .all(|group| group.iter().any(|p| has(record, p)))
    }
}

/// Reads every record of `text`.
pub(super) fn read(text: &str, format: &Format) -> Parsed {
    let mut parsed = Parsed::default();
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    let records: Records = if trimmed.starts_with('[')
        || (trimmed.starts_with('{') && !looks_like_json_lines(trimmed))
    {
        match Scratch::default().read(trimmed) {
            Ok(doc) => Box::new(
                unwrap_document(doc)
                    .enumerate()
                    .map(|(i, r)| (Place::Record(i + 1), Ok(r))),
            ),
            Err(e) => Box::new(std::iter::once((
                Place::Line(e.line()),
                Err(format!("not JSON: {e}")),
            ))),
        }
    } else if trimmed.starts_with('{') {
        json_lines(text)
    } else {
        match csv_records(text) {
            Ok(rows) => rows,
            Err(bad) => {
                parsed.bad.push(bad);
                return parsed;
            }
        }
    };
    let mut first_shape: Option<&'static str> = None;
    let mut names = HashSet::new();
    for (at, record) in records {
        let record = match record {
            Ok(r) => r,
            Err(message) => {
                parsed.bad.push(BadLine { at, message });
                continue;
            }
        };
        let fields = match format {
            Format::Mapped(m) => Fields {
                time: field(&record, &[m.time.as_str()]),
                ip: field(&record, &[m.ip.as_str()]),
                user: m.user.as_deref().and_then(|u| field(&record, &[u])),
                succeeded: m
                    .outcome
                    .as_deref()
                    .and_then(|o| field(&record, &[o]))
                    .and_then(|w| words(&w)),
            },
            Format::Named(name) => match SHAPES.iter().find(|s| s.name == *name) {
                Some(shape) => Fields::of(shape, &record),
                None => continue,
            },
            Format::Auto => match SHAPES.iter().find(|s| s.fits(&record)) {
                Some(shape) => {
                    first_shape.get_or_insert(shape.name);
                    Fields::of(shape, &record)
                }
                None => {
                    parsed.bad.push(BadLine {
                        at,
                        message: format!(
                            "not a sign-in of any known format ({}); name the fields with --map time=...,ip=...,user=...",
                            SHAPES.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
                        ),
                    });
                    continue;
                }
            },
        };
        // A record without an address is not a sign-in to judge (an Okta System Log also
        // holds the admin's and the system's own events).
        if fields.ip.is_none() {
            parsed.skipped += 1;
            continue;
        }
        match sign_in(
            fields.time.as_deref(),
            fields.ip.as_deref(),
            fields.user.as_deref(),
            fields.succeeded,
            at,
            &mut names,
        ) {
            Ok(s) => parsed.rows.push(s),
            Err(b) => parsed.bad.push(b),
        }
    }
    parsed.format = match format {
        Format::Auto => first_shape.unwrap_or("auto"),
        Format::Named(n) => n,
        Format::Mapped(_) => "mapped",
    };
    parsed
}

/// The fields of one record as read (borrowed from it where they are strings).
struct Fields<'r> {
    time: Option<Cow<'r, str>>,
    ip: Option<Cow<'r, str>>,
    user: Option<Cow<'r, str>>,
    succeeded: Option<bool>,
}

impl<'r> Fields<'r> {
    fn of(shape: &Shape, record: &'r Val<'_>) -> Fields<'r> {
        Fields {
            time: field(record, shape.time),
            ip: field(record, shape.ip),
            user: field(record, shape.user),
            succeeded: (shape.outcome)(record),
        }
    }
}

/// Whether a text starting with `{` is JSON lines rather than one object: its first line is a
/// whole object on its own.
fn looks_like_json_lines(text: &str) -> bool {
    let first = text.lines().next().unwrap_or("");
    serde_json::from_str::<Map<String, Value>>(first).is_ok()
}

/// The records of a JSON document: an array, or the array an API response wraps.
fn unwrap_document(doc: Val<'_>) -> OneOrMany<Val<'_>> {
    match doc {
        Val::Arr(a) => OneOrMany::Many(a.into_iter()),
        mut o @ Val::Obj(_) => {
            for key in ["value", "items", "result", "data", "authlogs"] {
                if let Some(Val::Arr(a)) = o.remove(key) {
                    return OneOrMany::Many(a.into_iter());
                }
            }
            match o.remove("response") {
                Some(Val::Arr(a)) => OneOrMany::Many(a.into_iter()),
                Some(mut r @ Val::Obj(_)) => match r.remove("authlogs") {
                    Some(Val::Arr(a)) => OneOrMany::Many(a.into_iter()),
                    _ => OneOrMany::one(r),
                },
                Some(other) => {
                    o.insert("response", other);
                    OneOrMany::one(o)
                }
                None => OneOrMany::one(o),
            }
        }
        other => OneOrMany::one(other),
    }
}

/// One record (a line of JSON lines, nearly always) or several, without a vector for the one.
enum OneOrMany<T> {
    One(std::iter::Once<T>),
    Many(std::vec::IntoIter<T>),
}

impl<T> OneOrMany<T> {
    fn one(t: T) -> Self {
        OneOrMany::One(std::iter::once(t))
    }
}

impl<T> Iterator for OneOrMany<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match self {
            OneOrMany::One(it) => it.next(),
            OneOrMany::Many(it) => it.next(),
        }
    }
}

/// The records of each non-empty line (a line may hold one record, or a whole API response).
fn json_lines(text: &str) -> Records<'_> {
    let mut scratch = Scratch::default();
    Box::new(
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .flat_map(move |(i, line)| {
                let read = match scratch.read(line) {
                    Ok(v) if v.is_object() => Ok(unwrap_document(v)),
                    Ok(_) => Err("not a JSON object".to_string()),
                    Err(e) => Err(format!("not a JSON object: {e}")),
                };
                let at = Place::Line(i + 1);
                let (records, bad) = match read {
                    Ok(records) => (Some(records), None),
                    Err(message) => (None, Some(message)),
                };
                records
                    .into_iter()
                    .flatten()
                    .map(Ok)
                    .chain(bad.map(Err))
                    .map(move |r| (at, r))
            }),
    )
}

/// Records as read, each with where it was, or why it could not be read; read as they are
/// consumed, so a file of millions of sign-ins is never held as records all at once.
type Records<'a> = Box<dyn Iterator<Item = (Place, Result<Val<'a>, String>)> + 'a>;

/// One record per CSV row, keyed by the header (a dotted header nests, as in the JSON the export
/// was flattened from).
fn csv_records(text: &str) -> Result<Records<'_>, BadLine> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let headers = reader.headers().cloned().map_err(|e| BadLine {
        at: Place::Line(1),
        message: format!("cannot read the CSV header: {e}"),
    })?;
    Ok(Box::new(reader.into_records().map(
        move |record| match record {
            Ok(row) => {
                let line = row.position().map_or(0, |p| p.line() as usize);
                let mut obj = Val::object();
                for (name, cell) in headers.iter().zip(row.iter()) {
                    if !cell.is_empty() {
                        insert_dotted(&mut obj, name, cell);
                    }
                }
                (Place::Line(line), Ok(obj))
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                (Place::Line(line), Err(format!("unreadable CSV row: {e}")))
            }
        },
    )))
}

/// Puts `value` at the dotted `path` of `obj` (and, for a header with a space or parenthesis
/// such as `Date (UTC)`, at the name as written).
fn insert_dotted(obj: &mut Val<'_>, path: &str, value: &str) {
    let mut at = obj;
    let mut keys = path.split('.').peekable();
    while let Some(key) = keys.next() {
        if !at.is_object() {
            return;
        }
        if keys.peek().is_none() {
            at.insert(key, Val::Str(Cow::Owned(value.to_owned())));
            return;
        }
        let Some(next) = at.entry(key, Val::object) else {
            return;
        };
        at = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_vendor_shape_is_detected_from_its_own_fields() {
        let cases = [
            (
                r#"[{"published":"2026-11-20T10:00:00.000Z","eventType":"user.session.start","actor":{"alternateId":"ann@example.com","type":"User"},"client":{"ipAddress":"198.51.100.7"},"outcome":{"result":"FAILURE"}}]"#,
                "okta",
                Some(false),
            ),
            (
                r#"{"@odata.context":"x","value":[{"createdDateTime":"2026-11-20T10:00:00Z","userPrincipalName":"ann@example.com","ipAddress":"198.51.100.7","status":{"errorCode":0}}]}"#,
                "entra",
                Some(true),
            ),
            (
                r#"{"kind":"admin#reports#activities","items":[{"id":{"time":"2026-11-20T10:00:00.000Z","applicationName":"login"},"actor":{"email":"ann@example.com"},"ipAddress":"198.51.100.7","events":[{"type":"login","name":"login_success"}]}]}"#,
                "google",
                Some(true),
            ),
            (
                r#"{"stat":"OK","response":{"authlogs":[{"isotimestamp":"2026-11-20T10:00:00+00:00","timestamp":1795168800,"txid":"t","result":"denied","user":{"name":"ann"},"access_device":{"ip":"198.51.100.7"}}]}}"#,
                "duo",
                Some(false),
            ),
            (
                r#"{"CreatedAt":"2026-11-20T10:00:00Z","IPAddress":"198.51.100.7","Email":"ann@example.com","Allowed":true,"Action":"login","RayID":"r"}"#,
                "cloudflare",
                Some(true),
            ),
        ];
        for (text, name, outcome) in cases {
            let p = read(text, &Format::Auto);
            assert!(p.bad.is_empty(), "{name}: {:?}", p.bad);
            assert_eq!(p.format, name);
            assert_eq!(p.rows.len(), 1, "{name}");
            let r = &p.rows[0];
            assert_eq!(r.ip.to_string(), "198.51.100.7", "{name}");
            assert!(
                r.user.as_deref().is_some_and(|u| u.starts_with("ann")),
                "{name}"
            );
            assert_eq!(r.succeeded, outcome, "{name}");
            assert_eq!(r.time.to_string(), "2026-11-20T10:00:00Z", "{name}");
        }
    }

    #[test]
    fn an_entra_portal_csv_and_a_flattened_okta_csv_read_like_their_json() {
        let portal = "Date (UTC),Request ID,User,Username,IP address,Location,Status\n\
                      2026-11-20T10:00:00Z,abc,Ann,ann@example.com,198.51.100.7,\"Austin, Texas, US\",Failure\n";
        let p = read(portal, &Format::Auto);
        assert_eq!((p.format, p.rows.len()), ("entra-portal", 1), "{:?}", p.bad);
        assert_eq!(p.rows[0].succeeded, Some(false));
        let okta = "published,eventType,actor.alternateId,client.ipAddress,outcome.result\n\
                    2026-11-20T10:00:00Z,user.session.start,ann@example.com,198.51.100.7,SUCCESS\n";
        let p = read(okta, &Format::Auto);
        assert_eq!((p.format, p.rows.len()), ("okta", 1), "{:?}", p.bad);
        assert_eq!(p.rows[0].user.as_deref(), Some("ann@example.com"));
    }

    #[test]
    fn a_mapping_reads_any_log_and_events_without_an_address_are_skipped() {
        let m = Mapping::parse("time=when, ip=src.addr, user=who, outcome=ok").expect("map");
        let text = "{\"when\":\"2026-11-20T10:00:00Z\",\"src\":{\"addr\":\"198.51.100.7\"},\"who\":\"ann\",\"ok\":\"false\"}\n\
                    {\"when\":\"2026-11-20T10:00:00Z\",\"who\":\"system\"}\n";
        let p = read(text, &Format::Mapped(m));
        assert_eq!((p.rows.len(), p.skipped), (1, 1), "{:?}", p.bad);
        assert_eq!(p.rows[0].succeeded, Some(false));
        assert!(Mapping::parse("time=a").is_err());
        assert!(Mapping::parse("time=a,ip=b,where=c").is_err());
        assert!(Format::named("splunk").is_err());
    }
}
