//! PATCH (RFC 7644 §3.5.2): the operations Okta and Entra send, read and applied to a stored
//! User's JSON.
//!
//! Supported: `add`, `replace` and `remove` (op names in any case: Entra writes `Replace`),
//! with a path or without one (a `value` object whose keys are paths, as Okta deactivates with
//! `{"op":"replace","value":{"active":false}}`). Paths: `attr`, `attr.sub`, `attr[f eq v]`,
//! `attr[f eq v].sub`, each optionally prefixed by the core or enterprise schema URN
//! (`urn:...:enterprise:2.0:User:employeeNumber`). A `replace` or `add` aimed at a filtered
//! multi-valued element that does not exist creates it with the filter's value
//! (`addresses[type eq "work"].locality` on a user with no work address gives one): Entra
//! relies on it. The result is checked again by [`super::resource::normalize_user`], which
//! also turns Entra's `"False"` into `false`.

use serde_json::{Map, Value};

use super::ScimError;
use super::resource::{ENTERPRISE_SCHEMA, PATCH_SCHEMA, USER_SCHEMA, boolean, get_ci, key_ci};

/// Most operations read from one request.
const MAX_OPS: usize = 1000;

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Adds a value (appends to a multi-valued attribute).
    Add,
    /// Replaces a value.
    Replace,
    /// Removes a value.
    Remove,
}

/// An attribute path.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    /// `Some(ENTERPRISE_SCHEMA)` when the attribute lives in the enterprise extension.
    pub extension: Option<&'static str>,
    /// The attribute (`emails`), or the extension URN itself for the whole extension object.
    pub attr: String,
    /// `[name eq value]` on a multi-valued attribute.
    pub filter: Option<(String, Value)>,
    /// `.sub` after the attribute or the filter.
    pub sub: Option<String>,
}

/// One operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// add, replace or remove.
    pub op: Op,
    /// Where; `None` means the `value` object's keys are the paths.
    pub path: Option<Path>,
    /// The value (absent for `remove`).
    pub value: Option<Value>,
}

/// Reads a PatchOp body.
pub fn parse(body: &Value) -> Result<Vec<Operation>, ScimError> {
    let Value::Object(o) = body else {
        return Err(ScimError::invalid_syntax("a PatchOp must be a JSON object"));
    };
    match get_ci(o, "schemas") {
        Some(Value::Array(s)) if s.iter().any(|x| x.as_str() == Some(PATCH_SCHEMA)) => {}
        _ => {
            return Err(ScimError::invalid_syntax(format!(
                "schemas must list {PATCH_SCHEMA}"
            )));
        }
    }
    let Some(Value::Array(ops)) = get_ci(o, "Operations") else {
        return Err(ScimError::invalid_syntax("Operations must be a list"));
    };
    if ops.is_empty() || ops.len() > MAX_OPS {
        return Err(ScimError::invalid_syntax(format!(
            "Operations must hold 1 to {MAX_OPS} operations"
        )));
    }
    ops.iter().map(operation).collect()
}

fn operation(v: &Value) -> Result<Operation, ScimError> {
    let Value::Object(o) = v else {
        return Err(ScimError::invalid_syntax(
            "each operation must be an object",
        ));
    };
    let op = match get_ci(o, "op").and_then(Value::as_str).map(str::trim) {
        Some(s) if s.eq_ignore_ascii_case("add") => Op::Add,
        Some(s) if s.eq_ignore_ascii_case("replace") => Op::Replace,
        Some(s) if s.eq_ignore_ascii_case("remove") => Op::Remove,
        other => {
            return Err(ScimError::invalid_syntax(format!(
                "op {other:?} is not add, replace or remove"
            )));
        }
    };
    let path = match get_ci(o, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(parse_path(p)?),
        Some(_) => return Err(ScimError::invalid_path("path must be a string")),
    };
    let value = get_ci(o, "value").cloned();
    match (op, &path, &value) {
        (Op::Remove, None, _) => Err(ScimError::no_target("remove needs a path")),
        (Op::Add | Op::Replace, _, None) => {
            Err(ScimError::invalid_value("add and replace need a value"))
        }
        (Op::Add | Op::Replace, None, Some(v)) if !v.is_object() => Err(ScimError::invalid_value(
            "without a path, the value must be an object of attributes",
        )),
        _ => Ok(Operation { op, path, value }),
    }
}

