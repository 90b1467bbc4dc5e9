//! Distances on the globe.
//!
//! Per-employee policy asks "how far is this connection from where the person said they live?".
//! The answer feeds a comparison against radii of tens to thousands of kilometres, so a sphere is
//! accurate enough (the ellipsoid differs by well under 0.5 %) and the haversine formula keeps
//! full precision for short distances, where the law of cosines loses it. The formula depends on
//! longitudes only through `sin²(Δλ/2)`, which is the same for 359.8° as for 0.2°, so points on
//! either side of the antimeridian come out close together without any wrapping code.
//! Pure: no I/O.

use crate::intel::LatLon;

/// Mean Earth radius in km (IUGG R₁), the sphere every distance here is measured on.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Great-circle distance between two points, in km.
///
/// Robust where naive formulas fail: across the antimeridian (179.9° and −179.9° are 22 km apart,
/// not 40,000), at the poles (every longitude is the same point), and for antipodes, where
/// rounding could push the `asin` argument just above 1 and produce NaN; it is clamped to
/// `0..=1`. Coordinates are not validated here (the employee directory validates what it loads);
/// NaN input yields NaN, which every `>` comparison treats as "not farther".
pub fn distance_km(a: LatLon, b: LatLon) -> f64 {
    let (phi1, phi2) = (a.lat.to_radians(), b.lat.to_radians());
    let d_phi = phi2 - phi1;
    let d_lambda = (b.lon - a.lon).to_radians();
    let s_phi = (d_phi / 2.0).sin();
    let s_lambda = (d_lambda / 2.0).sin();
    let h = s_phi * s_phi + phi1.cos() * phi2.cos() * s_lambda * s_lambda;
    2.0 * EARTH_RADIUS_KM * h.clamp(0.0, 1.0).sqrt().asin()
}

/// Checks a latitude, so that a typo in an HR export is refused at load rather than turning into
/// a distance that flags (or clears) someone forever.
pub fn check_lat(lat: f64) -> Result<f64, String> {
    if lat.is_finite() && (-90.0..=90.0).contains(&lat) {
        Ok(lat)
    } else {
        Err(format!("{lat} is not a latitude (-90..90)"))
    }
}

/// Checks a longitude (-180..=180), for the same reason as [`check_lat`].
pub fn check_lon(lon: f64) -> Result<f64, String> {
    if lon.is_finite() && (-180.0..=180.0).contains(&lon) {
        Ok(lon)
    } else {
        Err(format!("{lon} is not a longitude (-180..180)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lat: f64, lon: f64) -> LatLon {
        LatLon { lat, lon }
    }

    fn within_pct(got: f64, want: f64, pct: f64) -> bool {
        (got - want).abs() <= want * pct / 100.0
    }

    const AUSTIN: LatLon = LatLon {
        lat: 30.2672,
        lon: -97.7431,
    };
    const PYONGYANG: LatLon = LatLon {
        lat: 39.0392,
        lon: 125.7625,
    };

    #[test]
    fn austin_to_pyongyang_is_about_11090_km() {
        // Great-circle calculators give 11,090 km on the mean sphere; the WGS84 geodesic
        // (Vincenty) is 11,112 km, 0.2 % away, so the sphere is accurate enough here.
        let d = distance_km(AUSTIN, PYONGYANG);
        assert!(within_pct(d, 11_090.0, 0.1), "{d}");
        assert!(within_pct(d, 11_112.0, 1.0), "{d}");
    }

    #[test]
    fn london_to_paris_is_about_344_km() {
        let d = distance_km(p(51.5074, -0.1278), p(48.8566, 2.3522));
        // WGS84 geodesic: 343.9 km.
        assert!(within_pct(d, 344.0, 1.0), "{d}");
    }

    #[test]
    fn distance_is_symmetric() {
        let there = distance_km(AUSTIN, PYONGYANG);
        let back = distance_km(PYONGYANG, AUSTIN);
        assert!((there - back).abs() < 1e-9);
    }

    #[test]
    fn antimeridian_neighbours_are_close() {
        let d = distance_km(p(0.0, 179.9), p(0.0, -179.9));
        assert!(within_pct(d, 22.24, 1.0), "{d}");
        // Suva (Fiji) to Taveuni's far side, across the line: about 250 km, not 40,000.
        let d = distance_km(p(-18.1368, 178.4253), p(-16.8, -179.9));
        assert!(d > 200.0 && d < 300.0, "{d}");
    }

    #[test]
    fn poles() {
        // Every longitude names the same pole.
        assert!(distance_km(p(90.0, 0.0), p(90.0, 123.0)) < 1e-6);
        assert!(distance_km(p(-90.0, -45.0), p(-90.0, 170.0)) < 1e-6);
        let half = std::f64::consts::PI * EARTH_RADIUS_KM;
        assert!((distance_km(p(90.0, 0.0), p(-90.0, 0.0)) - half).abs() < 1e-6);
        // McMurdo Station to the South Pole: 12.154° of latitude, 1,351.5 km.
        let d = distance_km(p(-77.846, 166.676), p(-90.0, 0.0));
        assert!(within_pct(d, 1_351.5, 0.1), "{d}");
    }

    #[test]
    fn antipodes_do_not_produce_nan() {
        let half = std::f64::consts::PI * EARTH_RADIUS_KM;
        for (a, b) in [
            (p(0.0, 0.0), p(0.0, 180.0)),
            (p(0.0, -90.0), p(0.0, 90.0)),
            (p(45.0, 10.0), p(-45.0, -170.0)),
        ] {
            let d = distance_km(a, b);
            assert!(!d.is_nan() && (d - half).abs() < 1e-3, "{a:?} {b:?} {d}");
        }
    }

    #[test]
    fn identical_points_are_zero_apart() {
        assert_eq!(distance_km(AUSTIN, AUSTIN), 0.0);
        assert_eq!(distance_km(p(90.0, 0.0), p(90.0, 0.0)), 0.0);
        assert!(distance_km(p(0.0, 180.0), p(0.0, -180.0)) < 1e-6);
    }

    #[test]
    fn coordinate_checks() {
        assert_eq!(check_lat(-90.0), Ok(-90.0));
        assert_eq!(check_lon(180.0), Ok(180.0));
        assert_eq!(
            check_lat(123.4).unwrap_err(),
            "123.4 is not a latitude (-90..90)"
        );
        assert!(check_lon(-180.5).is_err());
        assert!(check_lat(f64::NAN).unwrap_err().contains("NaN"));
        assert!(check_lon(f64::INFINITY).is_err());
    }
}
