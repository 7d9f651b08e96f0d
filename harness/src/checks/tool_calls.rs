//! Tool calls, judged by what the caller got and what the upstream saw of
//! each of the operator's calls (every listed tool of every healthy server,
//! when the scenario asks for calls):
//!
//! - **callable**: every listed tool of a server healthy when its tools
//!   were read (and still at the final read) is answered as a success;
//! - **the owner's credentials**: every request the upstream saw from the
//!   gateway while the call was under way (the call's session, and any check
//!   of the same server meanwhile) carries the credential of the server that
//!   owns the tool, as the operator registered it: a token issued to that
//!   server's client by its token server, or its static bearer, or nothing
//!   for a server without auth; never another server's, never the caller's
//!   own key; a token must also have been asked for as the server is
//!   registered: with its secret (told by which of the token server's
//!   registrations took it), each of its scopes, and its audience and
//!   resource where it states them (a token fetched for an earlier
//!   definition, or with a parameter dropped, may carry other rights than
//!   the owner gave);
//! - **the upstream's answer reaches the caller**: when the upstream
//!   answered the call with a result, the caller got a success carrying
//!   each of its text blocks verbatim, and its `isError` as the upstream
//!   set it; a success the upstream never saw is a finding too.
//!
//! The answer is read in MCP's own words (`isError`, text blocks), which a
//! gateway that relays a tool result passes on, whatever its API's shape.
//!
//! What it does not judge: calls a fault may have broken (a fault during
//! the call, an upstream crashed and not back, a cut link not healed), or
//! that an upstream's configured failures or session limits may have hit,
//! or that an upstream slow to start a session or to answer a call (half
//! the gateway's listing budget) may have run out of time;
//! credentials of servers any write in the gateway's own shape may have
//! defined, or whose static bearer differs from what their MCP server
//! takes, or whose MCP server another server of the gateway shares; image,
//! audio and resource blocks (only text is compared).
//!
//! Outside-in: it reads the operator's tool reads and calls, the fakes'
//! request logs, the faults and the scenario's definitions.

use std::collections::BTreeSet;

use mcpsim_fakes::{CredentialSeen, McpAuth, McpRequestRecord, TokenOutcome};
use mcpsim_sut::{ServerAuth, Status};
use serde_json::Value;

use super::{check, definitions, not_applicable, upstream, Check, Evidence};
use crate::observe::Seen;
use crate::operator::ToolCall;
use crate::scenario::Verb;

pub(crate) fn check_tool_calls(e: &Evidence<'_>) -> Check {
    if !e.scenario.operator.call_tools {
        return not_applicable("tool_calls", "the operator calls no tools");
    }
    let mut findings = Vec::new();
    let mut claimed: BTreeSet<(String, usize)> = BTreeSet::new();
    for seen in e.seen.values() {
        if seen.deleted || !seen.serves_tools || seen.view.status != Status::Healthy {
            continue;
        }
        for call in e
            .outcome
            .records
            .tool_calls
            .iter()
            .filter(|c| c.gateway == seen.gateway && c.server_id == seen.server_id)
        {
            judge(e, seen, call, &mut claimed, &mut findings);
        }
    }
    check("tool_calls", findings)
}

