//! mcpsim's harness: a scenario in, a report out.
//!
//! [`run`] builds a turmoil world from a [`Scenario`] (gateways, fake token
//! and MCP servers, an operator's client), runs it until every server has
//! settled or the deadline passes, and applies the checkers. The same
//! scenario gives the same report, byte for byte.

mod checks;
pub mod explore;
pub mod generate;
pub mod mermaid;
pub mod net;
pub mod scenario;
pub mod trace;
mod world;

use serde::Serialize;

pub use checks::{check_path_independence, Check};
pub use scenario::{Scenario, ScenarioError};
pub use trace::{TraceEvent, What};
pub use world::RunError;

/// What one server ended as, on one gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServerReport {
    pub gateway: String,
    pub server_id: String,
    pub name: String,
    /// `rest` or `config`.
    pub path: String,
    pub status: String,
    pub tools: Vec<String>,
    pub error: Option<String>,
    pub last_health_check: Option<String>,
    /// Simulated ms at which the operator first saw it leave `unknown`.
    pub settled_ms: Option<u64>,
    /// Simulated ms at which this gateway first registered it.
    pub first_seen_ms: Option<u64>,
    pub deleted: bool,
}

/// The result of one run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub description: String,
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
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub store_unreachable_seen_ms: std::collections::BTreeMap<String, u64>,
    pub checks: Vec<Check>,
    pub token_servers: std::collections::BTreeMap<String, mcpsim_fakes::TokenStats>,
    pub mcp_servers: std::collections::BTreeMap<String, mcpsim_fakes::McpStats>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub stores: std::collections::BTreeMap<String, mcpsim_fakes::StoreStats>,
    pub trace_hash: String,
    pub trace: Vec<TraceEvent>,
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

/// Runs one scenario in a fresh simulated world.
pub fn run(scenario: &Scenario) -> Result<Report, RunError> {
    run_with_defects(scenario, mcpsim_gateway::Defects::none())
}

/// Runs one scenario with known defects switched on in every gateway (a
/// scenario file can never switch one on itself).
pub fn run_with_defects(
    scenario: &Scenario,
    defects: mcpsim_gateway::Defects,
) -> Result<Report, RunError> {
    let outcome = world::run_world(scenario, defects)?;
    let servers = outcome
        .observed
        .servers
        .values()
        .map(|s| ServerReport {
            gateway: s.gateway.clone(),
            server_id: s.server_id.clone(),
            name: s.name.clone(),
            path: s.source.clone(),
            status: s.status.clone(),
            tools: s.tools.clone(),
            error: s.error.clone(),
            last_health_check: s.last_health_check.clone(),
            settled_ms: s.settled_ms,
            // The gateway's own record of when it learned the server; the
            // operator's first poll only bounds it from above.
            first_seen_ms: trace::first_registered(&outcome.trace, &s.gateway, &s.server_id, 0)
                .or(s.first_seen_ms),
            deleted: s.deleted,
        })
        .collect();
    let mut report = Report {
        description: scenario.description.clone(),
        seed: scenario.seed,
        end_ms: outcome.observed.end_ms,
        deadline_hit: outcome.observed.deadline_hit,
        steps: outcome.observed.steps.clone(),
        tool_calls: outcome.observed.tool_calls.clone(),
        servers,
        store_unreachable_seen_ms: outcome.observed.store_unreachable_seen.clone(),
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
        trace_hash: trace::hash(&outcome.trace),
        trace: outcome.trace.clone(),
    };
    let report_text = serde_json::to_string(&report).unwrap_or_default();
    report.checks = vec![
        checks::check_liveness(scenario, &outcome),
        checks::check_consistency(&outcome),
        checks::check_no_secrets(scenario, &outcome, &report_text),
        checks::check_converges(scenario, &outcome),
        checks::check_expectations(scenario, &outcome),
        checks::check_hygiene(scenario, &outcome),
        checks::check_tokens(scenario, &outcome),
    ];
    Ok(report)
}
