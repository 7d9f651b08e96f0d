//! Builds a turmoil world from a scenario and runs it to a report.
//!
//! Hosts: every gateway, token server and MCP server of the scenario, each
//! listening on port 80, plus the `operator` client that registers servers
//! and polls like a person would. State meant to survive a host restart (the
//! fakes' counters and issued tokens) lives outside the host closures.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use mcpsim_fakes::{McpServer, StoreServer, TokenServer};
use mcpsim_gateway::http_client::HttpClient;
use mcpsim_gateway::store::{HttpStore, Store};
use mcpsim_gateway::{Clock, ConfigFile, Deps, Gateway};
use serde_json::{json, Value};

use crate::net::{serve, SimHttpClient};
use crate::scenario::{Action, Scenario, Verb};
use crate::trace::{now_ms, Trace, TraceSink, TracingClient, What};

// Every client in the world opens a fresh connection per request, and runs
// its connection tasks on its host's LocalSet (`SimHttpClient::local`):
// hyper-util's pool decided reuse, and tokio's runtime the order of dropping
// tasks at a restart, in ways that depended on the thread when two worlds
// ran at once (both found by `mcpsim explore`'s determinism sample), and
// same seed must mean same run.

/// The simulated wall clock starts here: 2026-01-01T00:00:00Z.
pub const EPOCH_UNIX_S: u64 = mcpsim_fakes::SIM_EPOCH_UNIX_S;

/// How long the operator waits for one answer from a gateway.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a run could not happen at all (as opposed to a failed check).
#[derive(Debug)]
pub struct RunError(pub String);

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RunError {}

struct SimClock;

impl Clock for SimClock {
    fn now_unix(&self) -> Duration {
        turmoil::since_epoch().unwrap_or_default()
    }
}

fn fake_clock() -> mcpsim_fakes::Clock {
    Arc::new(|| turmoil::since_epoch().unwrap_or_default())
}

/// What the operator saw of one server.
#[derive(Clone, Debug, Default)]
pub(crate) struct Seen {
    pub gateway: String,
    pub server_id: String,
    pub name: String,
    pub source: String,
    pub url: Option<String>,
    pub status: String,
    pub error: Option<String>,
    pub last_health_check: Option<String>,
    pub settled_ms: Option<u64>,
    /// Simulated ms of the first poll that listed it on this gateway.
    pub first_seen_ms: Option<u64>,
    pub deleted: bool,
    /// The last poll that listed it.
    pub last_listed_ms: u64,
    pub tools: Vec<String>,
    /// Whether its tools were read and can be judged: false on a control
    /// plane, which serves no MCP traffic, and when the status changed while
    /// they were read.
    pub serves_tools: bool,
}

/// Everything the operator observed.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    pub servers: BTreeMap<(String, String), Seen>,
    /// Every response body the operator read, for the secrets check.
    pub bodies: Vec<String>,
    /// Inconsistent health records, seen at any poll.
    pub violations: Vec<String>,
    /// Step results: `create DatabricksSQL -> 201`.
    pub steps: Vec<String>,
    pub deadline_hit: bool,
    pub end_ms: u64,
    /// Acknowledged registrations a gateway never listed.
    pub missing: Vec<String>,
    /// First poll at which a gateway's health said its store is unreachable.
    pub store_unreachable_seen: BTreeMap<String, u64>,
    /// Acknowledged creates: (gateway that took it, server id, simulated ms
    /// at which the create was sent).
    pub acked: Vec<(String, String, u64)>,
    /// Tool calls made through the gateway after settling, with their answers.
    pub tool_calls: Vec<String>,
    /// Ids the operator sent a delete for, answered or not.
    pub deletes_sent: std::collections::BTreeSet<String>,
}

/// The raw results of a run, before checks.
pub(crate) struct Outcome {
    pub observed: Observed,
    pub trace: Vec<crate::trace::TraceEvent>,
    pub token_servers: BTreeMap<String, TokenServer>,
    pub mcp_servers: BTreeMap<String, McpServer>,
    pub stores: BTreeMap<String, StoreServer>,
}

