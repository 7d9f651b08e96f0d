//! The operator: registers servers and polls like a person would, through
//! the system under test's dialect, and records everything it sends and
//! sees. It judges nothing: the checkers do, from its records.
//!
//! Its phases: [`Operator::send_steps`] (the scenario's writes, a group of
//! racing steps at a time), [`Operator::poll_until_settled`] (every gateway,
//! until every server has left `unknown` after the last fault, or the
//! deadline; the tools of a server a list shows unhealthy are read once
//! per check of it), [`Operator::read_tools`] (each server's tools, then every
//! server's at once where the dialect can read that, and, when asked, a
//! call of every listed tool of each healthy server, with arguments its
//! input schema takes and the `MCP-Protocol-Version` an MCP client
//! sends, through the gateway that listed it and through every other
//! tool-serving gateway on the same store that lists the server healthy),
//! and
//! [`Operator::read_again`] (one more list, so that a status that changed
//! while tools were read is not judged against them).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcpsim_sut::{
    ApiAnswer, ApiRequest, CallAnswer, Declared, Dialect, HealthView, HttpClient, HttpError,
    Registration, ServerDef, ServerView, Status, ToolView, WriteAnswer,
};
use serde_json::{json, Map, Value};

use crate::faults::Faults;
use crate::observe::{self, Seen};
use crate::scenario::{Action, Scenario, Step};
use crate::trace::{Trace, TracingClient, What};

/// How long the operator waits for one answer from a gateway.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The MCP revision the operator says it speaks when it calls a tool, as
/// an MCP client sends `MCP-Protocol-Version` with every request after
/// `initialize`. It is the client's own business with the gateway: an
/// older revision than the fakes prefer, so that a gateway that passes it
/// on to an upstream, whose session agreed on another, shows.
const CALLER_PROTOCOL_VERSION: &str = "2025-06-18";

/// What kind of write a step was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteKind {
    Create,
    Update,
    Delete,
}

/// One write the operator sent, and what came of it.
#[derive(Clone, Debug)]
pub(crate) struct WriteRecord {
    pub gateway: String,
    pub kind: WriteKind,
    /// The server's name, as the operator means it.
    pub name: String,
    /// The id written to (update, delete), or given back (create); for a
    /// create that got no answer, the id it asked for, if any.
    pub server_id: Option<String>,
    /// When the write itself went out (after the look-up of an id the
    /// operator had to find in the list).
    pub sent_ms: u64,
    /// How long the operator waited for the answer: the step's own
    /// patience, or the budget the gateway declared for a write.
    pub patience_ms: u64,
    /// When the answer came; none when none came in time.
    pub answered_ms: Option<u64>,
    /// What the gateway answered; none when it did not answer in time.
    pub answer: Option<WriteAnswer>,
    /// The server as the write defines it, in mcpsim's words; none for the
    /// gateway's own bodies, which mcpsim cannot read.
    pub spec: Option<ServerDef>,
    /// The dialect's body carried fields beyond the spec, so the spec does
    /// not say all the write means.
    pub extra_fields: bool,
    /// The scenario marks the write a bad input.
    pub bad_input: bool,
    /// One line for the report: `create docs -> 201`.
    pub text: String,
}

impl WriteRecord {
    /// Whether the gateway may have applied the write: it took it, or its
    /// answer never came.
    pub fn maybe_applied(&self) -> bool {
        self.answer.as_ref().is_none_or(|a| a.accepted)
    }

    /// Whether the gateway answered that it refused the write.
    pub fn refused(&self) -> bool {
        self.answer.as_ref().is_some_and(|a| !a.accepted)
    }
}

/// Why a poll is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Until everything has settled.
    Settling,
    /// The one read after the tools were read.
    Final,
}

