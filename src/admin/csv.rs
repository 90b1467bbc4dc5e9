//! Events as CSV (RFC 4180) for people who open them in a spreadsheet: every field quoted, and
//! a field that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR at its start)
//! prefixed with `'`, since event fields (user names, AS names, reasons) come from outside.

use crate::audit::store::StoredEvent;

const HEADER: [&str; 14] = [
    "time",
    "action",
    "employee",
    "ip",
    "country",
    "asn",
    "as_org",
    "latitude",
    "longitude",
    "reasons",
    "message",
    "instance",
    "acknowledged_by",
    "id",
];

/// One field, quoted and defused.
fn field(out: &mut String, value: &str) {
    out.push('"');
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        out.push('\'');
    }
    out.push_str(&value.replace('"', "\"\""));
    out.push('"');
}

fn line(out: &mut String, fields: &[&str]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(out, f);
    }
    out.push_str("\r\n");
}

/// The events as CSV with a header line.
pub(super) fn events(events: &[StoredEvent]) -> String {
    let mut out = String::new();
    line(&mut out, &HEADER);
    for e in events {
        let num = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        line(
            &mut out,
            &[
                &e.timestamp,
                &e.action,
                e.employee.as_deref().unwrap_or(""),
                &e.ip,
                e.country.as_deref().unwrap_or(""),
                &e.asn.map(|a| a.to_string()).unwrap_or_default(),
                e.as_org.as_deref().unwrap_or(""),
                &num(e.lat),
                &num(e.lon),
                &e.reasons.join(" "),
                &e.message,
                e.instance.as_deref().unwrap_or(""),
                e.ack.as_ref().map_or("", |a| a.reviewer.as_str()),
                &e.id,
            ],
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        let mut s = String::new();
        line(
            &mut s,
            &["a\"b", "=HYPERLINK(\"x\")", "-1", "plain, with comma"],
        );
        assert_eq!(
            s,
            "\"a\"\"b\",\"'=HYPERLINK(\"\"x\"\")\",\"'-1\",\"plain, with comma\"\r\n"
        );
    }
}