fn judge(
    e: &Evidence<'_>,
    seen: &Seen,
    call: &ToolCall,
    claimed: &mut BTreeSet<(String, usize)>,
    findings: &mut Vec<String>,
) {
    let gateway = &seen.gateway;
    let name = &seen.view.name;
    let mcp = e.upstream_host(seen.view.url.as_deref());
    let excused = excused(e, gateway, mcp.as_deref(), call);
    let ok = call.answer.as_ref().is_some_and(|a| a.ok);
    if !ok && !excused {
        let got = match &call.answer {
            Some(a) => format!("was answered {}", a.status),
            None => "got no answer".to_string(),
        };
        findings.push(format!(
            "{gateway}: the call of {} of healthy {name} at {} ms {got}",
            call.tool, call.sent_ms
        ));
    }
    let Some(mcp) = mcp else {
        return;
    };
    let Some(log) = e.outcome.mcp_requests.get(&mcp) else {
        return;
    };
    // Every request of the call's session (and of any check of the same
    // server meanwhile) carries the owner's credential.
    let slack = 2 * e.hop_ms();
    if !upstream::shared_upstream(e, gateway, &seen.server_id, &mcp) {
        let wrong = log
            .records
            .iter()
            .filter(|r| {
                r.peer.as_deref() == Some(gateway.as_str())
                    && r.http_method == "POST"
                    && r.received_ms + slack >= call.sent_ms
                    && r.received_ms <= call.ended_ms + slack
            })
            .find_map(|r| wrong_credential(e, seen, &mcp, r));
        if let Some(problem) = wrong {
            findings.push(format!(
                "{gateway}: the call of {} of {name} at {} ms reached {mcp} {problem}",
                call.tool, call.sent_ms
            ));
        }
    }
    // The upstream's record of this call: the first not yet paired with
    // another call, from this gateway, of this tool, while it was under way.
    let seen_call = log.records.iter().enumerate().find(|(i, r)| {
        !claimed.contains(&(mcp.clone(), *i))
            && r.peer.as_deref() == Some(gateway.as_str())
            && r.call.as_ref().is_some_and(|c| c.tool == call.upstream)
            && r.received_ms + slack >= call.sent_ms
            && r.received_ms <= call.ended_ms + slack
    });
    let Some((index, record)) = seen_call else {
        if ok && !excused {
            findings.push(format!(
                "{gateway}: the call of {} of {name} at {} ms was answered as a success, but {mcp} never saw it",
                call.tool, call.sent_ms
            ));
        }
        return;
    };
    claimed.insert((mcp.clone(), index));
    let Some(upstream) = &record.call else {
        return;
    };
    let Some(is_error) = upstream.is_error else {
        return;
    };
    let Some(body) = call.body.as_ref().filter(|_| ok) else {
        if !excused {
            findings.push(format!(
                "{gateway}: {mcp} answered the call of {} of {name} at {} ms, but the caller {}",
                call.tool,
                call.sent_ms,
                match &call.answer {
                    Some(a) => format!("was answered {}", a.status),
                    None => "got no answer".to_string(),
                }
            ));
        }
        return;
    };
    let mut strings = Vec::new();
    strings_in(body, &mut strings);
    let missing = upstream
        .texts
        .iter()
        .filter(|t| !strings.contains(&t.as_str()))
        .count();
    if missing > 0 {
        findings.push(format!(
            "{gateway}: the answer to the call of {} of {name} lacks {missing} of the {} text blocks {mcp} answered",
            call.tool,
            upstream.texts.len()
        ));
    }
    let flagged = flag_in(body).unwrap_or(false);
    if flagged != is_error {
        findings.push(format!(
            "{gateway}: {mcp} answered the call of {} of {name} with isError {is_error}, the caller got isError {flagged}",
            call.tool
        ));
    }
}