/// One read of a gateway's server list.
#[derive(Clone, Debug)]
pub(crate) struct Poll {
    pub gateway: String,
    pub sent_ms: u64,
    pub answered_ms: u64,
    pub phase: Phase,
    /// What the gateway listed, or why nothing could be read.
    pub servers: Result<Vec<ServerView>, String>,
}

/// One read of a gateway's health.
#[derive(Clone, Debug)]
pub(crate) struct HealthPoll {
    pub gateway: String,
    pub sent_ms: u64,
    pub answered_ms: u64,
    pub items: Result<Vec<HealthView>, String>,
}

/// One read of a server's tools.
#[derive(Clone, Debug)]
pub(crate) struct ToolRead {
    pub gateway: String,
    pub server_id: String,
    pub sent_ms: u64,
    /// When the read ended, answered or given up.
    pub ended_ms: u64,
    pub tools: Result<Vec<ToolView>, String>,
}

/// One read of the tools of every server of a gateway at once (the
/// aggregate list), made just after the per-server reads of that gateway.
#[derive(Clone, Debug)]
pub(crate) struct AggregateRead {
    pub gateway: String,
    pub sent_ms: u64,
    /// When the read ended, answered or given up.
    pub ended_ms: u64,
    /// The exposed name of every tool listed, or why none could be read
    /// (`no answer` when none came in time).
    pub tools: Result<Vec<String>, String>,
}

/// One read, while the operator polls, of the tools of a server the list
/// just showed unhealthy: once per check of it (`last_health_check`).
#[derive(Clone, Debug)]
pub(crate) struct UnhealthyRead {
    pub gateway: String,
    pub server_id: String,
    /// The `last_health_check` of the unhealthy row.
    pub checked: String,
    pub sent_ms: u64,
    /// When the read ended, answered or given up.
    pub ended_ms: u64,
    pub tools: Result<Vec<ToolView>, String>,
}

/// One tool call through a gateway.
#[derive(Clone, Debug)]
pub(crate) struct ToolCall {
    pub gateway: String,
    /// The server whose listed tool was called.
    pub server_id: String,
    /// The name the gateway exposes.
    pub tool: String,
    /// The name the upstream gave the tool.
    pub upstream: String,
    pub sent_ms: u64,
    /// When the call ended, answered or given up.
    pub ended_ms: u64,
    pub answer: Option<CallAnswer>,
    /// The answer's body as the gateway sent it (JSON, or a JSON string).
    pub body: Option<Value>,
}

/// Everything the operator did and saw.
#[derive(Debug, Default)]
pub(crate) struct Records {
    pub writes: Vec<WriteRecord>,
    pub polls: Vec<Poll>,
    pub health: Vec<HealthPoll>,
    pub tool_reads: Vec<ToolRead>,
    pub aggregate_reads: Vec<AggregateRead>,
    pub unhealthy_reads: Vec<UnhealthyRead>,
    pub tool_calls: Vec<ToolCall>,
    /// Every response body the operator read, for the secrets check.
    pub bodies: Vec<String>,
    pub deadline_hit: bool,
    pub end_ms: u64,
}

pub(crate) struct Operator<'a> {
    http: TracingClient<Arc<dyn HttpClient>>,
    trace: &'a Trace,
    records: &'a Mutex<Records>,
    scenario: &'a Scenario,
    dialect: &'a dyn Dialect,
    hosts: &'a BTreeMap<String, Declared>,
    faults: Faults<'a>,
}

/// Runs the operator's whole session. `http` reaches every gateway host by
/// its name (`http://<host>/...`): over the simulated network, or on
/// loopback in a live run.
pub(crate) async fn operate(
    scenario: &Scenario,
    dialect: &dyn Dialect,
    hosts: &BTreeMap<String, Declared>,
    trace: &Trace,
    records: &Mutex<Records>,
    http: Arc<dyn HttpClient>,
    open_sessions: OpenSessions<'_>,
) {
    let op = Operator {
        http: TracingClient {
            inner: http,
            host: "operator".to_string(),
            trace: trace.clone(),
        },
        trace,
        records,
        scenario,
        dialect,
        hosts,
        faults: Faults::new(scenario),
    };
    op.send_steps().await;
    op.poll_until_settled(trace).await;
    op.read_tools().await;
    op.read_again().await;
    op.linger(open_sessions).await;
    op.records().end_ms = trace.now_ms();
}

