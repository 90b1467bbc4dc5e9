//! Writing a reviewer's decision back into the TOML directory file: an allowed network or a
//! travel window added to one person, so that a case decided benign does not come back.
//!
//! The file is people's: its comments, order and layout stay. So the change is a textual
//! insertion at a place the TOML parser's spans give (inside the person's existing
//! `allow_networks` / `travel` array, or a new line after their `id`), and the result is then
//! parsed as a whole directory and must hold the change; anything else (an array of tables, an
//! inline-table layout, a CSV file) is refused with what to add by hand. The file is replaced
//! atomically (a temporary file beside it, synced, renamed), keeping its permissions; the
//! gateway's file watcher reloads it.

use std::io::Write;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::Directory;

/// What to add to one person.
#[derive(Debug, Clone, PartialEq)]
pub enum Amendment {
    /// A network of theirs (CIDR) that is always allowed.
    AllowNetwork(ipnetwork::IpNetwork),
    /// A trip: `from` and `to` as TOML dates or date-times, and its countries.
    Travel {
        /// First day (`2026-12-20`) or instant (RFC 3339).
        from: String,
        /// Last day or instant.
        to: String,
        /// ISO 3166 alpha-2 codes.
        countries: Vec<String>,
    },
}

impl Amendment {
    /// The TOML text of the value to add.
    fn value(&self) -> String {
        match self {
            Amendment::AllowNetwork(n) => format!("\"{n}\""),
            Amendment::Travel {
                from,
                to,
                countries,
            } => format!(
                "{{ from = {from}, to = {to}, countries = [{}] }}",
                countries
                    .iter()
                    .map(|c| format!("\"{c}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    fn key(&self) -> &'static str {
        match self {
            Amendment::AllowNetwork(_) => "allow_networks",
            Amendment::Travel { .. } => "travel",
        }
    }

    /// Checks the values (they are written into a file as TOML text).
    fn check(&self) -> Result<(), String> {
        if let Amendment::Travel {
            from,
            to,
            countries,
        } = self
        {
            for w in [from, to] {
                let date = w.parse::<jiff::civil::Date>().is_ok();
                let instant = w.parse::<jiff::Timestamp>().is_ok();
                if !(date || instant) || w.contains(['"', '\n', '#', ',', '}']) {
                    return Err(format!(
                        "`{w}` is not a date (2026-12-20) or an RFC 3339 time"
                    ));
                }
            }
            if countries.is_empty() {
                return Err("a trip needs at least one country".into());
            }
            for c in countries {
                crate::country::CountryCode::parse_known(c)
                    .map_err(|e| format!("country `{c}`: {e}"))?;
            }
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    employee: Vec<RawPerson>,
}

#[derive(Deserialize)]
struct RawPerson {
    id: Spanned<String>,
    allow_networks: Option<Spanned<toml::Value>>,
    travel: Option<Spanned<toml::Value>>,
}

/// `text` with `change` added to the person whose id is `id` (case-insensitive).
pub fn amend_toml(text: &str, id: &str, change: &Amendment) -> Result<String, String> {
    change.check()?;
    let raw: Raw = toml::from_str(text).map_err(|e| format!("the file does not parse: {e}"))?;
    let person = raw
        .employee
        .iter()
        .find(|p| p.id.get_ref().eq_ignore_ascii_case(id))
        .ok_or_else(|| format!("no [[employee]] with id `{id}` in the file"))?;
    let existing = match change {
        Amendment::AllowNetwork(_) => person.allow_networks.as_ref(),
        Amendment::Travel { .. } => person.travel.as_ref(),
    };
    let value = change.value();
    let out = match existing {
        Some(array) => {
            let span = array.span();
            let written = text.get(span.clone()).unwrap_or("");
            if !(written.starts_with('[') && written.ends_with(']')) {
                return Err(format!(
                    "{} of `{id}` is not written as one [ ... ] array",
                    change.key()
                ));
            }
            let inner = &written[1..written.len() - 1];
            let sep = if inner.trim().trim_end_matches(',').trim().is_empty() {
                ""
            } else if inner.trim_end().ends_with(',') {
                " "
            } else {
                ", "
            };
            // Before the closing bracket, after any trailing comma and whitespace.
            let close = span.end - 1;
            let body_end = span.start + 1 + inner.trim_end().len();
            format!(
                "{}{sep}{value}{}{}",
                &text[..body_end],
                &text[body_end..close],
                &text[close..]
            )
        }
        None => {
            // A new line right after the person's `id = ...` line.
            let after_id = person.id.span().end;
            let eol = text[after_id..]
                .find('\n')
                .map_or(text.len(), |i| after_id + i + 1);
            let newline = if eol == text.len() && !text.ends_with('\n') {
                "\n"
            } else {
                ""
            };
            format!(
                "{}{newline}{} = [{value}]\n{}",
                &text[..eol],
                change.key(),
                &text[eol..]
            )
        }
    };
    Ok(out)
}

/// Adds `change` to each of `ids` in the directory file at `path` (TOML only), after checking
/// that the new file loads and holds every change: all of them are written, in one atomic
/// replace, or none.
pub fn amend_file(
    path: &Path,
    default_radius_km: f64,
    ids: &[String],
    change: &Amendment,
) -> Result<(), String> {
    let label = path.display().to_string();
    let is_toml = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    let by_hand = |id: &str| {
        format!(
            "add {} = [{}] to `{id}` by hand",
            change.key(),
            change.value()
        )
    };
    if !is_toml {
        return Err(format!(
            "{label} is not a TOML directory: {} (or in the HR system it is exported from)",
            ids.iter()
                .map(|i| by_hand(i))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{label}: cannot read: {e}"))?;
    let old = Directory::parse_toml(&text, &label, default_radius_km)
        .map_err(|e| format!("{label}: does not load now ({e}); left as it was"))?;
    let mut new = text.clone();
    for id in ids {
        new = amend_toml(&new, id, change).map_err(|e| format!("{label}: {e}: {}", by_hand(id)))?;
    }
    let dir = Directory::parse_toml(&new, &label, default_radius_km)
        .map_err(|e| format!("{label}: the changed file would not load ({e}); left as it was"))?;
    for id in ids {
        let holds = dir.get(id).is_some_and(|p| match change {
            Amendment::AllowNetwork(n) => p.allow_networks.contains(n),
            Amendment::Travel { .. } => {
                old.get(id).map(|o| o.travel.len() + 1) == Some(p.travel.len())
            }
        });
        if !holds {
            return Err(format!(
                "{label}: the change did not land where expected; left as it was: {}",
                by_hand(id)
            ));
        }
    }
    let parent = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("employees.toml");
    let tmp = parent.join(format!(".{name}.locgate-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(new.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(parent) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{label}: cannot write: {e}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# the team\n[[employee]]\nid = \"ann\"   # Ann\ncountry = \"US\"\nallow_networks = [\"203.0.113.7/32\"]  # home\n\n[[employee]]\nid = \"bob\"\ncountry = \"GB\"\ntravel = [\n  { from = 2026-01-01, to = 2026-01-05, countries = [\"FR\"] },\n]\n";

    fn net(s: &str) -> Amendment {
        Amendment::AllowNetwork(s.parse().expect("net"))
    }

    #[test]
    fn adds_to_an_existing_array_keeping_comments() {
        let out = amend_toml(FILE, "ANN", &net("198.51.100.0/24")).expect("amend");
        assert!(out.contains("allow_networks = [\"203.0.113.7/32\", \"198.51.100.0/24\"]  # home"));
        assert!(out.contains("# the team") && out.contains("# Ann"));
    }

    #[test]
    fn adds_a_new_key_after_the_id_and_into_a_multiline_array() {
        let out = amend_toml(FILE, "bob", &net("192.0.2.1/32")).expect("amend");
        assert!(out.contains("id = \"bob\"\nallow_networks = [\"192.0.2.1/32\"]\ncountry"));
        let trip = Amendment::Travel {
            from: "2026-12-20".into(),
            to: "2027-01-03".into(),
            countries: vec!["MX".into()],
        };
        let out = amend_toml(FILE, "bob", &trip).expect("amend");
        assert!(out.contains(
            "countries = [\"FR\"] }, { from = 2026-12-20, to = 2027-01-03, countries = [\"MX\"] }\n]"
        ), "{out}");
        let dir = Directory::parse_toml(&out, "t", 50.0).expect("loads");
        assert_eq!(dir.get("bob").map(|b| b.travel.len()), Some(2));
    }

    #[test]
    fn refuses_what_it_cannot_write_safely() {
        assert!(amend_toml(FILE, "carol", &net("192.0.2.1/32")).is_err());
        let bad = Amendment::Travel {
            from: "2026-12-20\"\nmode = \"exempt".into(),
            to: "2027-01-03".into(),
            countries: vec!["MX".into()],
        };
        assert!(amend_toml(FILE, "bob", &bad).is_err(), "no TOML injection");
        let nowhere = Amendment::Travel {
            from: "2026-12-20".into(),
            to: "2027-01-03".into(),
            countries: vec![],
        };
        assert!(amend_toml(FILE, "bob", &nowhere).is_err());
    }

    #[test]
    fn a_file_gets_all_changes_or_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("team.toml");
        std::fs::write(&path, FILE).expect("write");
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let err = amend_file(&path, 50.0, &ids(&["ann", "carol"]), &net("192.0.2.0/24"))
            .expect_err("carol is not in the file");
        assert!(err.contains("by hand"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            FILE,
            "none written"
        );
        amend_file(&path, 50.0, &ids(&["ann", "bob"]), &net("192.0.2.0/24")).expect("both");
        let d = Directory::load(&path, 50.0, &super::super::CsvColumns::default()).expect("load");
        for who in ["ann", "bob"] {
            assert!(
                d.get(who)
                    .expect(who)
                    .network_allowed("192.0.2.9".parse().expect("ip"))
            );
        }
        let csv = dir.path().join("team.csv");
        std::fs::write(&csv, "id,country\nann,US\n").expect("write");
        let err = amend_file(&csv, 50.0, &ids(&["ann"]), &net("192.0.2.0/24")).expect_err("csv");
        assert!(err.contains("not a TOML directory"), "{err}");
    }
}
