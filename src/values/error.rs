//! Configuration errors that point at the offending place.
//!
//! An operator who mistypes a config must be told the file, the line and the field, like
//! `nginx -t` does, so every error the loader raises carries those three, and `Display` prints
//! them as `file:line: field: what is wrong`.

use std::fmt;
use std::ops::Range;

/// A configuration problem with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the problem is in (or a label such as `<embedded default>`).
    pub file: String,
    /// 1-based line number; 0 when the problem is not tied to a line (e.g. file unreadable).
    pub line: usize,
    /// Dotted path of the field, e.g. `listener[0].mode`; empty when unknown.
    pub field: String,
    /// What is wrong, in words an operator understands.
    pub message: String,
}

impl ConfigError {
    /// An error about the file as a whole (unreadable, empty).
    pub fn whole_file(file: &str, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_string(),
            line: 0,
            field: String::new(),
            message: message.into(),
        }
    }

    /// An error at a byte span of the source text; the line and field are derived from it.
    pub fn at_span(
        file: &str,
        source: &str,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Self {
        let (line, field) = match span {
            Some(span) => locate(source, span.start),
            None => (0, String::new()),
        };
        ConfigError {
            file: file.to_string(),
            line,
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.field.is_empty()) {
            (0, true) => write!(f, "{}: {}", self.file, self.message),
            (0, false) => write!(f, "{}: {}: {}", self.file, self.field, self.message),
            (line, true) => write!(f, "{}:{}: {}", self.file, line, self.message),
            (line, false) => write!(
                f,
                "{}:{}: {}: {}",
                self.file, line, self.field, self.message
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Finds the 1-based line of `offset` and the dotted field path that the line belongs to.
///
/// TOML errors carry byte spans but no key path, so we recover it from the text: the key is what
/// stands before `=` on the line (or on the nearest line above for multi-line values), and the
/// table is the nearest `[table]` / `[[array]]` header above, with array headers numbered so
/// `listener[1].mode` names the second listener.
pub fn locate(source: &str, offset: usize) -> (usize, String) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line_no = before.matches('\n').count() + 1;
    let lines: Vec<&str> = source.lines().collect();
    let mut key = None;
    let mut table = String::new();
    let last = line_no.saturating_sub(1).min(lines.len().saturating_sub(1));
    for idx in (0..=last).rev() {
        let Some(line) = lines.get(idx) else { break };
        let trimmed = line.trim();
        if let Some(header) = table_header(trimmed) {
            table = header.to_string();
            if trimmed.starts_with("[[") {
                let count = lines[..idx]
                    .iter()
                    .filter(|l| {
                        table_header(l.trim()) == Some(header) && l.trim().starts_with("[[")
                    })
                    .count();
                table = format!("{header}[{count}]");
            }
            break;
        }
        if key.is_none()
            && let Some((k, _)) = trimmed.split_once('=')
            && !k.trim().is_empty()
            && !k.contains('"')
            && !k.contains('{')
        {
            key = Some(k.trim().to_string());
        }
    }
    let field = match (table.is_empty(), key) {
        (true, Some(k)) => k,
        (false, Some(k)) => format!("{table}.{k}"),
        (_, None) => table,
    };
    (line_no, field)
}

fn table_header(trimmed: &str) -> Option<&str> {
    let inner = trimmed.strip_prefix('[')?;
    let inner = inner.strip_prefix('[').unwrap_or(inner);
    let end = inner.find(']')?;
    Some(inner[..end].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_key_in_array_table() {
        let src = "[[listener]]\nname = \"a\"\n[[listener]]\nname = \"b\"\nmode = \"x\"\n";
        let off = src.find("\"x\"").unwrap();
        assert_eq!(locate(src, off), (5, "listener[1].mode".to_string()));
    }

    #[test]
    fn locates_key_in_plain_table() {
        let src = "[policy]\nunknown_location = \"maybe\"\n";
        let off = src.find("maybe").unwrap();
        assert_eq!(locate(src, off), (2, "policy.unknown_location".to_string()));
    }

    #[test]
    fn multi_line_array_names_its_key() {
        let src = "[policy]\nallow_networks = [\n  \"10.0.0.0/8\",\n  \"bad\",\n]\n";
        let off = src.find("\"bad\"").unwrap();
        assert_eq!(locate(src, off), (4, "policy.allow_networks".to_string()));
    }

    #[test]
    fn display_is_file_line_field_message() {
        let e = ConfigError {
            file: "a.toml".into(),
            line: 3,
            field: "policy.mode".into(),
            message: "bad".into(),
        };
        assert_eq!(e.to_string(), "a.toml:3: policy.mode: bad");
    }
}
