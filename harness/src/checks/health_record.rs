//! A health record that tells the truth, judged against what the upstreams
//! themselves saw. For each server on each gateway:
//!
//! - **never backwards**: `last_health_check` never shows an earlier time
//!   than it showed before;
//! - **moves forward**: once the upstreams saw an attempt end (its last
//!   request answered, and the session's `DELETE` too when one followed),
//!   the first poll sent two message times later shows a newer
//!   `last_health_check` than the last poll answered before that last
//!   request arrived. An attempt ends on an MCP request answered as asked,
//!   cut off, or answered an injected error status (a short body, over when
//!   answered), or on a token request the token server refused;
//! - **healthy only after a listing**: a poll that first shows a server
//!   `healthy` (after anything else) comes after its MCP server answered
//!   the last page of a `tools/list` (a page without a next cursor) from
//!   that gateway, sent since the server's latest create or update that
//!   gateway must know of (its own, or another's a sync bound old);
//! - **the stage named is the stage that failed**: an `unhealthy` error
//!   whose leading label names a stage (`token: ...`, `connect: ...`,
//!   `initialize: ...`, `list: ...`, or `tools/list: ...`) is judged when
//!   it first shows: some
//!   attempt that could have produced it (its last request ended after the
//!   previous poll, less the declared token and listing budgets) ended on a
//!   request of that stage, as the upstreams' logs show; unless a declared
//!   budget, counted from one of its requests, ran out just after an
//!   answer, when the next request may have been lost on its way. No
//!   request is of the `connect` stage: such an error says the MCP server
//!   was never reached, which is wrong when it was reachable all the while
//!   and attempts' requests (`initialize`, `tools/list`) reached it.
//!
//! What it does not judge: errors whose label is no stage word (LiteLLM's
//! "Health check was cancelled"): the dialect cannot tell their
//! stage, so neither can mcpsim; the stage of any error of a gateway that
//! words its errors its own way (a live gateway of another kind:
//! `Evidence::error_words` is false), whose `list:` need not name a stage
//! at all; a stage whose upstream a fault touched, or that was not
//! listening, or is no fake, in the window (its failures leave no record);
//! errors no attempt with a request the upstreams saw could have produced
//! (a definition the gateway will not even try); attempts during a tool
//! call, a write to the server (on a gateway that learns it from the store,
//! until a sync after the write, or after the last fault on the way, could
//! have brought it) or a restart of its gateway (an attempt superseded
//! there has no result to show); servers that share their MCP
//! server with another server on the same gateway (the upstreams cannot
//! tell whose request was whose); times the dialect does not read, or
//! cannot be read as RFC 3339.
//!
//! Outside-in: it reads the operator's polls, writes and tool calls, the
//! fakes' request logs and the faults, never the gateway's events.

use std::collections::{BTreeMap, BTreeSet};

use mcpsim_fakes::{McpOutcome, TokenOutcome};
use mcpsim_sut::{ServerView, Status};

use super::upstream::{self, Sent, Stage, Upstreams};
use super::{check, Check, Evidence};
use crate::operator::{Poll, WriteKind};
use crate::scenario::Verb;

pub(crate) fn check_health_record(e: &Evidence<'_>) -> Check {
    let mut findings = Vec::new();
    let rows = rows_by_server(e);
    for ((gateway, id), seen) in &rows {
        if e.reports_check_time {
            never_backwards(gateway, id, seen, &mut findings);
        }
        healthy_after_listing(e, gateway, id, seen, &mut findings);
        if e.error_words {
            stage_named(e, gateway, id, seen, &mut findings);
        }
        if e.reports_check_time {
            moves_forward(e, gateway, id, seen, &mut findings);
        }
    }
    check("health_record", findings)
}

/// Every poll of a gateway, with the row of one server where it listed it.
type Seen<'a> = Vec<(&'a Poll, Option<&'a ServerView>)>;

