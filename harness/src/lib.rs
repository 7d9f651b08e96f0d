//! mcpsim's harness: a system under test and a scenario in, a report out.
//!
//! [`run`] builds a turmoil world from a [`Scenario`] around a system under
//! test ([`Sut`]: the reference gateway, or any gateway that implements the
//! seam's [`mcpsim_sut::SystemUnderTest`]), with fake token and MCP servers
//! and an operator who speaks the gateway's dialect, runs it until every
//! server has settled or the deadline passes, and applies the checkers. The
//! same scenario gives the same report, byte for byte.
//!
//! The harness never names a gateway's types: it knows a system under test
//! only through the seam.

pub mod bad_inputs;
pub mod builder;
mod checks;
pub mod explore;
mod faults;
pub mod generate;
pub mod live;
mod mermaid;
pub mod net;
mod observe;
mod operator;
pub mod scenario;
pub mod serve;
pub mod trace;
mod world;

use std::collections::BTreeMap;

use serde::Serialize;

pub use checks::{check_path_independence, check_update_merge, Check};
pub use mcpsim_fakes::{Log, McpRequestRecord, TokenRequestRecord};
pub use mcpsim_sut::{ServerAuth, ServerDef, Status, Sut, SystemUnderTest};
pub use scenario::{Scenario, ScenarioError};
pub use trace::{TraceEvent, What};
pub use world::RunError;

/// What one server ended as, on one gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServerReport {
    pub gateway: String,
    pub server_id: String,
    pub name: String,
    /// How it was registered, in the gateway's words (`rest`, `config`).
    pub path: String,
    pub status: Status,
    /// Its tools, by the names the gateway exposes.
    pub tools: Vec<String>,
    pub error: Option<String>,
    pub last_health_check: Option<String>,
    /// Simulated ms at which the operator first saw it leave `unknown`.
    pub settled_ms: Option<u64>,
    /// Simulated ms at which this gateway first registered it: its own
    /// account where it gives one, else the operator's first sight of it.
    pub first_seen_ms: Option<u64>,
    pub deleted: bool,
}

/// The result of one run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub description: String,
    /// The system under test's name.
    pub system_under_test: String,
    pub seed: u64,
    /// Simulated ms at which the operator stopped.
    pub end_ms: u64,
    pub deadline_hit: bool,
    /// Results of the operator's steps, e.g. `create DatabricksSQL -> 201`.
    pub steps: Vec<String>,
    /// Tool calls through the gateway after settling (`call_tools`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<String>,
    pub servers: Vec<ServerReport>,
    /// Per gateway, the first poll at which its health said the store was
    /// unreachable.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub store_unreachable_seen_ms: BTreeMap<String, u64>,
    pub checks: Vec<Check>,
    pub token_servers: BTreeMap<String, mcpsim_fakes::TokenStats>,
    pub mcp_servers: BTreeMap<String, mcpsim_fakes::McpStats>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub stores: BTreeMap<String, mcpsim_fakes::StoreStats>,
    /// Every request each token server saw, as it recorded it.
    pub token_requests: BTreeMap<String, Log<TokenRequestRecord>>,
    /// Every request each MCP server saw, as it recorded it.
    pub mcp_requests: BTreeMap<String, Log<McpRequestRecord>>,
    pub trace_hash: String,
    pub trace: Vec<TraceEvent>,
    /// Set when the run was live: real sockets and real time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<live::LiveInfo>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    pub fn failed_checks(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.passed)
    }

    /// The trace as a Mermaid sequence diagram in Markdown.
    pub fn mermaid(&self) -> String {
        mermaid::sequence_diagram(&self.description, &self.trace)
    }

    /// The trace as readable lines.
    pub fn timeline(&self) -> String {
        trace::timeline(&self.trace)
    }
}

/// What the checkers may see of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Evidence {
    /// Everything, the system under test's own events included.
    #[default]
    Everything,
    /// Only what a gateway shows to the outside: its events are left out
    /// of the trace, as for a gateway that reports none.
    OutsideOnly,
}

/// Why the trace carries no events of the system under test.
const LEFT_OUT: &str = "not applicable: the system under test's events were left out";
const NONE_EMITTED: &str = "not applicable: the system under test emits no events";

/// Runs one scenario against a system under test in a fresh simulated
/// world, with everything as evidence.
pub fn run(sut: &Sut, scenario: &Scenario) -> Result<Report, RunError> {
    run_judged(sut, scenario, Evidence::Everything)
}

/// Runs one scenario and judges it on the evidence given.
pub fn run_judged(sut: &Sut, scenario: &Scenario, evidence: Evidence) -> Result<Report, RunError> {
    let outcome = world::run_world(sut, scenario)?;
    Ok(judge(
        &Judging::simulated(sut, scenario),
        scenario,
        &outcome,
        evidence,
    ))
}

