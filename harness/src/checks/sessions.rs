//! Session hygiene: every MCP session a gateway opens upstream, it closes.
//!
//! The rule, judged per session from the fakes' own records: a session is
//! opened when an `initialize` from a gateway is answered with a session id
//! (the record's `assigned_session`), and is *in use* once that gateway
//! sends any later request carrying the id. A session in use must be closed
//! by that gateway with a `DELETE` carrying its id, received by the upstream
//! within `listing_budget_ms + 4 hops` of the last answer in the session
//! (the gateway's declared budget of one listing: a gateway may hold a
//! session for one operation, not longer).
//!
//! A session is not judged when it ended, or may have ended, for a stated
//! reason:
//! - the gateway never used it: it may never have received the answer that
//!   named it (a timeout racing the answer);
//! - the upstream ended it: a request in it was answered 404 (expired,
//!   terminated), so there is nothing left to close;
//! - the upstream refused the credentials in it (401 or 403): a `DELETE`
//!   with them would be refused too;
//! - the gateway kept it to listen: a GET in it was answered 200 (an open
//!   stream, which has no last answer to time the `DELETE` from);
//! - a request in it was not answered normally: the gateway gave up on it
//!   (abandoned), it was never answered by the end of the run, its answer
//!   was cut, or an injected failure answered it; a gateway may give up on
//!   an upstream that misbehaves without a goodbye;
//! - an update or a delete of a server that may point at this upstream,
//!   sent to the gateway (or to one sharing its store), may have been
//!   applied while the session was in use: a gateway may cancel the attempt
//!   it served, and a cancelled exchange leaves without a goodbye (the
//!   reference gateway does);
//! - its requests ran to the end of the declared listing budget (the last
//!   answer came within 8 hops of `listing_budget_ms` after it opened): the
//!   gateway's own budget may have run out between two requests;
//! - a fault named the gateway or the upstream from a token and a listing
//!   budget and 8 hops before it opened until its bound (a restart of
//!   either, a partition, a hold: a held request reaches the upstream after
//!   the gateway may have given up on it);
//! - the run ended before its bound.
//!
//! Outside-in: it reads the fakes' request logs, the faults and what the
//! system under test declared, never the gateway's events.

use std::collections::BTreeMap;

use mcpsim_fakes::{McpOutcome, McpRequestRecord};

use super::{check, registrations, Check, Evidence};
use crate::operator::WriteKind;

/// Until when the run must go on for every session a gateway has in use
/// and not yet closed to be judged: the latest bound (last answer plus the
/// gateway's listing budget and 4 hops) of such a session, if any is
/// bound in the future of `now_ms`. A session ended for one of the stated
/// reasons (refused, or a request in it not answered normally, or still
/// unanswered, or kept to listen on a GET stream) owes nothing. The operator waits for
/// this before it ends the run, so that a session left open after its
/// last exchange (a tool call's, at the end of a run) is judged.
pub(crate) fn open_until<'u>(
    upstreams: impl IntoIterator<Item = &'u mcpsim_fakes::McpServer>,
    hosts: &BTreeMap<String, mcpsim_sut::Declared>,
    hop_ms: u64,
    now_ms: u64,
) -> Option<u64> {
    let mut until = None;
    for upstream in upstreams {
        let log = upstream.requests();
        let records = &log.records;
        let mut sessions: BTreeMap<(&str, &str), Vec<&McpRequestRecord>> = BTreeMap::new();
        for r in records {
            if let (Some(peer), Some(session)) = (&r.peer, &r.session) {
                sessions.entry((peer, session)).or_default().push(r);
            }
        }
        for ((peer, _), requests) in sessions {
            let Some(declared) = hosts.get(peer) else {
                continue;
            };
            let closed = requests.iter().any(|r| r.http_method == "DELETE");
            let ended = requests.iter().any(|r| {
                matches!(r.status, Some(401 | 403 | 404))
                    || r.outcome != McpOutcome::Answered
                    || (r.http_method == "GET" && r.status == Some(200))
            });
            if closed || ended {
                continue;
            }
            let last_ms = requests
                .iter()
                .map(|r| r.answered_ms.unwrap_or(r.received_ms))
                .max()
                .unwrap_or(0);
            let bound_ms = last_ms + declared.listing_budget_ms + 4 * hop_ms;
            if bound_ms > now_ms {
                until = until.max(Some(bound_ms));
            }
        }
    }
    until
}

/// A session found open at its bound, for the finding.
struct Left {
    session: String,
    opened_ms: u64,
    last_ms: u64,
    /// When its DELETE came, if it came late.
    closed_ms: Option<u64>,
}

