//! Liveness: every registered server leaves `unknown`, within a bound
//! derived from the scenario's budgets, counted from when it became
//! unknown or from the last fault, whichever is later.

use std::collections::BTreeMap;

use mcpsim_gateway::{GatewayEvent, Status};

use super::{check, Check};
use crate::scenario::{Scenario, Verb};
use crate::trace::What;
use crate::world::Outcome;

/// How long a server may stay `unknown` on `host` once nothing disturbs it:
/// two attempts (a retry after a 401 fetches the token and lists again),
/// one sync and one store call, and the messages around them.
pub(crate) fn unknown_bound_ms(scenario: &Scenario, host: &str) -> u64 {
    let Some(g) = scenario.gateways.iter().find(|g| g.host == host) else {
        return 0;
    };
    let s = &g.settings;
    2 * (s.token_timeout_ms + s.list_timeout_ms)
        + s.sync_interval_ms
        + s.store_timeout_ms
        + 40 * scenario.network.hop_ms()
}

/// Every server leaves `unknown` before the deadline and within its bound
/// (from the gateway's own status events); every acknowledged registration
/// is listed on every gateway that shares its store.
pub(crate) fn check_liveness(scenario: &Scenario, outcome: &Outcome) -> Check {
    let mut findings: Vec<String> = outcome.observed.missing.clone();
    for s in outcome
        .observed
        .servers
        .values()
        .filter(|s| !s.deleted && s.status == "unknown")
    {
        findings.push(format!(
            "{} on {} is still unknown at the deadline",
            s.name, s.gateway
        ));
    }
    let last_fault_before = |at: u64| {
        scenario
            .faults
            .iter()
            .filter(|f| f.at_ms <= at)
            .map(|f| f.at_ms)
            .max()
            .unwrap_or(0)
    };
    let crashed = |host: &str, after: u64| {
        scenario.faults.iter().any(|f| {
            matches!(&f.verb, Verb::Crash { host: h } | Verb::Bounce { host: h } if h == host)
                && f.at_ms >= after
        })
    };
    // Per (gateway, server): since when it has been unknown.
    let mut unknown_since: BTreeMap<(String, String), u64> = BTreeMap::new();
    for e in &outcome.trace {
        let What::Gateway { event } = &e.what else {
            continue;
        };
        match event {
            GatewayEvent::Registered { server_id, .. } => {
                unknown_since.insert((e.host.clone(), server_id.clone()), e.at_ms);
            }
            GatewayEvent::StatusChanged { server_id, to, .. } if *to == Status::Unknown => {
                unknown_since.insert((e.host.clone(), server_id.clone()), e.at_ms);
            }
            GatewayEvent::StatusChanged { server_id, .. } => {
                let key = (e.host.clone(), server_id.clone());
                if let Some(since) = unknown_since.remove(&key) {
                    let from = since.max(last_fault_before(e.at_ms));
                    let bound = unknown_bound_ms(scenario, &e.host);
                    if e.at_ms - from > bound {
                        findings.push(format!(
                            "{}/{server_id} stayed unknown {} ms (from {from} ms), over the bound of {bound} ms",
                            e.host,
                            e.at_ms - from
                        ));
                    }
                }
            }
            GatewayEvent::Deleted { server_id } => {
                unknown_since.remove(&(e.host.clone(), server_id.clone()));
            }
            _ => {}
        }
    }
    let end = outcome.observed.end_ms;
    for ((host, server_id), since) in unknown_since {
        if crashed(&host, since) {
            // Its process is gone or was replaced; the new one registers
            // the server again and is judged by that.
            continue;
        }
        let from = since.max(last_fault_before(end));
        let bound = unknown_bound_ms(scenario, &host);
        if end.saturating_sub(from) > bound {
            findings.push(format!(
                "{host}/{server_id} has been unknown since {from} ms, {} ms at the end, over the bound of {bound} ms",
                end - from
            ));
        }
    }
    check("liveness", findings)
}