/// Per (gateway, server id) ever listed: every readable poll of that
/// gateway, in the order sent, with that server's row.
fn rows_by_server<'a>(e: &'a Evidence<'_>) -> BTreeMap<(String, String), Seen<'a>> {
    let polls: Vec<&Poll> = e
        .outcome
        .records
        .polls
        .iter()
        .filter(|p| p.servers.is_ok())
        .collect();
    let mut ids: BTreeSet<(String, String)> = BTreeSet::new();
    for p in &polls {
        for row in p.servers.iter().flatten() {
            ids.insert((p.gateway.clone(), row.server_id.clone()));
        }
    }
    ids.into_iter()
        .map(|(gateway, id)| {
            let seen = polls
                .iter()
                .filter(|p| p.gateway == gateway)
                .map(|p| {
                    let row = p.servers.iter().flatten().find(|r| r.server_id == id);
                    (*p, row)
                })
                .collect();
            ((gateway, id), seen)
        })
        .collect()
}

fn never_backwards(gateway: &str, id: &str, seen: &Seen<'_>, findings: &mut Vec<String>) {
    let mut latest: Option<(i64, &str)> = None;
    for (poll, row) in seen {
        let Some(text) = row.and_then(|r| r.last_health_check.as_deref()) else {
            continue;
        };
        let Some((at, _)) = instant_ms(text) else {
            continue;
        };
        match latest {
            Some((before, shown)) if at < before => {
                findings.push(format!(
                    "{gateway}/{id} at {} ms: last_health_check went back from {shown} to {text}",
                    poll.answered_ms
                ));
                return;
            }
            Some((before, _)) if at == before => {}
            _ => latest = Some((at, text)),
        }
    }
}

/// When the latest create or update of server `id` that `gateway` must
/// know of by `before_ms` was sent: one it took itself, or one another
/// gateway sharing its store took at least a sync bound earlier (as
/// `converges` has it), when no fault touched the store or `gateway`.
fn last_defined_ms(e: &Evidence<'_>, gateway: &str, id: &str, before_ms: u64) -> u64 {
    let sharing = crate::observe::sharing(e.scenario, gateway);
    let store = e.store_of(gateway);
    let synced_ms = e
        .declared(gateway)
        .and_then(|d| d.sync_interval_ms)
        .filter(|_| !e.faults.touch(gateway) && !store.is_some_and(|s| e.faults.touch(s)))
        .map(|sync| sync + 6 * e.hop_ms() + 1);
    e.outcome
        .records
        .writes
        .iter()
        .filter(|w| {
            w.kind != WriteKind::Delete
                && sharing.contains(&w.gateway)
                && w.server_id.as_deref() == Some(id)
                // Taken: one the operator got no answer to (or a 504) the
                // gateway may never have applied.
                && w.answer.as_ref().is_some_and(|a| a.accepted)
        })
        .filter(|w| {
            if w.gateway == gateway {
                w.sent_ms <= before_ms
            } else {
                synced_ms.is_some_and(|bound| w.sent_ms + bound <= before_ms)
            }
        })
        .map(|w| w.sent_ms)
        .max()
        .unwrap_or(0)
}

fn healthy_after_listing(
    e: &Evidence<'_>,
    gateway: &str,
    id: &str,
    seen: &Seen<'_>,
    findings: &mut Vec<String>,
) {
    let mut was_healthy = false;
    for (poll, row) in seen {
        let Some(row) = row else {
            was_healthy = false;
            continue;
        };
        let healthy = row.status == Status::Healthy;
        if healthy && !was_healthy {
            let Some(mcp) = e.upstream_host(row.url.as_deref()) else {
                was_healthy = healthy;
                continue;
            };
            let Some(log) = e.outcome.mcp_requests.get(&mcp) else {
                was_healthy = healthy;
                continue;
            };
            let since = last_defined_ms(e, gateway, id, poll.sent_ms);
            let listed = log.records.iter().any(|r| {
                r.peer.as_deref() == Some(gateway)
                    && r.rpc_method.as_deref() == Some("tools/list")
                    && r.outcome == McpOutcome::Answered
                    && r.status == Some(200)
                    && r.next_cursor == Some(false)
                    && r.received_ms >= since
                    && r.answered_ms.is_some_and(|at| at <= poll.answered_ms)
            });
            if !listed {
                findings.push(format!(
                    "{gateway}/{id} at {} ms: healthy, but {mcp} had answered no last page of a listing from {gateway} since {since} ms",
                    poll.answered_ms
                ));
            }
        }
        was_healthy = healthy;
    }
}