/// What is wrong with the credential an upstream saw on a call, judged
/// against the registered definition of the server that owns the tool.
fn wrong_credential(
    e: &Evidence<'_>,
    seen: &Seen,
    mcp: &str,
    record: &McpRequestRecord,
) -> Option<String> {
    let def = definitions::definition(e, &seen.gateway, &seen.server_id, &seen.view.name)?;
    let fake = e.scenario.mcp_servers.iter().find(|m| m.host == mcp)?;
    let got = &record.credential;
    let describe = |c: &CredentialSeen| match c {
        CredentialSeen::None => "no credential".to_string(),
        CredentialSeen::Static => "its static bearer".to_string(),
        CredentialSeen::Issued { token } => {
            format!(
                "a token of client {} from {}",
                token.client_id, token.issuer
            )
        }
        CredentialSeen::Other => "a bearer it was not given".to_string(),
    };
    match &def.auth {
        ServerAuth::None => (got != &CredentialSeen::None)
            .then(|| format!("with {}, though it has no credentials", describe(got))),
        ServerAuth::Bearer { token } => match &fake.config.auth {
            McpAuth::Bearer { token: takes } if takes == token => (got != &CredentialSeen::Static)
                .then(|| format!("with {}, not its own static bearer", describe(got))),
            _ => None,
        },
        ServerAuth::ClientCredentials {
            client_id,
            client_secret,
            token_url,
            scopes,
            audience,
            resource,
            ..
        } => {
            let issuer = e
                .upstream_host(Some(token_url))
                .and_then(|h| e.scenario.token_servers.iter().find(|t| t.host == h))
                .map(|t| t.config.issuer.as_str());
            let own = matches!(got, CredentialSeen::Issued { token }
                if &token.client_id == client_id && issuer.is_none_or(|i| i == token.issuer));
            if !own {
                return Some(format!(
                    "with {}, not a token of its own client {client_id}",
                    describe(got)
                ));
            }
            let CredentialSeen::Issued { token } = got else {
                return None;
            };
            // The request that got this token, if the token server's log
            // still holds it.
            let (asked_from, asked) = e.outcome.token_requests.iter().find_map(|(host, log)| {
                log.records
                    .iter()
                    .find(|r| {
                        matches!(&r.outcome, TokenOutcome::Issued { token: issued, .. } if issued == token)
                    })
                    .map(|r| (host, r))
            })?;
            // The secret it was asked with, told by the registration that
            // took it: one the definition no longer holds is a rotation the
            // gateway did not act on.
            let registered = match &asked.outcome {
                TokenOutcome::Issued { registration, .. } => e
                    .scenario
                    .token_servers
                    .iter()
                    .find(|t| &t.host == asked_from)
                    .and_then(|t| t.config.clients.get(*registration)),
                _ => None,
            };
            let secret = resolved(e, &seen.gateway, client_secret);
            if let (Some(registered), Some(secret)) = (registered, secret) {
                if registered.client_secret != secret {
                    return Some(format!(
                        "with a token of client {client_id} asked for with a secret its definition no longer holds"
                    ));
                }
            }
            let granted: BTreeSet<&str> = asked
                .scope
                .as_deref()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            let missing: Vec<&str> = scopes
                .iter()
                .map(String::as_str)
                .filter(|s| !granted.contains(s))
                .collect();
            if !missing.is_empty() {
                return Some(format!(
                    "with a token of client {client_id} asked for without its registered scope {}",
                    missing.join(" ")
                ));
            }
            for (param, registered, sent) in [
                ("audience", audience, &asked.audience),
                ("resource", resource, &asked.resource),
            ] {
                if registered.is_some() && registered != sent {
                    return Some(format!(
                        "with a token of client {client_id} asked for without its registered {param}"
                    ));
                }
            }
            None
        }
    }
}

/// A configured value as the gateway reads it: an `os.environ/NAME`
/// reference resolved from the gateway host's environment (`None` when it
/// names nothing there).
fn resolved<'a>(e: &'a Evidence<'_>, gateway: &str, value: &'a str) -> Option<&'a str> {
    match value.strip_prefix("os.environ/") {
        Some(name) => e
            .scenario
            .gateways
            .iter()
            .find(|g| g.host == gateway)
            .and_then(|g| g.env.get(name))
            .map(String::as_str),
        None => Some(value),
    }
}

