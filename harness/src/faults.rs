//! The scenario's faults, asked about in one place: did a host restart
//! between two instants, when was the last fault, is a host touched at all.
//!
//! Faults are the harness's own actions at stated simulated times, so every
//! answer here is exact, and every checker and the operator ask the same
//! questions the same way.

use crate::scenario::{Fault, Scenario, Verb};

/// The faults of one scenario, in time order.
pub(crate) struct Faults<'a> {
    faults: Vec<&'a Fault>,
}

impl<'a> Faults<'a> {
    pub fn new(scenario: &'a Scenario) -> Self {
        let mut faults: Vec<&Fault> = scenario.faults.iter().collect();
        faults.sort_by_key(|f| f.at_ms);
        Faults { faults }
    }

    /// Whether `host` was crashed or bounced at an instant in `from..=to`.
    pub fn restarted(&self, host: &str, from_ms: u64, to_ms: u64) -> bool {
        self.faults.iter().any(|f| {
            matches!(&f.verb, Verb::Crash { host: h } | Verb::Bounce { host: h } if h == host)
                && f.at_ms >= from_ms
                && f.at_ms <= to_ms
        })
    }

    /// Whether `host` was crashed or bounced at or after `from_ms`.
    pub fn restarted_since(&self, host: &str, from_ms: u64) -> bool {
        self.restarted(host, from_ms, u64::MAX)
    }

    /// The time of the latest fault at or before `at_ms`; 0 when none.
    pub fn last_at_or_before(&self, at_ms: u64) -> u64 {
        self.faults
            .iter()
            .map(|f| f.at_ms)
            .filter(|t| *t <= at_ms)
            .max()
            .unwrap_or(0)
    }

    /// Whether any fault names `host`.
    pub fn touch(&self, host: &str) -> bool {
        self.faults.iter().any(|f| f.verb.hosts().contains(&host))
    }

    /// Whether a fault named `host` in `from..=to`, or a partition or hold
    /// naming it was still in force at `from` (cut before, healed at or after
    /// `from`, or never).
    pub fn touched_between(&self, host: &str, from_ms: u64, to_ms: u64) -> bool {
        self.faults.iter().any(|f| {
            f.verb.hosts().contains(&host)
                && f.at_ms <= to_ms
                && (f.at_ms >= from_ms || self.cut_until(f).is_none_or(|healed| healed >= from_ms))
        })
    }

    /// The latest fault naming `host` (or any of `hosts`) at or before
    /// `at_ms`; 0 when none.
    pub fn last_touching_at_or_before(&self, hosts: &[&str], at_ms: u64) -> u64 {
        self.faults
            .iter()
            .filter(|f| f.at_ms <= at_ms && f.verb.hosts().iter().any(|h| hosts.contains(h)))
            .map(|f| f.at_ms)
            .max()
            .unwrap_or(0)
    }

    /// For a partition or a hold: when the same link was healed next (its
    /// repair or release), `None` when never. Any other fault is over at
    /// once.
    fn cut_until(&self, cut: &Fault) -> Option<u64> {
        let heals = |verb: &Verb| match (&cut.verb, verb) {
            (Verb::Partition { a, b }, Verb::Repair { a: x, b: y })
            | (Verb::Hold { a, b }, Verb::Release { a: x, b: y }) => {
                (a == x && b == y) || (a == y && b == x)
            }
            _ => false,
        };
        match cut.verb {
            Verb::Partition { .. } | Verb::Hold { .. } => self
                .faults
                .iter()
                .find(|f| f.at_ms >= cut.at_ms && heals(&f.verb))
                .map(|f| f.at_ms),
            _ => Some(cut.at_ms),
        }
    }

    /// Whether every fault happened before `at_ms`.
    pub fn all_before(&self, at_ms: u64) -> bool {
        self.faults.iter().all(|f| f.at_ms < at_ms)
    }
}