/// Whether a fault may have kept requests or answers between `gateway` and
/// `host` from getting through at some time in `from_ms..=to_ms`: a
/// restart of either, a cut of their link then or not yet healed, a crash
/// of `host` not yet bounced. Such losses leave no record at the upstream,
/// or a record of an answer the gateway never got.
fn cut_between(e: &Evidence<'_>, gateway: &str, host: &str, from_ms: u64, to_ms: u64) -> bool {
    let pair = |a: &str, b: &str| (a == gateway && b == host) || (a == host && b == gateway);
    let faults = &e.scenario.faults;
    faults.iter().any(|f| {
        let during = f.at_ms >= from_ms && f.at_ms <= to_ms;
        match &f.verb {
            Verb::Crash { host: h } if h == host && f.at_ms < from_ms => !faults.iter().any(|g| {
                matches!(&g.verb, Verb::Bounce { host: b } if b == host)
                    && g.at_ms > f.at_ms
                    && g.at_ms < from_ms
            }),
            Verb::Crash { host: h } | Verb::Bounce { host: h } => {
                during && (h == host || h == gateway)
            }
            Verb::Partition { a, b } | Verb::Hold { a, b } if pair(a, b) && f.at_ms < from_ms => {
                !faults.iter().any(|g| {
                    matches!(&g.verb, Verb::Repair { a: x, b: y } | Verb::Release { a: x, b: y } if pair(x, y))
                        && g.at_ms > f.at_ms
                        && g.at_ms < from_ms
                })
            }
            Verb::Partition { a, b }
            | Verb::Repair { a, b }
            | Verb::Hold { a, b }
            | Verb::Release { a, b } => during && pair(a, b),
        }
    })
}

/// Whether `gateway`'s requests may not have reached `host` at some time in
/// `from_ms..=to_ms`: a fault, or `host` not listening.
fn unreachable(e: &Evidence<'_>, gateway: &str, host: &str, from_ms: u64, to_ms: u64) -> bool {
    let deaf =
        |listening: bool, after: Option<u64>| !listening || after.is_some_and(|t| t > from_ms);
    let not_listening = e
        .scenario
        .mcp_servers
        .iter()
        .filter(|m| m.host == host)
        .any(|m| deaf(m.listening, m.listen_after_ms))
        || e.scenario
            .token_servers
            .iter()
            .filter(|t| t.host == host)
            .any(|t| deaf(t.listening, t.listen_after_ms));
    not_listening || cut_between(e, gateway, host, from_ms, to_ms)
}

/// How long before its result an attempt may have begun: the declared token
/// and listing budgets, and the messages around them.
fn attempt_ms(e: &Evidence<'_>, gateway: &str) -> u64 {
    let budgets = e
        .declared(gateway)
        .map_or(0, |d| d.token_budget_ms.unwrap_or(0) + d.listing_budget_ms);
    budgets + 8 * e.hop_ms()
}