/// Strips `prefix` (ASCII case ignored) from the start of `s`.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    s.get(..prefix.len())
        .filter(|p| p.eq_ignore_ascii_case(prefix))
        .and_then(|_| s.get(prefix.len()..))
}

/// Reads a path (see the module documentation for the forms).
pub fn parse_path(text: &str) -> Result<Path, ScimError> {
    let t = text.trim();
    let bad = |why: &str| ScimError::invalid_path(format!("path `{t}`: {why}"));
    let (extension, rest) = if let Some(r) = strip_prefix_ci(t, ENTERPRISE_SCHEMA) {
        match r.strip_prefix(':') {
            Some(attr) => (Some(ENTERPRISE_SCHEMA), attr),
            None if r.is_empty() => {
                return Ok(Path {
                    extension: None,
                    attr: ENTERPRISE_SCHEMA.into(),
                    filter: None,
                    sub: None,
                });
            }
            None => return Err(bad("unknown schema")),
        }
    } else if let Some(r) = strip_prefix_ci(t, &format!("{USER_SCHEMA}:")) {
        (None, r)
    } else if strip_prefix_ci(t, "urn:").is_some() {
        return Err(bad("unknown schema"));
    } else {
        (None, t)
    };
    let is_name = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
    };
    let (attr, filter, after) = match rest.split_once('[') {
        Some((attr, tail)) => {
            let (inner, after) = tail.split_once(']').ok_or_else(|| bad("`[` not closed"))?;
            (attr, Some(value_filter(inner).map_err(|w| bad(&w))?), after)
        }
        None => match rest.split_once('.') {
            Some((attr, _)) => (attr, None, rest.get(attr.len()..).unwrap_or("")),
            None => (rest, None, ""),
        },
    };
    let sub = match after {
        "" => None,
        s => match s.strip_prefix('.') {
            Some(sub) if is_name(sub) => Some(sub.to_string()),
            _ => return Err(bad("a sub-attribute must follow `.`")),
        },
    };
    if !is_name(attr) {
        return Err(bad("not an attribute name"));
    }
    Ok(Path {
        extension,
        attr: attr.to_string(),
        filter,
        sub,
    })
}

/// `name eq value` inside brackets, the value a JSON string, boolean or number.
fn value_filter(inner: &str) -> Result<(String, Value), String> {
    let t = inner.trim();
    let unsupported = || format!("unsupported value filter `{t}`: only `name eq value`");
    let (name, rest) = t.split_once(char::is_whitespace).ok_or_else(unsupported)?;
    let (op, value) = rest
        .trim_start()
        .split_once(char::is_whitespace)
        .ok_or_else(unsupported)?;
    if !op.eq_ignore_ascii_case("eq") {
        return Err(unsupported());
    }
    match serde_json::from_str::<Value>(value.trim()) {
        Ok(v @ (Value::String(_) | Value::Bool(_) | Value::Number(_))) => Ok((name.to_string(), v)),
        _ => Err(unsupported()),
    }
}

/// Applies the operations in order to `user` (all or nothing: the caller keeps the stored copy
/// until the result is checked and committed).
pub fn apply(user: &mut Map<String, Value>, ops: &[Operation]) -> Result<(), ScimError> {
    for o in ops {
        match (&o.path, &o.value) {
            (Some(p), v) => apply_at(user, o.op, p, v.clone())?,
            (None, Some(Value::Object(attrs))) => {
                for (k, v) in attrs {
                    let p = parse_path(k)?;
                    apply_at(user, o.op, &p, Some(v.clone()))?;
                }
            }
            (None, _) => return Err(ScimError::no_target("operation without path or value")),
        }
    }
    Ok(())
}

/// The entry for `name` in `map` (case-insensitive), created as `empty` when missing.
fn entry_ci<'a>(map: &'a mut Map<String, Value>, name: &str, empty: Value) -> &'a mut Value {
    let key = key_ci(map, name)
        .cloned()
        .unwrap_or_else(|| name.to_string());
    map.entry(key).or_insert(empty)
}

