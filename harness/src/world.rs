//! Builds a turmoil world from a scenario and a system under test, and runs
//! it to an outcome.
//!
//! Hosts: every gateway (built by the system under test, afresh on every
//! bounce), token server, MCP server and store of the scenario, each
//! listening on port 80, plus the `operator` client. State meant to survive
//! a host restart (the fakes' state and logs, the store's rows) lives
//! outside the host closures.
//!
//! A run is bounded, so that a system under test that storms or stalls ends
//! as a finding and never as an out-of-memory: each fake keeps at most
//! [`RUN_LOG_CAPACITY`] records, the trace at most
//! [`crate::trace::TRACE_CAPACITY`] events, and simulated time runs at most
//! [`OVERTIME_MS`] past the deadline. The driving loop stops the run when a
//! bound is reached and says why in the trace ([`What::Stopped`]), which the
//! `storm` checker reports. (A host that never yields inside one poll stops
//! the simulation's own step, which no loop here can see; exploration's
//! wall-clock watchdog is for that.) A live run keeps the same caps and asks
//! the same bounds on real time (`live::run_live`); the listener queue is
//! the simulated network's alone.

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

/// Requests each fake keeps in its log in one simulated run: far more than
/// a run of a sound gateway sends (tens to hundreds), few enough that a run
/// whose gateway storms ends within a second or two of wall time.
pub const RUN_LOG_CAPACITY: usize = 20_000;

/// How far past its deadline a simulated run may go before it is stopped as
/// making no progress. The operator gives up on every call after five
/// seconds, so a run of a gateway that answers slowly, or not at all, still
/// ends well before.
pub const OVERTIME_MS: u64 = 60_000;

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
        // Past the overtime the driving loop stops the run itself, as a
        // finding; turmoil's own limit only backs it up.
        .simulation_duration(Duration::from_millis(
            scenario.deadline_ms + OVERTIME_MS + 1_000,
        ))
        .build();

    let mut token_servers = BTreeMap::new();
    for t in &scenario.token_servers {
        let server = TokenServer::new(t.config.clone(), fake_clock());
        server.limit_log(RUN_LOG_CAPACITY);
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
        server.limit_log(RUN_LOG_CAPACITY);
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
        let upstreams: Vec<McpServer> = mcp_servers.values().cloned().collect();
        sim.client("operator", async move {
            let (client, driver) = SimHttpClient::local();
            tokio::task::spawn_local(driver.run());
            let http: Arc<dyn mcpsim_sut::HttpClient> = Arc::new(client);
            let hop_ms = scenario.network.hop_ms();
            let open_sessions =
                |now_ms: u64| crate::checks::open_until(&upstreams, &hosts, hop_ms, now_ms);
            operate(
                &scenario,
                sut.dialect(),
                &hosts,
                &trace,
                &records,
                http,
                &open_sessions,
            )
            .await;
            Ok(())
        });
    }
    let stopped = drive(&mut sim, scenario, &trace, &token_servers, &mcp_servers)?;
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
    let mut records = std::mem::take(&mut *records.lock().unwrap_or_else(|e| e.into_inner()));
    if let Some(at_ms) = stopped {
        // The operator never finished: the run ended when it was stopped.
        records.end_ms = at_ms;
    }
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
/// the same simulated instant in every run. Gives the simulated ms at which
/// it stopped the run early, if it did (a bound of the run was reached).
fn drive(
    sim: &mut turmoil::Sim<'_>,
    scenario: &Scenario,
    trace: &Trace,
    token_servers: &BTreeMap<String, TokenServer>,
    mcp_servers: &BTreeMap<String, McpServer>,
) -> Result<Option<u64>, RunError> {
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
        match step(sim) {
            Stepped::Finished => return Ok(None),
            Stepped::Running => {}
            Stepped::Failed(e) => return Err(RunError::Failed(format!("simulation failed: {e}"))),
            Stepped::Overrun(reason) => {
                trace.push_at(now, "sim", What::Stopped { reason });
                return Ok(Some(now));
            }
        }
        let now = sim.elapsed().as_millis() as u64;
        if let Some(reason) = over_a_bound(now, scenario, trace, token_servers, mcp_servers) {
            trace.push_at(now, "sim", What::Stopped { reason });
            return Ok(Some(now));
        }
    }
}

/// What one step of the simulation came to.
enum Stepped {
    Finished,
    Running,
    Failed(String),
    /// The simulated network could not carry what a host sent: why.
    Overrun(String),
}