/// Whether a failed call may be a fault's doing, or an upstream's
/// configured failure's, rather than the gateway's.
fn excused(e: &Evidence<'_>, gateway: &str, mcp: Option<&str>, call: &ToolCall) -> bool {
    let Some(mcp) = mcp else {
        return true;
    };
    let mut hosts: Vec<&str> = vec![mcp];
    hosts.extend(e.scenario.token_servers.iter().map(|t| t.host.as_str()));
    let touches = |verb: &Verb| {
        verb.hosts()
            .iter()
            .any(|h| hosts.contains(h) || *h == gateway)
    };
    // A fault during the call, or one before it that left a host down or a
    // link cut.
    let faulted = e
        .scenario
        .faults
        .iter()
        .filter(|f| f.at_ms <= call.ended_ms && touches(&f.verb))
        .any(|f| {
            f.at_ms >= call.sent_ms || match &f.verb {
                Verb::Crash { host } => !e.scenario.faults.iter().any(|g| {
                    matches!(&g.verb, Verb::Bounce { host: h } if h == host)
                        && g.at_ms > f.at_ms
                        && g.at_ms <= call.sent_ms
                }),
                Verb::Partition { a, b } | Verb::Hold { a, b } => {
                    !e.scenario.faults.iter().any(|g| {
                        matches!(&g.verb, Verb::Repair { a: x, b: y } | Verb::Release { a: x, b: y }
                                if (x == a && y == b) || (x == b && y == a))
                            && g.at_ms > f.at_ms
                            && g.at_ms <= call.sent_ms
                    })
                }
                _ => false,
            }
        });
    let fake = e.scenario.mcp_servers.iter().find(|m| m.host == mcp);
    let budget_ms = e.declared(gateway).map_or(0, |d| d.listing_budget_ms);
    let configured = fake.is_some_and(|m| {
        let c = &m.config;
        // A call starts a session and calls: an upstream that takes half
        // the gateway's budget for those may take more than all of it.
        let slow_ms: u64 = ["*", "initialize", "notifications/initialized", "tools/call"]
            .iter()
            .filter_map(|method| c.latency_ms.get(*method))
            .sum();
        2 * slow_ms >= budget_ms
            || !m.listening
            || c.session_ttl_ms.is_some()
            || c.session_max_requests.is_some_and(|n| n < 3)
            || c.failures.iter().any(|r| {
                matches!(
                    r.method.as_str(),
                    "*" | "initialize" | "notifications/initialized" | "tools/call"
                )
            })
    }) || e
        .scenario
        .token_servers
        .iter()
        .any(|t| !t.listening || t.config.failures.iter().any(|r| r.count.is_none()));
    faulted || configured
}

fn strings_in<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| strings_in(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings_in(v, out)),
        _ => {}
    }
}

