//! Cancellation hygiene: every discovery attempt ends with one recorded
//! outcome; an attempt is cancelled only by supersession, delete or
//! shutdown, and the trace says which; a superseded attempt never writes.

use std::collections::{BTreeMap, BTreeSet};

use mcpsim_gateway::{CancelReason, GatewayEvent};

use super::{check, Check};
use crate::scenario::Scenario;
use crate::trace::{TraceEvent, What};
use crate::world::Outcome;

/// The gateway event after index `i` on the same host about `server`.
fn next_about<'a>(
    trace: &'a [TraceEvent],
    i: usize,
    host: &str,
    server: &str,
) -> Option<&'a GatewayEvent> {
    trace[i + 1..].iter().find_map(|e| match &e.what {
        What::Gateway { event } if e.host == host && event_server(event) == Some(server) => {
            Some(event)
        }
        _ => None,
    })
}

fn event_server(event: &GatewayEvent) -> Option<&str> {
    use GatewayEvent::*;
    match event {
        Registered { server_id, .. }
        | Updated { server_id }
        | Deleted { server_id }
        | DiscoveryStarted { server_id, .. }
        | TokenFetched { server_id, .. }
        | TokenInvalidated { server_id, .. }
        | DiscoveryFinished { server_id, .. }
        | DiscoveryCancelled { server_id, .. }
        | StatusChanged { server_id, .. }
        | RowSkipped { server_id, .. } => Some(server_id),
        SyncFailed { .. } => None,
    }
}

pub(crate) fn check_hygiene(scenario: &Scenario, outcome: &Outcome) -> Check {
    let trace = &outcome.trace;
    let mut findings = Vec::new();
    // (host, server) -> (attempt, started at)
    let mut open: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    let mut ended: BTreeSet<(String, u64)> = BTreeSet::new();
    let mut deleted: BTreeSet<(String, String)> = BTreeSet::new();
    for (i, e) in trace.iter().enumerate() {
        let host = e.host.clone();
        let event = match &e.what {
            What::Gateway { event } => event,
            // A crashed or restarted process takes its attempts with it.
            What::Note { text } if e.host == "sim" => {
                if let Some(gone) = text
                    .strip_prefix("crash ")
                    .or_else(|| text.strip_prefix("bounce "))
                {
                    open.retain(|(h, _), _| h != gone);
                    // A new process counts its attempts from 1 again.
                    ended.retain(|(h, _)| h != gone);
                    deleted.retain(|(h, _)| h != gone);
                }
                continue;
            }
            _ => continue,
        };
        match event {
            GatewayEvent::Registered { server_id, .. } => {
                deleted.remove(&(host, server_id.clone()));
            }
            GatewayEvent::DiscoveryStarted {
                server_id, attempt, ..
            } => {
                let key = (host.clone(), server_id.clone());
                if let Some((previous, _)) = open.get(&key) {
                    findings.push(format!(
                        "{host}/{server_id}: attempt {previous} was still running, uncancelled, when attempt {attempt} started at {} ms",
                        e.at_ms
                    ));
                }
                open.insert(key, (*attempt, e.at_ms));
            }
            GatewayEvent::DiscoveryFinished {
                server_id, attempt, ..
            }
            | GatewayEvent::DiscoveryCancelled {
                server_id, attempt, ..
            } => {
                let key = (host.clone(), server_id.clone());
                let what = if matches!(event, GatewayEvent::DiscoveryFinished { .. }) {
                    "finished"
                } else {
                    "was cancelled"
                };
                if !ended.insert((host.clone(), *attempt)) {
                    findings.push(format!(
                        "{host}/{server_id}: attempt {attempt} {what} at {} ms after it had already ended",
                        e.at_ms
                    ));
                } else if open.get(&key).map(|(a, _)| a) == Some(attempt) {
                    open.remove(&key);
                } else {
                    findings.push(format!(
                        "{host}/{server_id}: attempt {attempt} {what} at {} ms but was not the current attempt (a superseded result)",
                        e.at_ms
                    ));
                }
                if let GatewayEvent::DiscoveryCancelled { reason, .. } = event {
                    let next = next_about(trace, i, &host, server_id);
                    let explained = match reason {
                        CancelReason::Superseded => {
                            matches!(next, Some(GatewayEvent::Updated { .. }))
                        }
                        CancelReason::Deleted => {
                            matches!(next, Some(GatewayEvent::Deleted { .. }))
                        }
                        CancelReason::Shutdown => true,
                    };
                    if !explained {
                        findings.push(format!(
                            "{host}/{server_id}: attempt {attempt} was cancelled as {reason:?} at {} ms, but no {} follows it",
                            e.at_ms,
                            if *reason == CancelReason::Deleted { "delete" } else { "update" }
                        ));
                    }
                }
            }
            GatewayEvent::Deleted { server_id } => {
                let key = (host.clone(), server_id.clone());
                if let Some((attempt, _)) = open.remove(&key) {
                    findings.push(format!(
                        "{host}/{server_id}: deleted at {} ms with attempt {attempt} still running, uncancelled",
                        e.at_ms
                    ));
                }
                deleted.insert(key);
            }
            GatewayEvent::StatusChanged { server_id, to, .. }
                if deleted.contains(&(host.clone(), server_id.clone())) =>
            {
                findings.push(format!(
                    "{host}/{server_id}: status changed to {} at {} ms after the server was deleted",
                    to.as_str(),
                    e.at_ms
                ));
            }
            _ => {}
        }
    }
    let end = outcome.observed.end_ms;
    for ((host, server_id), (attempt, started)) in open {
        let bound = super::liveness::unknown_bound_ms(scenario, &host);
        if end.saturating_sub(started) > bound {
            findings.push(format!(
                "{host}/{server_id}: attempt {attempt} started at {started} ms and never ended (no outcome, no cancellation) by {end} ms"
            ));
        }
    }
    check("cancellation_hygiene", findings)
}