fn stage_named(
    e: &Evidence<'_>,
    gateway: &str,
    id: &str,
    seen: &Seen<'_>,
    findings: &mut Vec<String>,
) {
    let mut before: Option<(Status, Option<&str>, u64)> = None;
    let mut judged: BTreeSet<&str> = BTreeSet::new();
    for (poll, row) in seen {
        let Some(row) = row else {
            before = None;
            continue;
        };
        let now = (row.status, row.error.as_deref());
        let changed = before.is_none_or(|(s, err, _)| (s, err) != now);
        let previous_sent_ms = before.map(|(.., sent)| sent);
        before = Some((now.0, now.1, poll.sent_ms));
        let (Status::Unhealthy, Some(error), true) = (row.status, row.error.as_deref(), changed)
        else {
            continue;
        };
        let Some(stage) = Stage::named_by(error) else {
            continue;
        };
        let Some(up) = upstream::upstreams(e, gateway, id, &row.name, row.url.as_deref()) else {
            continue;
        };
        if upstream::shared_upstream(e, gateway, id, &up.mcp) {
            continue;
        }
        let from_ms = previous_sent_ms.map_or(0, |t| t.saturating_sub(attempt_ms(e, gateway)));
        let to_ms = poll.answered_ms;
        let hosts: Vec<&str> = match stage {
            Stage::Token => up.token.iter().map(String::as_str).collect(),
            _ => vec![up.mcp.as_str()],
        };
        let unseen = stage == Stage::Token && up.token_unseen;
        if unseen
            || hosts
                .iter()
                .any(|h| unreachable(e, gateway, h, from_ms, to_ms))
        {
            continue;
        }
        let sent = upstream::sent_by(e, gateway, &up);
        let ended: Vec<&Sent<'_>> = (0..sent.len())
            .filter(|&i| upstream::may_end(e, &sent, i))
            .map(|i| &sent[i])
            .filter(|s| {
                let end = s.answered_ms.unwrap_or(s.received_ms);
                s.received_ms <= to_ms && end > from_ms
            })
            .collect();
        // A budget that ran out just after an answer may have cut the
        // gateway's next request on its way: the upstream never saw the
        // stage the attempt ended in.
        let budgets: Vec<u64> = e.declared(gateway).map_or(Vec::new(), |d| {
            d.token_budget_ms
                .into_iter()
                .chain([d.listing_budget_ms])
                .collect()
        });
        let slack = upstream::go_on_ms(e);
        let cut_short = ended.iter().any(|t| {
            let Some(answered_ms) = t.answered_ms else {
                return false;
            };
            sent.iter()
                .filter(|r| r.received_ms <= t.received_ms)
                .any(|r| {
                    budgets.iter().any(|b| {
                        let deadline = r.received_ms + b;
                        deadline + 2 * slack >= answered_ms && deadline <= answered_ms + slack
                    })
                })
        });
        // An attempt that sent nothing (a definition the gateway will not
        // try) leaves nothing to judge; a write in the window may have
        // changed what attempts could do.
        if ended.is_empty() || disturbed(e, gateway, id, from_ms, to_ms) {
            continue;
        }
        // `connect` says the MCP server was never reached: wrong only when
        // it was reachable all along and an attempt's request reached it.
        let reached = ended
            .iter()
            .any(|s| matches!(s.stage, Stage::Initialize | Stage::List));
        if stage == Stage::Connect && !reached {
            continue;
        }
        if cut_short || ended.iter().any(|s| s.stage == stage) || !judged.insert(error) {
            continue;
        }
        let last: Vec<String> = ended
            .iter()
            .map(|s| format!("{} at {} ms", s.stage.as_str(), s.received_ms))
            .collect();
        findings.push(format!(
            "{gateway}/{id} at {to_ms} ms: its error names the {} stage, but the attempts that could have ended it since {from_ms} ms ended on {}",
            stage.as_str(),
            last.join(", ")
        ));
    }
}

/// Whether server `id` was written to (updated, deleted, or created again)
/// between the two instants, on any gateway sharing `gateway`'s store: an
/// attempt running then may have been superseded.
fn disturbed(e: &Evidence<'_>, gateway: &str, id: &str, from_ms: u64, to_ms: u64) -> bool {
    let sharing = crate::observe::sharing(e.scenario, gateway);
    let writes = &e.outcome.records.writes;
    let to_id = |w: &&crate::operator::WriteRecord| {
        sharing.contains(&w.gateway) && w.server_id.as_deref() == Some(id)
    };
    let first_create = writes
        .iter()
        .filter(to_id)
        .find(|w| w.kind == WriteKind::Create)
        .map(|w| w.sent_ms);
    writes.iter().filter(to_id).any(|w| {
        w.sent_ms <= to_ms
            && reaches_until_ms(e, gateway, w, to_ms) >= from_ms
            && (w.kind != WriteKind::Create || first_create.is_some_and(|t| t < w.sent_ms))
    }) || e.faults.restarted(gateway, from_ms, to_ms)
}

