//! Live mode: the same scenarios, fakes and checkers against a gateway on
//! real sockets (127.0.0.1 only) and real time.
//!
//! A live run puts every fake of the scenario on a loopback port of its
//! own, each on a [`host`] thread that can be crashed and bounced, and puts
//! a [`relay`] between each gateway and each fake (and between the operator
//! and each gateway), through which partitions and holds are applied. The
//! gateway under test is either a Rust system under test built in this
//! process ([`LiveGateway::InProcess`]), a process of its own that the run
//! starts with the config file and environment it wrote, and stops by its
//! process id ([`LiveGateway::Process`]), or a gateway already listening
//! ([`LiveGateway::Attached`]). The operator speaks the gateway's dialect,
//! and the same checkers judge what the operator saw and what the fakes
//! recorded, with bounds from what the target declares.
//!
//! Nothing here is deterministic, and the report says so: the trace and
//! the fakes' records carry real milliseconds since the run began.
//!
//! Invariants: everything listens on and dials 127.0.0.1 only; every wait
//! is bounded (a gateway's start by its target's ready timeout, the
//! operator by the scenario's deadline, the whole run by the deadline plus
//! a stated margin); a process the run started is stopped by the run.
//!
//! A live run has the simulated run's bounds, on real time: each fake keeps
//! at most [`crate::world::RUN_LOG_CAPACITY`] records and the trace its
//! cap, and a watch asks every [`BOUNDS_EVERY`] whether a log or the trace
//! is full or the operator is still at work [`crate::world::OVERTIME_MS`]
//! past the deadline; if so the run stops there and says why (a `stopped`
//! event, which the `storm` checker reports), as a simulated one does. Two
//! bounds are the simulation's alone: turmoil's listener queue (loopback's
//! backlog is the kernel's), and exploration's wall-clock watchdog for a
//! host that never yields (a live host runs on a thread of its own, so the
//! operator and the watch go on without it, and a host that will not stop
//! is abandoned; see [`host`]).

mod host;
mod loopback;
mod process;
mod relay;
mod scale;
pub mod targets;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mcpsim_fakes::{McpServer, StoreServer, TokenServer, SIM_EPOCH_UNIX_S};
use mcpsim_sut::{Declared, Dialect, HostSetup, Injected, StoreAccess, Sut, SystemClock};
use serde::Serialize;
use serde_json::Value;

pub use loopback::{Loopback, Names};
pub use process::{Launch, ProcessTarget};
pub use scale::scaled;

use crate::operator::{operate, Records};
use crate::scenario::{Action, Scenario, ScenarioError, Verb};
use crate::trace::{Trace, TraceEvent, TraceSink, TracingClient, What};
use crate::world::{Outcome, RunError, RUN_LOG_CAPACITY};
use crate::{Evidence, Judging, Report};
use host::{HostThread, Life, PeerBook};
use process::GatewayProcess;
use relay::Relay;

/// How much longer than its deadline a live run may take before it is
/// ended as a failure of the run itself.
const RUN_MARGIN: Duration = Duration::from_secs(120);

/// How often a live run asks whether it has reached a bound of the run.
const BOUNDS_EVERY: Duration = Duration::from_millis(20);

/// What a live report says about how it was made.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LiveInfo {
    /// The target's name: `reference`, `litellm`, `contextforge`.
    pub target: String,
    pub version: String,
    /// How the gateway was brought up: in this process, started as a
    /// process, or attached to.
    pub mode: String,
    /// Scenario instants were multiplied by this to fit the target's
    /// budgets (1 when the target takes the scenario's own).
    pub time_scale: f64,
    /// How long the gateway took to answer after it was started (ms);
    /// what its upstreams saw before that is stamped 0 ms.
    pub ready_ms: u64,
    /// Always: that the run was live and is not deterministic.
    pub note: String,
}

/// The gateway under test of a live run.
#[derive(Clone)]
pub enum LiveGateway {
    /// A Rust system under test, built in this process and served on a
    /// loopback port, its upstream calls made on real sockets.
    InProcess(Sut),
    /// A gateway process, started for the run with the config file and
    /// environment written in its own format.
    Process(Arc<dyn ProcessTarget>),
    /// A gateway already listening: nothing is started or stopped, and a
    /// scenario that would restart it is not applicable.
    Attached {
        address: SocketAddr,
        target: Arc<dyn ProcessTarget>,
        api_key: Option<String>,
    },
}

impl LiveGateway {
    fn name(&self) -> String {
        match self {
            LiveGateway::InProcess(sut) => sut.name(),
            LiveGateway::Process(target) | LiveGateway::Attached { target, .. } => target.name(),
        }
    }

    fn dialect(&self) -> &dyn Dialect {
        match self {
            LiveGateway::InProcess(sut) => sut.dialect(),
            LiveGateway::Process(target) | LiveGateway::Attached { target, .. } => target.dialect(),
        }
    }

    fn version(&self) -> String {
        match self {
            LiveGateway::InProcess(_) => env!("CARGO_PKG_VERSION").to_string(),
            LiveGateway::Process(target) | LiveGateway::Attached { target, .. } => target.version(),
        }
    }

    fn mode(&self) -> &'static str {
        match self {
            LiveGateway::InProcess(_) => "in this process",
            LiveGateway::Process(_) => "started as a process",
            LiveGateway::Attached { .. } => "attached",
        }
    }
}

