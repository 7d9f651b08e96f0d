//! Which registered server points at which upstream, and when, as far as
//! the outside can tell: from the scenario's config servers and the
//! operator's writes and their answers, never from the gateway.
//!
//! A *stint* is one definition of one server on a group of gateways (the
//! gateway that took the write and every gateway sharing its store; a
//! config server's own gateway): the MCP host its URL names, the token
//! server and client it authenticates with, from the write that made it
//! until an acknowledged write replaced or removed it (the answer's time).
//!
//! Invariants: a write that may have taken effect (acknowledged, or never
//! answered) opens a stint; only an acknowledged write ends one, so an
//! unanswered delete leaves the server possibly registered, which the
//! checkers treat as ambiguous rather than guess. A definition whose URL
//! cannot be read (a native body or config without a `url`) points at no
//! known upstream, and the checkers treat it as possibly pointing at every
//! upstream.

use serde_json::Value;

use mcpsim_sut::{Registration, ServerAuth, ServerDef};

use super::Evidence;
use crate::observe;
use crate::operator::WriteKind;
use crate::scenario::Action;

/// What a definition says about its upstreams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Upstreams {
    /// The MCP host its URL names; `None` when the URL could not be read.
    pub mcp: Option<String>,
    /// The token host and client id of its client credentials, if any.
    pub token: Option<(String, Option<String>)>,
    /// Whether the definition could be read at all.
    pub readable: bool,
}

/// One definition of one server on a group of gateways, for a time.
#[derive(Clone, Debug)]
pub(crate) struct Stint {
    /// The server's id where known; its name otherwise.
    pub identity: String,
    /// The server's name as the operator means it.
    pub name: String,
    pub gateways: Vec<String>,
    pub upstreams: Upstreams,
    pub from_ms: u64,
    /// When an acknowledged write ended it; `None`: never, as far as the
    /// records tell.
    pub until_ms: Option<u64>,
    /// The write that ended it, and whether that was a delete.
    pub retired_by: Option<(usize, WriteKind)>,
    /// Every write that concerned it (by index into the operator's writes).
    pub writes: Vec<usize>,
}

impl Stint {
    /// Whether this stint may point at the MCP host `host`.
    pub fn may_point_at(&self, host: &str) -> bool {
        self.upstreams.mcp.as_deref().is_none_or(|h| h == host)
    }

    /// Whether this stint may use the token server `host` with `client`.
    pub fn may_use_token(&self, host: &str, client: Option<&str>) -> bool {
        if !self.upstreams.readable {
            return true;
        }
        match &self.upstreams.token {
            Some((h, c)) => {
                h == host && (c.is_none() || client.is_none() || c.as_deref() == client)
            }
            None => false,
        }
    }

    /// Whether the stint is in force at some instant of `from..to`.
    pub fn overlaps(&self, from_ms: u64, to_ms: u64) -> bool {
        self.from_ms < to_ms && self.until_ms.is_none_or(|until| until > from_ms)
    }
}

/// The first string under `key` anywhere in `value`, depth first.
fn find_text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    match value {
        Value::Object(map) => map
            .get(key)
            .and_then(Value::as_str)
            .or_else(|| map.values().find_map(|v| find_text(v, key))),
        Value::Array(items) => items.iter().find_map(|v| find_text(v, key)),
        _ => None,
    }
}

fn of_def(e: &Evidence<'_>, def: &ServerDef) -> Upstreams {
    let token = match &def.auth {
        ServerAuth::ClientCredentials {
            token_url,
            client_id,
            ..
        } => e
            .upstream_host(Some(token_url))
            .map(|host| (host, Some(client_id.clone()))),
        _ => None,
    };
    let mcp = e.upstream_host(Some(&def.url));
    Upstreams {
        readable: mcp.is_some(),
        mcp,
        token,
    }
}

/// A gateway's own body: its `url`, `token_url` and `client_id`, wherever
/// they are in it.
fn of_native(e: &Evidence<'_>, body: &Value) -> Upstreams {
    let mcp = e.upstream_host(find_text(body, "url"));
    let token = e
        .upstream_host(find_text(body, "token_url"))
        .map(|host| (host, find_text(body, "client_id").map(str::to_string)));
    Upstreams {
        readable: mcp.is_some(),
        mcp,
        token,
    }
}

fn of_registration(e: &Evidence<'_>, registration: Option<Registration<'_>>) -> Upstreams {
    match registration {
        Some(Registration::Def(def)) => of_def(e, def),
        Some(Registration::Native(body)) => of_native(e, body),
        None => Upstreams {
            mcp: None,
            token: None,
            readable: false,
        },
    }
}