/// Until when a write may still reach `gateway` (looking no later than
/// `to_ms`): at once on the gateway that took it; on another sharing its
/// store, at a sync, within a sync interval, two store budgets and 6 hops of
/// its answer, or of the last fault that touched this gateway or the store
/// since it was sent (a failed sync only puts it off).
fn reaches_until_ms(
    e: &Evidence<'_>,
    gateway: &str,
    w: &crate::operator::WriteRecord,
    to_ms: u64,
) -> u64 {
    if w.gateway == gateway {
        return w.sent_ms;
    }
    let Some(declared) = e.declared(gateway) else {
        return w.sent_ms;
    };
    let store = e.store_of(gateway);
    let answered_ms = w.answered_ms.unwrap_or(w.sent_ms + w.patience_ms);
    let touching: Vec<&str> = std::iter::once(gateway).chain(store).collect();
    let fault_ms = e.faults.last_touching_at_or_before(&touching, to_ms);
    let base_ms = if fault_ms >= w.sent_ms {
        answered_ms.max(fault_ms)
    } else {
        answered_ms
    };
    base_ms
        + declared.sync_interval_ms.unwrap_or(0)
        + 2 * declared.store_budget_ms.unwrap_or(0)
        + 6 * e.hop_ms()
}

/// Whether an operator's tool call through `gateway` was under way around
/// `at_ms`: its requests are a call's, not an attempt's.
fn calling(e: &Evidence<'_>, gateway: &str, at_ms: u64) -> bool {
    let slack = upstream::go_on_ms(e);
    e.outcome
        .records
        .tool_calls
        .iter()
        .any(|c| c.gateway == gateway && at_ms + slack >= c.sent_ms && at_ms <= c.ended_ms + slack)
}

fn moves_forward(
    e: &Evidence<'_>,
    gateway: &str,
    id: &str,
    seen: &Seen<'_>,
    findings: &mut Vec<String>,
) {
    // The MCP servers the server pointed at, over the run.
    let mut ups: Vec<Upstreams> = Vec::new();
    for (_, row) in seen {
        let Some(row) = row else { continue };
        if let Some(up) = upstream::upstreams(e, gateway, id, &row.name, row.url.as_deref()) {
            if !ups.iter().any(|u| u.mcp == up.mcp) {
                ups.push(up);
            }
        }
    }
    let alone = ups.len() == 1;
    for up in &ups {
        if upstream::shared_upstream(e, gateway, id, &up.mcp) {
            continue;
        }
        let sent = upstream::sent_by(e, gateway, up);
        for i in 0..sent.len() {
            let t = &sent[i];
            let Some(answered_ms) = t.answered_ms else {
                continue;
            };
            if !upstream::terminal(e, &sent, i) || calling(e, gateway, t.received_ms) {
                continue;
            }
            // An injected answer may go on after its record says answered
            // (an endless or huge body): when it ended, only the gateway
            // knows. An injected error status is a short body, over when
            // answered, and judged.
            if t.mcp.is_some_and(|r| !ends_when_answered(r)) {
                continue;
            }
            let failure_of_token = t.stage == Stage::Token
                && alone
                && e.outcome
                    .token_requests
                    .get(t.host)
                    .into_iter()
                    .flat_map(|log| log.records.iter())
                    .any(|r| {
                        r.peer.as_deref() == Some(gateway)
                            && r.received_ms == t.received_ms
                            && !matches!(r.outcome, TokenOutcome::Issued { .. })
                    });
            if t.stage == Stage::Token && !failure_of_token {
                continue;
            }
            // A gateway may write its result after closing the session.
            let close = t.session.and_then(|session| {
                sent[i + 1..].iter().find(|s| {
                    s.session == Some(session) && s.mcp.is_some_and(|r| r.http_method == "DELETE")
                })
            });
            let end_ms = match close {
                Some(close) => match close.answered_ms {
                    Some(at) => at.max(answered_ms),
                    None => continue,
                },
                None => answered_ms,
            };
            let due_ms = end_ms + 2 * e.hop_ms();
            let Some((after, Some(row))) = seen.iter().find(|(p, _)| p.sent_ms >= due_ms) else {
                continue;
            };
            let begun_ms = t.received_ms.saturating_sub(attempt_ms(e, gateway));
            let lost = std::iter::once(&up.mcp)
                .chain(&up.token)
                .any(|h| unreachable(e, gateway, h, begun_ms, after.answered_ms));
            if lost || disturbed(e, gateway, id, begun_ms, after.answered_ms) {
                continue;
            }
            let shown_before = seen
                .iter()
                .rev()
                .find(|(p, _)| p.answered_ms < t.received_ms)
                .and_then(|(_, row)| *row)
                .and_then(|r| r.last_health_check.as_deref());
            let shown_after = row.last_health_check.as_deref();
            if !newer(shown_after, shown_before) {
                findings.push(format!(
                    "{gateway}/{id}: an attempt ended at {end_ms} ms (its last request, {} at {} ms, answered), but at {} ms last_health_check is {} as before it",
                    t.stage.as_str(),
                    t.received_ms,
                    after.sent_ms,
                    shown_after.unwrap_or("none")
                ));
                return;
            }
        }
    }
}

