//! What the upstreams saw of one gateway's work for one server, as the
//! checkers of health records and tool calls read it: every request a
//! gateway sent to a server's MCP server and token servers, with the stage
//! it belongs to, and which requests ended an attempt.
//!
//! Outside-in: it reads the fakes' own request logs only. Requests are
//! told apart by the peer that sent them (the gateway host), never by the
//! gateway's own account.
//!
//! An attempt's last request ("terminal") is one after whose answer the
//! gateway sent nothing more to that server's upstreams for a few message
//! times: a gateway that goes on (the next page, a token after a 401, a
//! fresh session after a 404) does so as soon as the answer arrives. A
//! request followed at once by what may start a new attempt (a token
//! request, an `initialize`) may have ended its own.

use mcpsim_fakes::{McpOutcome, McpRequestRecord, TokenOutcome, TokenRequestRecord};
use mcpsim_sut::ServerAuth;

use super::definitions;
use super::Evidence;

/// The stage of discovery a request belongs to, in mcpsim's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stage {
    Token,
    /// Reaching the MCP server: an error named so says no request of the
    /// attempt reached it. No request is of this stage.
    Connect,
    /// `initialize` and `notifications/initialized`.
    Initialize,
    /// `tools/list`.
    List,
    /// `tools/call`: not discovery, but it goes on from an `initialize`.
    Call,
    /// A session's `DELETE`, the GET stream, pings: none of them is a step
    /// an attempt waits for.
    Other,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Token => "token",
            Stage::Connect => "connect",
            Stage::Initialize => "initialize",
            Stage::List => "list",
            Stage::Call => "call",
            Stage::Other => "other",
        }
    }

    /// Whether a gateway sends it as a step of an attempt or a call.
    fn continues(self) -> bool {
        self != Stage::Other
    }

    /// The stage an error message names, from its leading label
    /// (`token: ...`, `connect: ...`, `initialize: ...`, `tools/list:
    /// ...`); none when the
    /// label is no stage word.
    pub fn named_by(error: &str) -> Option<Stage> {
        let label = error.split(':').next()?.trim().to_ascii_lowercase();
        match label.as_str() {
            "token" => Some(Stage::Token),
            "connect" => Some(Stage::Connect),
            "initialize" | "initialized" | "notifications/initialized" => Some(Stage::Initialize),
            "list" | "tools/list" => Some(Stage::List),
            _ => None,
        }
    }
}

/// One request a gateway sent to an upstream of a server.
#[derive(Clone, Debug)]
pub(crate) struct Sent<'a> {
    /// The fake host that received it.
    pub host: &'a str,
    pub stage: Stage,
    pub received_ms: u64,
    /// When the fake answered; none when the gateway went away first, or
    /// the request was still open when the run ended.
    pub answered_ms: Option<u64>,
    /// An MCP request's session, to find the `DELETE` that closed it.
    pub session: Option<&'a str>,
    /// The MCP record, for a request to an MCP server.
    pub mcp: Option<&'a McpRequestRecord>,
}

fn mcp_stage(r: &McpRequestRecord) -> Stage {
    if r.http_method != "POST" {
        return Stage::Other;
    }
    match r.rpc_method.as_deref() {
        Some("initialize") | Some("notifications/initialized") => Stage::Initialize,
        Some("tools/list") => Stage::List,
        Some("tools/call") => Stage::Call,
        _ => Stage::Other,
    }
}

fn token_sent<'a>(host: &'a str, r: &'a TokenRequestRecord) -> Sent<'a> {
    let answered_ms = match r.outcome {
        TokenOutcome::Abandoned | TokenOutcome::Pending => None,
        _ => r.answered_ms,
    };
    Sent {
        host,
        stage: Stage::Token,
        received_ms: r.received_ms,
        answered_ms,
        session: None,
        mcp: None,
    }
}

/// The upstream hosts of one server on one gateway: its MCP server, and the
/// token servers it may ask.
#[derive(Clone, Debug)]
pub(crate) struct Upstreams {
    pub mcp: String,
    pub token: Vec<String>,
    /// Some definition of the server names a token endpoint that is no fake
    /// (so its failures leave no record).
    pub token_unseen: bool,
}

/// The upstreams of server `id` (named `name`, listed at `url`) on
/// `gateway`: the MCP server its URL names, and the token servers any of
/// its definitions over the run names, or every token server where those
/// are not known in mcpsim's words. None when the URL names no fake.
pub(crate) fn upstreams(
    e: &Evidence<'_>,
    gateway: &str,
    id: &str,
    name: &str,
    url: Option<&str>,
) -> Option<Upstreams> {
    let mcp = e.upstream_host(url)?;
    if !e.outcome.mcp_requests.contains_key(&mcp) {
        return None;
    }
    let mut token = Vec::new();
    let mut token_unseen = false;
    match definitions::definitions(e, gateway, id, name) {
        Some(defs) => {
            for def in defs {
                if let ServerAuth::ClientCredentials { token_url, .. } = &def.auth {
                    match e.upstream_host(Some(token_url)) {
                        Some(h) if e.outcome.token_requests.contains_key(&h) => {
                            if !token.contains(&h) {
                                token.push(h);
                            }
                        }
                        _ => token_unseen = true,
                    }
                }
            }
        }
        None => token = e.outcome.token_requests.keys().cloned().collect(),
    }
    Some(Upstreams {
        mcp,
        token,
        token_unseen,
    })
}