/// One run, judged twice: on everything, and on the outside alone.
pub struct BothVerdicts {
    /// The report on everything.
    pub report: Report,
    /// The checks on the outside alone.
    pub outside_only: Vec<Check>,
}

/// Runs one scenario once and judges it both ways, to show which verdicts
/// rest on the system under test's own events.
pub fn run_judged_both(sut: &Sut, scenario: &Scenario) -> Result<BothVerdicts, RunError> {
    let outcome = world::run_world(sut, scenario)?;
    let judging = Judging::simulated(sut, scenario);
    let report = judge(&judging, scenario, &outcome, Evidence::Everything);
    let outside = judge(&judging, scenario, &outcome, Evidence::OutsideOnly);
    Ok(BothVerdicts {
        report,
        outside_only: outside.checks,
    })
}

/// What judging a run needs besides the run itself.
pub(crate) struct Judging<'a> {
    /// The system under test's name.
    pub system: String,
    pub dialect: &'a dyn mcpsim_sut::Dialect,
    /// The longest one message can take.
    pub hop_ms: u64,
    /// Loopback addresses that stand for fake hosts (live runs).
    pub authorities: BTreeMap<String, String>,
    /// Whether the scenario's expected error words are this system's.
    pub error_words: bool,
    pub live: Option<live::LiveInfo>,
}

impl<'a> Judging<'a> {
    fn simulated(sut: &'a Sut, scenario: &Scenario) -> Self {
        Judging {
            system: sut.name(),
            dialect: sut.dialect(),
            hop_ms: scenario.network.hop_ms(),
            authorities: BTreeMap::new(),
            error_words: true,
            live: None,
        }
    }
}

pub(crate) fn judge(
    judging: &Judging<'_>,
    scenario: &Scenario,
    outcome: &world::Outcome,
    evidence: Evidence,
) -> Report {
    let trace = match evidence {
        Evidence::Everything => outcome.trace.clone(),
        Evidence::OutsideOnly => trace::without_events(&outcome.trace),
    };
    let emits = outcome.hosts.values().any(|d| d.emits_events);
    let no_events = match evidence {
        Evidence::OutsideOnly => Some(LEFT_OUT),
        Evidence::Everything if !emits => Some(NONE_EMITTED),
        Evidence::Everything => None,
    };
    let seen = observe::seen(&outcome.records);
    let servers = seen
        .values()
        .map(|s| ServerReport {
            gateway: s.gateway.clone(),
            server_id: s.server_id.clone(),
            name: s.view.name.clone(),
            path: s.view.source.clone().unwrap_or_default(),
            status: s.view.status,
            tools: s.tools.iter().map(|t| t.exposed.clone()).collect(),
            error: s.view.error.clone(),
            last_health_check: s.view.last_health_check.clone(),
            settled_ms: s.settled_ms,
            first_seen_ms: trace::first_registered(&trace, &s.gateway, &s.server_id, 0)
                .or(Some(s.first_seen_ms)),
            deleted: s.deleted,
        })
        .collect();
    let records = &outcome.records;
    let tool_calls = records
        .tool_calls
        .iter()
        .map(|c| {
            let result = match &c.answer {
                Some(a) => a.status.to_string(),
                None => "no answer".to_string(),
            };
            format!("{}: call {} -> {result}", c.gateway, c.tool)
        })
        .collect();
    let mut report = Report {
        description: scenario.description.clone(),
        system_under_test: judging.system.clone(),
        seed: scenario.seed,
        end_ms: records.end_ms,
        deadline_hit: records.deadline_hit,
        steps: records.writes.iter().map(|w| w.text.clone()).collect(),
        tool_calls,
        servers,
        store_unreachable_seen_ms: observe::store_unreachable_seen(records),
        checks: Vec::new(),
        token_servers: outcome
            .token_servers
            .iter()
            .map(|(h, s)| (h.clone(), s.stats()))
            .collect(),
        mcp_servers: outcome
            .mcp_servers
            .iter()
            .map(|(h, s)| (h.clone(), s.stats()))
            .collect(),
        stores: outcome
            .stores
            .iter()
            .map(|(h, s)| (h.clone(), s.stats()))
            .collect(),
        token_requests: outcome.token_requests.clone(),
        mcp_requests: outcome.mcp_requests.clone(),
        trace_hash: trace::hash(&trace),
        trace,
        live: judging.live.clone(),
    };
    let report_text = serde_json::to_string(&report).unwrap_or_default();
    let evidence = checks::Evidence {
        scenario,
        outcome,
        seen: &seen,
        trace: &report.trace,
        no_events,
        faults: faults::Faults::new(scenario),
        report_text: &report_text,
        reports_check_time: judging.dialect.reports_check_time(),
        hop_ms: judging.hop_ms,
        authorities: &judging.authorities,
        error_words: judging.error_words,
    };
    report.checks = checks::all(&evidence);
    report
}
