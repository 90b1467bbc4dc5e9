//! A JSON value that borrows its strings from the input: a million-line export is read without
//! a `String` per field or a map node per key, which `serde_json::Value` would allocate.
//!
//! Reads exactly what `serde_json::Value` reads (numbers as [`Number`], the last of duplicated
//! keys wins), so every format reads a record as it did before; only the allocations differ.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

/// One JSON value of a record; strings without escapes point into the input.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Val<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number as `serde_json` reads it.
    Num(Number),
    /// A string (borrowed unless it had escapes, or came from a CSV cell).
    Str(Cow<'a, str>),
    /// An array.
    Arr(Vec<Val<'a>>),
    /// An object, its keys in input order (lookups take the last of duplicated keys).
    Obj(Vec<(Cow<'a, str>, Val<'a>)>),
}

impl<'a> Val<'a> {
    /// An empty object.
    pub(super) fn object() -> Self {
        Val::Obj(Vec::new())
    }

    /// The value of `key`, when this is an object that has it.
    pub(super) fn get(&self, key: &str) -> Option<&Val<'a>> {
        match self {
            Val::Obj(entries) => entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text, when this is a string.
    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The items, when this is an array.
    pub(super) fn as_array(&self) -> Option<&[Val<'a>]> {
        match self {
            Val::Arr(a) => Some(a),
            _ => None,
        }
    }

    /// Whether this is an object.
    pub(super) fn is_object(&self) -> bool {
        matches!(self, Val::Obj(_))
    }

    /// Removes `key` from an object and returns its value (the last of duplicated keys, as a
    /// map would hold it; the earlier ones go too).
    pub(super) fn remove(&mut self, key: &str) -> Option<Val<'a>> {
        let Val::Obj(entries) = self else {
            return None;
        };
        let mut found = None;
        entries.retain_mut(|(k, v)| {
            if k == key {
                found = Some(std::mem::replace(v, Val::Null));
                false
            } else {
                true
            }
        });
        found
    }

    /// Sets `key` (replacing any value it had) and returns the value now there.
    pub(super) fn insert(&mut self, key: &str, value: Val<'a>) -> Option<&mut Val<'a>> {
        let Val::Obj(entries) = self else {
            return None;
        };
        let i = match entries.iter().rposition(|(k, _)| k == key) {
            Some(i) => {
                entries[i].1 = value;
                i
            }
            None => {
                entries.push((Cow::Owned(key.to_owned()), value));
                entries.len() - 1
            }
        };
        entries.get_mut(i).map(|(_, v)| v)
    }

    /// The value of `key`, inserting `make()` first when it has none.
    pub(super) fn entry(
        &mut self,
        key: &str,
        make: impl FnOnce() -> Val<'a>,
    ) -> Option<&mut Val<'a>> {
        let Val::Obj(entries) = self else {
            return None;
        };
        let i = match entries.iter().rposition(|(k, _)| k == key) {
            Some(i) => i,
            None => {
                entries.push((Cow::Owned(key.to_owned()), make()));
                entries.len() - 1
            }
        };
        entries.get_mut(i).map(|(_, v)| v)
    }
}

/// Reads `text` both as a [`Val`] and as a `serde_json::Value` and says where they differ (the
/// fuzz target `replay_formats` checks it): the claim above, that only the allocations changed,
/// held against every input the fuzzer makes up.
pub fn differs_from_serde_json(text: &str) -> Option<String> {
    // Read twice with the same scratch space: what a first read leaves (even a failed one)
    // must not change the second.
    let mut scratch = Scratch::default();
    let first = scratch
        .read(text)
        .map(|v| v.to_json())
        .map_err(|e| e.to_string());
    let ours = scratch.read(text);
    if first != ours.as_ref().map(Val::to_json).map_err(ToString::to_string) {
        return Some("a second read with the same scratch space differs".into());
    }
    if let Ok(v) = &ours
        && serde_json::from_str::<Val<'_>>(text).ok().as_ref() != Some(v)
    {
        return Some("a read with fresh scratch space differs".into());
    }
    let theirs = serde_json::from_str::<serde_json::Value>(text);
    match (ours, theirs) {
        (Ok(v), Ok(want)) => {
            let got = v.to_json();
            (got != want).then(|| format!("read {got} where serde_json reads {want}"))
        }
        (Err(a), Err(b)) => (a.to_string() != b.to_string())
            .then(|| format!("error `{a}` where serde_json says `{b}`")),
        (Ok(v), Err(e)) => Some(format!(
            "read {} where serde_json refuses: {e}",
            v.to_json()
        )),
        (Err(e), Ok(want)) => Some(format!("refused ({e}) what serde_json reads as {want}")),
    }
}

impl Val<'_> {
    /// The same value as a `serde_json::Value` (the last of duplicated keys kept, as there).
    fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Num(n) => Value::Number(n.clone()),
            Val::Str(s) => Value::String(s.to_string()),
            Val::Arr(items) => Value::Array(items.iter().map(Val::to_json).collect()),
            Val::Obj(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

impl<'de> Deserialize<'de> for Val<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ValSeed(&mut Scratch::default()).deserialize(d)
    }
}

