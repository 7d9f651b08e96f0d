//! Token discipline, judged by what the token servers and MCP servers saw:
//! a gateway that holds a valid token (it had the answer, and presented the
//! token to an upstream) does not fetch another for the same upstream
//! within the token's validity unless something asked for it (a 401 from
//! that upstream since, a write that may have landed since, a restart);
//! after an upstream refused a
//! token with 401, the gateway never presents that token to it again (a
//! session begun with it before the refusal reached the gateway may go on
//! with it until refused itself); a
//! gateway never presents a token longer than it declared it keeps one (a
//! token's stated lifetime less its margin, or the lifetime it assumes
//! when none is stated), counted from when it had the token, and one
//! exchange that took it just in time; the caller's own key never reaches
//! an upstream.
//!
//! Outside-in: it reads the fakes' request logs (which issued token each
//! MCP request carried), the operator's writes and the faults. How long a
//! gateway keeps a token comes from what it declared
//! ([`mcpsim_sut::TokenReuse`]).

use std::collections::{BTreeMap, BTreeSet};

use mcpsim_fakes::{CredentialSeen, McpOutcome, TokenOutcome, TokenRef, TokenRequestRecord};

use super::{check, Check, Evidence};
use crate::observe;
use crate::operator::WriteRecord;

/// Which gateways presented which issued token to which MCP server.
fn uses(e: &Evidence<'_>) -> BTreeMap<TokenRef, BTreeSet<(String, String)>> {
    let mut used: BTreeMap<TokenRef, BTreeSet<(String, String)>> = BTreeMap::new();
    for (mcp, log) in &e.outcome.mcp_requests {
        for r in &log.records {
            if let CredentialSeen::Issued { token } = &r.credential {
                let peer = r.peer.clone().unwrap_or_default();
                used.entry(token.clone())
                    .or_default()
                    .insert((peer, mcp.clone()));
            }
        }
    }
    used
}

/// When an upstream refused a gateway's issued token with 401: (gateway,
/// upstream) -> the instants its answers left.
fn refusals(e: &Evidence<'_>) -> BTreeMap<(String, String), Vec<u64>> {
    let mut refused: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    for (upstream, log) in &e.outcome.mcp_requests {
        for r in &log.records {
            if let (CredentialSeen::Issued { .. }, Some(401), Some(at)) =
                (&r.credential, r.status, r.answered_ms)
            {
                let peer = r.peer.clone().unwrap_or_default();
                refused
                    .entry((peer, upstream.clone()))
                    .or_default()
                    .push(at);
            }
        }
    }
    refused
}

/// The issued token and stated lifetime of a token request, if it issued one.
fn issued(r: &TokenRequestRecord) -> Option<(&TokenRef, Option<u64>)> {
    match &r.outcome {
        TokenOutcome::Issued {
            token,
            expires_in_s,
            ..
        } => Some((token, *expires_in_s)),
        _ => None,
    }
}

/// The latest instant at which a write can change what `gateway` holds:
/// when the gateway that took it answered, or, on another gateway sharing
/// its store, when that one's next sync after it has read the store (a
/// sync interval and two slow reads later). A write that was never answered
/// may land at any time.
fn write_lands_until(e: &Evidence<'_>, w: &WriteRecord, gateway: &str) -> u64 {
    if w.answer.is_none() {
        return u64::MAX;
    }
    let answered_ms = w.answered_ms.unwrap_or(w.sent_ms + w.patience_ms);
    if w.gateway == gateway {
        return answered_ms;
    }
    let sync_ms = e
        .declared(gateway)
        .and_then(|d| d.sync_interval_ms)
        .unwrap_or(0);
    let store_ms = e
        .store_of(gateway)
        .and_then(|store| e.scenario.stores.iter().find(|s| s.host == store))
        .map_or(0, |s| {
            2 * (s.config.latency_ms + s.config.snapshot_delay_ms)
        });
    answered_ms + sync_ms + store_ms + 6 * e.hop_ms()
}

