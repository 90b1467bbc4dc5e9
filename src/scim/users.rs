//! The SCIM users of a running gateway: the store, the users in memory with what each maps to,
//! and the [`Snapshot`] the directory is rebuilt from.
//!
//! Every operation runs under one lock, writes the store first and changes memory only after
//! the commit, so what the directory serves is always what the store holds. Blocking (SQLite):
//! the routes call it on the blocking pool.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use serde_json::{Map, Value, json};

use super::filter::Filter;
use super::mapping::{Mapped, map_user};
use super::resource::normalize_user;
use super::store::{Row, Store, StoreError};
use super::{ScimError, patch};
use crate::employees::Employee;

/// What the directory takes from SCIM at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Active, placeable users, in creation order.
    pub employees: Vec<Employee>,
    /// What could not be used, one sentence each.
    pub notes: Vec<String>,
    /// Users the IdP says are active.
    pub active: usize,
    /// Users deactivated (kept, out of the directory).
    pub inactive: usize,
    /// Active users with no usable country (out of the directory, named in `notes`).
    pub unplaceable: usize,
}

struct Inner {
    store: Store,
    /// id -> stored row and its mapping.
    users: BTreeMap<String, (Row, Mapped)>,
}

/// The SCIM users (see the module documentation).
pub struct ScimUsers {
    inner: Mutex<Inner>,
    snapshot: ArcSwap<Snapshot>,
    radius_km: f64,
}

/// The weak ETag of a version.
pub fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// The resource as answered: the stored attributes with `id` and `meta`; `base` is the URL the
/// routes are served under (`https://host/scim/v2`).
pub fn render(row: &Row, base: &str) -> Value {
    let mut v = row.resource.clone();
    v.insert("id".into(), Value::String(row.id.clone()));
    v.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": row.created,
            "lastModified": row.modified,
            "location": format!("{base}/Users/{}", row.id),
            "version": etag(row.version),
        }),
    );
    Value::Object(v)
}

/// A random (version 4) UUID, from the TLS library's system randomness.
fn new_id() -> Result<String, ScimError> {
    let mut b = [0u8; 16];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut b)
        .map_err(|_| ScimError::internal("no randomness for an id"))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

fn store_error(e: StoreError) -> ScimError {
    match e {
        StoreError::Taken(name) => {
            ScimError::uniqueness(format!("userName `{name}` is already taken"))
        }
        other => {
            tracing::error!(error = %other, "SCIM store write failed");
            ScimError::internal("the SCIM store failed; nothing was changed")
        }
    }
}

/// `If-Match`: `*` or the current ETag (weak or strong spelling) lets the write go ahead.
fn check_if_match(if_match: Option<&str>, version: u64) -> Result<(), ScimError> {
    let Some(want) = if_match else { return Ok(()) };
    let current = etag(version);
    let ok = want
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == current || t == format!("\"{version}\""));
    if ok {
        Ok(())
    } else {
        Err(ScimError::precondition_failed(format!(
            "If-Match {want} does not match the current version {current}"
        )))
    }
}

