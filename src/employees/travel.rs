//! Announced travel: countries that are fine for one person during a window of time.
//!
//! HR records trips as calendar dates ("20 December to 3 January, Mexico"), but a calendar date is
//! not an instant: 20 December begins 26 hours earlier in Kiribati (UTC+14) than on Baker Island
//! (UTC−12). locgate does not know where on Earth the person will be, so a **date-only** window is
//! taken at its widest, to hold wherever the person is on those dates:
//!
//! * it opens at `from` 00:00 in UTC+14 (the first moment that date exists anywhere), and
//! * it closes at the end of `to` (24:00) in UTC−12 (the last moment that date exists anywhere).
//!
//! A window written with RFC 3339 date-times (`2026-12-20T09:00:00-06:00`) is exact: it opens and
//! closes at those instants, both included.

use jiff::civil::Date;
use jiff::tz::Offset;
use jiff::{SignedDuration, Timestamp};

use crate::country::{CountryCode, CountrySet};

/// The earliest offset in use: a calendar date starts here first.
const EARLIEST_OFFSET: Offset = Offset::constant(14);
/// The latest offset in use: a calendar date ends here last.
const LATEST_OFFSET: Offset = Offset::constant(-12);

/// One end of a travel window as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// A calendar date (`2026-12-20`): widened to hold in every time zone.
    Date(Date),
    /// An exact instant (RFC 3339 with `Z` or an offset).
    Instant(Timestamp),
}

impl When {
    /// Parses `YYYY-MM-DD` or an RFC 3339 date-time with an offset. A date-time without an
    /// offset is refused: "09:00" in whose time zone?
    pub fn parse(s: &str) -> Result<When, String> {
        let t = s.trim();
        if t.contains(['T', 't', ' ']) {
            t.parse::<Timestamp>().map(When::Instant).map_err(|_| {
                format!(
                    "`{t}` is not an RFC 3339 date-time with an offset (e.g. 2026-12-20T09:00:00Z or 2026-12-20T09:00:00-06:00)"
                )
            })
        } else {
            t.parse::<Date>()
                .map(When::Date)
                .map_err(|_| format!("`{t}` is not a date (YYYY-MM-DD)"))
        }
    }

    /// The first instant this end stands for, as a window start.
    fn start(self) -> Result<Timestamp, String> {
        match self {
            When::Instant(t) => Ok(t),
            When::Date(d) => EARLIEST_OFFSET
                .to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
                .map_err(|e| format!("{d} is out of range: {e}")),
        }
    }

    /// The last instant this end stands for, as a window end (inclusive).
    fn end(self) -> Result<Timestamp, String> {
        match self {
            When::Instant(t) => Ok(t),
            When::Date(d) => d
                .tomorrow()
                .and_then(|next| {
                    LATEST_OFFSET.to_timestamp(next.to_datetime(jiff::civil::Time::midnight()))
                })
                .and_then(|t| t.checked_sub(SignedDuration::from_nanos(1)))
                .map_err(|e| format!("{d} is out of range: {e}")),
        }
    }
}

/// Why a travel window was refused, and which of its fields (`from`, `to`, `countries`) is at
/// fault, so both file formats can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TravelError {
    /// `from`, `to` or `countries`.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

/// A trip: `countries` are fine from `start` to `end`, both included.
#[derive(Debug, Clone, PartialEq)]
pub struct TravelWindow {
    /// First instant of the window (for a date: 00:00 in UTC+14).
    pub start: Timestamp,
    /// Last instant of the window, included (for a date: 23:59:59.999999999 in UTC−12).
    pub end: Timestamp,
    /// Where the person may be during the window.
    pub countries: CountrySet,
}

impl TravelWindow {
    /// Builds a window from its ends as written. `to` before `from` is an error (for two dates,
    /// compared as dates: a one-day trip has `from == to`), and so is a window without countries.
    pub fn new(from: When, to: When, countries: CountrySet) -> Result<TravelWindow, TravelError> {
        let err = |field, message| TravelError { field, message };
        if countries.is_empty() {
            return Err(err(
                "countries",
                "a travel window needs at least one country".into(),
            ));
        }
        let start = from.start().map_err(|m| err("from", m))?;
        let end = to.end().map_err(|m| err("to", m))?;
        let backwards = match (from, to) {
            (When::Date(f), When::Date(t)) => t < f,
            (When::Instant(f), When::Instant(t)) => t < f,
            _ => end < start,
        };
        if backwards {
            return Err(err(
                "to",
                format!("`to` ({}) is before `from` ({})", show(to), show(from)),
            ));
        }
        Ok(TravelWindow {
            start,
            end,
            countries,
        })
    }

    /// Whether the window is open at `at`.
    pub fn contains(&self, at: Timestamp) -> bool {
        self.start <= at && at <= self.end
    }

    /// Whether the window is open at `at` and includes `country`.
    pub fn covers(&self, country: CountryCode, at: Timestamp) -> bool {
        self.countries.contains(country) && self.contains(at)
    }
}

fn show(w: When) -> String {
    match w {
        When::Date(d) => d.to_string(),
        When::Instant(t) => t.to_string(),
    }
}
