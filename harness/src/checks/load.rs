//! Upstream load discipline: a gateway's discovery attempts are spaced by
//! its declared re-check interval, each attempt sends a bounded number of
//! requests, and a server that was deleted or moved elsewhere is left alone.
//!
//! Judged from the outside alone: the fakes' request logs, the operator's
//! records, the faults, and what the system under test declared. The
//! rules, per gateway `G` and MCP host `H`:
//!
//! **Attempts.** An attempt is visible as an `initialize` from `G` to `H`
//! (a POST the fake parsed as `initialize`, or, on a fake with sessions, a
//! POST without a session that the fake refused before reading it), other
//! than one of a session that carries a `tools/call` (a tool call's).
//! Consecutive initializes form one attempt when the later is explained by
//! a refusal in the earlier one's exchange (its session's requests, or the
//! requests without a session that followed it): a 404 explains one fresh
//! session within 6 hops of that answer (at most two per attempt, one per
//! try of the listing), a 401 explains one retry within the token budget
//! and 6 hops (at most one per attempt). An attempt that begins while the
//! operator waits on `G` (a poll, a tools read or a tool call; one left
//! unanswered keeps its window open a token and a listing budget longer)
//! is the operator's load, and left out of the spacing rule; of the
//! requests per attempt only where requests without a session must be told
//! apart by their order (whatever started it, a session holds one
//! listing).
//!
//! **Spacing.** Two consecutive attempts must start at least the declared
//! `recheck_interval_ms` less 4 hops apart (a gateway that declares no
//! re-check owes a reason for every attempt after its first). Longer gaps
//! are always fine (a back-off). A shorter gap is excused by a fault naming
//! `G` or `H` from one attempt budget (two token and two listing budgets
//! and 8 hops) before the earlier start to the later one (a restart, a
//! partition, a hold: these move or replay requests); by a write of the
//! operator concerning a server that may point at `H`, sent to `G` or to a
//! gateway sharing its store, each write excusing one attempt on each such
//! gateway that starts from when it was sent until its answer and 6 hops
//! later (on the gateway that took it), or until a sync interval, two
//! store budgets and 6 hops after its answer or the last fault naming `G`
//! or its store (on the others); and by a change of `H`'s tool set, each
//! excusing one attempt within a listing budget and 6 hops.
//!
//! **Requests per attempt.** An attempt's exchanges (every request of its
//! sessions, and the requests without a session that follow its
//! initializes) hold at most, per initialize: `initialize`,
//! `notifications/initialized`, `pages + 1` `tools/list` (pages from the
//! fake's tool sets, page size and an empty first page), a `DELETE`, a
//! `GET` and two more (`ping`, `logging/setLevel`), and as much again for
//! each re-check interval the attempt's requests span (a session kept open
//! across re-checks). More is a storm.
//!
//! **Retired upstreams.** Once a server's delete is acknowledged, or an
//! acknowledged update moved it to another MCP host or token client, its
//! old MCP host hears nothing more from a gateway that knows it, and its old
//! token server nothing for its client, from the answer plus a token
//! budget, two listing budgets and 8 hops on (plus a sync interval and two
//! store budgets on a gateway that learns it from the store), except the
//! `DELETE` of a session opened before the answer; the same grace is owed
//! again after each fault naming the gateway, the old host or (for a
//! gateway that learns it from the store) its store. The quiet ends when a
//! definition pointing there again is written.
//!
//! Not judged: spacing and requests per attempt on a pair where two servers
//! may point at `H` from `G` at once (the requests cannot be told apart),
//! or where a definition could not be read; the quiet after a retirement
//! while another server may point at the same host or client from a time
//! budget before it; attempts whose initialize the fake refused before
//! reading it on a fake without sessions; what a gateway sends to hosts
//! that are not fakes.

use std::collections::{BTreeMap, BTreeSet};

use mcpsim_fakes::{McpRequestRecord, McpServerConfig, Paging, ToolSpec};
use mcpsim_sut::Declared;

use super::registrations::{self, Stint};
use super::{check, Check, Evidence};
use crate::operator::WriteKind;

