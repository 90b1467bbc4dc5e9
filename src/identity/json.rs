//! Picking a few top-level members out of a hostile JSON object.
//!
//! JWT claims and JSON login bodies are attacker-written. Deserializing them into a full
//! `serde_json::Value` tree would allocate for every member; this reads only the members asked
//! for and skips the rest. A member that appears twice is refused: RFC 7519 §4 leaves duplicate
//! claim names to the parser, and if locgate read the first `email` while the upstream read the
//! last, the two would disagree about who logged in.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

/// Why an object could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PickError {
    /// Not JSON, or truncated.
    Malformed,
    /// Valid JSON but not an object.
    NotObject,
    /// A wanted member appears more than once.
    Duplicate,
}

/// Reads the members `names` from the JSON object in `json`; slot `i` holds member `names[i]`.
/// The same name may be asked for in two slots (both are filled).
pub(super) fn pick<const N: usize>(
    json: &[u8],
    names: [&str; N],
) -> Result<[Option<Value>; N], PickError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let picked = Picker { names }.deserialize(&mut de);
    let picked = match picked {
        Ok(p) => p,
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            return Err(PickError::NotObject);
        }
        Err(_) => return Err(PickError::Malformed),
    };
    de.end().map_err(|_| PickError::Malformed)?;
    picked
}

struct Picker<'n, const N: usize> {
    names: [&'n str; N],
}

impl<'de, const N: usize> DeserializeSeed<'de> for Picker<'_, N> {
    type Value = Result<[Option<Value>; N], PickError>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for Picker<'_, N> {
    type Value = Result<[Option<Value>; N], PickError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out: [Option<Value>; N] = std::array::from_fn(|_| None);
        let mut duplicate = false;
        while let Some(hits) = map.next_key_seed(KeyMatch { names: &self.names })? {
            if hits == 0 {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value: Value = map.next_value()?;
            for (i, slot) in out.iter_mut().enumerate() {
                if hits & (1 << i) != 0 {
                    duplicate |= slot.is_some();
                    *slot = Some(value.clone());
                }
            }
        }
        Ok(if duplicate {
            Err(PickError::Duplicate)
        } else {
            Ok(out)
        })
    }
}

/// Deserializes an object key into a bit set of the wanted names it equals, comparing in place
/// (escaped keys arrive unescaped in a scratch buffer, so `"em\u0061il"` still matches `email`).
struct KeyMatch<'a, 'n> {
    names: &'a [&'n str],
}

impl<'de> DeserializeSeed<'de> for KeyMatch<'_, '_> {
    type Value = u32;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u32, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyMatch<'_, '_> {
    type Value = u32;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<u32, E> {
        let mut hits = 0u32;
        for (i, name) in self.names.iter().enumerate().take(32) {
            if *name == key {
                hits |= 1 << i;
            }
        }
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_members() {
        let [a, b, c] = pick(
            br#"{"a":"x","skip":{"deep":[1,2,{}]},"b":3}"#,
            ["a", "b", "c"],
        )
        .expect("object");
        assert_eq!(a, Some(Value::from("x")));
        assert_eq!(b, Some(Value::from(3)));
        assert_eq!(c, None);
    }

    #[test]
    fn same_name_twice_fills_both() {
        let [a, b] = pick(br#"{"iss":"i"}"#, ["iss", "iss"]).expect("object");
        assert_eq!(a, b);
    }

    #[test]
    fn escaped_key_matches() {
        let [a] = pick(br#"{"em\u0061il":"e"}"#, ["email"]).expect("object");
        assert_eq!(a, Some(Value::from("e")));
    }

    #[test]
    fn refuses_duplicates_and_junk() {
        assert_eq!(pick(br#"{"a":1,"a":2}"#, ["a"]), Err(PickError::Duplicate));
        assert_eq!(pick(br#"{"a":1,"b":1,"b":2}"#, ["a"]).map(|_| ()), Ok(()));
        assert_eq!(pick(br#"["a"]"#, ["a"]), Err(PickError::NotObject));
        assert_eq!(pick(br#""a""#, ["a"]), Err(PickError::NotObject));
        assert_eq!(pick(br#"{"a":1"#, ["a"]), Err(PickError::Malformed));
        assert_eq!(pick(br#"{"a":1} x"#, ["a"]), Err(PickError::Malformed));
        assert_eq!(pick(b"", ["a"]), Err(PickError::Malformed));
        assert_eq!(pick(b"\xff", ["a"]), Err(PickError::Malformed));
        // Deep nesting: skipped members are skipped iteratively, wanted ones hit serde_json's
        // recursion limit; neither overflows the stack.
        let deep = |key: &str| {
            format!(
                "{{\"{key}\":{}{}}}",
                "[".repeat(100_000),
                "]".repeat(100_000)
            )
        };
        assert_eq!(pick(deep("x").as_bytes(), ["a"]), Ok([None]));
        assert_eq!(pick(deep("a").as_bytes(), ["a"]), Err(PickError::Malformed));
    }
}