/// Every object with a `url` in a native config, as one server each.
fn native_servers<'a>(value: &'a Value, path: &str, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            if map.get("url").and_then(Value::as_str).is_some() {
                out.push((path.to_string(), value));
                return;
            }
            for (key, v) in map {
                native_servers(v, &format!("{path}.{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                native_servers(v, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Every stint of the run: config servers first, then one per write that
/// may have taken effect, in the order of the writes.
pub(crate) fn stints(e: &Evidence<'_>) -> Vec<Stint> {
    let mut stints = Vec::new();
    for g in &e.scenario.gateways {
        let mut config: Vec<(String, Upstreams)> = g
            .servers
            .iter()
            .map(|def| (def.name.clone(), of_def(e, def)))
            .collect();
        let mut native = Vec::new();
        native_servers(&g.config, "config", &mut native);
        config.extend(
            native
                .into_iter()
                .map(|(path, body)| (path, of_native(e, body))),
        );
        for (name, upstreams) in config {
            stints.push(Stint {
                identity: format!("{}/{name}", g.host),
                name,
                gateways: vec![g.host.clone()],
                upstreams,
                from_ms: 0,
                until_ms: None,
                retired_by: None,
                writes: Vec::new(),
            });
        }
    }
    let steps = &e.scenario.operator.steps;
    // One write record per step, in step order (the operator's contract).
    for (i, (w, step)) in e.outcome.records.writes.iter().zip(steps).enumerate() {
        let refused = w.answer.as_ref().is_some_and(|a| !a.accepted);
        if refused {
            continue;
        }
        let acknowledged_ms = w.answered_ms.filter(|_| w.answer.is_some());
        let gateways = observe::sharing(e.scenario, &w.gateway);
        let identity = match w.kind {
            WriteKind::Create => w
                .server_id
                .clone()
                .or_else(|| match &step.action {
                    Action::Create {
                        spec: Some(spec), ..
                    } => spec.server_id.clone(),
                    _ => None,
                })
                .unwrap_or_else(|| format!("{}#{i}", w.name)),
            WriteKind::Update | WriteKind::Delete => w
                .server_id
                .clone()
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| w.name.clone()),
        };
        let open = |s: &Stint| {
            s.identity == identity
                && s.until_ms.is_none()
                && s.gateways.iter().any(|g| gateways.contains(g))
        };
        let upstreams = of_registration(e, step.action.registration());
        let new_stint = |writes: Vec<usize>| Stint {
            identity: identity.clone(),
            name: w.name.clone(),
            gateways: gateways.clone(),
            upstreams: upstreams.clone(),
            from_ms: w.sent_ms,
            until_ms: None,
            retired_by: None,
            writes,
        };
        match w.kind {
            WriteKind::Create => match stints.iter_mut().find(|s| open(s)) {
                // The same server again (a client that retried): one stint.
                Some(existing) => existing.writes.push(i),
                None => stints.push(new_stint(vec![i])),
            },
            WriteKind::Update => {
                let mut changed = true;
                for s in stints.iter_mut().filter(|s| open(s)) {
                    s.writes.push(i);
                    if s.upstreams == upstreams {
                        changed = false;
                    } else if let Some(at) = acknowledged_ms {
                        s.until_ms = Some(at);
                        s.retired_by = Some((i, WriteKind::Update));
                    }
                }
                if changed {
                    stints.push(new_stint(vec![i]));
                }
            }
            WriteKind::Delete => {
                for s in stints.iter_mut().filter(|s| open(s)) {
                    s.writes.push(i);
                    if let Some(at) = acknowledged_ms {
                        s.until_ms = Some(at);
                        s.retired_by = Some((i, WriteKind::Delete));
                    }
                }
            }
        }
    }
    stints
}

/// Whether, on `gateway`, the stints that may point at MCP host `mcp`
/// belong to one server at a time: no two of different servers are in
/// force at once. Requests from the gateway to that host can then be
/// told apart by time alone.
pub(crate) fn one_at_a_time(stints: &[Stint], gateway: &str, mcp: &str) -> bool {
    let here: Vec<&Stint> = stints
        .iter()
        .filter(|s| s.gateways.iter().any(|g| g == gateway) && s.may_point_at(mcp))
        .collect();
    here.iter().enumerate().all(|(i, a)| {
        here[i + 1..].iter().all(|b| {
            a.identity == b.identity || !a.overlaps(b.from_ms, b.until_ms.unwrap_or(u64::MAX))
        })
    })
}