/// Every request `gateway` sent to these upstreams, in the order received.
pub(crate) fn sent_by<'a>(e: &'a Evidence<'_>, gateway: &str, up: &'a Upstreams) -> Vec<Sent<'a>> {
    let mut sent = Vec::new();
    if let Some(log) = e.outcome.mcp_requests.get(&up.mcp) {
        for r in log
            .records
            .iter()
            .filter(|r| r.peer.as_deref() == Some(gateway))
        {
            let answered_ms = match r.outcome {
                McpOutcome::Abandoned | McpOutcome::Pending => None,
                _ => r.answered_ms,
            };
            sent.push(Sent {
                host: up.mcp.as_str(),
                stage: mcp_stage(r),
                received_ms: r.received_ms,
                answered_ms,
                session: r.session.as_deref(),
                mcp: Some(r),
            });
        }
    }
    for host in &up.token {
        if let Some(log) = e.outcome.token_requests.get(host) {
            sent.extend(
                log.records
                    .iter()
                    .filter(|r| r.peer.as_deref() == Some(gateway))
                    .map(|r| token_sent(host.as_str(), r)),
            );
        }
    }
    sent.sort_by_key(|s| s.received_ms);
    sent
}

/// How long after an answer a gateway that goes on has sent its next
/// request: the answer's way back, and a new connection's way out (a
/// handshake there and back, then the request).
pub(crate) fn go_on_ms(e: &Evidence<'_>) -> u64 {
    4 * e.hop_ms()
}

/// The requests the gateway sent after `sent[i]` and before it could have
/// gone on from its answer; none when it was never answered.
fn went_on<'s, 'a>(e: &Evidence<'_>, sent: &'s [Sent<'a>], i: usize) -> Option<Vec<&'s Sent<'a>>> {
    let t = &sent[i];
    let until = t.answered_ms? + go_on_ms(e);
    Some(
        sent[i + 1..]
            .iter()
            .take_while(|s| s.received_ms <= until)
            .filter(|s| s.stage.continues())
            .collect(),
    )
}

fn discovery(stage: Stage) -> bool {
    matches!(stage, Stage::Token | Stage::Initialize | Stage::List)
}

/// Whether `sent[i]`, an answered discovery request, certainly ended its
/// attempt: the gateway sent nothing more to these upstreams until it could
/// have gone on from its answer.
pub(crate) fn terminal(e: &Evidence<'_>, sent: &[Sent<'_>], i: usize) -> bool {
    discovery(sent[i].stage) && went_on(e, sent, i).is_some_and(|next| next.is_empty())
}

/// Whether `sent[i]`, a discovery request, may have ended its attempt:
/// nothing followed it soon, or what followed may be the start of the next
/// attempt (a token request, an `initialize`), or it was never answered
/// (the gateway gave up on it at a time only the gateway knows).
pub(crate) fn may_end(e: &Evidence<'_>, sent: &[Sent<'_>], i: usize) -> bool {
    if !discovery(sent[i].stage) {
        return false;
    }
    let Some(next) = went_on(e, sent, i) else {
        return true;
    };
    match next.first() {
        None => true,
        Some(s) => {
            s.stage == Stage::Token
                || s.mcp
                    .is_some_and(|r| r.rpc_method.as_deref() == Some("initialize"))
        }
    }
}

/// The other servers `gateway` may have had behind the same MCP server at
/// some time of the run: ids it listed with a URL naming that host, and ids
/// written with a spec naming it, on any gateway sharing its store. While
/// there are any, requests to that host cannot be told apart by server.
pub(crate) fn shared_upstream(e: &Evidence<'_>, gateway: &str, id: &str, mcp: &str) -> bool {
    let records = &e.outcome.records;
    let listed = records
        .polls
        .iter()
        .filter(|p| p.gateway == gateway)
        .filter_map(|p| p.servers.as_ref().ok())
        .flatten()
        .any(|row| {
            row.server_id != id && e.upstream_host(row.url.as_deref()).as_deref() == Some(mcp)
        });
    let sharing = crate::observe::sharing(e.scenario, gateway);
    let written = records.writes.iter().any(|w| {
        sharing.contains(&w.gateway)
            && w.server_id.as_deref().is_some_and(|other| other != id)
            && w.spec
                .as_ref()
                .is_some_and(|s| e.upstream_host(Some(&s.url)).as_deref() == Some(mcp))
    });
    // A write mcpsim cannot read may have put another server there; it
    // shows in a list, unless it was gone before the first poll.
    let polled = |other: &str| {
        records
            .polls
            .iter()
            .filter(|p| sharing.contains(&p.gateway))
            .filter_map(|p| p.servers.as_ref().ok())
            .flatten()
            .any(|row| row.server_id == other)
    };
    let unknown = records.writes.iter().any(|w| {
        sharing.contains(&w.gateway)
            && w.kind != crate::operator::WriteKind::Delete
            && w.spec.is_none()
            && w.maybe_applied()
            && w.server_id
                .as_deref()
                .is_none_or(|other| other != id && !polled(other))
    });
    listed || written || unknown
}