pub(crate) fn check_sessions(e: &Evidence<'_>) -> Check {
    let mut findings = Vec::new();
    let hop_ms = e.hop_ms();
    let end_ms = e.outcome.records.end_ms;
    let stints = registrations::stints(e);
    // Whether an update or a delete concerning the upstream may have been
    // applied on the gateway within `from..=to`: from when it was sent until
    // its answer (or the operator's patience), and a sync later on a
    // gateway that learns it from the store.
    let cancels = |gateway: &str, upstream: &str, from_ms: u64, to_ms: u64| {
        let writes = &e.outcome.records.writes;
        stints
            .iter()
            .filter(|s| s.gateways.iter().any(|g| g == gateway) && s.may_point_at(upstream))
            .flat_map(|s| s.writes.iter().copied())
            .filter_map(|i| writes.get(i))
            .filter(|w| w.kind != WriteKind::Create)
            .any(|w| {
                let answered_ms = w.answered_ms.unwrap_or(w.sent_ms + w.patience_ms);
                let applied_by_ms = if w.gateway == gateway {
                    answered_ms
                } else {
                    // A fault that kept the gateway from its store puts the
                    // sync off until after it.
                    let mut hosts = vec![gateway];
                    hosts.extend(e.store_of(gateway));
                    let from = answered_ms.max(e.faults.last_touching_at_or_before(&hosts, to_ms));
                    e.declared(gateway).map_or(from, |d| {
                        from + d.sync_interval_ms.unwrap_or(0) + 2 * d.store_budget_ms.unwrap_or(0)
                    })
                };
                w.sent_ms <= to_ms && applied_by_ms >= from_ms
            })
    };
    for (upstream, log) in &e.outcome.mcp_requests {
        let records = &log.records;
        // Every request that carried a session, by (peer, session).
        let mut carried: BTreeMap<(&str, &str), Vec<&McpRequestRecord>> = BTreeMap::new();
        for r in records {
            if let (Some(peer), Some(session)) = (&r.peer, &r.session) {
                carried
                    .entry((peer.as_str(), session.as_str()))
                    .or_default()
                    .push(r);
            }
        }
        // Per gateway: sessions judged, and those left open.
        let mut judged: BTreeMap<&str, (usize, Vec<Left>)> = BTreeMap::new();
        for opening in records {
            let (Some(peer), Some(session)) = (&opening.peer, &opening.assigned_session) else {
                continue;
            };
            let Some(declared) = e.declared(peer) else {
                continue;
            };
            let Some(later) = carried.get(&(peer.as_str(), session.as_str())) else {
                continue;
            };
            let (closes, uses): (Vec<&McpRequestRecord>, Vec<&McpRequestRecord>) =
                later.iter().partition(|r| r.http_method == "DELETE");
            let exchange = || std::iter::once(opening).chain(uses.iter().copied());
            let ended_for_a_reason = exchange().any(|r| {
                matches!(r.status, Some(401 | 403 | 404))
                    || r.outcome != McpOutcome::Answered
                    || (r.http_method == "GET" && r.status == Some(200))
            });
            if ended_for_a_reason {
                continue;
            }
            let opened_ms = opening.received_ms;
            let last_ms = exchange()
                .map(|r| r.answered_ms.unwrap_or(r.received_ms))
                .max()
                .unwrap_or(opened_ms);
            if last_ms + 8 * hop_ms >= opened_ms + declared.listing_budget_ms {
                continue;
            }
            let bound_ms = last_ms + declared.listing_budget_ms + 4 * hop_ms;
            // A request held by a fault reaches the upstream late, after the
            // gateway may have given up on it: from a budget before it opened.
            let token_ms = declared.token_budget_ms.unwrap_or(0);
            let from_ms =
                opened_ms.saturating_sub(token_ms + declared.listing_budget_ms + 8 * hop_ms);
            let disturbed = [peer.as_str(), upstream.as_str()]
                .iter()
                .any(|host| e.faults.touched_between(host, from_ms, bound_ms))
                || cancels(peer, upstream, opened_ms, last_ms + 4 * hop_ms);
            if disturbed || end_ms < bound_ms {
                continue;
            }
            let entry = judged.entry(peer.as_str()).or_default();
            entry.0 += 1;
            let closed_ms = closes.iter().map(|r| r.received_ms).min();
            if closed_ms.is_none_or(|at| at > bound_ms) {
                entry.1.push(Left {
                    session: session.clone(),
                    opened_ms,
                    last_ms,
                    closed_ms,
                });
            }
        }
        for (peer, (count, left)) in judged {
            if left.is_empty() {
                continue;
            }
            let budget_ms = e.declared(peer).map_or(0, |d| d.listing_budget_ms);
            let examples: Vec<String> = left
                .iter()
                .take(3)
                .map(|l| {
                    let closed = match l.closed_ms {
                        Some(at) => format!("closed only at {at} ms"),
                        None => "never closed".to_string(),
                    };
                    format!(
                        "{} (opened at {} ms, last answer at {} ms, {closed})",
                        l.session, l.opened_ms, l.last_ms
                    )
                })
                .collect();
            findings.push(format!(
                "{peer} left {} of the {count} sessions it used at {upstream} open: {}{}; a session must be closed with DELETE within {} ms of its last answer",
                left.len(),
                examples.join(", "),
                if left.len() > 3 { ", ..." } else { "" },
                budget_ms + 4 * hop_ms,
            ));
        }
    }
    check("session_hygiene", findings)
}
