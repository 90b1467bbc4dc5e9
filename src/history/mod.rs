//! What locgate remembers between requests: where each employee was last seen, which days they
//! were at home or up at night, and which employees share an egress address.
//!
//! One address lookup catches clumsy cases. The cases that matter (a VPN exit in the right
//! country, a laptop farm where one US home line serves several fake employees, a worker who
//! declared Seattle but always works from Miami) only show over time. The store is a small trait
//! so one instance keeps it in memory and a fleet shares it through Redis ([`redis_link`]); `decide`
//! reads it, and the sighting is recorded after the decision.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use jiff::civil::Date;

use crate::country::CountryCode;
use crate::intel::LatLon;

pub mod bindings;
pub mod redis_link;
pub mod shared_record;
pub mod synced;
pub mod vpn_sessions;

/// One sighting of an employee.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sighting {
    /// When.
    pub at: Timestamp,
    /// Country observed.
    pub country: Option<CountryCode>,
    /// Coordinates observed.
    pub location: Option<LatLon>,
    /// Their accuracy, km.
    pub accuracy_km: f64,
}

/// What a day of sign-ins said about one employee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Day {
    /// The calendar date (in the employee's declared time zone, or UTC).
    pub date: Date,
    /// Some sighting that day was inside the home radius.
    pub home: bool,
    /// Some sighting that day could be placed (city-level) at all; days with only country-level
    /// data in the home country say nothing about the radius.
    pub placed: bool,
    /// Some sighting that day was at night in the declared time zone.
    pub night: bool,
}

/// An egress address as a key: an IPv4 address, or the /64 of an IPv6 address (privacy addresses
/// rotate inside one /64, which is still one household's line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EgressKey {
    /// IPv4 /32.
    V4(u32),
    /// IPv6 /64.
    V6(u64),
}

impl EgressKey {
    /// The key of `ip`.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => EgressKey::V4(a.to_bits()),
            IpAddr::V6(a) => EgressKey::V6((a.to_bits() >> 64) as u64),
        }
    }
}

/// What one request records after its decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Record<'a> {
    /// Employee id.
    pub employee: &'a str,
    /// The sighting, when it counts as a place (not corporate egress, not a personal network).
    pub place: Option<Sighting>,
    /// The egress, when it may count towards shared egress.
    pub egress: Option<EgressKey>,
    /// The day this counts for, with what it showed.
    pub day: Option<Day>,
}

/// The history every instance consults.
pub trait HistoryStore: Send + Sync {
    /// The most recent place the employee was seen.
    fn last_place(&self, employee: &str) -> Option<Sighting>;
    /// Employees seen on `egress` since `since`, with when each was last seen there.
    fn egress_employees(&self, egress: EgressKey, since: Timestamp) -> Vec<(Arc<str>, Timestamp)>;
    /// The employee's most recent days with sign-ins, oldest first, at most `n`.
    fn recent_days(&self, employee: &str, n: usize) -> Vec<Day>;
    /// Records a request's sighting.
    fn record(&self, rec: Record<'_>);
    /// [`last_place`](Self::last_place) and [`recent_days`](Self::recent_days) together: what
    /// a decision reads about its person, in one lookup where the store can.
    fn person(&self, employee: &str, n: usize) -> (Option<Sighting>, Vec<Day>) {
        (self.last_place(employee), self.recent_days(employee, n))
    }
}

/// Most days kept per employee.
const MAX_DAYS: usize = 90;
/// Most employees remembered per egress address.
const MAX_PER_EGRESS: usize = 64;
/// Most employees / egress keys remembered at all; beyond that the least recently seen go.
const MAX_KEYS: usize = 200_000;

#[derive(Default)]
struct Person {
    /// The key this person is filed under, shared with the egress lists.
    name: Arc<str>,
    last: Option<Sighting>,
    days: VecDeque<Day>,
    seen: Timestamp,
}

impl Person {
    /// Takes in one sighting: when last seen, the latest place, the day.
    fn note(&mut self, rec: &Record<'_>) {
        let now = rec.place.map(|s| s.at).unwrap_or(self.seen);
        self.seen = self.seen.max(now);
        if let Some(place) = rec.place
            // Out-of-order sightings (replays, clock skew) never replace a newer one.
            && self.last.is_none_or(|l| place.at >= l.at)
        {
            self.last = Some(place);
        }
        if let Some(day) = rec.day {
            merge_day(&mut self.days, day);
        }
    }
}

#[derive(Default)]
struct Inner {
    people: HashMap<Arc<str>, Person>,
    egress: HashMap<EgressKey, Vec<(Arc<str>, Timestamp)>>,
}

/// In-process history: bounded in memory, entries expire with age.
#[derive(Default)]
pub struct MemoryHistory {
    inner: Mutex<Inner>,
}

impl MemoryHistory {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving with it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl HistoryStore for MemoryHistory {
    fn last_place(&self, employee: &str) -> Option<Sighting> {
        self.lock().people.get(employee).and_then(|p| p.last)
    }

