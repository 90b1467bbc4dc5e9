//! Plain-language explanations of a decision, shared by `locgate check` and the whoami page so an
//! operator and an employee see the same words.

use std::fmt::Write;

use crate::intel::{LocationPrecision, Observation};
use crate::policy::Decision;

/// A multi-line explanation of what was observed and decided.
pub fn text(obs: &Observation<'_>, decision: &Decision) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", obs.ip);
    let mut place = obs.place();
    if let Some(region) = obs.region {
        place = format!("{place}, region {region}");
    }
    let _ = writeln!(s, "  location:    {place}");
    if let Some(loc) = obs.location {
        let basis = match obs.precision {
            Some(LocationPrecision::Country) => "country's capital; only the country is known",
            _ => "database",
        };
        let within = match obs.accuracy_km {
            Some(acc) => format!("within {acc:.0} km"),
            None => "accuracy not given".to_string(),
        };
        let _ = writeln!(
            s,
            "  coordinates: {:.4}, {:.4} ({within}; {basis})",
            loc.lat, loc.lon
        );
    }
    match (obs.asn, obs.as_org) {
        (Some(asn), Some(org)) => {
            let _ = writeln!(s, "  network:     AS{asn} {org}");
        }
        (Some(asn), None) => {
            let _ = writeln!(s, "  network:     AS{asn}");
        }
        _ => {
            let _ = writeln!(s, "  network:     unknown");
        }
    }
    let flags: Vec<&str> = obs.anonymizers.iter().map(|c| c.as_str()).collect();
    let flags = if flags.is_empty() {
        "none".to_string()
    } else {
        flags.join(", ")
    };
    let _ = writeln!(s, "  anonymizer:  {flags}");
    if let Some(detail) = obs.anonymizer_detail.as_ref().and_then(|d| d.describe()) {
        let _ = writeln!(s, "               {detail}");
    }
    if let Some(kind) = obs.connection_type {
        let _ = writeln!(s, "  connection:  {}", kind.as_str());
    }
    if let Some(kind) = obs.network_kind {
        let _ = writeln!(s, "  network kind: {}", kind.describe());
    }
    if obs.trusted_network {
        let _ = writeln!(s, "  trusted:     corporate egress list");
    }
    let _ = writeln!(
        s,
        "  decision:    {} ({} mode; policy verdict {})",
        decision.action,
        decision.mode.as_str(),
        decision.verdict
    );
    for r in &decision.reasons {
        let _ = writeln!(s, "    - {} [{}]: {}", r.code, r.action, r.detail);
    }
    s
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