/// Until when upstream sessions a gateway has in use must be watched (see
/// [`crate::checks::open_until`]), asked at the given instant.
pub(crate) type OpenSessions<'a> = &'a dyn Fn(u64) -> Option<u64>;

impl Operator<'_> {
    fn now_ms(&self) -> u64 {
        self.trace.now_ms()
    }

    fn records(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One request to a gateway; a refused connection (the gateway not
    /// listening yet, or restarting) is retried until the deadline. Gives
    /// up, and drops the connection, after `patience`.
    async fn call(
        &self,
        gateway: &str,
        request: &ApiRequest,
        patience: Duration,
    ) -> Option<(u16, Value)> {
        let body = request.body.as_ref().map(|b| b.to_string().into_bytes());
        self.call_bytes(gateway, request, body, &[], patience).await
    }

    /// [`Operator::call`] with the body given as bytes, sent as they are.
    /// `extra` are headers beyond the content type and the operator's key.
    async fn call_bytes(
        &self,
        gateway: &str,
        request: &ApiRequest,
        body: Option<Vec<u8>>,
        extra: &[(&str, &str)],
        patience: Duration,
    ) -> Option<(u16, Value)> {
        loop {
            let mut builder = http::Request::builder()
                .method(request.method.clone())
                .uri(format!("http://{gateway}{}", request.path));
            if body.is_some() {
                builder = builder.header("content-type", "application/json");
            }
            if let Some(key) = &self.scenario.operator.api_key {
                let (name, value) = self.dialect.authorization(key);
                builder = builder.header(name, value);
            }
            for (name, value) in extra {
                builder = builder.header(*name, *value);
            }
            let built = builder.body(body.clone().unwrap_or_default()).ok()?;
            // An open connection across a partition hangs: give up on it
            // as a person would, and say so with no answer.
            let answer = tokio::time::timeout(patience, self.http.send(built)).await;
            let Ok(answer) = answer else {
                return None;
            };
            match answer {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let text = String::from_utf8_lossy(response.body()).to_string();
                    let value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
                    self.records().bodies.push(text);
                    return Some((status, value));
                }
                Err(HttpError::Connect(_)) if self.now_ms() < self.scenario.deadline_ms => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(_) => return None,
            }
        }
    }

    /// The ids of servers created so far, by name.
    fn created(&self) -> BTreeMap<String, String> {
        let mut created = BTreeMap::new();
        for w in &self.records().writes {
            if let (WriteKind::Create, Some(id), Some(answer)) = (w.kind, &w.server_id, &w.answer) {
                if answer.accepted {
                    created.insert(w.name.clone(), id.clone());
                }
            }
        }
        created
    }

    /// The id under which `gateway` lists the server `name` that the
    /// operator did not create (one from a config file), as a person would
    /// look it up: from the list, read now and recorded as a poll. Empty
    /// when it is not listed.
    async fn listed_id(&self, gateway: &str, name: &str) -> String {
        let rows = self.read_list(gateway, Phase::Settling).await;
        rows.ok()
            .and_then(|rows| rows.into_iter().find(|r| r.name == name))
            .map(|r| r.server_id)
            .unwrap_or_default()
    }

    /// Sends one step and records it.
    async fn send_step(&self, step: &Step, created: &BTreeMap<String, String>) -> WriteRecord {
        let gateway = step
            .gateway
            .clone()
            .unwrap_or_else(|| self.scenario.gateways[0].host.clone());
        // A gateway that works before it answers a write is given the
        // budget it declared for that.
        let declared = self
            .hosts
            .get(&gateway)
            .and_then(|d| d.write_budget_ms)
            .map_or(CALL_TIMEOUT, |ms| {
                CALL_TIMEOUT.max(Duration::from_millis(ms))
            });
        let patience = step
            .give_up_after_ms
            .map_or(declared, Duration::from_millis);
        // A raw body has no registration; its method and path are an empty
        // native body's, and the name is whatever the dialect reads in it.
        let raw_json: Option<Value> = step
            .raw_body
            .as_ref()
            .map(|raw| serde_json::from_str(raw).unwrap_or(Value::Null));
        let empty = Value::Object(Map::new());
        let registration = step.action.registration().or_else(|| {
            step.raw_body
                .as_ref()
                .map(|_| Registration::Native(raw_json.as_ref().unwrap_or(&empty)))
        });
        let spec = match &step.action {
            Action::Create { spec, .. } | Action::Update { spec, .. } => spec.clone(),
            Action::Delete { .. } => None,
        };
        let (kind, name, target, request) = match &step.action {
            Action::Create { .. } => {
                let name = registration
                    .map(|r| self.dialect.registration_name(r))
                    .unwrap_or_default();
                let request = registration.map(|r| self.dialect.create(r));
                (WriteKind::Create, name, None, request)
            }
            Action::Update { server, .. } => {
                let id = match created.get(server) {
                    Some(id) => id.clone(),
                    None => self.listed_id(&gateway, server).await,
                };
                let request = registration.map(|r| self.dialect.update(&id, r));
                (WriteKind::Update, server.clone(), Some(id), request)
            }
            Action::Delete { server } => {
                let id = match created.get(server) {
                    Some(id) => id.clone(),
                    None => self.listed_id(&gateway, server).await,
                };
                let request = Some(self.dialect.delete(&id));
                (WriteKind::Delete, server.clone(), Some(id), request)
            }
        };
        // A name can be anything a bad input carries; the report shows a
        // readable part of it.
        let shown: String = match name.char_indices().nth(40) {
            Some((end, _)) => format!("{}…", &name[..end]),
            None => name.clone(),
        };
        let label = match kind {
            WriteKind::Create => format!("create {shown}"),
            WriteKind::Update => format!("update {shown}"),
            WriteKind::Delete => format!("delete {shown}"),
        };
        let body = request.as_ref().and_then(|request| {
            if let Some(raw) = &step.raw_body {
                return Some(raw.clone().into_bytes());
            }
            let mut body = request.body.clone()?;
            if let (Some(extra), Value::Object(map)) = (&step.extra_fields, &mut body) {
                for (key, value) in extra {
                    map.insert(key.clone(), value.clone());
                }
            }
            Some(body.to_string().into_bytes())
        });
        // Sent now, once the id of a server the operator did not create has
        // been looked up: the lookup's own poll comes before the write.
        let sent_ms = self.now_ms();
        let result = match &request {
            Some(request) => {
                self.call_bytes(&gateway, request, body, &[], patience)
                    .await
            }
            None => None,
        };
        let answered_ms = result.is_some().then(|| self.now_ms());
        let answer = result.as_ref().map(|(status, body)| {
            self.dialect.read_write(ApiAnswer {
                status: *status,
                body,
            })
        });
        // 504: the gateway could not tell whether its write was done (its
        // store did not answer): as unknown an outcome as no answer at all.
        let unknown = answer.as_ref().is_some_and(|a| a.status == 504);
        let text = match &answer {
            Some(a) => match &a.error {
                Some(error) => format!("{label} -> {}: {error}", a.status),
                None => format!("{label} -> {}", a.status),
            },
            None if step.give_up_after_ms.is_some() => format!("{label} -> gave up"),
            None => format!("{label} -> no answer"),
        };
        let answer = answer.filter(|_| !unknown);
        let server_id = match kind {
            WriteKind::Create => match &answer {
                Some(a) => a.server_id.clone(),
                None => spec.as_ref().and_then(|s| s.server_id.clone()),
            },
            _ => target,
        };
        WriteRecord {
            gateway,
            kind,
            name,
            server_id,
            sent_ms,
            patience_ms: patience.as_millis() as u64,
            answered_ms,
            answer,
            spec,
            extra_fields: step.extra_fields.is_some(),
            bad_input: step.bad_input,
            text,
        }
    }

    /// Steps marked `with_previous` go out together with the step before
    /// them; a group's answers are recorded in step order.
    async fn send_steps(&self) {
        let steps = &self.scenario.operator.steps;
        let mut i = 0;
        while i < steps.len() {
            let mut group = vec![&steps[i]];
            i += 1;
            while i < steps.len() && steps[i].with_previous {
                group.push(&steps[i]);
                i += 1;
            }
            let now = self.now_ms();
            if group[0].at_ms > now {
                tokio::time::sleep(Duration::from_millis(group[0].at_ms - now)).await;
            }
            let created = self.created();
            let sends = group.iter().map(|step| self.send_step(step, &created));
            let written = futures_util::future::join_all(sends).await;
            self.records().writes.extend(written);
        }
    }

    /// Reads every gateway's list (and health, where it has a store) until
    /// every server has left `unknown` after the last fault, or the
    /// deadline passes.
    async fn poll_until_settled(&self, trace: &Trace) {
        let scenario = self.scenario;
        loop {
            // Only a round that began after the last fault can say how
            // things ended: one that began before may have read a host just
            // before it restarted.
            let round_start = self.now_ms();
            let mut all_settled = true;
            for g in &scenario.gateways {
                match &self.read_list(&g.host, Phase::Settling).await {
                    Ok(rows) => {
                        if rows.iter().any(|r| r.status == Status::Unknown) {
                            all_settled = false;
                        }
                        self.read_unhealthy_tools(&g.host, rows).await;
                    }
                    Err(_) => all_settled = false,
                }
                if g.store.is_some() {
                    let sent_ms = self.now_ms();
                    if let Some((status, body)) = self
                        .call(&g.host, &self.dialect.health(), CALL_TIMEOUT)
                        .await
                    {
                        let items = self.dialect.read_health(ApiAnswer {
                            status,
                            body: &body,
                        });
                        self.records().health.push(HealthPoll {
                            gateway: g.host.clone(),
                            sent_ms,
                            answered_ms: self.now_ms(),
                            items,
                        });
                    }
                }
            }
            let owed = {
                let records = self.records();
                let seen = observe::seen(&records);
                observe::owed_listings(scenario, self.hosts, &self.faults, &records.writes, &seen)
            };
            all_settled &= owed.is_empty();
            // Settling before the last fault proves nothing about after it.
            let faults_done = self.faults.all_before(round_start)
                && self.now_ms() >= scenario.operator.poll_until_ms;
            if all_settled && faults_done {
                trace.push(
                    "operator",
                    What::Note {
                        text: "every server settled".into(),
                    },
                );
                break;
            }
            if self.now_ms() >= scenario.deadline_ms {
                trace.push(
                    "operator",
                    What::Note {
                        text: "deadline reached".into(),
                    },
                );
                self.records().deadline_hit = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(scenario.operator.poll_interval_ms)).await;
        }
    }

    /// Reads the tools of each server the list just showed unhealthy, once
    /// per check of it, on a gateway that serves MCP traffic and states when
    /// it checked: an unhealthy server lists no tools, which `consistency`
    /// judges against the polls around the read.
    async fn read_unhealthy_tools(&self, gateway: &str, rows: &[ServerView]) {
        if !self.hosts.get(gateway).is_some_and(|d| d.serves_tools) {
            return;
        }
        for row in rows.iter().filter(|r| r.status == Status::Unhealthy) {
            let Some(checked) = row.last_health_check.clone() else {
                continue;
            };
            let read_before = self.records().unhealthy_reads.iter().any(|r| {
                r.gateway == gateway && r.server_id == row.server_id && r.checked == checked
            });
            if read_before {
                continue;
            }
            let request = self.dialect.tools(&row.server_id);
            let sent_ms = self.now_ms();
            let answer = self.call(gateway, &request, CALL_TIMEOUT).await;
            let tools = match &answer {
                Some((status, body)) => self.dialect.read_tools(
                    ApiAnswer {
                        status: *status,
                        body,
                    },
                    row,
                ),
                None => Err("no answer".to_string()),
            };
            self.records().unhealthy_reads.push(UnhealthyRead {
                gateway: gateway.to_string(),
                server_id: row.server_id.clone(),
                checked,
                sent_ms,
                ended_ms: self.now_ms(),
                tools,
            });
        }
    }

    /// Reads the tools of every listed server on every gateway that serves
    /// MCP traffic, then, where the dialect can and the gateway lists more
    /// than one server, the tools of every server of that gateway at once,
    /// and then calls every listed tool of each
    /// healthy server when asked: the reads of one gateway follow each
    /// other closely, so that they can be compared.
    async fn read_tools(&self) {
        let listed: Vec<Seen> = {
            let records = self.records();
            observe::seen(&records)
                .into_values()
                .filter(|s| !s.deleted)
                .collect()
        };
        let mut gateways: Vec<&str> = listed.iter().map(|s| s.gateway.as_str()).collect();
        gateways.dedup();
        for gateway in gateways {
            let serves = self.hosts.get(gateway).is_some_and(|d| d.serves_tools);
            if !serves {
                continue;
            }
            let mut read = Vec::new();
            for seen in listed.iter().filter(|s| s.gateway == gateway) {
                if let Some(tools) = self.read_server_tools(seen).await {
                    read.push((seen, tools));
                }
            }
            // With one server the aggregate is that server's own list.
            if listed.iter().filter(|s| s.gateway == gateway).count() > 1 {
                self.read_aggregate(gateway).await;
            }
            if !self.scenario.operator.call_tools {
                continue;
            }
            for (seen, tools) in read {
                if seen.view.status != Status::Healthy {
                    continue;
                }
                // One call first, then every other listed tool at once, as a
                // client fanning out would: the calls take two calls' time,
                // not one per tool, and the first leaves the gateway holding
                // a fresh token for the rest, if it needed one.
                let Some((first, rest)) = tools.split_first() else {
                    continue;
                };
                let first = self.call_tool(seen, first).await;
                self.records().tool_calls.push(first);
                let calls = rest.iter().map(|tool| self.call_tool(seen, tool));
                let calls = futures_util::future::join_all(calls).await;
                self.records().tool_calls.extend(calls);
                // The same tools through every other gateway that serves
                // tools from the same store and lists the server healthy
                // too (a replica), as a client balanced across replicas
                // would call them.
                for other in self.replicas_of(gateway, &listed, &seen.server_id) {
                    let calls = tools.iter().map(|tool| self.call_tool(other, tool));
                    let calls = futures_util::future::join_all(calls).await;
                    self.records().tool_calls.extend(calls);
                }
            }
        }
    }

    /// The server `server_id` as every other tool-serving gateway that
    /// shares `gateway`'s store lists it, healthy.
    fn replicas_of<'s>(&self, gateway: &str, listed: &'s [Seen], server_id: &str) -> Vec<&'s Seen> {
        let store = |host: &str| {
            self.scenario
                .gateways
                .iter()
                .find(|g| g.host == host)
                .and_then(|g| g.store.clone())
        };
        let Some(own) = store(gateway) else {
            return Vec::new();
        };
        listed
            .iter()
            .filter(|s| {
                s.gateway != gateway
                    && s.server_id == server_id
                    && s.view.status == Status::Healthy
                    && self.hosts.get(&s.gateway).is_some_and(|d| d.serves_tools)
                    && store(&s.gateway).as_ref() == Some(&own)
            })
            .collect()
    }

    /// Reads one server's tools and records the read; gives what it read.
    async fn read_server_tools(&self, seen: &Seen) -> Option<Vec<ToolView>> {
        let request = self.dialect.tools(&seen.server_id);
        let sent_ms = self.now_ms();
        let answer = self.call(&seen.gateway, &request, CALL_TIMEOUT).await;
        let tools = match &answer {
            Some((status, body)) => self.dialect.read_tools(
                ApiAnswer {
                    status: *status,
                    body,
                },
                &seen.view,
            ),
            None => Err("no answer".to_string()),
        };
        self.records().tool_reads.push(ToolRead {
            gateway: seen.gateway.clone(),
            server_id: seen.server_id.clone(),
            sent_ms,
            ended_ms: self.now_ms(),
            tools: tools.clone(),
        });
        tools.ok()
    }

    /// Reads the tools of every server of one gateway at once, if the
    /// dialect can, and records the read.
    async fn read_aggregate(&self, gateway: &str) {
        let Some(request) = self.dialect.tools_all() else {
            return;
        };
        let sent_ms = self.now_ms();
        let answer = self.call(gateway, &request, CALL_TIMEOUT).await;
        let tools = match &answer {
            Some((status, body)) => self.dialect.read_tools_all(ApiAnswer {
                status: *status,
                body,
            }),
            None => Err("no answer".to_string()),
        };
        self.records().aggregate_reads.push(AggregateRead {
            gateway: gateway.to_string(),
            sent_ms,
            ended_ms: self.now_ms(),
            tools,
        });
    }

    /// Calls one listed tool with arguments its input schema takes.
    async fn call_tool(&self, seen: &Seen, tool: &ToolView) -> ToolCall {
        let arguments = self.arguments_for(&seen.view, tool);
        let request = self.dialect.call_tool(&seen.view, tool, &arguments);
        let sent_ms = self.now_ms();
        let body = request.body.as_ref().map(|b| b.to_string().into_bytes());
        let version = [("mcp-protocol-version", CALLER_PROTOCOL_VERSION)];
        let result = self
            .call_bytes(&seen.gateway, &request, body, &version, CALL_TIMEOUT)
            .await;
        let answer = result.as_ref().map(|(status, body)| {
            self.dialect.read_call(ApiAnswer {
                status: *status,
                body,
            })
        });
        ToolCall {
            gateway: seen.gateway.clone(),
            server_id: seen.server_id.clone(),
            tool: tool.exposed.clone(),
            upstream: tool.upstream.clone(),
            sent_ms,
            ended_ms: self.now_ms(),
            answer,
            body: result.map(|(_, body)| body),
        }
    }

    /// Arguments that satisfy the tool's input schema: a value of the
    /// declared type (or the first allowed value) for every required
    /// property. The schema is the one the scenario gave the fake behind the
    /// server, found by the server's URL, or by the tool's name where the URL
    /// names no scenario host (a live run's relay).
    fn arguments_for(&self, server: &ServerView, tool: &ToolView) -> Value {
        let host = server
            .url
            .as_deref()
            .and_then(|u| u.parse::<http::Uri>().ok())
            .and_then(|u| u.host().map(str::to_string));
        let hosts: Vec<_> = self
            .scenario
            .mcp_servers
            .iter()
            .filter(|m| host.as_deref().is_none_or(|h| h == m.host))
            .collect();
        let candidates = if hosts.is_empty() {
            self.scenario.mcp_servers.iter().collect()
        } else {
            hosts
        };
        let schema = candidates
            .iter()
            .flat_map(|m| {
                m.config
                    .tools
                    .iter()
                    .chain(m.config.tool_changes.iter().flat_map(|c| c.tools.iter()))
            })
            .find(|spec| spec.name == tool.upstream)
            .map(|spec| &spec.input_schema);
        schema.map_or_else(|| json!({}), satisfying)
    }

    /// Before the run ends: waits, in steps of a few messages and never
    /// past the deadline, while a session a gateway opened upstream is in
    /// use and not yet closed, until its bound has passed: a gateway that
    /// closes its sessions (a tool call's at the end of the run, say) ends
    /// the wait within a few messages; one that leaves one open is judged.
    async fn linger(&self, open_sessions: OpenSessions<'_>) {
        let step_ms = 4 * self.scenario.network.hop_ms();
        loop {
            let now = self.now_ms();
            let Some(until) = open_sessions(now) else {
                return;
            };
            let until = until.min(self.scenario.deadline_ms);
            if now >= until {
                return;
            }
            tokio::time::sleep(Duration::from_millis((until - now).min(step_ms).max(1))).await;
        }
    }

    /// One more read of every gateway's list.
    async fn read_again(&self) {
        for g in &self.scenario.gateways {
            // Recorded; the checkers read it.
            let _ = self.read_list(&g.host, Phase::Final).await;
        }
    }

    /// Reads one gateway's server list and records the poll; gives what it
    /// read.
    async fn read_list(&self, gateway: &str, phase: Phase) -> Result<Vec<ServerView>, String> {
        let sent_ms = self.now_ms();
        let mut answers = Vec::new();
        for request in self.dialect.list() {
            match self.call(gateway, &request, CALL_TIMEOUT).await {
                Some(answer) => answers.push(answer),
                None => break,
            }
        }
        let servers = if answers.len() == self.dialect.list().len() {
            let parts: Vec<ApiAnswer<'_>> = answers
                .iter()
                .map(|(status, body)| ApiAnswer {
                    status: *status,
                    body,
                })
                .collect();
            self.dialect.read_list(&parts)
        } else {
            Err("no answer".to_string())
        };
        self.records().polls.push(Poll {
            gateway: gateway.to_string(),
            sent_ms,
            answered_ms: self.now_ms(),
            phase,
            servers: servers.clone(),
        });
        servers
    }
}