    fn egress_employees(&self, egress: EgressKey, since: Timestamp) -> Vec<(Arc<str>, Timestamp)> {
        self.lock()
            .egress
            .get(&egress)
            .map(|v| v.iter().filter(|(_, t)| *t >= since).cloned().collect())
            .unwrap_or_default()
    }

    fn recent_days(&self, employee: &str, n: usize) -> Vec<Day> {
        let inner = self.lock();
        let Some(p) = inner.people.get(employee) else {
            return Vec::new();
        };
        let skip = p.days.len().saturating_sub(n);
        p.days.iter().skip(skip).copied().collect()
    }

    fn person(&self, employee: &str, n: usize) -> (Option<Sighting>, Vec<Day>) {
        let inner = self.lock();
        match inner.people.get(employee) {
            Some(p) => {
                let skip = p.days.len().saturating_sub(n);
                (p.last, p.days.iter().skip(skip).copied().collect())
            }
            None => (None, Vec::new()),
        }
    }

    fn record(&self, rec: Record<'_>) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        // One lookup for a person already known (nearly every sign-in); the key is shared with
        // the egress lists only when one is written.
        let shares = rec.egress.is_some() && rec.place.is_some();
        let key = match inner.people.get_mut(rec.employee) {
            Some(person) => {
                person.note(&rec);
                shares.then(|| person.name.clone())
            }
            None => {
                if inner.people.len() >= MAX_KEYS {
                    evict_oldest_people(&mut inner.people);
                }
                let name: Arc<str> = Arc::from(rec.employee);
                let mut person = Person {
                    name: name.clone(),
                    ..Person::default()
                };
                person.note(&rec);
                inner.people.insert(name.clone(), person);
                Some(name)
            }
        };
        if let (Some(egress), Some(place), Some(key)) = (rec.egress, rec.place, key) {
            if inner.egress.len() >= MAX_KEYS && !inner.egress.contains_key(&egress) {
                let cutoff = oldest_egress_cutoff(&inner.egress);
                inner
                    .egress
                    .retain(|_, v| v.iter().any(|(_, t)| *t > cutoff));
            }
            let list = inner.egress.entry(egress).or_default();
            match list.iter_mut().find(|(e, _)| **e == *key) {
                Some(entry) => entry.1 = entry.1.max(place.at),
                None => {
                    if list.len() >= MAX_PER_EGRESS {
                        list.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
                        list.truncate(MAX_PER_EGRESS - 1);
                    }
                    list.push((key, place.at));
                }
            }
        }
    }
}

fn merge_day(days: &mut VecDeque<Day>, day: Day) {
    match days.iter_mut().find(|d| d.date == day.date) {
        Some(d) => {
            d.home |= day.home;
            d.placed |= day.placed;
            d.night |= day.night;
        }
        None => {
            let pos = days
                .iter()
                .position(|d| d.date > day.date)
                .unwrap_or(days.len());
            days.insert(pos, day);
            while days.len() > MAX_DAYS {
                days.pop_front();
            }
        }
    }
}

fn evict_oldest_people(people: &mut HashMap<Arc<str>, Person>) {
    let seen: Vec<Timestamp> = people.values().map(|p| p.seen).collect();
    let cutoff = tenth_oldest(seen);
    people.retain(|_, p| p.seen > cutoff);
}

fn oldest_egress_cutoff(egress: &HashMap<EgressKey, Vec<(Arc<str>, Timestamp)>>) -> Timestamp {
    let latest: Vec<Timestamp> = egress
        .values()
        .filter_map(|v| v.iter().map(|(_, t)| *t).max())
        .collect();
    tenth_oldest(latest)
}

/// The time a tenth of the way up from the oldest: what is at or before it is evicted when a map
/// is full. A selection rather than a sort: a full map holds 200,000 keys, and a replay of random
/// addresses fills the egress map again every 20,000 sign-ins.
fn tenth_oldest(mut times: Vec<Timestamp>) -> Timestamp {
    let n = times.len() / 10;
    if n >= times.len() {
        return Timestamp::MIN;
    }
    *times.select_nth_unstable(n).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenth_oldest_is_what_sorting_would_pick() {
        let times: Vec<Timestamp> = (0..25)
            .map(|i| Timestamp::from_second((i * 7) % 25 * 60).unwrap())
            .collect();
        let mut sorted = times.clone();
        sorted.sort();
        assert_eq!(tenth_oldest(times), sorted[2]);
        assert_eq!(tenth_oldest(vec![sorted[0]]), sorted[0]);
        assert_eq!(tenth_oldest(Vec::new()), Timestamp::MIN);
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn sighting(t: &str) -> Sighting {
        Sighting {
            at: at(t),
            country: CountryCode::parse("US"),
            location: Some(LatLon {
                lat: 30.0,
                lon: -97.0,
            }),
            accuracy_km: 10.0,
        }
    }

    #[test]
    fn last_place_ignores_older_sightings() {
        let h = MemoryHistory::new();
        let new = sighting("2026-11-20T10:00:00Z");
        h.record(Record {
            employee: "ann",
            place: Some(new),
            egress: None,
            day: None,
        });
        h.record(Record {
            employee: "ann",
            place: Some(sighting("2026-11-19T10:00:00Z")),
            egress: None,
            day: None,
        });
        assert_eq!(h.last_place("ann"), Some(new));
        assert_eq!(h.last_place("bob"), None);
    }

    #[test]
    fn egress_lists_distinct_employees_within_window_and_v6_groups_by_64() {
        let h = MemoryHistory::new();
        let a: IpAddr = "2001:db8:1:2::10".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert_eq!(EgressKey::of(a), EgressKey::of(b));
        for (who, ip, t) in [
            ("ann", a, "2026-11-01T00:00:00Z"),
            ("bob", b, "2026-11-20T00:00:00Z"),
            ("ann", b, "2026-11-21T00:00:00Z"),
        ] {
            h.record(Record {
                employee: who,
                place: Some(sighting(t)),
                egress: Some(EgressKey::of(ip)),
                day: None,
            });
        }
        let mut names: Vec<String> = h
            .egress_employees(EgressKey::of(a), at("2026-11-10T00:00:00Z"))
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["ann", "bob"]);
        assert_eq!(
            h.egress_employees(EgressKey::of(a), at("2026-11-22T00:00:00Z"))
                .len(),
            0
        );
    }

    #[test]
    fn days_merge_and_stay_in_date_order() {
        let h = MemoryHistory::new();
        let d = |s: &str, home| Day {
            date: s.parse().unwrap(),
            home,
            placed: true,
            night: false,
        };
        for day in [
            d("2026-11-03", false),
            d("2026-11-01", true),
            d("2026-11-03", true),
        ] {
            h.record(Record {
                employee: "ann",
                place: None,
                egress: None,
                day: Some(day),
            });
        }
        let days = h.recent_days("ann", 10);
        assert_eq!(days.len(), 2);
        assert!(days[0].date < days[1].date && days[1].home);
        assert_eq!(h.recent_days("ann", 1).len(), 1);
    }
}
