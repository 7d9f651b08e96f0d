//! Consistency of every health record the operator saw, at every poll; no
//! listed server vanishes unless a delete the gateway took (or did not
//! answer) removed it, or its gateway restarted; at the end a healthy server
//! lists exactly the tools of the fake behind it, in a tool list its
//! gateway's dialect can read.
//!
//! Freshness: a gateway that declares it follows
//! `notifications/tools/list_changed` and was sent one on an open stream
//! (the fake logs each notice it writes, with the session and the peer)
//! starts listing again at once: within a token budget, a listing budget
//! and 6 hops of the notice, the fake receives from that gateway an
//! `initialize` or a `tools/list` (or its token server a token request),
//! so that the new tool set shows without waiting for a re-check. Not
//! judged: a notice whose bound the run did not reach, one near a fault
//! naming the gateway or the upstream (from a listing budget before the
//! notice to its bound), and one near an update or a delete sent to any
//! gateway (which may end or replace the listening session: from a listing
//! budget before the notice, less a sync and two store budgets and 6 hops
//! after the write's answer, to its bound).
//!
//! Outside-in: it reads the operator's polls, writes and tool reads, the
//! faults, the fakes' tool lists, request logs and notices.

use std::collections::BTreeMap;

use mcpsim_fakes::McpOutcome;
use mcpsim_sut::Status;

use super::{check, Check, Evidence};
use crate::operator::{Phase, WriteKind};

pub(crate) fn check_consistency(e: &Evidence<'_>) -> Check {
    let records = &e.outcome.records;
    let mut findings = Vec::new();
    // (gateway, id) -> (last poll that listed it, gone since)
    let mut listed: BTreeMap<(String, String), (u64, bool)> = BTreeMap::new();
    // A delete the gateway refused changed nothing, so it excuses nothing.
    let deletes_sent = |id: &str| {
        records.writes.iter().any(|w| {
            w.kind == WriteKind::Delete && w.server_id.as_deref() == Some(id) && w.maybe_applied()
        })
    };
    for poll in records.polls.iter().filter(|p| p.phase == Phase::Settling) {
        let now = poll.answered_ms;
        let rows = match &poll.servers {
            Ok(rows) => rows,
            Err(error) if error != "no answer" => {
                findings.push(format!(
                    "{} at {now} ms: its server list could not be read: {error}",
                    poll.gateway
                ));
                continue;
            }
            Err(_) => continue,
        };
        for row in rows {
            let last = row.last_health_check.is_some();
            let mut problems = Vec::new();
            if e.reports_check_time && last && row.status == Status::Unknown {
                problems.push("last_health_check is set but status is unknown");
            }
            if row.status == Status::Unhealthy && row.error.is_none() {
                problems.push("status is unhealthy without an error");
            }
            if row.status == Status::Healthy && row.error.is_some() {
                problems.push("status is healthy with an error");
            }
            if e.reports_check_time && row.status != Status::Unknown && !last {
                problems.push("status is settled without last_health_check");
            }
            for p in problems {
                findings.push(format!(
                    "{}/{} at {now} ms: {p}",
                    poll.gateway, row.server_id
                ));
            }
            listed.insert((poll.gateway.clone(), row.server_id.clone()), (now, false));
        }
        for ((gateway, id), (last_listed, gone)) in listed.iter_mut() {
            if gateway != &poll.gateway || *gone || rows.iter().any(|r| &r.server_id == id) {
                continue;
            }
            // A server disappears only by a delete, or for a while when its
            // gateway restarts.
            if !deletes_sent(id) && !e.faults.restarted(gateway, *last_listed, now) {
                findings.push(format!(
                    "{gateway}/{id} at {now} ms: listed at {last_listed} ms, now gone though nothing deleted it"
                ));
            }
            *gone = true;
        }
    }
    for seen in e.seen.values().filter(|s| !s.deleted && s.serves_tools) {
        let name = &seen.view.name;
        if seen.view.status != Status::Healthy {
            if !seen.tools.is_empty() {
                findings.push(format!(
                    "{name} is {} but lists {} tools",
                    seen.view.status,
                    seen.tools.len()
                ));
            }
            continue;
        }
        let Some(host) = e.upstream_host(seen.view.url.as_deref()) else {
            continue;
        };
        let Some(fake) = e.outcome.mcp_servers.get(&host) else {
            continue;
        };
        // A gateway that took an answer the fake was told to distort (a
        // padded tool list, say) lists what it was sent, not the fake's
        // own tools: only a listing the fake answered as itself is judged.
        let last_listing = e.outcome.mcp_requests.get(&host).and_then(|log| {
            log.records.iter().rev().find(|r| {
                r.rpc_method.as_deref() == Some("tools/list")
                    && r.peer.as_deref() == Some(seen.gateway.as_str())
            })
        });
        if last_listing.is_some_and(|r| r.outcome != McpOutcome::Answered) {
            continue;
        }
        // The tool set the fake had when the run ended (it may change).
        let mut expected = fake.tool_names_at(records.end_ms);
        expected.sort();
        let mut tools: Vec<String> = seen.tools.iter().map(|t| t.upstream.clone()).collect();
        tools.sort();
        if let Some(why) = &seen.tools_unreadable {
            findings.push(format!(
                "{name} is healthy, but its tool list could not be read: {why}"
            ));
        } else if tools != expected {
            findings.push(format!(
                "{name} is healthy with {} tools, but its MCP server has {}",
                tools.len(),
                expected.len()
            ));
        }
    }
    findings.extend(freshness(e));
    check("consistency", findings)
}