/// How to run live.
#[derive(Clone)]
pub struct LiveOptions {
    /// The system whose settings the scenario's gateway hosts are written
    /// in (the reference gateway's, for the catalogue): what it declares
    /// is the scenario's own time scale.
    pub settings_of: Sut,
    /// Where each run gets a folder (config files, a process's output).
    pub work_dir: PathBuf,
    /// The slack given to one message on loopback, where the simulation
    /// uses the network's latency.
    pub hop_ms: u64,
}

/// What came of a live run.
#[derive(Debug)]
pub enum LiveVerdict {
    Ran(Box<Report>),
    /// The scenario cannot be run against this target, and why: a fault
    /// that cannot be applied live, a deployment the target cannot have,
    /// something its dialect cannot carry.
    NotApplicable(String),
    /// The target does not offer a registration path the scenario uses
    /// (its writes): its own answer says so.
    PathNotOffered(String),
}

fn invalid(path: String, reason: String) -> RunError {
    RunError::Invalid(ScenarioError {
        file: String::new(),
        path,
        reason,
    })
}

/// Why this scenario's faults cannot be applied to this gateway, if so.
fn faults_unfit(gateway: &LiveGateway, scenario: &Scenario) -> Option<String> {
    let gateways: Vec<&str> = scenario.gateways.iter().map(|g| g.host.as_str()).collect();
    for fault in &scenario.faults {
        if let Verb::Crash { host } | Verb::Bounce { host } = &fault.verb {
            if gateways.contains(&host.as_str()) && matches!(gateway, LiveGateway::Attached { .. })
            {
                return Some(format!(
                    "{} of {host} at {} ms: a gateway mcpsim did not start cannot be restarted",
                    fault.verb.describe(),
                    fault.at_ms
                ));
            }
        }
    }
    None
}

/// Runs one scenario live against a gateway, and judges it.
pub fn run_live(
    gateway: &LiveGateway,
    scenario: &Scenario,
    options: &LiveOptions,
) -> Result<LiveVerdict, RunError> {
    scenario.validate().map_err(RunError::Invalid)?;
    if let Some(why) = faults_unfit(gateway, scenario) {
        return Ok(LiveVerdict::NotApplicable(why));
    }
    if let LiveGateway::Process(target) | LiveGateway::Attached { target, .. } = gateway {
        if let Err(why) = target.fits(scenario) {
            return Ok(LiveVerdict::NotApplicable(why));
        }
    }
    // The scenario's own budgets, per host, from the system its settings
    // are written for.
    let own = crate::world::setups(&options.settings_of, scenario)?;
    let own_declared: BTreeMap<String, Declared> = own
        .iter()
        .map(|(setup, declared)| (setup.host.clone(), declared.clone()))
        .collect();
    let (declared, time_scale) = match gateway {
        LiveGateway::InProcess(sut) => {
            let mine = crate::world::setups(sut, scenario)?;
            let declared = mine.into_iter().map(|(s, d)| (s.host, d)).collect();
            (declared, 1.0)
        }
        LiveGateway::Process(target) | LiveGateway::Attached { target, .. } => {
            let mut declared = BTreeMap::new();
            let mut factor: f64 = 1.0;
            for (i, (setup, own)) in own.iter().enumerate() {
                let theirs = target
                    .declare(setup, own)
                    .map_err(|e| invalid(format!("gateways[{i}].{}", e.path), e.reason))?;
                factor = factor.max(scale::factor(own, &theirs));
                declared.insert(setup.host.clone(), theirs);
            }
            (declared, factor)
        }
    };
    let mut as_run = scale::scaled(scenario, time_scale);
    if let LiveGateway::Process(target) | LiveGateway::Attached { target, .. } = gateway {
        if let Some(min) = target.poll_interval_ms() {
            as_run.operator.poll_interval_ms = as_run.operator.poll_interval_ms.max(min);
        }
    }
    if let Err(why) = translate(
        options.settings_of.dialect(),
        gateway.dialect(),
        &mut as_run,
    ) {
        return Ok(LiveVerdict::NotApplicable(why));
    }
    let dir = run_dir(&options.work_dir, scenario)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RunError::Failed(format!("cannot start a runtime: {e}")))?;
    let bound = Duration::from_millis(as_run.deadline_ms) + RUN_MARGIN;
    let world = LiveWorld {
        gateway,
        scenario: &as_run,
        own_declared: &own_declared,
        declared: &declared,
        dir: &dir,
    };
    let run = runtime.block_on(async {
        match tokio::time::timeout(bound, world.run()).await {
            Ok(result) => result,
            Err(_) => Err(RunError::Failed(format!(
                "the live run did not end within {bound:?}"
            ))),
        }
    })?;
    let Run {
        outcome,
        authorities,
        ready_ms,
        as_run,
    } = run;
    if let LiveGateway::Process(target) | LiveGateway::Attached { target, .. } = gateway {
        for write in &outcome.records.writes {
            if let Some(why) = write.answer.as_ref().and_then(|a| target.refuses_path(a)) {
                return Ok(LiveVerdict::PathNotOffered(why));
            }
        }
    }
    let judging = Judging {
        system: gateway.name(),
        dialect: gateway.dialect(),
        hop_ms: options.hop_ms,
        authorities,
        error_words: matches!(gateway, LiveGateway::InProcess(_)),
        live: Some(LiveInfo {
            target: gateway.name(),
            version: gateway.version(),
            mode: gateway.mode().to_string(),
            time_scale,
            ready_ms,
            note: "live: real sockets on 127.0.0.1 and real time; not deterministic, so the \
                   trace hash differs from run to run"
                .to_string(),
        }),
    };
    let report = crate::judge(&judging, &as_run, &outcome, Evidence::Everything);
    Ok(LiveVerdict::Ran(Box::new(report)))
}

