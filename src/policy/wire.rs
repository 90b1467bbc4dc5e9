//! Signals the connection itself carries: round-trip time against physics, and a segment size
//! typical of a tunnel.
//!
//! A relay hides an address, not the distance: light in fibre covers about 200 km per millisecond
//! one way, so a client truly 1,000 km away cannot answer in under 10 ms, and one that answers in
//! 180 ms is probably much farther away than its address says. Only the kernel's own
//! measurements are used (`TCP_INFO`), and only for connections whose socket peer *is* the
//! client (behind a trusted proxy the RTT is the proxy's).

use super::{Action, Reason, ReasonCode};
use crate::geo;
use crate::intel::{LatLon, Observation};

/// Kilometres light covers in fibre per millisecond, one way.
pub const FIBRE_KM_PER_MS: f64 = 200.0;

/// `[network]`: where the gateway is, and what the wire signals do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WireRules {
    /// The gateway's own location (the other end of every RTT).
    pub location: LatLon,
    /// Action for `latency_inconsistent`.
    pub latency_inconsistent: Action,
    /// Real paths are longer than great circles and routers queue: an RTT up to this factor times
    /// the physical minimum (plus the slack) is consistent.
    pub rtt_factor: f64,
    /// Fixed allowance for last-mile and processing delay, ms.
    pub rtt_slack_ms: f64,
    /// Action for `tunnel_mss`.
    pub tunnel_mss: Action,
    /// IPv4 MSS below which encapsulation is suspected (Ethernet gives 1460).
    pub mss_below_v4: u32,
    /// IPv6 MSS below which encapsulation is suspected (Ethernet gives 1440).
    pub mss_below_v6: u32,
}

impl WireRules {
    /// Defaults for a gateway at `location`.
    pub fn at(location: LatLon) -> Self {
        WireRules {
            location,
            latency_inconsistent: Action::Flag,
            rtt_factor: 3.0,
            rtt_slack_ms: 30.0,
            tunnel_mss: Action::Note,
            mss_below_v4: 1360,
            mss_below_v6: 1340,
        }
    }
}

/// What the kernel measured on a client connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WireSignals {
    /// Smoothed round-trip time, ms.
    pub rtt_ms: f64,
    /// Minimum round-trip time seen, ms (the best estimate of the path itself).
    pub min_rtt_ms: Option<f64>,
    /// The maximum segment size the kernel sends to this client (bounded by what the client
    /// announced in its SYN).
    pub mss: Option<u32>,
}

/// The physical minimum round trip between the gateway and the observed location, allowing the
/// observation's accuracy radius: `(floor_ms, distance_km)`.
pub fn rtt_floor_ms(rules: &WireRules, obs: &Observation<'_>) -> Option<(f64, f64)> {
    let loc = obs.location?;
    let distance = geo::distance_km(rules.location, loc);
    let nearest = (distance - obs.accuracy_km.unwrap_or(0.0).max(0.0)).max(0.0);
    Some((2.0 * nearest / FIBRE_KM_PER_MS, distance))
}

/// `latency_inconsistent`, and the floor used (recorded in every event).
pub fn latency(
    rules: &WireRules,
    sig: &WireSignals,
    obs: &Observation<'_>,
) -> (Option<Reason>, Option<f64>) {
    let Some((floor, distance)) = rtt_floor_ms(rules, obs) else {
        return (None, None);
    };
    if rules.latency_inconsistent == Action::Allow {
        return (None, Some(floor));
    }
    let best = sig.min_rtt_ms.unwrap_or(sig.rtt_ms);
    let farthest = distance + obs.accuracy_km.unwrap_or(0.0).max(0.0);
    let ceiling = rules.rtt_factor * 2.0 * farthest / FIBRE_KM_PER_MS + rules.rtt_slack_ms;
    let reason = if best < floor {
        Some(format!(
            "round trip {best:.1} ms is below the {floor:.1} ms light in fibre needs to {} ({} km away): the location data is wrong for this client",
            obs.place(),
            distance.round()
        ))
    } else if best > ceiling {
        Some(format!(
            "round trip {best:.1} ms is far above the {ceiling:.0} ms that {} km to {} explains: the client is probably relayed from farther away",
            farthest.round(),
            obs.place()
        ))
    } else {
        None
    };
    (
        reason.map(|d| {
            Reason::new(
                ReasonCode::LatencyInconsistent,
                rules.latency_inconsistent,
                d,
            )
        }),
        Some(floor),
    )
}