/// The freshness rule (see the header): a notice delivered to a gateway
/// that follows them is acted on within its bound.
fn freshness(e: &Evidence<'_>) -> Vec<String> {
    let mut findings = Vec::new();
    let records = &e.outcome.records;
    let hop_ms = e.hop_ms();
    for (host, fake) in &e.outcome.mcp_servers {
        let log = e.outcome.mcp_requests.get(host);
        for notice in fake.notices() {
            let Some(peer) = notice.peer.as_deref() else {
                continue;
            };
            let Some(declared) = e.declared(peer).filter(|d| d.follows_list_changed) else {
                continue;
            };
            let token_ms = declared.token_budget_ms.unwrap_or(0);
            let at_ms = notice.at_ms;
            let bound_ms = at_ms + token_ms + declared.listing_budget_ms + 6 * hop_ms;
            if records.end_ms < bound_ms {
                continue;
            }
            let from_ms = at_ms.saturating_sub(declared.listing_budget_ms);
            let disturbed = [peer, host.as_str()]
                .iter()
                .any(|h| e.faults.touched_between(h, from_ms, bound_ms));
            // An update or a delete may end or replace the listening
            // session, on the gateway that took it or, a sync later, on one
            // sharing its store: one applied before the notice was
            // delivered changed nothing the notice speaks of.
            let sync_ms =
                declared.sync_interval_ms.unwrap_or(0) + 2 * declared.store_budget_ms.unwrap_or(0);
            let rewritten = records.writes.iter().any(|w| {
                let answered_ms = w.answered_ms.unwrap_or(w.sent_ms + w.patience_ms);
                w.kind != WriteKind::Create
                    && w.sent_ms <= bound_ms
                    && answered_ms + sync_ms + 6 * hop_ms >= from_ms
            });
            if disturbed || rewritten {
                continue;
            }
            let within = |received_ms: u64| received_ms >= at_ms && received_ms <= bound_ms;
            let listed = log.is_some_and(|log| {
                log.records.iter().any(|r| {
                    r.peer.as_deref() == Some(peer)
                        && r.http_method == "POST"
                        && matches!(
                            r.rpc_method.as_deref(),
                            Some("initialize" | "tools/list") | None
                        )
                        && within(r.received_ms)
                })
            });
            let token = e.outcome.token_requests.values().any(|log| {
                log.records
                    .iter()
                    .any(|r| r.peer.as_deref() == Some(peer) && within(r.received_ms))
            });
            if !listed && !token {
                findings.push(format!(
                    "{peer}: {host} sent notifications/tools/list_changed at {at_ms} ms on its open stream, but {peer}, which follows such notices, did not list again by {bound_ms} ms (a token and a listing budget and 6 hops later)"
                ));
            }
        }
    }
    findings
}
