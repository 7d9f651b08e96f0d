//! Consistency of every health record the operator saw, at every poll; no
//! listed server vanishes unless a delete the gateway took (or did not
//! answer) removed it, or its gateway restarted; an unhealthy server lists
//! no tools, whenever the operator reads them between two polls that show
//! it unhealthy after the same check; at the end a healthy server lists
//! exactly the tools of the fake behind it, in a tool list its gateway's
//! dialect can read.
//!
//! Outside-in: it reads the operator's polls, writes and tool reads, the
//! faults, and the fakes' tool lists.

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
    check("consistency", findings)
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