pub(crate) fn run_world(
    scenario: &Scenario,
    defects: mcpsim_gateway::Defects,
) -> Result<Outcome, RunError> {
    let trace = Trace::default();
    // Configs are checked before the world exists, so a bad one is an input
    // error and not a host that dies at start.
    let mut configs = Vec::new();
    for g in &scenario.gateways {
        let config: ConfigFile = if g.config.is_null() {
            ConfigFile::default()
        } else {
            serde_json::from_value(g.config.clone())
                .map_err(|e| RunError(format!("gateway {}: config: {e}", g.host)))?
        };
        let probe = Deps {
            http: Arc::new(SimHttpClient::new()),
            clock: Arc::new(SimClock),
            events: Arc::new(mcpsim_gateway::MemorySink::default()),
            store: None,
        };
        Gateway::new(g.settings.clone(), probe, &config, &g.env)
            .map_err(|e| RunError(format!("gateway {}: config: {e}", g.host)))?;
        configs.push(config);
    }

    let mut sim = turmoil::Builder::new()
        .rng_seed(scenario.seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(EPOCH_UNIX_S))
        .tick_duration(Duration::from_millis(scenario.network.tick_ms))
        .min_message_latency(Duration::from_millis(scenario.network.latency_ms_min))
        .max_message_latency(Duration::from_millis(scenario.network.latency_ms_max))
        .simulation_duration(Duration::from_millis(scenario.deadline_ms + 60_000))
        .build();

    let mut token_servers = BTreeMap::new();
    for t in &scenario.token_servers {
        let server = TokenServer::new(t.config.clone(), fake_clock());
        token_servers.insert(t.host.clone(), server.clone());
        upstream_host(
            &mut sim,
            &t.host,
            t.listening,
            t.listen_after_ms,
            move || server.router(),
        );
    }
    let mut mcp_servers = BTreeMap::new();
    for m in &scenario.mcp_servers {
        let server = McpServer::new(m.config.clone(), fake_clock());
        mcp_servers.insert(m.host.clone(), server.clone());
        upstream_host(
            &mut sim,
            &m.host,
            m.listening,
            m.listen_after_ms,
            move || server.router(),
        );
    }
    let mut stores = BTreeMap::new();
    for st in &scenario.stores {
        // The store's state lives here, outside the host: a bounce keeps it.
        let server = StoreServer::new(st.config.clone());
        stores.insert(st.host.clone(), server.clone());
        sim.host(st.host.as_str(), move || {
            let router = server.router();
            async move { serve(80, router).await }
        });
    }
    for (g, config) in scenario.gateways.iter().zip(configs) {
        let mut settings = g.settings.clone();
        settings.defects = defects;
        let (host, settings, env, trace) = (g.host.clone(), settings, g.env.clone(), trace.clone());
        let store_host = g.store.clone();
        sim.host(g.host.as_str(), move || {
            let (upstream_client, upstream_driver) = SimHttpClient::local();
            let (store_client, store_driver) = SimHttpClient::local();
            let deps = Deps {
                http: Arc::new(TracingClient {
                    inner: upstream_client,
                    host: host.clone(),
                    trace: trace.clone(),
                }),
                clock: Arc::new(SimClock),
                events: Arc::new(TraceSink {
                    host: host.clone(),
                    trace: trace.clone(),
                }),
                store: store_host.as_ref().map(|store| {
                    let client = TracingClient {
                        inner: store_client.clone(),
                        host: host.clone(),
                        trace: trace.clone(),
                    };
                    Arc::new(HttpStore::new(Arc::new(client), format!("http://{store}")))
                        as Arc<dyn Store>
                }),
            };
            let (settings, config, env) = (settings.clone(), config.clone(), env.clone());
            async move {
                tokio::task::spawn_local(upstream_driver.run());
                tokio::task::spawn_local(store_driver.run());
                // Built inside the host's runtime, where simulated time is
                // readable: a restarted gateway seeds its ids from it.
                let gateway =
                    Gateway::new(settings, deps, &config, &env).map_err(|e| e.to_string())?;
                gateway.start();
                serve(80, gateway.router()).await
            }
        });
    }

    let observed = Arc::new(Mutex::new(Observed::default()));
    {
        let scenario = scenario.clone();
        let observed = observed.clone();
        let trace = trace.clone();
        sim.client("operator", async move {
            operate(&scenario, &trace, &observed).await;
            Ok(())
        });
    }
    drive(&mut sim, scenario, &trace)?;
    let observed = std::mem::take(&mut *observed.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Outcome {
        observed,
        trace: trace.events(),
        token_servers,
        mcp_servers,
        stores,
    })
}

