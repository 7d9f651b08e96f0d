//! Consistency of every health record the operator saw, at every poll; no
//! listed server vanishes unless a delete the gateway took (or did not
//! answer) removed it, or its gateway restarted; an unhealthy server lists
//! no tools, whenever the operator reads them between two polls that show
//! it unhealthy after the same check; at the end a healthy server
//! lists exactly the tools of the fake behind it, in a tool list its
//! gateway's dialect can read; the tools of every server at once (the
//! aggregate list) are the union of each server's own, read just before.
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

use std::collections::{BTreeMap, BTreeSet};

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
    unhealthy_lists_no_tools(e, &mut findings);
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
    findings.extend(aggregate_findings(e));
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

/// The aggregate rule: an aggregate list answers (no error status), and
/// holds every tool that a server's own list, read just before on the same
/// gateway, showed, and nothing else.
///
/// A server's own read is compared only when nothing could have changed
/// its tools between that read and the aggregate's: no write that may
/// have landed on the gateway in the window (answered, plus a sync and a
/// store call for a gateway that learns it from the store), no fault on the
/// gateway, on the server's upstream or on a token server in the window (a
/// crash of the upstream at any time before: the gateway learns of it at
/// its next check), and no request of the gateway that reached the
/// server's upstream or a token server in the window or is still
/// unanswered (an attempt that ended there). Tools beyond the union are
/// judged only when every server of the gateway was read and compared.
fn aggregate_findings(e: &Evidence<'_>) -> Vec<String> {
    let records = &e.outcome.records;
    let mut findings = Vec::new();
    let slack = 4 * e.hop_ms();
    let token_hosts: Vec<&str> = e
        .scenario
        .token_servers
        .iter()
        .map(|t| t.host.as_str())
        .collect();
    for (k, aggregate) in records.aggregate_reads.iter().enumerate() {
        let gateway = aggregate.gateway.as_str();
        let end = aggregate.ended_ms;
        let names = match &aggregate.tools {
            Ok(names) => names,
            Err(error) if error == "no answer" => continue,
            Err(error) => {
                if !e.faults.restarted(gateway, aggregate.sent_ms, end) {
                    findings.push(format!(
                        "{gateway} at {end} ms: the tools of every server could not be read: {error}"
                    ));
                }
                continue;
            }
        };
        // This round's own reads: after the previous aggregate of the same
        // gateway, before this one.
        let since = records.aggregate_reads[..k]
            .iter()
            .filter(|a| a.gateway == gateway)
            .map(|a| a.ended_ms)
            .max()
            .unwrap_or(0);
        let reads: Vec<_> = records
            .tool_reads
            .iter()
            .filter(|r| {
                r.gateway == gateway && r.sent_ms >= since && r.ended_ms <= aggregate.sent_ms
            })
            .collect();
        let listed: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        let mut union: BTreeSet<&str> = BTreeSet::new();
        let mut all_compared = !reads.is_empty();
        for read in reads {
            let Ok(tools) = &read.tools else {
                all_compared = false;
                continue;
            };
            union.extend(tools.iter().map(|t| t.exposed.as_str()));
            let start = read.sent_ms.saturating_sub(slack);
            if !quiet(e, gateway, &read.server_id, &token_hosts, start, end) {
                all_compared = false;
                continue;
            }
            let missing: Vec<&str> = tools
                .iter()
                .map(|t| t.exposed.as_str())
                .filter(|t| !listed.contains(t))
                .collect();
            if !missing.is_empty() {
                findings.push(format!(
                    "{gateway} at {end} ms: the tools of every server leave out {} of the {} tools {} listed at {} ms ({})",
                    missing.len(),
                    tools.len(),
                    read.server_id,
                    read.ended_ms,
                    missing.join(", ")
                ));
            }
        }
        if all_compared {
            let extra: Vec<&str> = listed.difference(&union).copied().collect();
            if !extra.is_empty() {
                findings.push(format!(
                    "{gateway} at {end} ms: the tools of every server list {} no server's own list shows ({})",
                    extra.len(),
                    extra.join(", ")
                ));
            }
        }
    }
    findings
}

