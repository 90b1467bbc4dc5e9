//! `replay --summary`: the hunt's result as people read it, one row per employee, the ones with
//! the most flagged sign-ins first.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use jiff::Timestamp;

use crate::policy::{Action, Decision, ReasonCode};

/// What one person's sign-ins came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Employee id (or the name as presented, for people the directory does not know).
    pub user: String,
    /// Sign-ins judged.
    pub sign_ins: usize,
    /// Of those, flagged or blocked.
    pub flagged: usize,
    /// Of those, refused by the IdP.
    pub refused: usize,
    /// How many flagged sign-ins carried each reason code (by `code as usize`): counted in
    /// the row itself, with no string compared and no other memory touched per sign-in.
    /// [`Row::reasons`] gives them by name.
    counts: [u32; ReasonCode::ALL.len()],
    /// First and last sign-in.
    pub first: Timestamp,
    /// Last sign-in.
    pub last: Timestamp,
}

impl Row {
    /// Reason codes of the flagged sign-ins, with counts, by name.
    pub fn reasons(&self) -> BTreeMap<&'static str, usize> {
        ReasonCode::ALL
            .iter()
            .zip(self.counts)
            .filter(|(_, n)| *n > 0)
            .map(|(c, n)| (c.as_str(), n as usize))
            .collect()
    }

    fn new(user: &str, at: Timestamp) -> Row {
        Row {
            user: user.to_owned(),
            sign_ins: 0,
            flagged: 0,
            refused: 0,
            counts: [0; ReasonCode::ALL.len()],
            first: at,
            last: at,
        }
    }
}

/// Tallies sign-ins by person as they are judged.
#[derive(Debug, Default)]
pub struct Summary {
    /// Each person's row in `rows`: one hash lookup per sign-in, and no key allocated for a
    /// person already seen (a million sign-ins by a few thousand people).
    index: HashMap<String, usize>,
    rows: Vec<Row>,
    anonymous: usize,
}

impl Summary {
    /// Adds one judged sign-in of `user` (none: a sign-in that named nobody).
    pub fn add(&mut self, user: Option<&str>, at: Timestamp, refused: bool, decision: &Decision) {
        let Some(user) = user else {
            self.anonymous += 1;
            return;
        };
        let i = match self.index.get(user) {
            Some(&i) => i,
            None => {
                self.index.insert(user.to_owned(), self.rows.len());
                self.rows.push(Row::new(user, at));
                self.rows.len() - 1
            }
        };
        let Some(row) = self.rows.get_mut(i) else {
            return;
        };
        row.sign_ins += 1;
        row.refused += usize::from(refused);
        row.first = row.first.min(at);
        row.last = row.last.max(at);
        if matches!(decision.action, Action::Flag | Action::Block) {
            row.flagged += 1;
            for r in &decision.reasons {
                if let Some(n) = row.counts.get_mut(r.code as usize) {
                    *n = n.saturating_add(1);
                }
            }
        }
    }

    /// The rows, most flagged first (then most sign-ins, then by name).
    pub fn ranked(&self) -> Vec<&Row> {
        let mut rows: Vec<&Row> = self.rows.iter().collect();
        rows.sort_by(|a, b| {
            (b.flagged, b.sign_ins, &a.user).cmp(&(a.flagged, a.sign_ins, &b.user))
        });
        rows
    }

    /// Whether any sign-in was flagged or blocked.
    pub fn any_flagged(&self) -> bool {
        self.rows.iter().any(|r| r.flagged > 0)
    }

    /// The table: employees with flags first, then a line for everyone else.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let ranked = self.ranked();
        let flagged: Vec<&&Row> = ranked.iter().filter(|r| r.flagged > 0).collect();
        let _ = writeln!(
            out,
            "{:<28} {:>8} {:>8} {:>8}  {:<20} {:<20}  REASONS",
            "EMPLOYEE", "SIGN-INS", "FLAGGED", "REFUSED", "FIRST (UTC)", "LAST (UTC)"
        );
        for r in &flagged {
            let reasons: Vec<String> = r
                .reasons()
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect();
            let _ = writeln!(
                out,
                "{:<28} {:>8} {:>8} {:>8}  {:<20} {:<20}  {}",
                r.user,
                r.sign_ins,
                r.flagged,
                r.refused,
                r.first.strftime("%Y-%m-%d %H:%M"),
                r.last.strftime("%Y-%m-%d %H:%M"),
                reasons.join(", ")
            );
        }
        let clean = ranked.len() - flagged.len();
        let _ = writeln!(
            out,
            "{} of {} employees flagged; {clean} with nothing flagged; {} sign-ins named nobody",
            flagged.len(),
            ranked.len(),
            self.anonymous
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Mode, Reason};

    fn decision(reasons: &[ReasonCode]) -> Decision {
        let reasons = reasons
            .iter()
            .map(|c| Reason::new(*c, Action::Flag, String::new()))
            .collect();
        Decision::new(reasons, Mode::Enforce)
    }

    #[test]
    fn the_most_flagged_come_first_and_clean_people_are_one_line() {
        let t = |h: i64| Timestamp::from_second(1_795_168_800 + h * 3600).expect("time");
        let mut s = Summary::default();
        s.add(Some("e2"), t(0), false, &decision(&[]));
        s.add(
            Some("e1"),
            t(1),
            false,
            &decision(&[ReasonCode::CountryMismatch]),
        );
        s.add(
            Some("e1"),
            t(0),
            true,
            &decision(&[ReasonCode::CountryMismatch]),
        );
        s.add(None, t(2), false, &decision(&[]));
        assert!(s.any_flagged());
        let ranked = s.ranked();
        assert_eq!(ranked[0].user, "e1");
        assert_eq!((ranked[0].flagged, ranked[0].refused), (2, 1));
        assert_eq!(ranked[0].first, t(0));
        let text = s.render();
        assert!(text.contains("country_mismatch 2"), "{text}");
        assert!(
            !text.contains("\ne2 "),
            "clean people are counted, not listed: {text}"
        );
        assert!(
            text.contains(
                "1 of 2 employees flagged; 1 with nothing flagged; 1 sign-ins named nobody"
            ),
            "{text}"
        );
    }
}