/// A fake upstream's host: serves its router on port 80, never when it is
/// not `listening`, and from `listen_after_ms` on when that is given.
fn upstream_host<'a>(
    sim: &mut turmoil::Sim<'a>,
    host: &str,
    listening: bool,
    listen_after_ms: Option<u64>,
    router: impl Fn() -> axum::Router + 'a,
) {
    sim.host(host, move || {
        let router = router();
        async move {
            if !listening {
                std::future::pending::<()>().await;
            }
            listen_at(listen_after_ms).await;
            serve(80, router).await
        }
    });
}

/// Waits until simulated time `at_ms`, if given and still ahead.
async fn listen_at(at_ms: Option<u64>) {
    if let Some(at) = at_ms {
        let now = now_ms();
        if at > now {
            tokio::time::sleep(Duration::from_millis(at - now)).await;
        }
    }
}

/// Steps the simulation until the operator is done, applying each fault
/// when its time comes. Faults are applied between steps, so they land at
/// the same simulated instant in every run.
fn drive(sim: &mut turmoil::Sim<'_>, scenario: &Scenario, trace: &Trace) -> Result<(), RunError> {
    let mut faults: Vec<&crate::scenario::Fault> = scenario.faults.iter().collect();
    faults.sort_by_key(|f| f.at_ms);
    let mut next = 0;
    loop {
        let now = sim.elapsed().as_millis() as u64;
        while next < faults.len() && faults[next].at_ms <= now {
            let verb = &faults[next].verb;
            trace.push_at(
                now,
                "sim",
                What::Note {
                    text: verb.describe(),
                },
            );
            let before = trace.len();
            match verb {
                Verb::Crash { host } => sim.crash(host.as_str()),
                Verb::Bounce { host } => sim.bounce(host.as_str()),
                Verb::Partition { a, b } => sim.partition(a.as_str(), b.as_str()),
                Verb::Repair { a, b } => sim.repair(a.as_str(), b.as_str()),
                Verb::Hold { a, b } => sim.hold(a.as_str(), b.as_str()),
                Verb::Release { a, b } => sim.release(a.as_str(), b.as_str()),
            }
            // Exchanges abandoned as a host's tasks are dropped are recorded
            // in the order tokio drops them, which follows process-wide task
            // ids: put them in a canonical order.
            trace.sort_from(before);
            next += 1;
        }
        match sim.step() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => return Err(RunError(format!("simulation failed: {e}"))),
        }
    }
}

struct Operator<'a> {
    http: TracingClient<SimHttpClient>,
    observed: &'a Mutex<Observed>,
    deadline_ms: u64,
    api_key: Option<String>,
}