thread_local! {
    /// Whether this thread is stepping a world, for the panic hook.
    static STEPPING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The tail of turmoil's panic when more connections wait on one listener
/// than its queue holds (64): only a host that opens them by the dozen in
/// one tick gets there.
const LISTENER_FULL: &str = "server socket buffer full";

/// The tail of turmoil's panic when a host holds every ephemeral port of
/// its range in open sockets at once (`Host: 'gateway' ports exhausted`):
/// only a host that opens connections by the thousand and keeps them gets
/// there.
const PORTS_EXHAUSTED: &str = "' ports exhausted";

/// Part of turmoil's panic, in the host that accepts, when a connection
/// comes in on a port pair it still holds (`SocketPair { .. } is already
/// connected`).
const PORT_PAIR_TAKEN: &str = "} is already connected";

/// Whether a panic's text is one of turmoil's that a storm of connections
/// causes.
fn storm_panic(text: &str) -> bool {
    text.ends_with(LISTENER_FULL)
        || (text.starts_with("Host: '") && text.ends_with(PORTS_EXHAUSTED))
}

/// One step. turmoil panics when more connections wait on one listener than
/// its queue holds, or when a host runs out of ephemeral ports; a system
/// under test that opens connections by the dozen at once, or by the
/// thousand and keeps them, must end as a finding, not take the harness
/// down, so those panics (and only those) are caught and told as a storm.
/// The world is not stepped again after one.
fn step(sim: &mut turmoil::Sim<'_>) -> Stepped {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        // The caught panic is reported as a finding; printing it too would
        // only alarm. Every other panic is printed as before.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let text = panic_text(info.payload());
            let ours = STEPPING.with(|s| s.get()) && text.is_some_and(storm_panic);
            if !ours {
                previous(info);
            }
        }));
    });
    STEPPING.with(|s| s.set(true));
    let stepped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.step()));
    STEPPING.with(|s| s.set(false));
    match stepped {
        Ok(Ok(true)) => Stepped::Finished,
        Ok(Ok(false)) => Stepped::Running,
        // A host's task panicked: turmoil's own panic when a connection
        // comes in on a port pair it still holds (a host that opens and
        // drops connections by the thousand reuses ports faster than their
        // ends reach the other side) is a storm too.
        Ok(Err(e)) if e.to_string().contains(PORT_PAIR_TAKEN) => Stepped::Overrun(
            "request storm: a host opened connections by the thousand, faster than the simulated network could retire their ports".to_string(),
        ),
        Ok(Err(e)) => Stepped::Failed(e.to_string()),
        Err(panic) => {
            let Some(text) = panic_text(panic.as_ref()).filter(|t| storm_panic(t)) else {
                std::panic::resume_unwind(panic);
            };
            if let Some(host) = text
                .strip_prefix("Host: '")
                .and_then(|t| t.strip_suffix(PORTS_EXHAUSTED))
            {
                return Stepped::Overrun(format!(
                    "request storm: {host} held every ephemeral port of its simulated network in open connections at once"
                ));
            }
            // "192.168.0.1:80 server socket buffer full": name the host.
            let listener = text
                .split_whitespace()
                .next()
                .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
                .and_then(|a| sim.reverse_lookup(a.ip()))
                .unwrap_or_else(|| text.to_string());
            Stepped::Overrun(format!(
                "request storm: more connections to {listener} waited at once than the simulated network holds (turmoil's listener queue of 64)"
            ))
        }
    }
}

/// A panic's message, when it is text.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
}

/// Why the run must stop now, if a bound of the run is reached: a fake's
/// log or the trace is full (a request storm), or simulated time ran past
/// the deadline and its overtime (no progress). Asked after every step; it
/// reads only the run's own state, so it stops a run at the same step every
/// time. A live run asks it too, every few milliseconds of real time.
pub(crate) fn over_a_bound(
    now_ms: u64,
    scenario: &Scenario,
    trace: &Trace,
    token_servers: &BTreeMap<String, TokenServer>,
    mcp_servers: &BTreeMap<String, McpServer>,
) -> Option<String> {
    for (host, server) in mcp_servers {
        if server.log_full() {
            let peers = busiest(server.requests().records.iter().map(|r| r.peer.as_deref()));
            return Some(format!(
                "request storm: MCP server {host} was sent {RUN_LOG_CAPACITY} requests by t={now_ms} ms{peers}"
            ));
        }
    }
    for (host, server) in token_servers {
        if server.log_full() {
            let peers = busiest(server.requests().records.iter().map(|r| r.peer.as_deref()));
            return Some(format!(
                "request storm: token server {host} was sent {RUN_LOG_CAPACITY} requests by t={now_ms} ms{peers}"
            ));
        }
    }
    if trace.left_out() > 0 {
        let events = trace.events();
        let hosts = busiest(events.iter().map(|e| Some(e.host.as_str())));
        return Some(format!(
            "request storm: the trace passed {} events by t={now_ms} ms{hosts}",
            crate::trace::TRACE_CAPACITY
        ));
    }
    let limit_ms = scenario.deadline_ms + OVERTIME_MS;
    (now_ms >= limit_ms).then(|| {
        format!(
            "no progress at t={now_ms} ms: the operator had not finished {OVERTIME_MS} ms after the deadline of {} ms",
            scenario.deadline_ms
        )
    })
}

/// ", most from gateway (19990)": who sent the most of a storm.
fn busiest<'a>(senders: impl Iterator<Item = Option<&'a str>>) -> String {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for sender in senders {
        *counts
            .entry(sender.unwrap_or("an unnamed peer"))
            .or_default() += 1;
    }
    // The highest count; among equal counts, the first name.
    let top = counts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)));
    match top {
        Some((name, n)) => format!(", most from {name} ({n})"),
        None => String::new(),
    }
}