impl ScimUsers {
    /// Opens the store at `path` and loads every user; `radius_km` is the home radius of users
    /// placed at a city.
    pub fn open(path: &Path, radius_km: f64) -> Result<ScimUsers, StoreError> {
        let store = Store::open(path)?;
        let mut users = BTreeMap::new();
        for row in store.load_all()? {
            let mapped = map_user(&row.resource, radius_km);
            users.insert(row.id.clone(), (row, mapped));
        }
        let me = ScimUsers {
            inner: Mutex::new(Inner { store, users }),
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            radius_km,
        };
        me.publish(&me.lock());
        Ok(me)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the directory takes from SCIM now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    fn publish(&self, inner: &Inner) {
        let mut rows: Vec<&(Row, Mapped)> = inner.users.values().collect();
        rows.sort_by(|a, b| (&a.0.created, &a.0.id).cmp(&(&b.0.created, &b.0.id)));
        let mut s = Snapshot::default();
        for (_, m) in rows {
            if m.active {
                s.active += 1;
            } else {
                s.inactive += 1;
            }
            if m.unplaceable {
                s.unplaceable += 1;
            }
            s.notes.extend(m.notes.iter().cloned());
            s.employees.extend(m.employee.clone());
        }
        self.snapshot.store(Arc::new(s));
    }

    /// One user.
    pub fn get(&self, id: &str) -> Result<Row, ScimError> {
        self.lock()
            .users
            .get(id)
            .map(|(r, _)| r.clone())
            .ok_or_else(|| ScimError::not_found(format!("no User {id}")))
    }

    /// The users matching `filter` (all without one), in creation order.
    pub fn list(&self, filter: Option<&Filter>) -> Vec<Row> {
        let inner = self.lock();
        let mut rows: Vec<Row> = inner
            .users
            .values()
            .map(|(r, _)| r)
            .filter(|r| filter.is_none_or(|f| f.matches(r.user_name(), r.external_id())))
            .cloned()
            .collect();
        rows.sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
        rows
    }

    /// Commits `row` and takes it into memory and the snapshot.
    fn commit(&self, inner: &mut Inner, row: Row) -> Result<Row, ScimError> {
        let taken = inner.users.values().any(|(r, _)| {
            r.id != row.id && r.user_name().to_lowercase() == row.user_name().to_lowercase()
        });
        if taken {
            return Err(ScimError::uniqueness(format!(
                "userName `{}` is already taken",
                row.user_name()
            )));
        }
        inner.store.put(&row).map_err(store_error)?;
        let mapped = map_user(&row.resource, self.radius_km);
        inner.users.insert(row.id.clone(), (row.clone(), mapped));
        self.publish(inner);
        Ok(row)
    }

    /// POST: a new user (409 `uniqueness` when the `userName` is taken).
    pub fn create(&self, body: Value) -> Result<Row, ScimError> {
        let resource = normalize_user(body)?;
        let t = now();
        let row = Row {
            id: new_id()?,
            resource,
            version: 1,
            created: t.clone(),
            modified: t,
        };
        let mut inner = self.lock();
        self.commit(&mut inner, row)
    }

    /// PUT: the user's attributes replaced by `body`.
    pub fn replace(&self, id: &str, body: Value, if_match: Option<&str>) -> Result<Row, ScimError> {
        let resource = normalize_user(body)?;
        let mut inner = self.lock();
        let old = inner
            .users
            .get(id)
            .map(|(r, _)| r.clone())
            .ok_or_else(|| ScimError::not_found(format!("no User {id}")))?;
        check_if_match(if_match, old.version)?;
        let row = Row {
            resource,
            version: old.version + 1,
            modified: now(),
            ..old
        };
        self.commit(&mut inner, row)
    }

    /// PATCH: the operations of `body` applied, the result checked as a whole.
    pub fn patch(&self, id: &str, body: &Value, if_match: Option<&str>) -> Result<Row, ScimError> {
        let ops = patch::parse(body)?;
        let mut inner = self.lock();
        let old = inner
            .users
            .get(id)
            .map(|(r, _)| r.clone())
            .ok_or_else(|| ScimError::not_found(format!("no User {id}")))?;
        check_if_match(if_match, old.version)?;
        let mut resource: Map<String, Value> = old.resource.clone();
        patch::apply(&mut resource, &ops)?;
        let resource = normalize_user(Value::Object(resource))?;
        if resource == old.resource {
            // Nothing changed: no new version (RFC 7644 §3.5.2 allows 200 with the resource).
            return Ok(old);
        }
        let row = Row {
            resource,
            version: old.version + 1,
            modified: now(),
            ..old
        };
        self.commit(&mut inner, row)
    }

    /// DELETE: the user is gone from the store and the directory.
    pub fn delete(&self, id: &str, if_match: Option<&str>) -> Result<(), ScimError> {
        let mut inner = self.lock();
        let version = inner
            .users
            .get(id)
            .map(|(r, _)| r.version)
            .ok_or_else(|| ScimError::not_found(format!("no User {id}")))?;
        check_if_match(if_match, version)?;
        inner.store.delete(id).map_err(store_error)?;
        inner.users.remove(id);
        self.publish(&inner);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::resource::PATCH_SCHEMA;

    fn open() -> (tempfile::TempDir, ScimUsers) {
        let dir = tempfile::tempdir().expect("tempdir");
        let users = ScimUsers::open(&dir.path().join("scim.sqlite"), 100.0).expect("open");
        (dir, users)
    }

    fn austin(name: &str) -> Value {
        json!({"schemas": [crate::scim::resource::USER_SCHEMA], "userName": name,
               "addresses": [{"type": "home", "locality": "Austin", "region": "TX", "country": "US"}]})
    }

    #[test]
    fn create_patch_replace_delete_and_the_snapshot_follows() {
        let (_dir, users) = open();
        let row = users.create(austin("ann")).expect("create");
        assert_eq!(row.id.len(), 36);
        assert_eq!(users.snapshot().employees.len(), 1);
        let e = users.create(austin("ANN")).unwrap_err();
        assert_eq!((e.status, e.scim_type), (409, Some("uniqueness")));
        let off = json!({"schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "value": {"active": false}}]});
        let e = users.patch(&row.id, &off, Some("W/\"7\"")).unwrap_err();
        assert_eq!(e.status, 412);
        let patched = users.patch(&row.id, &off, Some(&etag(1))).expect("patch");
        assert_eq!(patched.version, 2);
        let s = users.snapshot();
        assert_eq!((s.employees.len(), s.active, s.inactive), (0, 0, 1));
        // The same patch again changes nothing and keeps the version.
        assert_eq!(users.patch(&row.id, &off, None).expect("patch").version, 2);
        users
            .replace(&row.id, austin("ann"), None)
            .expect("replace");
        assert_eq!(users.snapshot().employees.len(), 1);
        users.delete(&row.id, None).expect("delete");
        assert_eq!(users.get(&row.id).unwrap_err().status, 404);
        assert_eq!(users.snapshot().employees.len(), 0);
    }

    #[test]
    fn users_and_filters_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("scim.sqlite");
        let users = ScimUsers::open(&path, 100.0).expect("open");
        let mut body = austin("Bob@Example.com");
        body["externalId"] = json!("00u1");
        let row = users.create(body).expect("create");
        drop(users);
        let users = ScimUsers::open(&path, 100.0).expect("reopen");
        assert_eq!(users.get(&row.id).expect("kept"), row);
        let by_name = Filter::UserName("bob@example.com".into());
        assert_eq!(users.list(Some(&by_name)).len(), 1);
        assert_eq!(
            users.list(Some(&Filter::ExternalId("00U1".into()))).len(),
            0
        );
        let rendered = render(&row, "https://gw/scim/v2");
        assert_eq!(
            rendered["meta"]["location"],
            format!("https://gw/scim/v2/Users/{}", row.id)
        );
        assert_eq!(rendered["meta"]["version"], "W/\"1\"");
    }
}