/// Carries a scenario written in one dialect's own words (its config
/// files and REST bodies) to a gateway of another dialect, through
/// mcpsim's words; `Err` says what cannot be carried.
fn translate(from: &dyn Dialect, to: &dyn Dialect, scenario: &mut Scenario) -> Result<(), String> {
    if from.name() == to.name() {
        return Ok(());
    }
    let why = |what: String, e: String| {
        format!(
            "{what} is in {}'s own words and cannot be carried to {}: {e}",
            from.name(),
            to.name()
        )
    };
    for g in &mut scenario.gateways {
        if !g.config.is_null() {
            let servers = from
                .read_config(&g.config, &g.env)
                .map_err(|e| why(format!("the config file of {}", g.host), e))?;
            g.servers.extend(servers);
            g.config = Value::Null;
        }
    }
    // An update's body may be partial: it is read merged over what was
    // created under that name, as the gateway would merge it.
    let mut created: BTreeMap<String, Value> = BTreeMap::new();
    for (i, step) in scenario.operator.steps.iter_mut().enumerate() {
        // A raw body and extra fields are bytes and fields of the source
        // gateway's API; a bad input is bad by its rules, and may be a good
        // write to another gateway. None of them is in mcpsim's words.
        let (from_name, to_name) = (from.name(), to.name());
        if step.raw_body.is_some() {
            return Err(format!(
                "operator step {i} sends a raw body in {from_name}'s own words, which cannot be carried to {to_name}"
            ));
        }
        if let Some(extra) = &step.extra_fields {
            let keys: Vec<&str> = extra.keys().map(String::as_str).collect();
            return Err(format!(
                "operator step {i} sets fields of {from_name}'s own API ({}), which cannot be carried to {to_name}",
                keys.join(", ")
            ));
        }
        if step.bad_input {
            return Err(format!(
                "operator step {i} is a bad input by {from_name}'s rules, which may be a good write to {to_name}"
            ));
        }
        let (native, name) = match &mut step.action {
            Action::Create { body, spec } => {
                let Some(native) = body.take() else { continue };
                let def = from
                    .read_registration(&native)
                    .map_err(|e| why(format!("operator step {i}"), e))?;
                created.insert(def.name.clone(), native);
                *spec = Some(def);
                continue;
            }
            Action::Update { body, server, .. } => match body.take() {
                Some(native) => (native, server.clone()),
                None => continue,
            },
            Action::Delete { .. } => continue,
        };
        let mut merged = created.get(&name).cloned().unwrap_or(Value::Null);
        merge(&mut merged, &native);
        let def = from
            .read_registration(&merged)
            .map_err(|e| why(format!("operator step {i}"), e))?;
        if let Action::Update { spec, .. } = &mut step.action {
            *spec = Some(def);
        }
        created.insert(name, merged);
    }
    Ok(())
}

/// `patch` over `base`, object by object (a nested object such as
/// `credentials` merges key by key; anything else replaces).
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                match base.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge(existing, value)
                    }
                    _ => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

/// A folder of its own for one run.
fn run_dir(work_dir: &Path, scenario: &Scenario) -> Result<PathBuf, RunError> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let slug: String = scenario
        .description
        .chars()
        .take(24)
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    // Absolute: a gateway process runs in its own folder.
    let work_dir = std::path::absolute(work_dir)
        .map_err(|e| RunError::Failed(format!("{}: {e}", work_dir.display())))?;
    let dir = work_dir.join(format!("{stamp}-{}-{slug}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| RunError::Failed(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

/// The raw results of a live run.
struct Run {
    outcome: Outcome,
    authorities: BTreeMap<String, String>,
    ready_ms: u64,
    /// The scenario as run: scaled, with the target's operator key.
    as_run: Scenario,
}

struct LiveWorld<'a> {
    gateway: &'a LiveGateway,
    scenario: &'a Scenario,
    /// What the scenario's own system declares for each host.
    own_declared: &'a BTreeMap<String, Declared>,
    /// What the target declares for each host.
    declared: &'a BTreeMap<String, Declared>,
    dir: &'a Path,
}

/// A fake host of the run.
struct FakeHost {
    thread: Option<HostThread>,
    life: Life,
    /// The port it listens on (reserved when it is not listening yet).
    address: SocketAddr,
}

/// A gateway host of the run.
enum GatewayHostHandle {
    InProcess(HostThread),
    Process(GatewayProcess),
    Attached(SocketAddr),
}

impl GatewayHostHandle {
    fn address(&self) -> SocketAddr {
        match self {
            GatewayHostHandle::InProcess(thread) => thread.address(),
            GatewayHostHandle::Process(process) => process.address(),
            GatewayHostHandle::Attached(address) => *address,
        }
    }
}

/// The clock the fakes read: real time since the run's origin, on the
/// simulated epoch, so that instants in their configs count from it.
#[derive(Clone, Default)]
struct Origin(Arc<OnceLock<Instant>>);

impl Origin {
    fn set_now(&self) -> Instant {
        *self.0.get_or_init(Instant::now)
    }

    fn fake_clock(&self) -> mcpsim_fakes::Clock {
        let origin = self.0.clone();
        Arc::new(move || {
            let since = origin.get().map(Instant::elapsed).unwrap_or_default();
            Duration::from_secs(SIM_EPOCH_UNIX_S) + since
        })
    }
}

/// A free loopback port, for a process that must be told its port.
fn free_port() -> Result<SocketAddr, RunError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| RunError::Failed(format!("cannot find a free port: {e}")))?;
    listener
        .local_addr()
        .map_err(|e| RunError::Failed(format!("cannot find a free port: {e}")))
}