pub(crate) fn check_tokens(e: &Evidence<'_>) -> Check {
    let mut findings = Vec::new();
    let hop = e.hop_ms();
    let used = uses(e);
    let refused = refusals(e);
    let writes = &e.outcome.records.writes;

    // 1. One token per validity window, per gateway and upstream.
    for (token_host, log) in &e.outcome.token_requests {
        let latency = e
            .scenario
            .token_servers
            .iter()
            .find(|t| &t.host == token_host)
            .map_or(0, |t| t.config.latency_ms);
        // (peer, client, scope, resource, audience, upstream) -> issued
        // requests whose token that peer presented to that upstream.
        type Key<'r> = (
            String,
            &'r Option<String>,
            &'r Option<String>,
            &'r Option<String>,
            &'r Option<String>,
            String,
        );
        let mut held: BTreeMap<Key<'_>, Vec<&TokenRequestRecord>> = BTreeMap::new();
        for r in &log.records {
            let Some((token, _)) = issued(r) else {
                continue;
            };
            let peer = r.peer.clone().unwrap_or_default();
            for (user, upstream) in used.get(token).into_iter().flatten() {
                if user == &peer {
                    held.entry((
                        peer.clone(),
                        &r.client_id,
                        &r.scope,
                        &r.resource,
                        &r.audience,
                        upstream.clone(),
                    ))
                    .or_default()
                    .push(r);
                }
            }
        }
        for ((peer, client, .., upstream), requests) in &held {
            let Some(declared) = e.declared(peer) else {
                continue;
            };
            // Two servers of one gateway behind one upstream may each hold
            // a token of their own.
            let servers = e
                .seen
                .values()
                .filter(|s| {
                    &s.gateway == peer
                        && e.upstream_host(s.view.url.as_deref()).as_ref() == Some(upstream)
                })
                .count();
            if servers > 1 {
                continue;
            }
            let sharing = observe::sharing(e.scenario, peer);
            for pair in requests.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                let Some((_, expires_in_s)) = issued(a) else {
                    continue;
                };
                let kept = declared.token_reuse.kept_ms(expires_in_s);
                // A request sent before the first token's answer reached
                // the gateway asked while it held none (two exchanges that
                // both found no token): it left at most a message before it
                // arrived, the answer arrived at most a message after it
                // left.
                if a.answered_ms
                    .is_none_or(|answered| b.received_ms <= answered + 2 * hop)
                {
                    continue;
                }
                let gap = b.received_ms.saturating_sub(a.received_ms);
                // The gateway counts a token's life from when it had it: up
                // to the token server's latency and a few messages later.
                if gap + latency + 4 * hop >= kept {
                    continue;
                }
                let from = a.received_ms.saturating_sub(2 * hop);
                // A 401 to this gateway from this upstream, to the first token
                // or to one still in flight with another exchange, is a reason.
                let rejected = refused
                    .get(&(peer.clone(), upstream.clone()))
                    .is_some_and(|ats| ats.iter().any(|at| *at >= from && *at <= b.received_ms));
                let restarted = e.faults.restarted(peer, a.received_ms, b.received_ms);
                let written = writes.iter().any(|w| {
                    sharing.contains(&w.gateway)
                        && w.sent_ms <= b.received_ms
                        && write_lands_until(e, w, peer) >= from
                });
                if rejected || restarted || written {
                    continue;
                }
                findings.push(format!(
                    "{peer}: fetched a second token from {token_host} at {} ms for {upstream} (client {}), {gap} ms after the first, within its {kept} ms validity and with no 401, change or restart in between",
                    b.received_ms,
                    client.as_deref().unwrap_or("?"),
                ));
            }
        }
    }

    // 2. A token an upstream refused with 401 is never presented to it
    // again. A request that reaches the upstream later than four messages
    // after the refusal left it was sent after the refusal arrived.
    for (upstream, log) in &e.outcome.mcp_requests {
        let mut rejected: BTreeMap<(String, TokenRef), u64> = BTreeMap::new();
        // Refusals within one session: (gateway, token, session) -> when.
        let mut rejected_in: BTreeMap<(String, TokenRef, &str), u64> = BTreeMap::new();
        let mut reported: BTreeSet<(String, TokenRef)> = BTreeSet::new();
        // When each session was opened (its initialize arrived).
        let opened: BTreeMap<&str, u64> = log
            .records
            .iter()
            .filter_map(|r| Some((r.assigned_session.as_deref()?, r.received_ms)))
            .collect();
        for r in &log.records {
            let CredentialSeen::Issued { token } = &r.credential else {
                continue;
            };
            let key = (r.peer.clone().unwrap_or_default(), token.clone());
            // A session begun with the token before a refusal reached the
            // gateway may go on with it until it is refused itself.
            let session = r
                .session
                .as_deref()
                .and_then(|s| Some((s, *opened.get(s)?)));
            let refused_at = match (rejected.get(&key), session) {
                (Some(at), Some((s, opened_ms))) if opened_ms <= at + 2 * hop => {
                    rejected_in.get(&(key.0.clone(), key.1.clone(), s)).copied()
                }
                (at, _) => at.copied(),
            };
            if let Some(at) = refused_at {
                if r.http_method == "POST"
                    && r.received_ms > at + 4 * hop
                    && reported.insert(key.clone())
                {
                    findings.push(format!(
                        "{}: asked {upstream} again at {} ms with the token it rejected at {at} ms",
                        key.0, r.received_ms
                    ));
                }
            }
            // A 401 to a session's closing DELETE is cleanup whose answer
            // a client may ignore; a 401 to a request is not, once the
            // gateway got it (not after it had given up on the request).
            if let (Some(401), Some(at), "POST", McpOutcome::Answered) =
                (r.status, r.answered_ms, r.http_method.as_str(), &r.outcome)
            {
                // An answer that came as the gateway's listing budget, from
                // the exchange's initialize, ran out may have found it gone.
                let started = log
                    .records
                    .iter()
                    .filter(|o| {
                        o.peer == r.peer
                            && o.rpc_method.as_deref() == Some("initialize")
                            && o.received_ms <= r.received_ms
                    })
                    .map(|o| o.received_ms)
                    .max();
                let budget = e.declared(&key.0).map(|d| d.listing_budget_ms);
                if let (Some(started), Some(budget)) = (started, budget) {
                    if at + 2 * hop >= started + budget {
                        continue;
                    }
                }
                if let Some((s, _)) = session {
                    rejected_in
                        .entry((key.0.clone(), key.1.clone(), s))
                        .or_insert(at);
                }
                rejected.entry(key).or_insert(at);
            }
        }
    }

    // 3. A token is presented only while the gateway keeps it, as it
    // declared: from when it had the answer (a message after the token
    // server sent it), for the keep of the token's stated lifetime; an
    // exchange that took it from the cache just before then sends its
    // requests within its listing budget, and each reaches the upstream a
    // message later. A cut or held link delivers late what left in time.
    let answers: BTreeMap<&TokenRef, (u64, Option<u64>)> = e
        .outcome
        .token_requests
        .values()
        .flat_map(|log| &log.records)
        .filter_map(|r| {
            let (token, expires_in_s) = issued(r)?;
            Some((token, (r.answered_ms?, expires_in_s)))
        })
        .collect();
    for (upstream, log) in &e.outcome.mcp_requests {
        let mut reported: BTreeSet<(String, TokenRef)> = BTreeSet::new();
        for r in log.records.iter().filter(|r| r.http_method == "POST") {
            let CredentialSeen::Issued { token } = &r.credential else {
                continue;
            };
            let peer = r.peer.clone().unwrap_or_default();
            let (Some((answered_ms, expires_in_s)), Some(declared)) =
                (answers.get(token), e.declared(&peer))
            else {
                continue;
            };
            let kept = declared.token_reuse.kept_ms(*expires_in_s);
            let kept_until = answered_ms + hop + kept;
            let latest = kept_until + declared.listing_budget_ms + 2 * hop;
            if r.received_ms <= latest
                || e.faults
                    .touched_between(upstream, kept_until, r.received_ms)
                || e.faults.touched_between(&peer, kept_until, r.received_ms)
            {
                continue;
            }
            if reported.insert((peer.clone(), token.clone())) {
                let stated = match expires_in_s {
                    Some(s) => format!("its stated {s} s"),
                    None => "no stated lifetime".to_string(),
                };
                findings.push(format!(
                    "{peer}: presented to {upstream} at {} ms a token it had at {} ms, with {stated}, which it declared it keeps {kept} ms",
                    r.received_ms,
                    answered_ms + hop,
                ));
            }
        }
    }

    // 5. The operator's own key never reaches an upstream.
    if let Some(key) = &e.scenario.operator.api_key {
        for (host, server) in &e.outcome.mcp_servers {
            if server.foreign_bearers().iter().any(|b| b == key) {
                findings.push(format!(
                    "{host} was sent the caller's own Authorization instead of the server's credentials"
                ));
            }
        }
    }
    check("token_discipline", findings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{GatewayHost, McpHost, Scenario, TokenHost};
    use crate::operator::{Records, WriteKind};
    use crate::world::Outcome;
    use mcpsim_fakes::{ClientAuthSeen, Log, McpOutcome, McpRequestRecord};
    use mcpsim_sut::{Declared, TokenReuse, WriteAnswer};

    /// A token request of `gateway` that got token `serial`.
    fn fetched(serial: u64, received_ms: u64, answered_ms: u64) -> TokenRequestRecord {
        TokenRequestRecord {
            received_ms,
            answered_ms: Some(answered_ms),
            peer: Some("gateway".into()),
            client_id: Some("client".into()),
            client_auth: ClientAuthSeen::Form,
            grant_type: Some("client_credentials".into()),
            scope: None,
            resource: None,
            audience: None,
            outcome: TokenOutcome::Issued {
                token: token(serial),
                expires_in_s: Some(3_600),
                registration: 0,
            },
        }
    }

    fn token(serial: u64) -> TokenRef {
        TokenRef {
            issuer: "auth".into(),
            client_id: "client".into(),
            serial,
            issued_ms: 0,
        }
    }

    /// The gateway presents token `serial` to the MCP server.
    fn presented(serial: u64, received_ms: u64) -> McpRequestRecord {
        McpRequestRecord {
            received_ms,
            answered_ms: Some(received_ms),
            peer: Some("gateway".into()),
            http_method: "POST".into(),
            rpc_method: Some("tools/list".into()),
            session: None,
            assigned_session: None,
            protocol_version: None,
            credential: CredentialSeen::Issued {
                token: token(serial),
            },
            status: Some(200),
            outcome: McpOutcome::Answered,
            next_cursor: None,
            call: None,
        }
    }

    /// An update the gateway took.
    fn update(sent_ms: u64, answered_ms: u64) -> WriteRecord {
        WriteRecord {
            gateway: "gateway".into(),
            kind: WriteKind::Update,
            name: "docs".into(),
            server_id: Some("docs-id".into()),
            sent_ms,
            patience_ms: 5_000,
            answered_ms: Some(answered_ms),
            answer: Some(WriteAnswer {
                status: 200,
                accepted: true,
                server_id: Some("docs-id".into()),
                name: None,
                url: None,
                error: None,
            }),
            spec: None,
            extra_fields: false,
            bad_input: false,
            text: "update docs -> 200".into(),
        }
    }

    /// The checker's findings on two tokens fetched as given, both used.
    fn judge(first: (u64, u64), second: u64, writes: Vec<WriteRecord>) -> Vec<String> {
        judge_logs(
            vec![fetched(1, first.0, first.1), fetched(2, second, second)],
            vec![presented(1, first.1 + 5), presented(2, second + 5)],
            TokenReuse::default(),
            writes,
        )
    }

    /// The checker's findings on these token requests and MCP requests, of
    /// a gateway that keeps tokens as `reuse` says.
    fn judge_logs(
        tokens: Vec<TokenRequestRecord>,
        mcp: Vec<McpRequestRecord>,
        reuse: TokenReuse,
        writes: Vec<WriteRecord>,
    ) -> Vec<String> {
        let scenario = Scenario::builder("two tokens")
            .gateway(GatewayHost::new("gateway"))
            .token_server(TokenHost::new("auth"))
            .mcp_server(McpHost::new("mcp"))
            .build()
            .unwrap();
        let declared = Declared {
            serves_tools: true,
            token_budget_ms: Some(500),
            listing_budget_ms: 750,
            recheck_interval_ms: Some(500),
            sync_interval_ms: None,
            store_budget_ms: None,
            token_reuse: reuse,
            durable: false,
            emits_events: false,
            write_budget_ms: None,
            follows_list_changed: false,
        };
        fn log<T>(records: Vec<T>) -> Log<T> {
            Log {
                records,
                ..Log::default()
            }
        }
        let outcome = Outcome {
            records: Records {
                writes,
                ..Records::default()
            },
            hosts: BTreeMap::from([("gateway".to_string(), declared)]),
            trace: Vec::new(),
            token_servers: BTreeMap::new(),
            mcp_servers: BTreeMap::new(),
            stores: BTreeMap::new(),
            token_requests: BTreeMap::from([("auth".to_string(), log(tokens))]),
            mcp_requests: BTreeMap::from([("mcp".to_string(), log(mcp))]),
        };
        let seen = BTreeMap::new();
        let authorities = BTreeMap::new();
        let evidence = Evidence {
            scenario: &scenario,
            outcome: &outcome,
            seen: &seen,
            trace: &[],
            no_events: None,
            faults: crate::faults::Faults::new(&scenario),
            report_text: "",
            reports_check_time: true,
            hop_ms: 5,
            authorities: &authorities,
            error_words: true,
        };
        check_tokens(&evidence).findings
    }

    #[test]
    fn a_token_asked_for_before_the_first_one_arrived_is_no_reuse_failure() {
        // The first answer leaves at 400 ms: a request that reached the
        // token server by then was sent while the gateway held no token.
        assert_eq!(judge((100, 400), 300, Vec::new()), Vec::<String>::new());
        assert_eq!(judge((100, 400), 410, Vec::new()), Vec::<String>::new());
        let late = judge((100, 400), 900, Vec::new());
        assert_eq!(late.len(), 1, "{late:?}");
        assert!(late[0].contains("fetched a second token"), "{late:?}");
    }

    #[test]
    fn a_write_excuses_a_new_token_while_it_may_still_land() {
        // Sent before the first token, answered after it: it may have
        // landed in between.
        let slow = vec![update(50, 300)];
        assert_eq!(judge((100, 110), 900, slow), Vec::<String>::new());
        // Answered before the first token was asked for: no excuse.
        let done = vec![update(20, 60)];
        assert_eq!(judge((100, 110), 900, done).len(), 1);
        // Never answered: it may land at any time.
        let mut lost = update(20, 60);
        lost.answer = None;
        assert_eq!(judge((100, 110), 900, vec![lost]), Vec::<String>::new());
    }

    #[test]
    fn a_token_presented_past_the_keep_the_gateway_declared_is_a_finding() {
        // The gateway keeps a token without a stated lifetime 2 s. It had
        // token 1 at 105 ms (answered at 100, a message of 5 ms later), so
        // it may present it until 2,105 ms, and an exchange that took it
        // then sends within its 750 ms listing budget, arriving a message
        // later: by 2,865 ms.
        let reuse = TokenReuse {
            unstated_lifetime_ms: 2_000,
            ..TokenReuse::default()
        };
        let unstated = |serial| {
            let mut r = fetched(serial, 100, 100);
            r.outcome = TokenOutcome::Issued {
                token: token(serial),
                expires_in_s: None,
                registration: 0,
            };
            r
        };
        let in_time = vec![presented(1, 2_000), presented(1, 2_860)];
        assert_eq!(
            judge_logs(vec![unstated(1)], in_time, reuse, Vec::new()),
            Vec::<String>::new()
        );
        let late = vec![presented(1, 3_000), presented(1, 3_500)];
        let findings = judge_logs(vec![unstated(1)], late, reuse, Vec::new());
        assert_eq!(findings.len(), 1, "one finding per token: {findings:?}");
        assert!(
            findings[0].contains("at 3000 ms a token it had at 105 ms")
                && findings[0].contains("keeps 2000 ms"),
            "{findings:?}"
        );
        // A stated 30 s, less the default minute's margin, is kept the
        // ten seconds of the minimum: late after 10,865 ms.
        let stated = || vec![fetched(1, 100, 100)];
        let mut thirty = stated();
        thirty[0].outcome = TokenOutcome::Issued {
            token: token(1),
            expires_in_s: Some(30),
            registration: 0,
        };
        let findings = judge_logs(
            thirty.clone(),
            vec![presented(1, 10_860)],
            TokenReuse::default(),
            Vec::new(),
        );
        assert_eq!(findings, Vec::<String>::new());
        let findings = judge_logs(
            thirty,
            vec![presented(1, 11_000)],
            TokenReuse::default(),
            Vec::new(),
        );
        assert_eq!(findings.len(), 1, "{findings:?}");
    }

    #[test]
    fn a_refused_token_is_never_presented_again_except_in_a_session_begun_before() {
        // Token 1 is refused at 205 ms; a session opened at 150 ms goes on
        // with it until its own refusal at 420 ms.
        let in_session = |received_ms: u64, session: &str, status: u16| McpRequestRecord {
            session: Some(session.into()),
            status: Some(status),
            ..presented(1, received_ms)
        };
        let opening = |received_ms: u64, session: &str| McpRequestRecord {
            assigned_session: Some(session.into()),
            rpc_method: Some("initialize".into()),
            ..presented(1, received_ms)
        };
        let refused = McpRequestRecord {
            status: Some(401),
            ..presented(1, 205)
        };
        let base = vec![opening(150, "s-early"), refused];
        let tokens = || vec![fetched(1, 100, 110)];
        let going_on = [base.clone(), vec![in_session(400, "s-early", 200)]].concat();
        assert_eq!(
            judge_logs(tokens(), going_on, TokenReuse::default(), Vec::new()),
            Vec::<String>::new()
        );
        let after_its_own = [
            base.clone(),
            vec![
                in_session(420, "s-early", 401),
                in_session(600, "s-early", 200),
            ],
        ]
        .concat();
        let found = judge_logs(tokens(), after_its_own, TokenReuse::default(), Vec::new());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("with the token it rejected at 420 ms"),
            "{found:?}"
        );
        let new_session = [
            base,
            vec![opening(500, "s-late"), in_session(510, "s-late", 200)],
        ]
        .concat();
        let found = judge_logs(tokens(), new_session, TokenReuse::default(), Vec::new());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("asked mcp again at 500 ms with the token it rejected at 205 ms"),
            "{found:?}"
        );
    }
}
