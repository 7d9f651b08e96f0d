//! Token discipline: no more than one token request per server per
//! validity window while nothing failed; a refetch after a 401 before the
//! upstream is asked again; never the caller's own key sent upstream.

use std::collections::{BTreeMap, BTreeSet};

use mcpsim_gateway::GatewayEvent;

use super::{check, Check};
use crate::scenario::Scenario;
use crate::trace::What;
use crate::world::Outcome;

/// The shortest token lifetime any token server of the scenario gives a
/// gateway with these settings, in ms (the lenient end of the window).
fn shortest_ttl_ms(scenario: &Scenario, host: &str) -> u64 {
    let Some(g) = scenario.gateways.iter().find(|g| g.host == host) else {
        return 0;
    };
    let s = &g.settings;
    scenario
        .token_servers
        .iter()
        .map(|t| match t.config.expires_in_s {
            Some(e) => e
                .saturating_sub(s.token_expiry_skew_s)
                .max(s.token_ttl_floor_s),
            None => s.token_default_ttl_s,
        })
        .min()
        .unwrap_or(0)
        * 1_000
}

pub(crate) fn check_tokens(scenario: &Scenario, outcome: &Outcome) -> Check {
    let trace = &outcome.trace;
    let mut findings = Vec::new();
    let restarted = |host: &str, from: u64, to: u64| {
        scenario.faults.iter().any(|f| {
            f.verb.hosts().contains(&host)
                && matches!(
                    f.verb,
                    crate::scenario::Verb::Crash { .. } | crate::scenario::Verb::Bounce { .. }
                )
                && f.at_ms >= from
                && f.at_ms <= to
        })
    };

    // 1. One fetch per validity window, unless something asked for another.
    // (host, server) -> (last fetch, reason for a new one seen since)
    let mut last: BTreeMap<(String, String), (u64, bool)> = BTreeMap::new();
    for e in trace {
        let What::Gateway { event } = &e.what else {
            continue;
        };
        match event {
            GatewayEvent::TokenFetched { server_id, .. } => {
                let key = (e.host.clone(), server_id.clone());
                if let Some((at, excused)) = last.get(&key) {
                    let window = shortest_ttl_ms(scenario, &e.host);
                    if !excused && !restarted(&e.host, *at, e.at_ms) && e.at_ms - at < window {
                        findings.push(format!(
                            "{}/{server_id}: a second token was fetched at {} ms, {} ms after the first, within its {window} ms validity and with no 401 or change in between",
                            e.host,
                            e.at_ms,
                            e.at_ms - at
                        ));
                    }
                }
                last.insert(key, (e.at_ms, false));
            }
            GatewayEvent::TokenInvalidated { server_id, .. }
            | GatewayEvent::Updated { server_id }
            | GatewayEvent::Deleted { server_id } => {
                if let Some(entry) = last.get_mut(&(e.host.clone(), server_id.clone())) {
                    entry.1 = true;
                }
            }
            _ => {}
        }
    }

    // 2. After an upstream answered 401, a gateway that fetches tokens for
    // it asks for a new token before it asks that upstream again.
    let upstream_of = |gateway: &str, server_id: &str| -> Option<String> {
        let seen = outcome
            .observed
            .servers
            .get(&(gateway.to_string(), server_id.to_string()))?;
        let uri: http::Uri = seen.url.as_deref()?.parse().ok()?;
        uri.host().map(str::to_string)
    };
    let mut token_users: BTreeSet<(String, String)> = BTreeSet::new();
    for e in trace {
        if let What::Gateway {
            event: GatewayEvent::TokenFetched { server_id, .. },
        } = &e.what
        {
            if let Some(upstream) = upstream_of(&e.host, server_id) {
                token_users.insert((e.host.clone(), upstream));
            }
        }
    }
    // (gateway, upstream) -> time of a 401 not yet followed by a fetch
    let mut pending: BTreeMap<(String, String), u64> = BTreeMap::new();
    for e in trace {
        match &e.what {
            What::Gateway {
                event: GatewayEvent::TokenFetched { server_id, .. },
            } => {
                if let Some(upstream) = upstream_of(&e.host, server_id) {
                    pending.remove(&(e.host.clone(), upstream));
                }
            }
            What::Http {
                to,
                method,
                status,
                took_ms,
                ..
            } => {
                let key = (e.host.clone(), to.clone());
                if !token_users.contains(&key) {
                    continue;
                }
                let sent = e.at_ms - took_ms;
                if let Some(rejected_at) = pending.get(&key) {
                    if method == "POST" && sent > *rejected_at {
                        findings.push(format!(
                            "{}: asked {to} again at {sent} ms with the token it rejected at {rejected_at} ms",
                            e.host
                        ));
                        pending.remove(&key);
                    }
                }
                // A 401 to a session's closing DELETE is cleanup whose
                // answer a client may ignore; a 401 to a request is not.
                if *status == Some(401) && method == "POST" {
                    pending.insert(key, e.at_ms);
                }
            }
            What::Note { text } if e.host == "sim" => {
                if let Some(gone) = text
                    .strip_prefix("crash ")
                    .or_else(|| text.strip_prefix("bounce "))
                {
                    pending.retain(|(g, _), _| g != gone);
                }
            }
            _ => {}
        }
    }

    // 3. The operator's own key never reaches an upstream.
    if let Some(key) = &scenario.operator.api_key {
        for (host, server) in &outcome.mcp_servers {
            if server.rejected_bearers().iter().any(|b| b == key) {
                findings.push(format!(
                    "{host} was sent the caller's own Authorization instead of the server's credentials"
                ));
            }
        }
    }
    check("token_discipline", findings)
}