pub(crate) fn check_load(e: &Evidence<'_>) -> Check {
    let stints = registrations::stints(e);
    let mut findings = Vec::new();
    for (upstream, log) in &e.outcome.mcp_requests {
        let mut by_peer: BTreeMap<&str, Vec<&McpRequestRecord>> = BTreeMap::new();
        for r in &log.records {
            if let Some(peer) = &r.peer {
                by_peer.entry(peer.as_str()).or_default().push(r);
            }
        }
        for (peer, records) in by_peer {
            let Some(declared) = e.declared(peer) else {
                continue;
            };
            if !registrations::one_at_a_time(&stints, peer, upstream) {
                continue;
            }
            let pair = Pair {
                e,
                gateway: peer,
                upstream,
                declared,
                config: e
                    .scenario
                    .mcp_servers
                    .iter()
                    .find(|m| &m.host == upstream)
                    .map(|m| &m.config),
                records: &records,
            };
            pair.judge(&stints, &mut findings);
        }
    }
    quiet_after_retirement(e, &stints, &mut findings);
    check("upstream_load", findings)
}

/// One gateway's requests to one MCP host.
struct Pair<'a> {
    e: &'a Evidence<'a>,
    gateway: &'a str,
    upstream: &'a str,
    declared: &'a Declared,
    config: Option<&'a McpServerConfig>,
    /// In the order they arrived.
    records: &'a [&'a McpRequestRecord],
}

/// One discovery attempt: its initializes (indexes into the pair's
/// records) and what it sent.
struct Attempt {
    inits: Vec<usize>,
    refused_404: u32,
    refused_401: u32,
}

/// A reason for one attempt to come early: from when to when it counts.
struct Excuse {
    from_ms: u64,
    to_ms: u64,
    /// A write the gateway learns through its store: its window ends this
    /// long after the last fault that kept the gateway from the store, if
    /// that is later.
    via_store_ms: Option<u64>,
    used: bool,
}

impl Excuse {
    /// Whether it may excuse an attempt that starts at `at_ms`, when the
    /// last fault naming the gateway or its store came at `last_fault_ms`.
    fn covers(&self, at_ms: u64, last_fault_ms: u64) -> bool {
        let to_ms = match self.via_store_ms {
            Some(after_ms) => self.to_ms.max(last_fault_ms + after_ms),
            None => self.to_ms,
        };
        !self.used && self.from_ms <= at_ms && at_ms <= to_ms
    }
}