/// Whether an MCP request's answer was over when its record says it was
/// answered: one answered as asked or cut off, or an injected answer with a
/// status other than 200 (a short error body); not an injected 200, whose
/// body may go on (endless, huge).
fn ends_when_answered(r: &mcpsim_fakes::McpRequestRecord) -> bool {
    match r.outcome {
        McpOutcome::Answered | McpOutcome::Cut => true,
        McpOutcome::Injected => r.status.is_some_and(|s| s != 200),
        McpOutcome::Pending | McpOutcome::Abandoned => false,
    }
}

/// Whether `after` is a later time than `before` (any time is later than
/// none). A time that cannot be read counts as later: not judged; so does
/// the same time written in whole seconds, which two attempts within one
/// second share.
fn newer(after: Option<&str>, before: Option<&str>) -> bool {
    let Some(after) = after else {
        return false;
    };
    let Some(before) = before else {
        return true;
    };
    match (instant_ms(after), instant_ms(before)) {
        (Some((a, unit)), Some((b, _))) if unit > 1 => a >= b,
        (Some((a, _)), Some((b, _))) => a > b,
        _ => true,
    }
}

/// An RFC 3339 time as ms since the unix epoch, with the unit its text
/// counts in (1 with milliseconds or finer, 1000 with whole seconds).
fn instant_ms(text: &str) -> Option<(i64, i64)> {
    let text = text.trim();
    let (date, rest) = text.split_once(['T', 't', ' '])?;
    let mut ymd = date.splitn(3, '-');
    let year: i64 = ymd.next()?.parse().ok()?;
    let month: i64 = ymd.next()?.parse().ok()?;
    let day: i64 = ymd.next()?.parse().ok()?;
    let zone_at = rest.find(['Z', 'z', '+', '-']).unwrap_or(rest.len());
    let (clock, zone) = rest.split_at(zone_at);
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut parts = hms.splitn(3, ':');
    let hour: i64 = parts.next()?.parse().ok()?;
    let minute: i64 = parts.next()?.parse().ok()?;
    let second: i64 = parts.next()?.parse().ok()?;
    if !fraction.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let ms: i64 = format!("{fraction:0<3}")[..3].parse().ok()?;
    let unit = if fraction.is_empty() { 1000 } else { 1 };
    let offset_min = match zone {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (h, m) = zone[1..].split_once(':')?;
            sign * (h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_min * 60;
    Some((seconds * 1_000 + ms, unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_rfc_3339() {
        assert_eq!(instant_ms("1970-01-01T00:00:00Z"), Some((0, 1000)));
        assert_eq!(
            instant_ms("2026-01-01T00:00:00.250Z"),
            Some((1_767_225_600_250, 1))
        );
        assert_eq!(
            instant_ms("2026-01-01T01:00:00+01:00"),
            instant_ms("2026-01-01T00:00:00Z")
        );
        assert_eq!(instant_ms("yesterday"), None);
        assert!(newer(
            Some("2026-01-01T00:00:00.251Z"),
            Some("2026-01-01T00:00:00.250Z")
        ));
        assert!(!newer(
            Some("2026-01-01T00:00:00.250Z"),
            Some("2026-01-01T00:00:00.250Z")
        ));
        assert!(newer(Some("2026-01-01T00:00:00.250Z"), None));
        assert!(!newer(None, None));
    }

    #[test]
    fn an_error_names_its_stage_by_its_leading_label() {
        assert_eq!(
            Stage::named_by("token: timed out after 500 ms"),
            Some(Stage::Token)
        );
        assert_eq!(Stage::named_by("tools/list: status 500"), Some(Stage::List));
        assert_eq!(Stage::named_by("initialize: 401"), Some(Stage::Initialize));
        assert_eq!(Stage::named_by("connect: refused"), Some(Stage::Connect));
        assert_eq!(Stage::named_by("Health check was cancelled"), None);
    }
}
