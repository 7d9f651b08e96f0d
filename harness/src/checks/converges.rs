//! Convergence: gateways sharing a store learn acknowledged writes within
//! one sync interval.

use super::{check, Check};
use crate::scenario::Scenario;
use crate::world::Outcome;

/// Every gateway that shares a store and is touched by no fault registers
/// an acknowledged server (its own `registered` event in the trace) within
/// one of its sync intervals plus the store round trip.
pub(crate) fn check_converges(scenario: &Scenario, outcome: &Outcome) -> Check {
    let mut findings = Vec::new();
    let touched = |host: &str| {
        scenario
            .faults
            .iter()
            .any(|f| f.verb.hosts().contains(&host))
    };
    for (taker, id, acked_ms) in &outcome.observed.acked {
        let Some(store) = scenario
            .gateways
            .iter()
            .find(|g| &g.host == taker)
            .and_then(|g| g.store.clone())
        else {
            continue;
        };
        if touched(&store) {
            continue;
        }
        for g in scenario
            .gateways
            .iter()
            .filter(|g| g.store.as_ref() == Some(&store) && &g.host != taker)
        {
            if touched(&g.host) {
                continue;
            }
            // A read of the store is three one-way trips on a new
            // connection, and the write itself one more round trip.
            let bound = g.settings.sync_interval_ms + 6 * scenario.network.hop_ms() + 1;
            match crate::trace::first_registered(&outcome.trace, &g.host, id, *acked_ms) {
                Some(first) if first.saturating_sub(*acked_ms) <= bound => {}
                Some(first) => findings.push(format!(
                    "{} registered {id} {} ms after it was acknowledged, over the bound of {bound} ms",
                    g.host,
                    first - acked_ms
                )),
                None => findings.push(format!("{} never registered {id}", g.host)),
            }
        }
    }
    check("converges", findings)
}