/// The first `isError` flag in an answer, depth first.
fn flag_in(value: &Value) -> Option<bool> {
    match value {
        Value::Object(map) => map
            .get("isError")
            .and_then(Value::as_bool)
            .or_else(|| map.values().find_map(flag_in)),
        Value::Array(items) => items.iter().find_map(flag_in),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::builder::{GatewayHost, McpHost, Scenario, TokenHost};
    use crate::operator::Records;
    use crate::world::Outcome;
    use mcpsim_fakes::{
        ClientAuthSeen, ClientRegistration, Log, McpOutcome, TokenRef, TokenRequestRecord,
        TokenServerConfig,
    };
    use mcpsim_sut::{ServerDef, ServerView};

    fn token() -> TokenRef {
        TokenRef {
            issuer: "mcpsim-auth".into(),
            client_id: "gw".into(),
            serial: 1,
            issued_ms: 0,
        }
    }

    /// What the owner's-credentials rule says of a request carrying a token
    /// of the right client, asked for with these parameters, for a server
    /// registered with secret `gw-secret`, scope `mcp`, audience `api` and
    /// resource `http://docs/mcp`.
    fn judge(
        scope: Option<&str>,
        audience: Option<&str>,
        resource: Option<&str>,
    ) -> Option<String> {
        judge_asked_with(0, scope, audience, resource)
    }

    /// As [`judge`], with the token asked for with the secret of the token
    /// server's `registration`: 0 holds `gw-secret`, 1 an older secret of
    /// the same client.
    fn judge_asked_with(
        registration: usize,
        scope: Option<&str>,
        audience: Option<&str>,
        resource: Option<&str>,
    ) -> Option<String> {
        let auth = ServerAuth::ClientCredentials {
            token_url: "http://auth/oauth/token".into(),
            client_id: "gw".into(),
            client_secret: "gw-secret".into(),
            scopes: vec!["mcp".into()],
            audience: Some("api".into()),
            resource: Some("http://docs/mcp".into()),
            explicit_flow: true,
        };
        let scenario = Scenario::builder("a token asked for as registered")
            .gateway(
                GatewayHost::new("gateway")
                    .server(ServerDef::http("docs", "http://docs/mcp").auth(auth)),
            )
            .token_server(TokenHost::new("auth").config(TokenServerConfig {
                clients: vec![
                    ClientRegistration {
                        client_id: "gw".into(),
                        client_secret: "gw-secret".into(),
                        scopes: Vec::new(),
                        auth_method: None,
                    },
                    ClientRegistration {
                        client_id: "gw".into(),
                        client_secret: "gw-old-secret".into(),
                        scopes: Vec::new(),
                        auth_method: None,
                    },
                ],
                ..TokenServerConfig::default()
            }))
            .mcp_server(McpHost::new("docs"))
            .build()
            .unwrap();
        let asked = TokenRequestRecord {
            received_ms: 1,
            answered_ms: Some(2),
            peer: Some("gateway".into()),
            client_id: Some("gw".into()),
            client_auth: ClientAuthSeen::Form,
            grant_type: Some("client_credentials".into()),
            scope: scope.map(str::to_string),
            resource: resource.map(str::to_string),
            audience: audience.map(str::to_string),
            outcome: TokenOutcome::Issued {
                token: token(),
                expires_in_s: Some(3_600),
                registration,
            },
        };
        let presented = McpRequestRecord {
            received_ms: 10,
            answered_ms: Some(11),
            peer: Some("gateway".into()),
            http_method: "POST".into(),
            rpc_method: Some("tools/call".into()),
            session: None,
            assigned_session: None,
            protocol_version: None,
            credential: CredentialSeen::Issued { token: token() },
            status: Some(200),
            outcome: McpOutcome::Answered,
            next_cursor: None,
            call: None,
        };
        let outcome = Outcome {
            records: Records::default(),
            hosts: BTreeMap::new(),
            trace: Vec::new(),
            token_servers: BTreeMap::new(),
            mcp_servers: BTreeMap::new(),
            stores: BTreeMap::new(),
            token_requests: BTreeMap::from([(
                "auth".to_string(),
                Log {
                    records: vec![asked],
                    ..Log::default()
                },
            )]),
            mcp_requests: BTreeMap::new(),
        };
        let seen = Seen {
            gateway: "gateway".into(),
            server_id: "docs-id".into(),
            view: ServerView {
                server_id: "docs-id".into(),
                name: "docs".into(),
                alias: None,
                source: None,
                url: Some("http://docs/mcp".into()),
                status: Status::Healthy,
                error: None,
                last_health_check: None,
            },
            settled_ms: Some(5),
            first_seen_ms: 0,
            deleted: false,
            last_listed_ms: 20,
            tools: Vec::new(),
            tools_unreadable: None,
            serves_tools: true,
        };
        let all_seen = BTreeMap::new();
        let authorities = BTreeMap::new();
        let evidence = Evidence {
            scenario: &scenario,
            outcome: &outcome,
            seen: &all_seen,
            trace: &[],
            no_events: None,
            faults: crate::faults::Faults::new(&scenario),
            report_text: "",
            reports_check_time: true,
            hop_ms: 5,
            authorities: &authorities,
            error_words: true,
        };
        wrong_credential(&evidence, &seen, "docs", &presented)
    }

    #[test]
    fn a_token_asked_for_without_a_registered_parameter_is_not_the_owners() {
        let all = (Some("mcp tools"), Some("api"), Some("http://docs/mcp"));
        assert_eq!(judge(all.0, all.1, all.2), None);
        let no_scope = judge(None, all.1, all.2).unwrap();
        assert!(
            no_scope.contains("without its registered scope mcp"),
            "{no_scope}"
        );
        let other_scope = judge(Some("tools"), all.1, all.2).unwrap();
        assert!(other_scope.contains("scope mcp"), "{other_scope}");
        let no_audience = judge(all.0, None, all.2).unwrap();
        assert!(no_audience.contains("registered audience"), "{no_audience}");
        let no_resource = judge(all.0, all.1, Some("http://other/mcp")).unwrap();
        assert!(no_resource.contains("registered resource"), "{no_resource}");
    }

    #[test]
    fn a_token_asked_for_with_a_rotated_out_secret_is_not_the_owners() {
        let all = (Some("mcp tools"), Some("api"), Some("http://docs/mcp"));
        assert_eq!(judge_asked_with(0, all.0, all.1, all.2), None);
        let old = judge_asked_with(1, all.0, all.1, all.2).unwrap();
        assert!(
            old.contains("with a secret its definition no longer holds"),
            "{old}"
        );
        assert!(!old.contains("secret-"), "{old}");
    }
}