impl Operator<'_> {
    fn observed(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.observed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One request to a gateway; a refused connection (the gateway not
    /// listening yet, or restarting) is retried until the deadline.
    async fn call(
        &self,
        gateway: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Option<(u16, Value)> {
        self.call_within(gateway, method, path, body, CALL_TIMEOUT)
            .await
    }

    /// [`Operator::call`], giving up (and dropping the connection) after
    /// `patience`.
    async fn call_within(
        &self,
        gateway: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
        patience: Duration,
    ) -> Option<(u16, Value)> {
        loop {
            let mut request = http::Request::builder()
                .method(method)
                .uri(format!("http://{gateway}{path}"));
            if body.is_some() {
                request = request.header("content-type", "application/json");
            }
            if let Some(key) = &self.api_key {
                request = request.header("authorization", format!("Bearer {key}"));
            }
            let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
            let request = request.body(bytes).ok()?;
            // An open connection across a partition hangs: give up on it
            // as a person would, and say so with no answer.
            let answer = tokio::time::timeout(patience, self.http.send(request)).await;
            let Ok(answer) = answer else {
                return None;
            };
            match answer {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let text = String::from_utf8_lossy(response.body()).to_string();
                    let value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
                    self.observed().bodies.push(text);
                    return Some((status, value));
                }
                Err(mcpsim_gateway::HttpError::Connect(_)) if now_ms() < self.deadline_ms => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(_) => return None,
            }
        }
    }

    fn record_row(&self, gateway: &str, row: &Value) {
        let id = row["server_id"].as_str().unwrap_or("").to_string();
        let status = row["status"].as_str().unwrap_or("").to_string();
        let error = row["health_check_error"].as_str().map(str::to_string);
        let last = row["last_health_check"].as_str().map(str::to_string);
        let now = now_ms();
        let mut observed = self.observed();
        // The health record must be consistent at every poll.
        let mut problems = Vec::new();
        if last.is_some() && status == "unknown" {
            problems.push("last_health_check is set but status is unknown");
        }
        if status == "unhealthy" && error.is_none() {
            problems.push("status is unhealthy without an error");
        }
        if status == "healthy" && error.is_some() {
            problems.push("status is healthy with an error");
        }
        if status != "unknown" && last.is_none() {
            problems.push("status is settled without last_health_check");
        }
        for p in problems {
            observed
                .violations
                .push(format!("{gateway}/{id} at {now} ms: {p}"));
        }
        let seen = observed
            .servers
            .entry((gateway.to_string(), id.clone()))
            .or_default();
        seen.gateway = gateway.to_string();
        seen.server_id = id;
        seen.name = row["server_name"].as_str().unwrap_or("").to_string();
        seen.source = row["source"].as_str().unwrap_or("").to_string();
        seen.url = row["url"].as_str().map(str::to_string);
        if seen.first_seen_ms.is_none() {
            seen.first_seen_ms = Some(now);
        }
        if status != "unknown" && seen.settled_ms.is_none() {
            seen.settled_ms = Some(now);
        }
        seen.status = status;
        seen.error = error;
        seen.last_health_check = last;
        seen.deleted = false;
        seen.last_listed_ms = now;
    }
}

/// Sends one step; gives its label, the gateway asked, when it was sent,
/// and the answer.
async fn send_step(
    op: &Operator<'_>,
    step: &crate::scenario::Step,
    first: &str,
    created: &BTreeMap<String, String>,
) -> (String, String, u64, Option<(u16, Value)>) {
    let gateway = step.gateway.clone().unwrap_or_else(|| first.to_string());
    let patience = step
        .give_up_after_ms
        .map_or(CALL_TIMEOUT, Duration::from_millis);
    let sent_ms = now_ms();
    let (label, result) = match &step.action {
        Action::Create { body } => {
            let name = body["server_name"].as_str().unwrap_or("?");
            let result = op
                .call_within(&gateway, "POST", "/v1/mcp/server", Some(body), patience)
                .await;
            (format!("create {name}"), result)
        }
        Action::Update { server, body } => {
            let mut body = body.clone();
            if body.get("server_id").is_none() {
                body["server_id"] = json!(created.get(server).cloned().unwrap_or_default());
            }
            let result = op
                .call_within(&gateway, "PUT", "/v1/mcp/server", Some(&body), patience)
                .await;
            (format!("update {server}"), result)
        }
        Action::Delete { server } => {
            let id = created.get(server).cloned().unwrap_or_default();
            let path = format!("/v1/mcp/server/{id}");
            let result = op
                .call_within(&gateway, "DELETE", &path, None, patience)
                .await;
            (format!("delete {server}"), result)
        }
    };
    (label, gateway, sent_ms, result)
}

async fn operate(scenario: &Scenario, trace: &Trace, observed: &Mutex<Observed>) {
    let (client, driver) = SimHttpClient::local();
    tokio::task::spawn_local(driver.run());
    let op = Operator {
        http: TracingClient {
            inner: client,
            host: "operator".to_string(),
            trace: trace.clone(),
        },
        observed,
        deadline_ms: scenario.deadline_ms,
        api_key: scenario.operator.api_key.clone(),
    };
    let first = scenario.gateways[0].host.clone();
    let mut created: BTreeMap<String, String> = BTreeMap::new();
    // Where each acknowledged registration must show up: the gateway that
    // took it, and every gateway that shares its store.
    let mut expected: std::collections::BTreeSet<(String, String)> = Default::default();
    // Where each acknowledged delete must take effect.
    let mut gone: std::collections::BTreeSet<(String, String)> = Default::default();
    let sharing = |host: &str| -> Vec<String> {
        let store = scenario
            .gateways
            .iter()
            .find(|g| g.host == host)
            .and_then(|g| g.store.clone());
        scenario
            .gateways
            .iter()
            .filter(|g| g.host == host || (store.is_some() && g.store == store))
            .map(|g| g.host.clone())
            .collect()
    };
    // Steps marked `with_previous` go out together with the step before
    // them; a group's answers are applied in step order.
    let steps = &scenario.operator.steps;
    let mut i = 0;
    while i < steps.len() {
        let mut group = vec![&steps[i]];
        i += 1;
        while i < steps.len() && steps[i].with_previous {
            group.push(&steps[i]);
            i += 1;
        }
        let now = now_ms();
        if group[0].at_ms > now {
            tokio::time::sleep(Duration::from_millis(group[0].at_ms - now)).await;
        }
        let sends = group
            .iter()
            .map(|step| send_step(&op, step, &first, &created));
        let answers = futures_util::future::join_all(sends).await;
        for (step, (label, gateway, sent_ms, result)) in group.iter().zip(answers) {
            match (&step.action, &result) {
                (Action::Create { body }, Some((201, row))) => {
                    let name = body["server_name"].as_str().unwrap_or("?").to_string();
                    if let Some(id) = row["server_id"].as_str() {
                        created.insert(name, id.to_string());
                        // From the moment it was sent: a data plane may sync the
                        // row before the 201 reaches the operator.
                        op.observed()
                            .acked
                            .push((gateway.clone(), id.to_string(), sent_ms));
                        for host in sharing(&gateway) {
                            expected.insert((host, id.to_string()));
                        }
                    }
                }
                (Action::Delete { server }, answer) => {
                    let id = created.get(server).cloned().unwrap_or_default();
                    // A delete that got no answer may still have landed.
                    op.observed().deletes_sent.insert(id.clone());
                    if let Some((202, _)) = answer {
                        expected.retain(|(_, e)| e != &id);
                        for host in sharing(&gateway) {
                            gone.insert((host, id.clone()));
                        }
                        if let Some(seen) = op.observed().servers.get_mut(&(gateway.clone(), id)) {
                            seen.deleted = true;
                        }
                    }
                }
                _ => {}
            }
            let text = match result {
                Some((status, body)) => match body["detail"]["error"].as_str() {
                    Some(error) => format!("{label} -> {status}: {error}"),
                    None => format!("{label} -> {status}"),
                },
                None if step.give_up_after_ms.is_some() => format!("{label} -> gave up"),
                None => format!("{label} -> no answer"),
            };
            op.observed().steps.push(text);
        }
    }

    // Poll every gateway until every server it lists has left `unknown`.
    loop {
        // Only a round that began after the last fault can say how things
        // ended: one that began before may have read a host just before it
        // restarted.
        let round_start = now_ms();
        let mut all_settled = true;
        for g in &scenario.gateways {
            match op.call(&g.host, "GET", "/v1/mcp/server", None).await {
                Some((200, Value::Array(rows))) => {
                    let listed: Vec<String> = rows
                        .iter()
                        .filter_map(|r| r["server_id"].as_str().map(str::to_string))
                        .collect();
                    for row in &rows {
                        op.record_row(&g.host, row);
                        if row["status"].as_str() == Some("unknown") {
                            all_settled = false;
                        }
                    }
                    let now = now_ms();
                    let mut observed = op.observed();
                    let observed = &mut *observed;
                    for ((gateway, id), seen) in observed.servers.iter_mut() {
                        if gateway != &g.host || listed.contains(id) {
                            continue;
                        }
                        // A server disappears only by a delete, or for a
                        // while when its gateway restarts.
                        let restarted = scenario.faults.iter().any(|f| {
                            matches!(&f.verb, Verb::Crash { host } | Verb::Bounce { host } if host == gateway)
                                && f.at_ms >= seen.last_listed_ms
                                && f.at_ms <= now
                        });
                        if !seen.deleted && !restarted && !observed.deletes_sent.contains(id) {
                            observed.violations.push(format!(
                                "{gateway}/{id} at {now} ms: listed at {} ms, now gone though nothing deleted it",
                                seen.last_listed_ms
                            ));
                        }
                        seen.deleted = true;
                    }
                }
                _ => all_settled = false,
            }
            if g.store.is_some() {
                if let Some((200, Value::Array(items))) =
                    op.call(&g.host, "GET", "/v1/mcp/server/health", None).await
                {
                    let unreachable = items.iter().any(|i| i["store_reachable"] == json!(false));
                    if unreachable {
                        let now = now_ms();
                        op.observed()
                            .store_unreachable_seen
                            .entry(g.host.clone())
                            .or_insert(now);
                    }
                }
            }
        }
        let unlisted: Vec<String> = {
            let observed = op.observed();
            expected
                .iter()
                .filter(|key| observed.servers.get(*key).is_none_or(|s| s.deleted))
                .map(|(host, id)| format!("acknowledged server {id} is not listed on {host}"))
                .chain(
                    gone.iter()
                        .filter(|key| observed.servers.get(*key).is_some_and(|s| !s.deleted))
                        .map(|(host, id)| format!("deleted server {id} is still listed on {host}")),
                )
                .collect()
        };
        all_settled &= unlisted.is_empty();
        // Settling before the last fault proves nothing about after it.
        let faults_done = scenario.faults.iter().all(|f| f.at_ms < round_start)
            && now_ms() >= scenario.operator.poll_until_ms;
        if all_settled && faults_done {
            trace.push(
                "operator",
                What::Note {
                    text: "every server settled".into(),
                },
            );
            break;
        }
        if now_ms() >= scenario.deadline_ms {
            trace.push(
                "operator",
                What::Note {
                    text: "deadline reached".into(),
                },
            );
            op.observed().deadline_hit = true;
            op.observed().missing = unlisted;
            break;
        }
        tokio::time::sleep(Duration::from_millis(scenario.operator.poll_interval_ms)).await;
    }

    let keys: Vec<(String, String)> = op
        .observed()
        .servers
        .iter()
        .filter(|(_, s)| !s.deleted)
        .map(|(k, _)| k.clone())
        .collect();
    for (gateway, id) in keys {
        let control = scenario
            .gateways
            .iter()
            .any(|g| g.host == gateway && g.settings.role == mcpsim_gateway::Role::Control);
        if control {
            continue;
        }
        if let Some(seen) = op
            .observed()
            .servers
            .get_mut(&(gateway.clone(), id.clone()))
        {
            seen.serves_tools = true;
        }
        let path = format!("/v1/mcp/tools?server_id={id}");
        if let Some((200, body)) = op.call(&gateway, "GET", &path, None).await {
            let mut names: Vec<String> = body["tools"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect();
            names.sort();
            let healthy = op
                .observed()
                .servers
                .get(&(gateway.clone(), id.clone()))
                .is_some_and(|s| s.status == "healthy");
            if scenario.operator.call_tools && healthy {
                if let Some(name) = names.first() {
                    let body = json!({"name": name, "arguments": {}});
                    let answer = op
                        .call(&gateway, "POST", "/mcp-rest/tools/call", Some(&body))
                        .await;
                    let result = match answer {
                        Some((status, _)) => status.to_string(),
                        None => "no answer".to_string(),
                    };
                    op.observed()
                        .tool_calls
                        .push(format!("{gateway}: call {name} -> {result}"));
                }
            }
            if let Some(seen) = op.observed().servers.get_mut(&(gateway, id)) {
                seen.tools = names;
            }
        }
    }
    // A status that changed while the tools were read makes that reading
    // unfit to judge against the status: look once more.
    for g in &scenario.gateways {
        if let Some((200, Value::Array(rows))) =
            op.call(&g.host, "GET", "/v1/mcp/server", None).await
        {
            let mut observed = op.observed();
            for row in &rows {
                let id = row["server_id"].as_str().unwrap_or("").to_string();
                let status = row["status"].as_str().unwrap_or("");
                if let Some(seen) = observed.servers.get_mut(&(g.host.clone(), id)) {
                    if seen.status != status {
                        seen.serves_tools = false;
                    }
                }
            }
        }
    }
    op.observed().end_ms = now_ms();
}
