//! A SCIM User -> a directory [`Employee`].
//!
//! * id: `userName` (the directory's names fold case, so `Alice@Corp.com` is `alice@corp.com`);
//! * aliases: every `emails[].value`. `externalId` is not an alias: it is the IdP's own key
//!   (Okta's `00u...`, Entra's object id), which no identity source presents as a user name,
//!   and making it one would let two IdPs' keys collide with real names;
//! * home: from `addresses`, type `home` first, then the `primary` one, then type `work`, then
//!   the first: `country` (ISO code or English name), `region`, `locality` placed by
//!   [`super::geocode`]; `postalCode` is kept in the resource but not used (no postal table is
//!   embedded);
//! * `timezone` -> `time_zone` (IANA); one that is not IANA is left out with a note, not refused,
//!   because refusing it would stop the IdP from provisioning the person at all;
//! * `active: false` -> not in the directory (the resource stays stored, so re-activation
//!   works).
//!
//! A user with no usable country cannot be judged: no employee, and a note says so (start log,
//! `validate`, `/readyz`, and the `unplaceable` count in `/metrics`).

use serde_json::{Map, Value};

use super::geocode;
use super::resource::{get_ci, str_ci};
use crate::country::CountrySet;
use crate::employees::{Employee, Home, check};

/// What a stored user becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// Whether the IdP says the user is active.
    pub active: bool,
    /// The directory record; `None` when inactive or unplaceable.
    pub employee: Option<Employee>,
    /// Whether an active user could not be placed (no usable country).
    pub unplaceable: bool,
    /// What was left out, one sentence each, naming the user.
    pub notes: Vec<String>,
}

/// The address that declares the home: type `home`, else the primary one, else type `work`,
/// else the first.
fn home_address(user: &Map<String, Value>) -> Option<&Map<String, Value>> {
    let list: Vec<&Map<String, Value>> = get_ci(user, "addresses")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    let typed = |t: &str| {
        list.iter()
            .find(|a| str_ci(a, "type").is_some_and(|x| x.eq_ignore_ascii_case(t)))
            .copied()
    };
    typed("home")
        .or_else(|| {
            list.iter()
                .find(|a| get_ci(a, "primary") == Some(&Value::Bool(true)))
                .copied()
        })
        .or_else(|| typed("work"))
        .or_else(|| list.first().copied())
}

/// Maps a normalised user (see [`super::resource::normalize_user`]); `radius_km` is the
/// directory's default home radius, used for homes placed at a city.
pub fn map_user(user: &Map<String, Value>, radius_km: f64) -> Mapped {
    let name = str_ci(user, "userName").unwrap_or("");
    let active = get_ci(user, "active") != Some(&Value::Bool(false));
    let mut out = Mapped {
        active,
        employee: None,
        unplaceable: false,
        notes: Vec::new(),
    };
    if !active {
        return out;
    }
    let id = match check::name(name, "userName") {
        Ok(id) => id,
        Err(m) => {
            out.unplaceable = true;
            out.notes.push(format!("SCIM user `{name}`: {m}"));
            return out;
        }
    };
    let address = home_address(user);
    let country_text = address.and_then(|a| str_ci(a, "country"));
    let Some(country) = country_text.and_then(geocode::country) else {
        out.unplaceable = true;
        out.notes.push(match country_text {
            Some(c) => format!(
                "SCIM user `{id}`: country `{c}` is not a known country code or name; cannot be \
                 judged against a home, so sign-ins are `unknown_employee` until the IdP sends one"
            ),
            None => format!(
                "SCIM user `{id}`: no address with a country; cannot be judged against a home, so \
                 sign-ins are `unknown_employee` until the IdP sends one"
            ),
        });
        return out;
    };
    let place = geocode::place(
        country,
        address.and_then(|a| str_ci(a, "region")),
        address.and_then(|a| str_ci(a, "locality")),
    );
    if let Some(n) = &place.note {
        out.notes.push(format!("SCIM user `{id}`: {n}"));
    }
    let time_zone = match str_ci(user, "timezone") {
        None => None,
        Some(tz) => match check::time_zone(tz) {
            Ok(z) => Some(z),
            Err(m) => {
                out.notes
                    .push(format!("SCIM user `{id}`: timezone left out: {m}"));
                None
            }
        },
    };
    let mut aliases = Vec::new();
    for email in get_ci(user, "emails")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
    {
        if let Some(v) = str_ci(email, "value")
            && let Ok(alias) = check::name(v, "email")
        {
            aliases.push(alias);
        }
    }
    out.employee = Some(Employee {
        id,
        aliases,
        home: Home {
            country,
            region: place.region,
            city: place.city,
            location: place.location,
            radius_km,
        },
        time_zone,
        allow_countries: CountrySet::default(),
        travel: Vec::new(),
        allow_networks: Vec::new(),
        mode: None,
        wireguard_keys: Vec::new(),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Mapped {
        let u = super::super::resource::normalize_user(v).expect("valid");
        map_user(&u, 100.0)
    }

    #[test]
    fn an_okta_user_with_a_home_address_becomes_an_employee() {
        let m = map(json!({
            "userName": "Ann@Example.com", "timezone": "America/Chicago",
            "emails": [{"value": "ann@example.com", "type": "work", "primary": true},
                       {"value": "ann.b@example.com"}],
            "addresses": [
                {"type": "work", "locality": "Berlin", "country": "DE"},
                {"type": "home", "locality": "Austin", "region": "TX", "country": "US", "postalCode": "78701"}
            ]
        }));
        let e = m.employee.expect("employee");
        assert_eq!(e.id, "Ann@Example.com");
        assert_eq!(e.aliases, ["ann@example.com", "ann.b@example.com"]);
        assert_eq!(e.home.country.as_str(), "US");
        assert_eq!(e.home.region.as_deref(), Some("Texas"));
        assert_eq!(e.home.city.as_deref(), Some("Austin"));
        assert!(e.home.location.is_some());
        assert_eq!(e.home.radius_km, 100.0);
        assert_eq!(e.time_zone_name(), Some("America/Chicago"));
        assert!(m.notes.is_empty(), "{:?}", m.notes);
    }

    #[test]
    fn work_address_country_name_and_bad_time_zone() {
        let m = map(json!({
            "userName": "b", "timezone": "Central Time",
            "addresses": [{"type": "work", "locality": "Berlin", "country": "Germany"}]
        }));
        let e = m.employee.expect("employee");
        assert_eq!(e.home.country.as_str(), "DE");
        assert_eq!(e.time_zone, None);
        assert!(m.notes[0].contains("timezone left out"), "{:?}", m.notes);
    }

    #[test]
    fn inactive_and_unplaceable_users_are_kept_out_and_said() {
        let m = map(json!({"userName": "c", "active": false,
            "addresses": [{"country": "US"}]}));
        assert!(!m.active && m.employee.is_none() && !m.unplaceable);
        let m = map(json!({"userName": "d"}));
        assert!(m.unplaceable && m.employee.is_none());
        assert!(
            m.notes[0].contains("no address with a country"),
            "{:?}",
            m.notes
        );
        let m = map(json!({"userName": "e", "addresses": [{"country": "Atlantis"}]}));
        assert!(m.unplaceable);
        assert!(m.notes[0].contains("`Atlantis`"), "{:?}", m.notes);
    }
}
