//! Fitting a scenario's instants to a live target's budgets.
//!
//! A catalogue scenario is written in the time of the system its settings
//! are for (the reference's budgets: a listing budget of 5 s, say), and its
//! instants mean something against those budgets: a `tools/list` that takes
//! 6 s is one that outlasts the budget. A real gateway whose own budgets
//! cannot be set that small gets the scenario with every instant multiplied
//! by the ratio of its budgets to the scenario's, so that what outlasted a
//! budget still does, and what fit still fits. A factor of 1 leaves the
//! scenario as it is.

use mcpsim_fakes::McpAuth;
use mcpsim_sut::Declared;

use crate::scenario::Scenario;

/// How much slower than the scenario's own the target's budgets are: the
/// largest ratio of a budget both declare, never below 1.
pub(crate) fn factor(own: &Declared, theirs: &Declared) -> f64 {
    let mut factor: f64 = 1.0;
    if own.listing_budget_ms > 0 {
        factor = factor.max(theirs.listing_budget_ms as f64 / own.listing_budget_ms as f64);
    }
    if let (Some(own), Some(theirs)) = (own.token_budget_ms, theirs.token_budget_ms) {
        if own > 0 {
            factor = factor.max(theirs as f64 / own as f64);
        }
    }
    factor
}

fn times(ms: u64, factor: f64) -> u64 {
    (ms as f64 * factor).round() as u64
}

/// The scenario with every instant and duration multiplied by `factor`:
/// the deadline, the operator's steps and patience, faults, late listeners,
/// the fakes' latencies, session lifetimes, tool changes and revocations,
/// and the stores' latencies and snapshot delays. Token lifetimes (whole seconds a gateway reasons about with
/// its own margins) and the poll interval are left as they are.
pub fn scaled(scenario: &Scenario, factor: f64) -> Scenario {
    let mut s = scenario.clone();
    if factor == 1.0 {
        return s;
    }
    let t = |ms: u64| times(ms, factor);
    s.deadline_ms = t(s.deadline_ms);
    s.operator.poll_until_ms = t(s.operator.poll_until_ms);
    for step in &mut s.operator.steps {
        step.at_ms = t(step.at_ms);
        step.give_up_after_ms = step.give_up_after_ms.map(t);
    }
    for fault in &mut s.faults {
        fault.at_ms = t(fault.at_ms);
    }
    for token in &mut s.token_servers {
        token.listen_after_ms = token.listen_after_ms.map(t);
        token.config.latency_ms = t(token.config.latency_ms);
    }
    for mcp in &mut s.mcp_servers {
        mcp.listen_after_ms = mcp.listen_after_ms.map(t);
        let config = &mut mcp.config;
        for latency in config.latency_ms.values_mut() {
            *latency = t(*latency);
        }
        config.session_ttl_ms = config.session_ttl_ms.map(t);
        for change in &mut config.tool_changes {
            change.at_ms = t(change.at_ms);
        }
        if let McpAuth::Oauth { revoke_at_ms, .. } = &mut config.auth {
            *revoke_at_ms = revoke_at_ms.map(t);
        }
    }
    for store in &mut s.stores {
        store.config.latency_ms = t(store.config.latency_ms);
        store.config.snapshot_delay_ms = t(store.config.snapshot_delay_ms);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpsim_sut::TokenReuse;

    fn declared(listing: u64, token: Option<u64>) -> Declared {
        Declared {
            serves_tools: true,
            token_budget_ms: token,
            listing_budget_ms: listing,
            recheck_interval_ms: None,
            sync_interval_ms: None,
            store_budget_ms: None,
            token_reuse: TokenReuse::default(),
            durable: false,
            emits_events: false,
            write_budget_ms: None,
            follows_list_changed: false,
        }
    }

    #[test]
    fn the_factor_is_the_largest_ratio_and_never_below_one() {
        assert_eq!(
            factor(&declared(5_000, Some(2_000)), &declared(5_000, None)),
            1.0
        );
        assert_eq!(
            factor(&declared(5_000, Some(2_000)), &declared(10_000, None)),
            2.0
        );
        assert_eq!(
            factor(&declared(5_000, Some(1_000)), &declared(5_000, Some(3_000))),
            3.0
        );
        assert_eq!(factor(&declared(5_000, None), &declared(1_000, None)), 1.0);
    }

    #[test]
    fn instants_and_latencies_scale_but_token_lifetimes_do_not() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scenarios/listing-hangs.json"
        ))
        .unwrap();
        let scenario = Scenario::from_json("listing-hangs.json", &text).unwrap();
        let doubled = scaled(&scenario, 2.0);
        assert_eq!(doubled.deadline_ms, scenario.deadline_ms * 2);
        let latency = |s: &Scenario| s.mcp_servers[0].config.latency_ms.clone();
        for (method, ms) in latency(&doubled) {
            assert_eq!(ms, latency(&scenario)[&method] * 2);
        }
        assert_eq!(
            doubled.token_servers.first().map(|t| t.config.expires_in_s),
            scenario
                .token_servers
                .first()
                .map(|t| t.config.expires_in_s)
        );
        assert_eq!(scaled(&scenario, 1.0), scenario);
    }

    #[test]
    fn a_stores_latency_and_snapshot_delay_scale() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scenarios/split-update-races-snapshot.json"
        ))
        .unwrap();
        let scenario = Scenario::from_json("split-update-races-snapshot.json", &text).unwrap();
        let tripled = scaled(&scenario, 3.0);
        let (own, theirs) = (&scenario.stores[0].config, &tripled.stores[0].config);
        assert_eq!(theirs.latency_ms, own.latency_ms * 3);
        assert_eq!(theirs.snapshot_delay_ms, own.snapshot_delay_ms * 3);
        assert!(own.snapshot_delay_ms > 0);
    }
}
