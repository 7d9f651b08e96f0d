//! Cancellation hygiene: every discovery attempt ends with one recorded
//! outcome or cancellation (or goes with its crashed process); a
//! cancellation is followed by the update or delete that caused it; no
//! attempt still runs, uncancelled, when the next starts; no status
//! changes after a delete.
//!
//! Inside view: attempts are invisible from the outside, so this checker
//! needs the system under test's own events ([`mcpsim_sut::GatewayEvent`]),
//! and is not applicable to a gateway that reports none.

use std::collections::{BTreeMap, BTreeSet};

use mcpsim_sut::{CancelReason, GatewayEvent};

use super::{check, not_applicable, unknown_bound_ms, Check, Evidence};
use crate::scenario::Verb;
use crate::trace::{TraceEvent, What};

/// The gateway event after index `i` on the same host about `server`.
fn next_about<'a>(
    trace: &'a [TraceEvent],
    i: usize,
    host: &str,
    server: &str,
) -> Option<&'a GatewayEvent> {
    trace[i + 1..].iter().find_map(|e| match &e.what {
        What::Gateway { event } if e.host == host && event.server_id() == Some(server) => {
            Some(event)
        }
        _ => None,
    })
}

pub(crate) fn check_hygiene(e: &Evidence<'_>) -> Check {
    const NAME: &str = "cancellation_hygiene";
    if let Some(why) = e.no_events {
        return not_applicable(NAME, why);
    }
    let trace = e.trace;
    let mut findings = Vec::new();
    // (host, server) -> (attempt, started at)
    let mut open: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    let mut ended: BTreeSet<(String, u64)> = BTreeSet::new();
    let mut deleted: BTreeSet<(String, String)> = BTreeSet::new();
    for (i, ev) in trace.iter().enumerate() {
        let host = ev.host.clone();
        let event = match &ev.what {
            What::Gateway { event } => event,
            // A crashed or restarted process takes its attempts with it.
            What::Fault {
                verb: Verb::Crash { host: gone } | Verb::Bounce { host: gone },
            } => {
                open.retain(|(h, _), _| h != gone);
                // A new process counts its attempts from 1 again.
                ended.retain(|(h, _)| h != gone);
                deleted.retain(|(h, _)| h != gone);
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
                        ev.at_ms
                    ));
                }
                open.insert(key, (*attempt, ev.at_ms));
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
                        ev.at_ms
                    ));
                } else if open.get(&key).map(|(a, _)| a) == Some(attempt) {
                    open.remove(&key);
                } else {
                    findings.push(format!(
                        "{host}/{server_id}: attempt {attempt} {what} at {} ms but was not the current attempt (a superseded result)",
                        ev.at_ms
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
                            ev.at_ms,
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
                        ev.at_ms
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
                    ev.at_ms
                ));
            }
            _ => {}
        }
    }
    let end = e.outcome.records.end_ms;
    for ((host, server_id), (attempt, started)) in open {
        let bound = unknown_bound_ms(e, &host);
        if end.saturating_sub(started) > bound {
            findings.push(format!(
                "{host}/{server_id}: attempt {attempt} started at {started} ms and never ended (no outcome, no cancellation) by {end} ms"
            ));
        }
    }
    check(NAME, findings)
}
