//! `session_location_changed`: a session cookie issued to a login from one place, presented from
//! another. Stolen or shared session cookies are how a "laptop farm" shares one real employee's
//! login; the cookie is valid, the place is not.

use super::{Action, Reason, ReasonCode};
use crate::country::CountryCode;
use crate::geo;
use crate::intel::{LatLon, LocationPrecision, Observation};

/// Accuracy at or beyond which a login's place is treated as country-level.
const COUNTRY_LEVEL_KM: f64 = 500.0;

/// Where the login that issued the session was seen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoginPlace {
    /// Country of the login.
    pub country: Option<CountryCode>,
    /// Coordinates of the login.
    pub location: Option<LatLon>,
    /// Their accuracy, km.
    pub accuracy_km: Option<f64>,
}

/// The reason, if the request is somewhere else than the login: another country, or farther from
/// the login than `radius_km` plus both accuracy radii.
pub fn session_reason(
    login: &LoginPlace,
    obs: &Observation<'_>,
    radius_km: f64,
    action: Action,
) -> Option<Reason> {
    if action == Action::Allow {
        return None;
    }
    if let (Some(then), Some(now)) = (login.country, obs.country)
        && then != now
    {
        return Some(Reason::new(
            ReasonCode::SessionLocationChanged,
            action,
            format!(
                "session issued to a login from {} ({then}) is now used from {} ({now})",
                then.name(),
                now.name()
            ),
        ));
    }
    let (Some(a), Some(b)) = (login.location, obs.location) else {
        return None;
    };
    // A country-level place (a capital standing for the whole country) says nothing about
    // distance within that country: only the country comparison above applies to it.
    if obs.precision == Some(LocationPrecision::Country)
        || login.accuracy_km.is_some_and(|a| a >= COUNTRY_LEVEL_KM)
    {
        return None;
    }
    let slack = radius_km
        + login.accuracy_km.unwrap_or(0.0).max(0.0)
        + obs.accuracy_km.unwrap_or(0.0).max(0.0);
    let d = geo::distance_km(a, b);
    (d > slack).then(|| {
        Reason::new(
            ReasonCode::SessionLocationChanged,
            action,
            format!(
                "session issued to a login {:.0} km away is now used from {} (allowed {:.0} km including accuracy)",
                d,
                obs.place(),
                slack
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(country: &str, lat: f64, lon: f64, acc: f64) -> Observation<'static> {
        let mut o = Observation::empty("192.0.2.1".parse().unwrap());
        o.country = CountryCode::parse(country);
        o.location = Some(LatLon { lat, lon });
        o.accuracy_km = Some(acc);
        o
    }

    fn login(country: &str, lat: f64, lon: f64, acc: f64) -> LoginPlace {
        LoginPlace {
            country: CountryCode::parse(country),
            location: Some(LatLon { lat, lon }),
            accuracy_km: Some(acc),
        }
    }

    #[test]
    fn another_country_is_a_change() {
        let r = session_reason(
            &login("US", 30.27, -97.74, 20.0),
            &obs("KP", 39.03, 125.75, 50.0),
            100.0,
            Action::Flag,
        );
        let r = r.unwrap();
        assert_eq!(r.code, ReasonCode::SessionLocationChanged);
        assert!(r.detail.contains("North Korea"), "{}", r.detail);
    }

    #[test]
    fn same_city_is_not_and_far_in_same_country_is() {
        let home = login("US", 30.27, -97.74, 20.0);
        assert!(
            session_reason(&home, &obs("US", 30.30, -97.70, 20.0), 100.0, Action::Flag).is_none()
        );
        // Austin -> Seattle ≈ 2,850 km
        assert!(
            session_reason(&home, &obs("US", 47.61, -122.33, 20.0), 100.0, Action::Flag).is_some()
        );
    }

    #[test]
    fn country_level_places_compare_countries_only_and_allow_disables() {
        let home = login("US", 30.27, -97.74, 20.0);
        let mut capital = obs("US", 38.9, -77.0, 1751.0);
        capital.precision = Some(LocationPrecision::Country);
        assert!(session_reason(&home, &capital, 100.0, Action::Flag).is_none());
        let country_login = login("US", 38.9, -77.0, 1751.0);
        let seattle = obs("US", 47.61, -122.33, 20.0);
        assert!(session_reason(&country_login, &seattle, 100.0, Action::Flag).is_none());
        // Accuracy radii are subtracted: Austin-Dallas ~300 km, 150 + 100 km accuracy, 100 km radius.
        let near = login("US", 30.27, -97.74, 150.0);
        let dallas = obs("US", 32.78, -96.80, 100.0);
        assert!(session_reason(&near, &dallas, 100.0, Action::Flag).is_none());
        let kp = obs("KP", 39.0, 125.7, 1.0);
        assert!(session_reason(&home, &kp, 100.0, Action::Allow).is_none());
    }
}