impl Pair<'_> {
    fn hop_ms(&self) -> u64 {
        self.e.hop_ms()
    }

    fn token_budget_ms(&self) -> u64 {
        self.declared
            .token_budget_ms
            .unwrap_or(self.declared.listing_budget_ms)
    }

    /// One attempt's longest span: a token, a listing, a 401, another token
    /// and another listing, and the messages around them.
    fn attempt_budget_ms(&self) -> u64 {
        2 * (self.token_budget_ms() + self.declared.listing_budget_ms) + 8 * self.hop_ms()
    }

    fn sessions(&self) -> bool {
        self.config.is_none_or(|c| c.sessions)
    }

    /// Whether the record opens a session: an `initialize`, or on a fake
    /// with sessions a POST without one that was refused before the fake
    /// read which method it was.
    fn is_initialize(&self, r: &McpRequestRecord) -> bool {
        r.http_method == "POST"
            && match r.rpc_method.as_deref() {
                Some(method) => method == "initialize",
                None => r.session.is_none() && self.sessions(),
            }
    }

    /// When the operator waited on this gateway: polls, tools reads, tool
    /// calls. One that got no answer stays open a token and a listing
    /// budget longer, for the gateway may work on after the operator gave
    /// up.
    fn operator_windows(&self) -> Vec<(u64, u64)> {
        let records = &self.e.outcome.records;
        let more = self.token_budget_ms() + self.declared.listing_budget_ms;
        let at = |from: u64, to: u64, answered: bool| (from, if answered { to } else { to + more });
        let here = |g: &String| g == self.gateway;
        let polls = records
            .polls
            .iter()
            .filter(|p| here(&p.gateway))
            .map(|p| at(p.sent_ms, p.answered_ms, p.servers.is_ok()));
        let health = records
            .health
            .iter()
            .filter(|p| here(&p.gateway))
            .map(|p| at(p.sent_ms, p.answered_ms, true));
        let reads = records
            .tool_reads
            .iter()
            .filter(|r| here(&r.gateway))
            .map(|r| at(r.sent_ms, r.ended_ms, r.tools.is_ok()));
        let unhealthy_reads = records
            .unhealthy_reads
            .iter()
            .filter(|r| here(&r.gateway))
            .map(|r| at(r.sent_ms, r.ended_ms, r.tools.is_ok()));
        let calls = records
            .tool_calls
            .iter()
            .filter(|c| here(&c.gateway))
            .map(|c| at(c.sent_ms, c.ended_ms, c.answer.is_some()));
        polls
            .chain(health)
            .chain(reads)
            .chain(unhealthy_reads)
            .chain(calls)
            .collect()
    }

    /// How many `tools/list` pages the longest listing of the fake takes.
    fn pages(&self) -> u64 {
        let Some(config) = self.config else {
            return 1;
        };
        let count = |tools: &[ToolSpec], generated: Option<usize>| {
            if tools.is_empty() {
                generated.unwrap_or(0)
            } else {
                tools.len()
            }
        };
        let most = config
            .tool_changes
            .iter()
            .map(|c| count(&c.tools, c.tool_count))
            .chain([count(&config.tools, config.tool_count)])
            .max()
            .unwrap_or(0);
        let pages = match config.page_size.filter(|n| *n > 0) {
            Some(size) => most.div_ceil(size).max(1) as u64,
            None => 1,
        };
        pages + u64::from(config.paging == Paging::EmptyFirstPage)
    }

    fn judge(&self, stints: &[Stint], findings: &mut Vec<String>) {
        let records = self.records;
        let hop_ms = self.hop_ms();
        // Sessions that carried a tool call, and every request by session.
        let mut by_session: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        let mut calls: BTreeSet<&str> = BTreeSet::new();
        for (i, r) in records.iter().enumerate() {
            if let Some(session) = &r.session {
                by_session.entry(session.as_str()).or_default().push(i);
                if r.rpc_method.as_deref() == Some("tools/call") {
                    calls.insert(session.as_str());
                }
            }
        }
        // Each request without a session, after the initialize it follows.
        let mut sessionless: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        let mut last_init = None;
        for (i, r) in records.iter().enumerate() {
            if self.is_initialize(r) {
                last_init = Some(i);
            } else if let (None, Some(init)) = (&r.session, last_init) {
                sessionless.entry(init).or_default().push(i);
            }
        }
        let exchange = |init: usize| -> Vec<usize> {
            let mut all = vec![init];
            match &records[init].assigned_session {
                Some(session) => all.extend(
                    by_session
                        .get(session.as_str())
                        .into_iter()
                        .flatten()
                        .copied(),
                ),
                None => all.extend(sessionless.get(&init).into_iter().flatten().copied()),
            }
            all
        };
        // Every initialize but a tool call's is chained; attempts that begin
        // while the operator waits on the gateway are the operator's, and
        // are left out only after chaining, so that a retry within one of
        // them is never taken for an attempt of its own.
        let windows = self.operator_windows();
        let waited_on = |at: u64| windows.iter().any(|(from, to)| *from <= at && at <= *to);
        let inits: Vec<usize> = (0..records.len())
            .filter(|&i| self.is_initialize(records[i]))
            .filter(|&i| {
                let call = records[i]
                    .assigned_session
                    .as_deref()
                    .is_some_and(|s| calls.contains(s));
                !call
            })
            .collect();

        let token_ms = self.token_budget_ms();
        let mut chains: Vec<Attempt> = Vec::new();
        for &i in &inits {
            let at = records[i].received_ms;
            if let Some(current) = chains.last_mut() {
                let previous = *current.inits.last().expect("an attempt has an initialize");
                let answers = |status: u16, within: u64| {
                    exchange(previous).iter().any(|&k| {
                        let r = records[k];
                        r.status == Some(status)
                            && r.answered_ms.is_some_and(|t| t <= at && at <= t + within)
                    })
                };
                if current.refused_404 < 2 && answers(404, 6 * hop_ms) {
                    current.refused_404 += 1;
                    current.inits.push(i);
                    continue;
                }
                if current.refused_401 < 1 && answers(401, token_ms + 6 * hop_ms) {
                    current.refused_401 += 1;
                    current.inits.push(i);
                    continue;
                }
            }
            chains.push(Attempt {
                inits: vec![i],
                refused_404: 0,
                refused_401: 0,
            });
        }
        // Requests per attempt, for every attempt: whatever started it (an
        // operator's wait included), one session holds one listing. A
        // session kept open across re-checks may carry one listing per
        // interval. Requests without a session are told apart only by
        // their order, and the operator's tool calls interleave with them:
        // an attempt the operator waited on is judged only where its
        // sessions say which request is whose.
        let per_session = self.pages() + 7;
        let mut storms = Vec::new();
        for attempt in &chains {
            let by_session = attempt
                .inits
                .iter()
                .all(|&i| records[i].assigned_session.is_some());
            if waited_on(records[attempt.inits[0]].received_ms) && !by_session {
                continue;
            }
            let requests: Vec<usize> = attempt.inits.iter().flat_map(|&i| exchange(i)).collect();
            let sent = requests.len();
            let start_ms = records[attempt.inits[0]].received_ms;
            let span_ms = requests
                .iter()
                .map(|&k| records[k].received_ms)
                .max()
                .unwrap_or(start_ms)
                - start_ms;
            let rechecks = match self.declared.recheck_interval_ms {
                Some(interval) if interval > 0 => 1 + span_ms / interval,
                _ => 1,
            };
            let bound = attempt.inits.len() as u64 * per_session * rechecks;
            if sent as u64 > bound {
                storms.push(format!(
                    "{sent} requests in the attempt from {} ms ({} session(s), at most {bound})",
                    records[attempt.inits[0]].received_ms,
                    attempt.inits.len()
                ));
            }
        }

        let attempts: Vec<Attempt> = chains
            .into_iter()
            .filter(|a| !waited_on(records[a.inits[0]].received_ms))
            .collect();
        self.judge_spacing(stints, &attempts, findings);

        if !storms.is_empty() {
            findings.push(format!(
                "{} stormed {} within single discovery attempts: {}{}; an attempt's session holds at most initialize, initialized, {} tools/list, DELETE, GET and two more",
                self.gateway,
                self.upstream,
                storms.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
                if storms.len() > 3 { ", ..." } else { "" },
                self.pages() + 1,
            ));
        }
    }

    /// Every attempt after the first must come a re-check interval after the
    /// one before it, unless something excuses it.
    fn judge_spacing(&self, stints: &[Stint], attempts: &[Attempt], findings: &mut Vec<String>) {
        let e = self.e;
        let hop_ms = self.hop_ms();
        let interval_ms = self.declared.recheck_interval_ms;
        let mut excuses = self.excuses(stints);
        let store = e
            .scenario
            .gateways
            .iter()
            .find(|g| g.host == self.gateway)
            .and_then(|g| g.store.clone());
        let starts: Vec<u64> = attempts
            .iter()
            .map(|a| self.records[a.inits[0]].received_ms)
            .collect();
        let mut early = Vec::new();
        for pair in starts.windows(2) {
            let (before, at) = (pair[0], pair[1]);
            let gap = at - before;
            if interval_ms.is_some_and(|i| gap + 4 * hop_ms >= i) {
                continue;
            }
            let from = before.saturating_sub(self.attempt_budget_ms());
            let disturbed = [self.gateway, self.upstream]
                .iter()
                .any(|h| e.faults.touched_between(h, from, at));
            if disturbed {
                continue;
            }
            // A late sync counts from the last fault that kept the gateway
            // from its store.
            let mut hosts = vec![self.gateway];
            hosts.extend(store.as_deref());
            let last_fault = e.faults.last_touching_at_or_before(&hosts, at);
            let excuse = excuses
                .iter_mut()
                .filter(|x| x.covers(at, last_fault))
                .min_by_key(|x| x.to_ms);
            if let Some(excuse) = excuse {
                excuse.used = true;
                continue;
            }
            early.push((before, at));
        }
        if early.is_empty() {
            return;
        }
        let interval = match interval_ms {
            Some(i) => format!("the declared re-check interval of {i} ms"),
            None => {
                "a gateway that declares no re-check (one attempt per registration)".to_string()
            }
        };
        let examples: Vec<String> = early
            .iter()
            .take(3)
            .map(|(a, b)| format!("{a} and {b} ms ({} ms apart)", b - a))
            .collect();
        findings.push(format!(
            "{} started {} of its {} discovery attempts on {} too soon after the one before, with no write, restart or fault to explain it: {}{}; the gap must be at least {interval}, less {} ms",
            self.gateway,
            early.len(),
            attempts.len(),
            self.upstream,
            examples.join(", "),
            if early.len() > 3 { ", ..." } else { "" },
            4 * hop_ms,
        ));
    }

    /// The writes concerning a server that may point at this upstream, and
    /// the upstream's tool-set changes: each may bring one attempt early.
    fn excuses(&self, stints: &[Stint]) -> Vec<Excuse> {
        let e = self.e;
        let hop_ms = self.hop_ms();
        let d = self.declared;
        let writes: BTreeSet<usize> = stints
            .iter()
            .filter(|s| {
                s.gateways.iter().any(|g| g == self.gateway) && s.may_point_at(self.upstream)
            })
            .flat_map(|s| s.writes.iter().copied())
            .collect();
        let mut excuses: Vec<Excuse> = writes
            .into_iter()
            .filter_map(|i| e.outcome.records.writes.get(i))
            .map(|w| {
                // An unanswered write may have been applied as late as the
                // operator's patience (longer for a gateway that declared a
                // write budget).
                let answered = w.answered_ms.unwrap_or(w.sent_ms + w.patience_ms);
                let via_store_ms = (w.gateway != self.gateway).then(|| self.sync_ms() + 6 * hop_ms);
                Excuse {
                    from_ms: w.sent_ms,
                    to_ms: answered + via_store_ms.unwrap_or(6 * hop_ms),
                    via_store_ms,
                    used: false,
                }
            })
            .collect();
        if let Some(config) = self.config {
            excuses.extend(config.tool_changes.iter().map(|c| Excuse {
                from_ms: c.at_ms,
                to_ms: c.at_ms + d.listing_budget_ms + 6 * hop_ms,
                via_store_ms: None,
                used: false,
            }));
        }
        excuses
    }

    /// How long a write on another gateway takes to reach this one through
    /// the store: a sync interval and two store calls.
    fn sync_ms(&self) -> u64 {
        self.declared.sync_interval_ms.unwrap_or(0) + 2 * self.declared.store_budget_ms.unwrap_or(0)
    }
}