/// Replaces `http://<fake>` at the start of every string in `value` by the
/// address that fake has for one gateway.
fn rewrite_urls(value: &mut Value, bases: &BTreeMap<String, String>) {
    match value {
        Value::String(text) => {
            for (host, base) in bases {
                let name = format!("http://{host}");
                if *text == name {
                    *text = base.clone();
                    return;
                }
                if let Some(rest) = text.strip_prefix(&format!("{name}/")) {
                    *text = format!("{base}/{rest}");
                    return;
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_urls(v, bases)),
        // A grant's `resource` and `audience` name a server, they are not
        // addresses to dial: the token server expects them as written.
        Value::Object(map) => map
            .iter_mut()
            .filter(|(key, _)| !matches!(key.as_str(), "resource" | "audience"))
            .for_each(|(_, v)| rewrite_urls(v, bases)),
        _ => {}
    }
}

impl LiveWorld<'_> {
    async fn run(self) -> Result<Run, RunError> {
        let s = self.scenario;
        let origin = Origin::default();
        let in_process = matches!(self.gateway, LiveGateway::InProcess(_));
        // Whether URLs must be rewritten to each gateway's relays.
        let rewrite = match self.gateway {
            LiveGateway::InProcess(_) => false,
            LiveGateway::Process(target) | LiveGateway::Attached { target, .. } => {
                !target.resolves_names()
            }
        };
        // The run's clock starts with the world, as a simulated one does:
        // the fakes, the trace and the operator all count from here.
        let trace = Trace::real(origin.set_now());
        let peers = PeerBook::default();
        let failed = |what: String| RunError::Failed(what);

        // The fakes, each on a host of its own.
        let clock = origin.fake_clock();
        let mut token_servers = BTreeMap::new();
        let mut mcp_servers = BTreeMap::new();
        let mut stores = BTreeMap::new();
        let mut fakes: BTreeMap<String, FakeHost> = BTreeMap::new();
        let mut lives: Vec<(String, Life, bool)> = Vec::new();
        for t in &s.token_servers {
            let server = TokenServer::new(t.config.clone(), clock.clone());
            server.limit_log(RUN_LOG_CAPACITY);
            token_servers.insert(t.host.clone(), server.clone());
            let peers = peers.clone();
            let life: Life = Arc::new(move |listener| {
                Box::pin(host::serve_router(listener, server.router(), peers.clone()))
            });
            lives.push((
                t.host.clone(),
                life,
                t.listening && t.listen_after_ms.is_none(),
            ));
        }
        for m in &s.mcp_servers {
            let server = McpServer::new(m.config.clone(), clock.clone());
            server.limit_log(RUN_LOG_CAPACITY);
            mcp_servers.insert(m.host.clone(), server.clone());
            let peers = peers.clone();
            let life: Life = Arc::new(move |listener| {
                Box::pin(host::serve_router(listener, server.router(), peers.clone()))
            });
            lives.push((
                m.host.clone(),
                life,
                m.listening && m.listen_after_ms.is_none(),
            ));
        }
        for st in &s.stores {
            let server = StoreServer::new(st.config.clone());
            stores.insert(st.host.clone(), server.clone());
            let peers = peers.clone();
            let life: Life = Arc::new(move |listener| {
                Box::pin(host::serve_router(listener, server.router(), peers.clone()))
            });
            lives.push((st.host.clone(), life, true));
        }
        for (name, life, now) in lives {
            let fake = if now {
                let thread = HostThread::start(&name, 0, life.clone())
                    .map_err(|e| failed(format!("cannot serve {name} on loopback: {e}")))?;
                FakeHost {
                    address: thread.address(),
                    thread: Some(thread),
                    life,
                }
            } else {
                FakeHost {
                    address: free_port()?,
                    thread: None,
                    life,
                }
            };
            fakes.insert(name, fake);
        }

        // A relay between each gateway and each fake.
        let mut relays: BTreeMap<(String, String), Relay> = BTreeMap::new();
        let mut authorities = BTreeMap::new();
        for g in &s.gateways {
            for (name, fake) in &fakes {
                let relay = Relay::start(&g.host, fake.address, peers.clone())
                    .await
                    .map_err(|e| failed(format!("cannot start a relay: {e}")))?;
                if fake.thread.is_none() {
                    relay.update(|st| st.down = true);
                }
                let port = relay.address().port();
                authorities.insert(format!("127.0.0.1:{port}"), name.clone());
                authorities.insert(format!("localhost:{port}"), name.clone());
                relays.insert((g.host.clone(), name.clone()), relay);
            }
        }

        // The gateways.
        let setups = self.setups(&relays, rewrite)?;
        let mut gateways: BTreeMap<String, GatewayHostHandle> = BTreeMap::new();
        let mut api_key = s.operator.api_key.clone();
        let probe = Loopback::new(Names::default());
        let started = Instant::now();
        for setup in &setups {
            let handle = match self.gateway {
                LiveGateway::InProcess(sut) => {
                    let names = Names::default();
                    for ((g, fake), relay) in &relays {
                        if g == &setup.host {
                            names.insert(fake, relay.address());
                        }
                    }
                    let life = gateway_life(sut.clone(), setup.clone(), trace.clone(), names);
                    let thread = HostThread::start(&setup.host, 0, life).map_err(|e| {
                        failed(format!("cannot serve {} on loopback: {e}", setup.host))
                    })?;
                    GatewayHostHandle::InProcess(thread)
                }
                LiveGateway::Process(target) => {
                    let address = free_port()?;
                    let own = &self.own_declared[&setup.host];
                    let dir = self.dir.join(&setup.host);
                    std::fs::create_dir_all(&dir).map_err(|e| failed(e.to_string()))?;
                    let urls = bases_for(&setup.host, &relays);
                    let launch = target
                        .launch(setup, own, address.port(), &dir, &urls)
                        .map_err(|e| failed(format!("{}: {e}", setup.host)))?;
                    if launch.api_key.is_some() {
                        api_key = launch.api_key.clone();
                    }
                    let process = GatewayProcess::start(&setup.host, launch, &dir, address, &probe)
                        .await
                        .map_err(failed)?;
                    GatewayHostHandle::Process(process)
                }
                LiveGateway::Attached {
                    address,
                    api_key: key,
                    ..
                } => {
                    if key.is_some() {
                        api_key = key.clone();
                    }
                    GatewayHostHandle::Attached(*address)
                }
            };
            gateways.insert(setup.host.clone(), handle);
        }
        let ready_ms = started.elapsed().as_millis() as u64;

        // The operator reaches each gateway through a relay of its own.
        let operator_names = Names::default();
        for (host, handle) in &gateways {
            let relay = Relay::start("operator", handle.address(), peers.clone())
                .await
                .map_err(|e| failed(format!("cannot start a relay: {e}")))?;
            operator_names.insert(host, relay.address());
            relays.insert(("operator".to_string(), host.clone()), relay);
        }

        let mut as_run = s.clone();
        as_run.operator.api_key = api_key;
        if !in_process {
            // Nothing could reach the gateway before it answered: what the
            // operator and the faults do starts then. (The fakes' own
            // instants still count from the run's start.)
            shift(&mut as_run, ready_ms);
            // A process takes its start-up time again at each restart: the
            // deadline allows for that, beyond the scenario's own.
            let restarts = s
                .faults
                .iter()
                .filter(|f| matches!(&f.verb, Verb::Bounce { host } if gateways.contains_key(host)))
                .count() as u64;
            as_run.deadline_ms += restarts * (2 * ready_ms + 5_000);
        }
        if rewrite {
            rewrite_steps(&mut as_run, &relays);
        }
        let records = Mutex::new(Records::default());
        let mut world = Faulting {
            fakes,
            gateways,
            relays,
            trace: trace.clone(),
            probe,
        };
        {
            let http: Arc<dyn mcpsim_sut::HttpClient> = Arc::new(Loopback::new(operator_names));
            let hop_ms = as_run.network.hop_ms();
            let declared = self.declared;
            let open_sessions = |now_ms: u64| {
                crate::checks::open_until(mcp_servers.values(), declared, hop_ms, now_ms)
            };
            let operator = operate(
                &as_run,
                self.gateway.dialect(),
                self.declared,
                &trace,
                &records,
                http,
                &open_sessions,
            );
            let timed = world.timed(&as_run);
            let faults = world.apply_all(timed);
            let watch = watch_bounds(&as_run, &trace, &token_servers, &mcp_servers);
            tokio::pin!(faults);
            tokio::pin!(operator);
            tokio::pin!(watch);
            // The operator ends the run, or a bound of the run does; faults
            // still due are not applied.
            let stopped = tokio::select! {
                biased;
                _ = &mut operator => None,
                stop = &mut watch => Some(stop),
                _ = &mut faults => tokio::select! {
                    biased;
                    _ = &mut operator => None,
                    stop = &mut watch => Some(stop),
                },
            };
            if let Some((at_ms, reason)) = stopped {
                trace.push_at(at_ms, "sim", What::Stopped { reason });
                // The operator never finished: the run ended when it was
                // stopped.
                records.lock().unwrap_or_else(|e| e.into_inner()).end_ms = at_ms;
            }
        }

        let token_requests = token_servers
            .iter()
            .map(|(h, t): (&String, &TokenServer)| (h.clone(), t.requests()))
            .collect();
        let mcp_requests = mcp_servers
            .iter()
            .map(|(h, m): (&String, &McpServer)| (h.clone(), m.requests()))
            .collect();
        let mut events = trace.events();
        if !in_process {
            // A gateway of its own says nothing of its exchanges: what its
            // upstreams recorded stands in for them.
            events.extend(upstream_exchanges(s, &token_requests, &mcp_requests));
            events.sort_by_key(|e| e.at_ms);
        }
        world.shutdown().await;
        let records = records.into_inner().unwrap_or_else(|e| e.into_inner());
        Ok(Run {
            outcome: Outcome {
                records,
                hosts: self.declared.clone(),
                trace: events,
                token_servers,
                mcp_servers,
                stores,
                token_requests,
                mcp_requests,
            },
            authorities,
            ready_ms,
            as_run,
        })
    }

    /// Each gateway host's setup; with `rewrite`, every URL of a fake in
    /// it replaced by that gateway's relay to it.
    fn setups(
        &self,
        relays: &BTreeMap<(String, String), Relay>,
        rewrite: bool,
    ) -> Result<Vec<HostSetup>, RunError> {
        let s = self.scenario;
        let dialect = self.gateway.dialect();
        let mut out = Vec::new();
        for (i, g) in s.gateways.iter().enumerate() {
            let bases = bases_for(&g.host, relays);
            let mut native = g.config.clone();
            let mut servers = g.servers.clone();
            if rewrite {
                rewrite_urls(&mut native, &bases);
                for server in &mut servers {
                    rewrite_def(server, &bases);
                }
            }
            let native = (!native.is_null()).then_some(&native);
            let config_file = dialect
                .config_file(native, &servers)
                .map_err(|reason| invalid(format!("gateways[{i}].config"), reason))?;
            out.push(HostSetup {
                host: g.host.clone(),
                settings: g.settings.clone(),
                config_file,
                env: g.env.clone(),
                store: g.store.clone(),
            });
        }
        Ok(out)
    }
}

/// Asks the run's bounds every [`BOUNDS_EVERY`] until one is reached, as
/// the simulation's driving loop asks them after every step; gives when,
/// and why the run must stop.
async fn watch_bounds(
    scenario: &Scenario,
    trace: &Trace,
    token_servers: &BTreeMap<String, TokenServer>,
    mcp_servers: &BTreeMap<String, McpServer>,
) -> (u64, String) {
    loop {
        tokio::time::sleep(BOUNDS_EVERY).await;
        let now_ms = trace.now_ms();
        if let Some(reason) =
            crate::world::over_a_bound(now_ms, scenario, trace, token_servers, mcp_servers)
        {
            return (now_ms, reason);
        }
    }
}

/// Moves the operator's steps, the faults, late listeners and the end of
/// the run `by_ms` later.
fn shift(s: &mut Scenario, by_ms: u64) {
    s.deadline_ms += by_ms;
    s.operator.poll_until_ms += by_ms;
    for step in &mut s.operator.steps {
        step.at_ms += by_ms;
    }
    for fault in &mut s.faults {
        fault.at_ms += by_ms;
    }
    for t in &mut s.token_servers {
        t.listen_after_ms = t.listen_after_ms.map(|at| at + by_ms);
    }
    for m in &mut s.mcp_servers {
        m.listen_after_ms = m.listen_after_ms.map(|at| at + by_ms);
    }
}

/// The exchanges the fakes recorded, as trace events of the hosts that
/// made them, stamped when they ended (or began, if they never did).
fn upstream_exchanges(
    s: &Scenario,
    token_requests: &BTreeMap<String, mcpsim_fakes::Log<mcpsim_fakes::TokenRequestRecord>>,
    mcp_requests: &BTreeMap<String, mcpsim_fakes::Log<mcpsim_fakes::McpRequestRecord>>,
) -> Vec<TraceEvent> {
    let mut out = Vec::new();
    for (host, log) in token_requests {
        let path = s
            .token_servers
            .iter()
            .find(|t| &t.host == host)
            .map(|t| t.config.path.clone())
            .unwrap_or_default();
        for r in &log.records {
            let status = match &r.outcome {
                mcpsim_fakes::TokenOutcome::Issued { .. } => Some(200),
                mcpsim_fakes::TokenOutcome::Refused { status, .. } => Some(*status),
                mcpsim_fakes::TokenOutcome::Injected { status } => *status,
                _ => None,
            };
            out.push(TraceEvent {
                at_ms: r.answered_ms.unwrap_or(r.received_ms),
                host: r.peer.clone().unwrap_or_default(),
                what: What::Http {
                    to: host.clone(),
                    method: "POST".to_string(),
                    path: path.clone(),
                    status,
                    error: status.is_none().then(|| "no answer".to_string()),
                    took_ms: r.answered_ms.unwrap_or(r.received_ms) - r.received_ms,
                },
            });
        }
    }
    for (host, log) in mcp_requests {
        let path = s
            .mcp_servers
            .iter()
            .find(|m| &m.host == host)
            .map(|m| m.config.path.clone())
            .unwrap_or_default();
        for r in &log.records {
            let path = match &r.rpc_method {
                Some(rpc) => format!("{path} {rpc}"),
                None => path.clone(),
            };
            out.push(TraceEvent {
                at_ms: r.answered_ms.unwrap_or(r.received_ms),
                host: r.peer.clone().unwrap_or_default(),
                what: What::Http {
                    to: host.clone(),
                    method: r.http_method.clone(),
                    path,
                    status: r.status,
                    error: r.status.is_none().then(|| "no answer".to_string()),
                    took_ms: r.answered_ms.unwrap_or(r.received_ms) - r.received_ms,
                },
            });
        }
    }
    out
}

/// The base URL of every fake as `gateway` reaches it, through its relays.
fn bases_for(
    gateway: &str,
    relays: &BTreeMap<(String, String), Relay>,
) -> BTreeMap<String, String> {
    relays
        .iter()
        .filter(|((g, _), _)| g == gateway)
        .map(|((_, fake), relay)| (fake.clone(), format!("http://{}", relay.address())))
        .collect()
}

/// A server definition with its fakes' URLs replaced.
fn rewrite_def(def: &mut mcpsim_sut::ServerDef, bases: &BTreeMap<String, String>) {
    let mut value = serde_json::to_value(&*def).unwrap_or(Value::Null);
    rewrite_urls(&mut value, bases);
    if let Ok(rewritten) = serde_json::from_value(value) {
        *def = rewritten;
    }
}

/// Every create and update of the operator's, with the URLs of fakes
/// replaced by the relays of the gateway the step goes to.
fn rewrite_steps(scenario: &mut Scenario, relays: &BTreeMap<(String, String), Relay>) {
    let first = scenario.gateways[0].host.clone();
    for step in &mut scenario.operator.steps {
        let gateway = step.gateway.clone().unwrap_or_else(|| first.clone());
        let bases = bases_for(&gateway, relays);
        if let Action::Create { body, spec } | Action::Update { body, spec, .. } = &mut step.action
        {
            if let Some(body) = body {
                rewrite_urls(body, &bases);
            }
            if let Some(spec) = spec {
                rewrite_def(spec, &bases);
            }
        }
        // Extra fields may name a fake too. A raw body is sent byte for
        // byte, as a broken client sends it: it is left as written.
        if let Some(extra) = &mut step.extra_fields {
            extra
                .values_mut()
                .for_each(|value| rewrite_urls(value, &bases));
        }
    }
}

/// One life of an in-process gateway host.
fn gateway_life(sut: Sut, setup: HostSetup, trace: Trace, names: Names) -> Life {
    Arc::new(move |listener| {
        let (sut, setup, trace, names) = (sut.clone(), setup.clone(), trace.clone(), names.clone());
        Box::pin(async move {
            let host = setup.host.clone();
            let client = |names: &Names| -> Arc<dyn mcpsim_sut::HttpClient> {
                Arc::new(TracingClient {
                    inner: Loopback::new(names.clone()),
                    host: host.clone(),
                    trace: trace.clone(),
                })
            };
            let injected = Injected {
                http: client(&names),
                clock: Arc::new(SystemClock),
                events: Arc::new(TraceSink {
                    host: host.clone(),
                    trace: trace.clone(),
                }),
                store: setup.store.as_ref().map(|store| StoreAccess {
                    http: client(&names),
                    base_url: format!("http://{store}"),
                }),
            };
            match sut.build(&setup, injected) {
                Ok(instance) => {
                    instance.start();
                    host::serve_router(listener, instance.router(), PeerBook::default()).await;
                }
                Err(why) => trace.push(
                    &host,
                    What::Note {
                        text: format!("could not be built: {why}"),
                    },
                ),
            }
        })
    })
}

/// Something the run does at a stated instant.
enum Timed {
    Fault(Verb),
    /// A fake that comes up late starts listening.
    Listen(String),
}

/// The hosts and relays of a live run, as faults change them.
struct Faulting {
    fakes: BTreeMap<String, FakeHost>,
    gateways: BTreeMap<String, GatewayHostHandle>,
    relays: BTreeMap<(String, String), Relay>,
    trace: Trace,
    probe: Loopback,
}

impl Faulting {
    fn timed(&self, s: &Scenario) -> Vec<(u64, Timed)> {
        let mut timed: Vec<(u64, Timed)> = s
            .faults
            .iter()
            .map(|f| (f.at_ms, Timed::Fault(f.verb.clone())))
            .collect();
        for t in &s.token_servers {
            if let (true, Some(at)) = (t.listening, t.listen_after_ms) {
                timed.push((at, Timed::Listen(t.host.clone())));
            }
        }
        for m in &s.mcp_servers {
            if let (true, Some(at)) = (m.listening, m.listen_after_ms) {
                timed.push((at, Timed::Listen(m.host.clone())));
            }
        }
        timed.sort_by_key(|(at, _)| *at);
        timed
    }

    async fn apply_all(&mut self, timed: Vec<(u64, Timed)>) {
        for (at, what) in timed {
            let now = self.trace.now_ms();
            if at > now {
                tokio::time::sleep(Duration::from_millis(at - now)).await;
            }
            match what {
                Timed::Fault(verb) => {
                    self.trace.push("sim", What::Fault { verb: verb.clone() });
                    if let Err(why) = self.apply(&verb).await {
                        self.trace.push(
                            "sim",
                            What::Note {
                                text: format!("{} failed: {why}", verb.describe()),
                            },
                        );
                    }
                }
                Timed::Listen(host) => {
                    let _ = self.start_fake(&host);
                }
            }
        }
        // Nothing more to do: wait for the operator.
        std::future::pending::<()>().await;
    }

    /// The relays between `a` and `b`, either way round.
    fn links(&self, a: &str, b: &str) -> Vec<&Relay> {
        self.relays
            .iter()
            .filter(|((x, y), _)| (x == a && y == b) || (x == b && y == a))
            .map(|(_, relay)| relay)
            .collect()
    }

    /// Every relay in front of `host`.
    fn in_front_of(&self, host: &str) -> Vec<&Relay> {
        self.relays
            .iter()
            .filter(|((_, to), _)| to == host)
            .map(|(_, relay)| relay)
            .collect()
    }

    fn start_fake(&mut self, host: &str) -> Result<(), String> {
        let Some(fake) = self.fakes.get_mut(host) else {
            return Err(format!("no fake {host}"));
        };
        match &mut fake.thread {
            Some(thread) => thread.bounce().map_err(|e| e.to_string())?,
            None => {
                let thread = HostThread::start(host, fake.address.port(), fake.life.clone())
                    .map_err(|e| e.to_string())?;
                fake.thread = Some(thread);
            }
        }
        for relay in self.in_front_of(host) {
            relay.update(|st| {
                st.down = false;
                st.generation += 1;
            });
        }
        Ok(())
    }

    async fn apply(&mut self, verb: &Verb) -> Result<(), String> {
        match verb {
            Verb::Crash { host } => {
                for relay in self.in_front_of(host) {
                    relay.update(|st| {
                        st.down = true;
                        st.generation += 1;
                    });
                }
                if let Some(fake) = self.fakes.get_mut(host) {
                    if let Some(thread) = &mut fake.thread {
                        thread.crash();
                    }
                    return Ok(());
                }
                match self.gateways.get_mut(host) {
                    Some(GatewayHostHandle::InProcess(thread)) => thread.crash(),
                    Some(GatewayHostHandle::Process(process)) => process.crash().await,
                    Some(GatewayHostHandle::Attached(_)) => {
                        return Err("an attached gateway cannot be crashed".into())
                    }
                    None => return Err(format!("no host {host}")),
                }
                Ok(())
            }
            Verb::Bounce { host } => {
                if self.fakes.contains_key(host) {
                    return self.start_fake(host);
                }
                // Refused while it restarts, as a restarting host is: the
                // operator keeps trying.
                for relay in self.in_front_of(host) {
                    relay.update(|st| {
                        st.generation += 1;
                        st.down = true;
                    });
                }
                let result = match self.gateways.get_mut(host) {
                    Some(GatewayHostHandle::InProcess(thread)) => {
                        thread.bounce().map_err(|e| e.to_string())
                    }
                    Some(GatewayHostHandle::Process(process)) => process.bounce(&self.probe).await,
                    Some(GatewayHostHandle::Attached(_)) => {
                        Err("an attached gateway cannot be bounced".into())
                    }
                    None => Err(format!("no host {host}")),
                };
                for relay in self.in_front_of(host) {
                    relay.update(|st| st.down = false);
                }
                result
            }
            Verb::Partition { a, b } => {
                self.links(a, b)
                    .iter()
                    .for_each(|r| r.update(|st| st.partitioned = true));
                Ok(())
            }
            Verb::Repair { a, b } => {
                self.links(a, b)
                    .iter()
                    .for_each(|r| r.update(|st| st.partitioned = false));
                Ok(())
            }
            Verb::Hold { a, b } => {
                self.links(a, b)
                    .iter()
                    .for_each(|r| r.update(|st| st.held = true));
                Ok(())
            }
            Verb::Release { a, b } => {
                self.links(a, b)
                    .iter()
                    .for_each(|r| r.update(|st| st.held = false));
                Ok(())
            }
        }
    }

    /// Stops everything the run started.
    async fn shutdown(mut self) {
        for (_, handle) in std::mem::take(&mut self.gateways) {
            match handle {
                GatewayHostHandle::InProcess(mut thread) => thread.crash(),
                GatewayHostHandle::Process(mut process) => process.stop().await,
                GatewayHostHandle::Attached(_) => {}
            }
        }
        self.relays.clear();
        for fake in self.fakes.values_mut() {
            if let Some(thread) = &mut fake.thread {
                thread.crash();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_of_fakes_become_the_gateways_relays() {
        let bases: BTreeMap<String, String> =
            [("ws".to_string(), "http://127.0.0.1:4101".to_string())].into();
        let mut body = json!({
            "url": "http://ws/api/2.0/mcp/sql",
            "token_url": "http://wsx/token",
            "nested": ["http://ws", "https://ws/x"],
            "credentials": {"resource": "http://ws/mcp"},
        });
        rewrite_urls(&mut body, &bases);
        assert_eq!(body["url"], "http://127.0.0.1:4101/api/2.0/mcp/sql");
        assert_eq!(body["token_url"], "http://wsx/token");
        assert_eq!(
            body["nested"],
            json!(["http://127.0.0.1:4101", "https://ws/x"])
        );
    }

    #[test]
    fn what_only_the_source_dialect_reads_is_not_carried() {
        use crate::builder::{GatewayHost, Step};
        use mcpsim_sut::{ContextForge, LiteLlm, ServerDef};

        let scenario = |step: Step| {
            Scenario::builder("one write")
                .gateway(GatewayHost::new("gateway"))
                .step(step)
                .build()
                .unwrap()
        };
        let good = Step::create_native(json!({"server_name": "docs", "transport": "http",
            "url": "http://docs/mcp"}));
        let mut carried = scenario(good.clone());
        translate(&LiteLlm, &ContextForge, &mut carried).unwrap();
        assert!(matches!(
            &carried.operator.steps[0].action,
            Action::Create { spec: Some(def), body: None } if def.name == "docs"
        ));
        for (step, says) in [
            (Step::create_raw("{\"server_name\": "), "sends a raw body"),
            (
                Step::create(ServerDef::http("docs", "http://docs/mcp"))
                    .extra_field("alias", json!("d")),
                "sets fields of litellm's own API (alias)",
            ),
            (good.bad_input(), "is a bad input by litellm's rules"),
        ] {
            let mut s = scenario(step);
            let why = translate(&LiteLlm, &ContextForge, &mut s).unwrap_err();
            assert!(why.contains(says), "{why}");
            // The same dialect carries everything as it is.
            translate(&LiteLlm, &LiteLlm, &mut s).unwrap();
        }
    }
}