/// Arguments with a value for every required property of an object schema.
fn satisfying(schema: &Value) -> Value {
    let properties = schema.get("properties").and_then(Value::as_object);
    let required = schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str);
    let mut arguments = Map::new();
    for name in required {
        let property = properties.and_then(|p| p.get(name));
        arguments.insert(name.to_string(), example(property));
    }
    Value::Object(arguments)
}

/// A value a property's schema takes: its first allowed value, or one of its
/// type.
fn example(property: Option<&Value>) -> Value {
    if let Some(first) = property
        .and_then(|p| p.get("enum"))
        .and_then(Value::as_array)
        .and_then(|values| values.first())
    {
        return first.clone();
    }
    let wanted = match property.and_then(|p| p.get("type")) {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(types)) => types.first().and_then(Value::as_str).unwrap_or(""),
        _ => "",
    };
    match wanted {
        "integer" | "number" => json!(1),
        "boolean" => json!(true),
        "array" => json!([]),
        "object" => json!({}),
        "null" => Value::Null,
        _ => json!("mcpsim"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_satisfy_the_required_properties_of_a_schema() {
        let schema = json!({"type": "object", "required": ["q", "n", "mode", "tags"],
            "properties": {"q": {"type": "string"}, "n": {"type": "integer"},
                "mode": {"enum": ["fast", "slow"]}, "tags": {"type": ["array", "null"]},
                "optional": {"type": "string"}}});
        assert_eq!(
            satisfying(&schema),
            json!({"q": "mcpsim", "n": 1, "mode": "fast", "tags": []})
        );
        assert_eq!(satisfying(&json!({"type": "object"})), json!({}));
    }
}