fn remove_ci(map: &mut Map<String, Value>, name: &str) {
    if let Some(k) = key_ci(map, name).cloned() {
        map.remove(&k);
    }
}

/// Sets `name` in `map` to `value` (add on a list appends, add of an object merges).
fn set(map: &mut Map<String, Value>, op: Op, name: &str, value: Value) {
    let slot = entry_ci(map, name, Value::Null);
    match (op, slot, value) {
        (Op::Add, Value::Array(items), Value::Array(more)) => items.extend(more),
        (Op::Add, Value::Array(items), one) => items.push(one),
        (_, Value::Object(fields), Value::Object(more)) => {
            for (k, v) in more {
                set(fields, op, &k, v);
            }
        }
        (_, slot, value) => *slot = value,
    }
}

/// Whether a multi-valued element matches `[name eq value]` (strings ignore case).
fn matches(item: &Value, (name, want): &(String, Value)) -> bool {
    let Some(got) = item.as_object().and_then(|o| get_ci(o, name)) else {
        return false;
    };
    match (got, want) {
        (Value::String(a), Value::String(b)) => a.eq_ignore_ascii_case(b),
        (a, Value::Bool(b)) => boolean(a) == Some(*b),
        (a, b) => a == b,
    }
}

fn apply_at(
    user: &mut Map<String, Value>,
    op: Op,
    path: &Path,
    value: Option<Value>,
) -> Result<(), ScimError> {
    let container: &mut Map<String, Value> = match path.extension {
        Some(ext) => {
            if op == Op::Remove && key_ci(user, ext).is_none() {
                return Ok(());
            }
            let slot = entry_ci(user, ext, Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            match slot.as_object_mut() {
                Some(m) => m,
                None => return Err(ScimError::internal("extension is not an object")),
            }
        }
        None => user,
    };
    let value = || value.clone().unwrap_or(Value::Null);
    match (&path.filter, &path.sub) {
        (None, None) => match op {
            Op::Remove => remove_ci(container, &path.attr),
            _ => set(container, op, &path.attr, value()),
        },
        (None, Some(sub)) => {
            if op == Op::Remove {
                if let Some(Value::Object(o)) = key_ci(container, &path.attr)
                    .cloned()
                    .and_then(|k| container.get_mut(&k))
                {
                    remove_ci(o, sub);
                }
                return Ok(());
            }
            let slot = entry_ci(container, &path.attr, Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(o) = slot {
                set(o, op, sub, value());
            }
        }
        (Some(filter), sub) => {
            let slot = entry_ci(container, &path.attr, Value::Array(Vec::new()));
            let Value::Array(items) = slot else {
                return Err(ScimError::invalid_path(format!(
                    "`{}` is not multi-valued",
                    path.attr
                )));
            };
            let mut hit = false;
            match (op, sub) {
                (Op::Remove, None) => items.retain(|i| !matches(i, filter)),
                (Op::Remove, Some(sub)) => {
                    for o in items.iter_mut().filter(|i| matches(i, filter)) {
                        if let Value::Object(o) = o {
                            remove_ci(o, sub);
                        }
                    }
                }
                (_, sub) => {
                    for o in items.iter_mut().filter(|i| matches(i, filter)) {
                        hit = true;
                        if let Value::Object(o) = o {
                            match (sub, value()) {
                                (Some(sub), v) => set(o, op, sub, v),
                                (None, Value::Object(fields)) => {
                                    for (k, v) in fields {
                                        set(o, op, &k, v);
                                    }
                                }
                                (None, _) => {
                                    return Err(ScimError::invalid_value(
                                        "a filtered element's value must be an object",
                                    ));
                                }
                            }
                        }
                    }
                    if !hit {
                        let mut fresh = Map::new();
                        fresh.insert(filter.0.clone(), filter.1.clone());
                        match (sub, value()) {
                            (Some(sub), v) => {
                                fresh.insert(sub.clone(), v);
                            }
                            (None, Value::Object(fields)) => fresh.extend(fields),
                            (None, _) => {
                                return Err(ScimError::invalid_value(
                                    "a filtered element's value must be an object",
                                ));
                            }
                        }
                        items.push(Value::Object(fresh));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patched(user: Value, body: Value) -> Value {
        let mut u = user.as_object().cloned().expect("object");
        apply(&mut u, &parse(&body).expect("parses")).expect("applies");
        Value::Object(u)
    }

    fn ops(list: Value) -> Value {
        json!({"schemas": [PATCH_SCHEMA], "Operations": list})
    }

    #[test]
    fn okta_deactivates_without_a_path() {
        let u = patched(
            json!({"userName": "a", "active": true}),
            ops(json!([{"op": "replace", "value": {"active": false}}])),
        );
        assert_eq!(u["active"], false);
    }

    #[test]
    fn entra_replaces_with_capital_op_and_string_booleans() {
        let u = patched(
            json!({"userName": "a", "active": true}),
            ops(json!([{"op": "Replace", "path": "active", "value": "False"}])),
        );
        // The string stays until normalize_user reads it as a boolean.
        assert_eq!(u["active"], "False");
        let n = super::super::resource::normalize_user(u).expect("valid");
        assert_eq!(n["active"], false);
    }

    #[test]
    fn filtered_paths_change_or_create_the_element() {
        let user = json!({"userName": "a", "addresses": [
            {"type": "work", "locality": "Austin", "country": "US"},
            {"type": "home", "locality": "Round Rock"}]});
        let u = patched(
            user.clone(),
            ops(
                json!([{"op": "Replace", "path": "addresses[type eq \"work\"].locality", "value": "Dallas"}]),
            ),
        );
        assert_eq!(u["addresses"][0]["locality"], "Dallas");
        assert_eq!(u["addresses"][1]["locality"], "Round Rock");
        let u = patched(
            json!({"userName": "a"}),
            ops(
                json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "a@x.com"}]),
            ),
        );
        assert_eq!(u["emails"], json!([{"type": "work", "value": "a@x.com"}]));
        let u = patched(
            user,
            ops(json!([{"op": "remove", "path": "addresses[type eq \"home\"]"}])),
        );
        assert_eq!(u["addresses"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn sub_attributes_extensions_and_appends() {
        let u = patched(
            json!({"userName": "a", "name": {"familyName": "B"}, "emails": [{"value": "x@y"}]}),
            ops(json!([
                {"op": "replace", "path": "name.givenName", "value": "Ann"},
                {"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "701"},
                {"op": "add", "path": "emails", "value": [{"value": "z@y"}]},
                {"op": "add", "value": {"displayName": "Ann B", "name.middleName": "C"}},
                {"op": "remove", "path": "name.familyName"}
            ])),
        );
        assert_eq!(u["name"], json!({"givenName": "Ann", "middleName": "C"}));
        assert_eq!(u[ENTERPRISE_SCHEMA]["employeeNumber"], "701");
        assert_eq!(u["emails"].as_array().map(Vec::len), Some(2));
        assert_eq!(u["displayName"], "Ann B");
    }

    #[test]
    fn unreadable_operations_are_refused() {
        for (body, kind) in [
            (json!({"Operations": []}), "invalidSyntax"),
            (ops(json!([])), "invalidSyntax"),
            (
                ops(json!([{"op": "move", "path": "a", "value": 1}])),
                "invalidSyntax",
            ),
            (ops(json!([{"op": "remove"}])), "noTarget"),
            (ops(json!([{"op": "add", "path": "a"}])), "invalidValue"),
            (ops(json!([{"op": "add", "value": 3}])), "invalidValue"),
            (
                ops(json!([{"op": "add", "path": "emails[type ne \"x\"]", "value": 1}])),
                "invalidPath",
            ),
            (
                ops(json!([{"op": "add", "path": "urn:x:y", "value": 1}])),
                "invalidPath",
            ),
            (
                ops(json!([{"op": "add", "path": "a..b", "value": 1}])),
                "invalidPath",
            ),
        ] {
            let e = parse(&body).unwrap_err();
            assert_eq!(e.scim_type, Some(kind), "{body}");
        }
    }
}