/// `tunnel_mss`: a segment size typical of VPN encapsulation.
pub fn tunnel_mss(rules: &WireRules, sig: &WireSignals, ipv6: bool) -> Option<Reason> {
    let mss = sig.mss?;
    let limit = if ipv6 {
        rules.mss_below_v6
    } else {
        rules.mss_below_v4
    };
    // 0 means the kernel did not know; loopback's huge MSS is never a tunnel.
    if rules.tunnel_mss == Action::Allow || mss == 0 || mss >= limit {
        return None;
    }
    Some(Reason::new(
        ReasonCode::TunnelMss,
        rules.tunnel_mss,
        format!(
            "segment size {mss} bytes is below {limit}: typical of VPN or tunnel encapsulation"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::country::CountryCode;
    use crate::intel::LocationPrecision;

    const AUSTIN: LatLon = LatLon {
        lat: 30.2672,
        lon: -97.7431,
    };

    fn obs_at(lat: f64, lon: f64, acc: f64) -> Observation<'static> {
        let mut o = Observation::empty("192.0.2.1".parse().unwrap());
        o.country = CountryCode::parse("KP");
        o.location = Some(LatLon { lat, lon });
        o.accuracy_km = Some(acc);
        o.precision = Some(LocationPrecision::Database);
        o
    }

    fn sig(rtt: f64) -> WireSignals {
        WireSignals {
            rtt_ms: rtt,
            min_rtt_ms: Some(rtt),
            mss: Some(1460),
        }
    }

    #[test]
    fn floor_is_light_in_fibre_both_ways() {
        let rules = WireRules::at(AUSTIN);
        // Pyongyang is ~11,090 km from Austin: at least ~111 ms round trip.
        let (floor, d) = rtt_floor_ms(&rules, &obs_at(39.03, 125.75, 0.0)).unwrap();
        assert!((d - 11_090.0).abs() < 20.0, "{d}");
        assert!((floor - 110.9).abs() < 0.5, "{floor}");
        // Accuracy is subtracted: a point within its own radius has no floor.
        assert_eq!(
            rtt_floor_ms(&rules, &obs_at(30.3, -97.7, 50.0)).unwrap().0,
            0.0
        );
    }

    #[test]
    fn an_rtt_below_physics_says_the_location_is_wrong() {
        let rules = WireRules::at(AUSTIN);
        let (r, floor) = latency(&rules, &sig(2.0), &obs_at(39.03, 125.75, 50.0));
        let r = r.unwrap();
        assert_eq!(r.code, ReasonCode::LatencyInconsistent);
        assert!(floor.unwrap() > 100.0);
        assert!(r.detail.contains("below"), "{}", r.detail);
    }

    #[test]
    fn an_rtt_far_above_the_distance_says_relayed() {
        let rules = WireRules::at(AUSTIN);
        // A client "in Dallas" (~300 km) answering in 250 ms.
        let dallas = obs_at(32.78, -96.80, 20.0);
        let r = latency(&rules, &sig(250.0), &dallas).0.unwrap();
        assert!(r.detail.contains("relayed"), "{}", r.detail);
        // 30 ms from Dallas is ordinary.
        assert!(latency(&rules, &sig(30.0), &dallas).0.is_none());
    }

    #[test]
    fn exactly_at_the_ceiling_is_consistent() {
        let rules = WireRules::at(AUSTIN);
        let here = obs_at(AUSTIN.lat, AUSTIN.lon, 0.0);
        // Distance 0: ceiling is the slack alone.
        assert!(latency(&rules, &sig(rules.rtt_slack_ms), &here).0.is_none());
        assert!(
            latency(&rules, &sig(rules.rtt_slack_ms + 0.1), &here)
                .0
                .is_some()
        );
    }

    #[test]
    fn no_location_no_judgement() {
        let rules = WireRules::at(AUSTIN);
        let unknown = Observation::empty("192.0.2.1".parse().unwrap());
        assert_eq!(latency(&rules, &sig(500.0), &unknown), (None, None));
    }

    #[test]
    fn tunnel_sized_segments_are_noted() {
        let rules = WireRules::at(AUSTIN);
        let mut s = sig(20.0);
        assert!(tunnel_mss(&rules, &s, false).is_none());
        s.mss = Some(1350);
        let r = tunnel_mss(&rules, &s, false).unwrap();
        assert_eq!((r.code, r.action), (ReasonCode::TunnelMss, Action::Note));
        // IPv6 has its own threshold; loopback's 65483 and an unknown 0 never count.
        s.mss = Some(1345);
        assert!(tunnel_mss(&rules, &s, true).is_none());
        s.mss = Some(0);
        assert!(tunnel_mss(&rules, &s, false).is_none());
        s.mss = Some(65_483);
        assert!(tunnel_mss(&rules, &s, false).is_none());
    }
}