/// Space reused from record to record: an object's entries (an array's items) are gathered
/// here and then moved into one allocation of exactly their size, rather than into a vector
/// grown in steps for every object of every record.
#[derive(Default)]
pub(super) struct Scratch<'a> {
    entries: Vec<(Cow<'a, str>, Val<'a>)>,
    items: Vec<Val<'a>>,
}

impl<'a> Scratch<'a> {
    /// Reads `text` as one JSON value, as `serde_json::from_str` would (same errors, nothing
    /// but whitespace after it).
    pub(super) fn read(&mut self, text: &'a str) -> serde_json::Result<Val<'a>> {
        // What a failed read left behind.
        self.entries.clear();
        self.items.clear();
        let mut de = serde_json::Deserializer::from_str(text);
        let v = ValSeed(self).deserialize(&mut de)?;
        de.end()?;
        Ok(v)
    }
}

/// Reads one value, nested ones with the same scratch space.
struct ValSeed<'s, 'a>(&'s mut Scratch<'a>);

impl<'de> DeserializeSeed<'de> for ValSeed<'_, 'de> {
    type Value = Val<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Val<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValSeed<'_, 'de> {
    type Value = Val<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Val<'de>, E> {
        Ok(Val::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Val<'de>, E> {
        Ok(Val::Num(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Val<'de>, E> {
        Ok(Val::Num(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Val<'de>, E> {
        // As `serde_json::Value` does: a float it cannot hold is null.
        Ok(Number::from_f64(n).map_or(Val::Null, Val::Num))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(s)))
    }

    fn visit_none<E>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }

    fn visit_unit<E>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Val<'de>, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val<'de>, A::Error> {
        // Nested values push above this one's items and take theirs off before it goes on.
        let start = self.0.items.len();
        while let Some(v) = seq.next_element_seed(ValSeed(&mut *self.0))? {
            self.0.items.push(v);
        }
        Ok(Val::Arr(self.0.items.drain(start..).collect()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val<'de>, A::Error> {
        let start = self.0.entries.len();
        while let Some(Key(k)) = map.next_key()? {
            let v = map.next_value_seed(ValSeed(&mut *self.0))?;
            self.0.entries.push((k, v));
        }
        Ok(Val::Obj(self.0.entries.drain(start..).collect()))
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }

            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }

            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }

            fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_borrow_and_duplicated_keys_read_as_a_map_does() {
        let text = r#"{"a":"x","b":{"c":1.5,"d":[true,null]},"a":"y","e\n":"q\"r"}"#;
        let v: Val<'_> = serde_json::from_str(text).expect("json");
        assert!(matches!(v.get("a"), Some(Val::Str(Cow::Borrowed("y")))));
        assert_eq!(
            v.get("b").and_then(|b| b.get("c")),
            Some(&Val::Num(Number::from_f64(1.5).expect("finite")))
        );
        assert_eq!(v.get("e\n").and_then(Val::as_str), Some("q\"r"));
        let mut v = v;
        assert_eq!(
            v.remove("a")
                .and_then(|a| a.as_str().map(str::to_owned))
                .as_deref(),
            Some("y")
        );
        assert!(v.get("a").is_none());
        assert_eq!(differs_from_serde_json(text), None);
        assert_eq!(differs_from_serde_json("[1e400]"), None);
        assert_eq!(differs_from_serde_json("{\"a\":"), None);
        let bad = serde_json::from_str::<Val<'_>>("{\"a\":").expect_err("truncated");
        let want = serde_json::from_str::<serde_json::Value>("{\"a\":").expect_err("truncated");
        assert_eq!(bad.to_string(), want.to_string());
    }
}