/// Whether nothing could have changed the tools `gateway` shows for
/// `server_id` in `start..=end` (see [`aggregate_findings`]).
fn quiet(
    e: &Evidence<'_>,
    gateway: &str,
    server_id: &str,
    token_hosts: &[&str],
    start: u64,
    end: u64,
) -> bool {
    let records = &e.outcome.records;
    // A write lands where it was sent when it is answered, and on a gateway
    // that shares its store within a sync and a store call; whatever it
    // starts upstream after that shows in the upstream's log.
    let sync_ms = e.declared(gateway).map_or(0, |d| {
        d.sync_interval_ms.unwrap_or(0) + d.store_budget_ms.unwrap_or(0)
    });
    let lands_until = |w: &crate::operator::WriteRecord| {
        w.answered_ms.unwrap_or(w.sent_ms + w.patience_ms) + sync_ms + 4 * e.hop_ms()
    };
    if records
        .writes
        .iter()
        .any(|w| w.maybe_applied() && lands_until(w) >= start && w.sent_ms <= end)
    {
        return false;
    }
    let upstream = e
        .seen
        .get(&(gateway.to_string(), server_id.to_string()))
        .and_then(|s| e.upstream_host(s.view.url.as_deref()));
    let Some(upstream) = upstream else {
        return false;
    };
    let crashed = e.scenario.faults.iter().any(|f| {
        f.at_ms <= end
            && matches!(&f.verb, crate::scenario::Verb::Crash { host } if *host == upstream)
    });
    let mut hosts = vec![gateway, upstream.as_str()];
    hosts.extend(token_hosts);
    if crashed
        || hosts
            .iter()
            .any(|h| e.faults.touched_between(h, start, end))
    {
        return false;
    }
    let busy = |peer: Option<&str>, received: u64, answered: Option<u64>| {
        peer == Some(gateway) && received <= end && answered.is_none_or(|a| a >= start)
    };
    let mcp_busy = e.outcome.mcp_requests.get(&upstream).is_some_and(|log| {
        log.records
            .iter()
            .any(|r| busy(r.peer.as_deref(), r.received_ms, r.answered_ms))
    });
    let token_busy = token_hosts.iter().any(|host| {
        e.outcome.token_requests.get(*host).is_some_and(|log| {
            log.records
                .iter()
                .any(|r| busy(r.peer.as_deref(), r.received_ms, r.answered_ms))
        })
    });
    !mcp_busy && !token_busy
}

/// An unhealthy server lists no tools: a read of its tools, made while the
/// operator polled because a poll showed it unhealthy, that lists some,
/// when the next poll of that gateway still shows it unhealthy after the
/// same check (no check of it ended in between).
fn unhealthy_lists_no_tools(e: &Evidence<'_>, findings: &mut Vec<String>) {
    let records = &e.outcome.records;
    for read in &records.unhealthy_reads {
        let Ok(tools) = &read.tools else {
            continue;
        };
        if tools.is_empty() {
            continue;
        }
        let next = records.polls.iter().find(|p| {
            p.gateway == read.gateway && p.phase == Phase::Settling && p.sent_ms >= read.ended_ms
        });
        let still = next
            .and_then(|p| p.servers.as_ref().ok())
            .and_then(|rows| rows.iter().find(|r| r.server_id == read.server_id))
            .is_some_and(|r| {
                r.status == Status::Unhealthy
                    && r.last_health_check.as_deref() == Some(read.checked.as_str())
            });
        if still {
            findings.push(format!(
                "{}/{} at {} ms: unhealthy since its check at {}, yet lists {} tools",
                read.gateway,
                read.server_id,
                read.sent_ms,
                read.checked,
                tools.len()
            ));
        }
    }
}