/// After an acknowledged delete, or an update that moved a server to
/// another MCP host or token client, the old ones hear nothing more from the
/// gateways that know it.
fn quiet_after_retirement(e: &Evidence<'_>, stints: &[Stint], findings: &mut Vec<String>) {
    let hop_ms = e.hop_ms();
    let writes = &e.outcome.records.writes;
    for (index, s) in stints.iter().enumerate() {
        let (Some((j, kind)), Some(ack_ms)) = (s.retired_by, s.until_ms) else {
            continue;
        };
        let Some(w) = writes.get(j) else {
            continue;
        };
        // What replaced it, for an update.
        let next = stints
            .iter()
            .enumerate()
            .find(|(k, t)| *k != index && t.identity == s.identity && t.writes.first() == Some(&j))
            .map(|(_, t)| t);
        let moved_mcp = s.upstreams.mcp.clone().filter(|h| {
            kind == WriteKind::Delete || next.is_none_or(|n| n.upstreams.mcp.as_ref() != Some(h))
        });
        let moved_token = s.upstreams.token.clone().filter(|t| {
            kind == WriteKind::Delete || next.is_none_or(|n| n.upstreams.token.as_ref() != Some(t))
        });
        let what = match kind {
            WriteKind::Delete => format!("server {} was deleted", s.name),
            _ => format!("server {} was moved elsewhere", s.name),
        };
        for g in &s.gateways {
            let Some(d) = e.declared(g) else {
                continue;
            };
            let mut grace_ms = d.token_budget_ms.unwrap_or(d.listing_budget_ms)
                + 2 * d.listing_budget_ms
                + 8 * hop_ms;
            let via_store = g != &w.gateway;
            if via_store {
                grace_ms += d.sync_interval_ms.unwrap_or(0) + 2 * d.store_budget_ms.unwrap_or(0);
            }
            let quiet_from = ack_ms + grace_ms;
            // Requests held or cut by a fault arrive late, and a gateway that
            // learns of it through its store is kept from it by the store's
            // faults: after each such fault the grace is owed again.
            let store = e
                .scenario
                .gateways
                .iter()
                .find(|h| &h.host == g)
                .and_then(|h| h.store.clone());
            let due = |upstream: &str, at_ms: u64| {
                let mut hosts = vec![g.as_str(), upstream];
                if via_store {
                    hosts.extend(store.as_deref());
                }
                let last_fault = e.faults.last_touching_at_or_before(&hosts, at_ms);
                at_ms >= quiet_from.max(last_fault + grace_ms)
            };
            // Other definitions that may reach the same host: in force around
            // the retirement, the quiet cannot be judged; written later, they
            // end it.
            let others = |may: &dyn Fn(&Stint) -> bool| -> Option<u64> {
                let mut until = u64::MAX;
                for (k, t) in stints.iter().enumerate() {
                    if k == index || !t.gateways.contains(g) || !may(t) {
                        continue;
                    }
                    if t.overlaps(ack_ms.saturating_sub(grace_ms), quiet_from) {
                        return None;
                    }
                    if t.from_ms >= quiet_from {
                        until = until.min(t.from_ms);
                    }
                }
                Some(until)
            };
            if let Some(host) = &moved_mcp {
                let log = e.outcome.mcp_requests.get(host);
                if let (Some(log), Some(until)) = (log, others(&|t: &Stint| t.may_point_at(host))) {
                    // Sessions opened before the answer may still be closed.
                    let old_sessions: BTreeSet<&str> = log
                        .records
                        .iter()
                        .filter(|r| r.peer.as_ref() == Some(g) && r.received_ms < ack_ms)
                        .filter_map(|r| r.assigned_session.as_deref())
                        .collect();
                    let late: Vec<u64> = log
                        .records
                        .iter()
                        .filter(|r| r.peer.as_ref() == Some(g))
                        .filter(|r| due(host, r.received_ms) && r.received_ms < until)
                        .filter(|r| {
                            !(r.http_method == "DELETE"
                                && r.session
                                    .as_deref()
                                    .is_some_and(|s| old_sessions.contains(s)))
                        })
                        .map(|r| r.received_ms)
                        .collect();
                    if let Some(first) = late.first() {
                        findings.push(format!(
                            "{g} sent {} request(s) to {host} after {what} (acknowledged at {ack_ms} ms), the first at {first} ms; nothing was due after {quiet_from} ms",
                            late.len()
                        ));
                    }
                }
            }
            if let Some((host, client)) = &moved_token {
                let log = e.outcome.token_requests.get(host);
                let may = |t: &Stint| t.may_use_token(host, client.as_deref());
                if let (Some(log), Some(until)) = (log, others(&may)) {
                    let late: Vec<u64> = log
                        .records
                        .iter()
                        .filter(|r| r.peer.as_ref() == Some(g))
                        .filter(|r| {
                            client.is_none() || r.client_id.is_none() || r.client_id == *client
                        })
                        .filter(|r| due(host, r.received_ms) && r.received_ms < until)
                        .map(|r| r.received_ms)
                        .collect();
                    if let Some(first) = late.first() {
                        findings.push(format!(
                            "{g} sent {} token request(s) to {host}{} after {what} (acknowledged at {ack_ms} ms), the first at {first} ms; nothing was due after {quiet_from} ms",
                            late.len(),
                            client.as_deref().map(|c| format!(" for client {c}")).unwrap_or_default(),
                        ));
                    }
                }
            }
        }
    }
}
