//! Builds a turmoil world from a scenario and a system under test, and runs
//! it to an outcome.
//!
//! Hosts: every gateway (built by the system under test, afresh on every
//! bounce), token server, MCP server and store of the scenario, each
//! listening on port 80, plus the `operator` client. State meant to survive
//! a host restart (the fakes' state and logs, the store's rows) lives
//! outside the host closures.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use mcpsim_fakes::{
    Log, McpRequestRecord, McpServer, StoreServer, TokenRequestRecord, TokenServer,
};
use mcpsim_sut::{Clock, Declared, HostSetup, Injected, StoreAccess, Sut};

use crate::net::{serve, SimHttpClient};
use crate::operator::{operate, Records};
use crate::scenario::{Scenario, ScenarioError, Verb};
use crate::trace::{now_ms, Trace, TraceEvent, TraceSink, TracingClient, What};

// Every client in the world opens a fresh connection per request, and runs
// its connection tasks on its host's LocalSet (`SimHttpClient::local`):
// hyper-util's pool decided reuse, and tokio's runtime the order of dropping
// tasks at a restart, in ways that depended on the thread when two worlds
// ran at once (both found by `mcpsim explore`'s determinism sample), and
// same seed must mean same run.

/// The simulated wall clock starts here: 2026-01-01T00:00:00Z.
pub const EPOCH_UNIX_S: u64 = mcpsim_fakes::SIM_EPOCH_UNIX_S;

/// Why a run could not happen at all (as opposed to a failed check).
#[derive(Debug)]
pub enum RunError {
    /// The scenario is wrong for this system under test: where, and why.
    Invalid(ScenarioError),
    /// The world could not run.
    Failed(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Invalid(e) if e.path.is_empty() => f.write_str(&e.reason),
            RunError::Invalid(e) => write!(f, "at {}: {}", e.path, e.reason),
            RunError::Failed(why) => f.write_str(why),
        }
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

/// The raw results of a run, before checks.
pub(crate) struct Outcome {
    pub records: Records,
    /// What the system under test declared, per gateway host.
    pub hosts: BTreeMap<String, Declared>,
    pub trace: Vec<TraceEvent>,
    pub token_servers: BTreeMap<String, TokenServer>,
    pub mcp_servers: BTreeMap<String, McpServer>,
    pub stores: BTreeMap<String, StoreServer>,
    /// What each fake saw, taken when the run ended.
    pub token_requests: BTreeMap<String, Log<TokenRequestRecord>>,
    pub mcp_requests: BTreeMap<String, Log<McpRequestRecord>>,
}

/// Each gateway host's setup and declaration, checked before the world
/// exists, so that a bad one is an input error and not a host that dies.
pub(crate) fn setups(
    sut: &Sut,
    scenario: &Scenario,
) -> Result<Vec<(HostSetup, Declared)>, RunError> {
    scenario.validate().map_err(RunError::Invalid)?;
    let invalid = |path: String, reason: String| {
        RunError::Invalid(ScenarioError {
            file: String::new(),
            path,
            reason,
        })
    };
    let mut out = Vec::new();
    for (i, g) in scenario.gateways.iter().enumerate() {
        let native = (!g.config.is_null()).then_some(&g.config);
        let config_file = sut
            .dialect()
            .config_file(native, &g.servers)
            .map_err(|reason| invalid(format!("gateways[{i}].config"), reason))?;
        let setup = HostSetup {
            host: g.host.clone(),
            settings: g.settings.clone(),
            config_file,
            env: g.env.clone(),
            store: g.store.clone(),
        };
        let declared = sut
            .declare(&setup)
            .map_err(|e| invalid(format!("gateways[{i}].{}", e.path), e.reason))?;
        out.push((setup, declared));
    }
    Ok(out)
}

pub(crate) fn run_world(sut: &Sut, scenario: &Scenario) -> Result<Outcome, RunError> {
    let setups = setups(sut, scenario)?;
    let hosts: BTreeMap<String, Declared> = setups
        .iter()
        .map(|(setup, declared)| (setup.host.clone(), declared.clone()))
        .collect();
    let trace = Trace::default();

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
    for (setup, _) in &setups {
        let (sut, setup, trace) = (sut.clone(), setup.clone(), trace.clone());
        let name = setup.host.clone();
        sim.host(name.as_str(), move || {
            let (upstream_client, upstream_driver) = SimHttpClient::local();
            let (store_client, store_driver) = SimHttpClient::local();
            let host = setup.host.clone();
            let injected = Injected {
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
                store: setup.store.as_ref().map(|store| StoreAccess {
                    http: Arc::new(TracingClient {
                        inner: store_client.clone(),
                        host: host.clone(),
                        trace: trace.clone(),
                    }),
                    base_url: format!("http://{store}"),
                }),
            };
            let (sut, setup) = (sut.clone(), setup.clone());
            async move {
                tokio::task::spawn_local(upstream_driver.run());
                tokio::task::spawn_local(store_driver.run());
                // Built inside the host's runtime, where simulated time is
                // readable: a restarted gateway may seed its ids from it.
                let instance = sut.build(&setup, injected)?;
                instance.start();
                serve(80, instance.router()).await
            }
        });
    }

    let records = Arc::new(Mutex::new(Records::default()));
    {
        let (scenario, records, trace) = (scenario.clone(), records.clone(), trace.clone());
        let (sut, hosts) = (sut.clone(), hosts.clone());
        sim.client("operator", async move {
            let (client, driver) = SimHttpClient::local();
            tokio::task::spawn_local(driver.run());
            let http: Arc<dyn mcpsim_sut::HttpClient> = Arc::new(client);
            operate(&scenario, sut.dialect(), &hosts, &trace, &records, http).await;
            Ok(())
        });
    }
    drive(&mut sim, scenario, &trace)?;
    // Taken before the world goes: dropping its hosts drops the handlers
    // still waiting, which would mark their requests abandoned.
    let token_requests = token_servers
        .iter()
        .map(|(h, s)| (h.clone(), s.requests()))
        .collect();
    let mcp_requests = mcp_servers
        .iter()
        .map(|(h, s)| (h.clone(), s.requests()))
        .collect();
    // So is the trace: tasks still running when the world goes (a session's
    // closing DELETE, say) are dropped in an order that depends on the
    // thread, and must not add to it.
    let events = trace.events();
    drop(sim);
    let records = std::mem::take(&mut *records.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Outcome {
        records,
        hosts,
        trace: events,
        token_servers,
        mcp_servers,
        stores,
        token_requests,
        mcp_requests,
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
            trace.push_at(now, "sim", What::Fault { verb: verb.clone() });
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
            Err(e) => return Err(RunError::Failed(format!("simulation failed: {e}"))),
        }
    }
}
