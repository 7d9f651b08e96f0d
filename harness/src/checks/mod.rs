//! Checkers: each looks at a finished run and names itself when it fails.
//!
//! Checkers never touch the world they check. They judge a system under
//! test from the outside: what the operator sent and saw through the API
//! (its records), what the upstreams saw (the fakes' own request logs), and
//! the faults the harness applied. Bounds come from what the system under
//! test declared ([`mcpsim_sut::Declared`]).
//!
//! The system under test's own events are optional evidence: the one
//! checker that needs them ([`hygiene`]) says so in its header, and reports
//! itself not applicable when there are none; every other checker reads no
//! event at all, so its verdict is the same with or without them.

use std::collections::BTreeMap;

use mcpsim_sut::Declared;
use serde::Serialize;

use crate::faults::Faults;
use crate::observe::Seen;
use crate::scenario::Scenario;
use crate::trace::TraceEvent;
use crate::world::Outcome;

/// One checker's verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    /// Why it failed, one line per finding; empty when it passed.
    pub findings: Vec<String>,
    /// Why it could not judge this run (it passes then, with nothing said).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_applicable: Option<String>,
}

pub(crate) fn check(name: &'static str, findings: Vec<String>) -> Check {
    Check {
        name,
        passed: findings.is_empty(),
        findings,
        not_applicable: None,
    }
}

pub(crate) fn not_applicable(name: &'static str, why: &str) -> Check {
    Check {
        name,
        passed: true,
        findings: Vec::new(),
        not_applicable: Some(why.to_string()),
    }
}

/// Everything a checker may look at.
pub(crate) struct Evidence<'a> {
    pub scenario: &'a Scenario,
    pub outcome: &'a Outcome,
    /// Each server as the operator last saw it.
    pub seen: &'a BTreeMap<(String, String), Seen>,
    /// The trace, with or without the system under test's own events.
    pub trace: &'a [TraceEvent],
    /// Why the trace carries no events of the system under test, if so.
    pub no_events: Option<&'static str>,
    pub faults: Faults<'a>,
    /// The report as JSON, for the secrets check.
    pub report_text: &'a str,
    /// Whether the dialect reads the time of a server's last check.
    pub reports_check_time: bool,
    /// The longest one message can take: from the simulated network, or a
    /// live run's stated slack.
    pub hop_ms: u64,
    /// Addresses (`127.0.0.1:4100`) that stand for a fake host in a live
    /// run, where a gateway is told the relay's address; empty in the
    /// simulation, where URLs name hosts.
    pub authorities: &'a BTreeMap<String, String>,
    /// Whether the scenario's expected error words (`error_contains`) are
    /// this system's: a live gateway of another kind words its errors its
    /// own way, and only its statuses and tools are held to the scenario;
    /// nor are its errors' leading labels read as stages (`health_record`).
    pub error_words: bool,
}

impl Evidence<'_> {
    /// The store a gateway host shares, if it has one.
    pub fn store_of(&self, gateway: &str) -> Option<&str> {
        self.scenario
            .gateways
            .iter()
            .find(|g| g.host == gateway)
            .and_then(|g| g.store.as_deref())
    }

    /// What the system under test declared about a gateway host.
    pub fn declared(&self, host: &str) -> Option<&Declared> {
        self.outcome.hosts.get(host)
    }

    /// The longest one message can take.
    pub fn hop_ms(&self) -> u64 {
        self.hop_ms
    }

    /// The fake host a URL points at, by its name in the scenario.
    pub fn upstream_host(&self, url: Option<&str>) -> Option<String> {
        let uri: http::Uri = url?.parse().ok()?;
        if let Some(host) = uri
            .authority()
            .and_then(|a| self.authorities.get(a.as_str()))
        {
            return Some(host.clone());
        }
        uri.host().map(str::to_string)
    }
}

/// How long a server may stay `unknown` on `host` once nothing disturbs it:
/// two attempts (a retry after a 401 fetches the token and lists again),
/// one sync and one store call, and the messages around them.
pub(crate) fn unknown_bound_ms(evidence: &Evidence<'_>, host: &str) -> u64 {
    let Some(d) = evidence.declared(host) else {
        return 0;
    };
    2 * (d.token_budget_ms.unwrap_or(0) + d.listing_budget_ms)
        + d.sync_interval_ms.unwrap_or(0)
        + d.store_budget_ms.unwrap_or(0)
        + 40 * evidence.hop_ms()
}

mod api_contract;
mod consistency;
mod converges;
mod definitions;
mod deletes;
mod expectations;
mod health_record;
mod hygiene;
mod liveness;
mod load;
mod paths;
mod registrations;
mod secrets;
mod sessions;

pub(crate) use sessions::open_until;
mod storm;
mod tokens;
mod tool_calls;
mod upstream;

pub use paths::{check_path_independence, check_update_merge};

/// Every checker of one run, in report order.
pub(crate) fn all(evidence: &Evidence<'_>) -> Vec<Check> {
    vec![
        liveness::check_liveness(evidence),
        consistency::check_consistency(evidence),
        secrets::check_no_secrets(evidence),
        converges::check_converges(evidence),
        expectations::check_expectations(evidence),
        hygiene::check_hygiene(evidence),
        tokens::check_tokens(evidence),
        load::check_load(evidence),
        sessions::check_sessions(evidence),
        storm::check_storm(evidence),
        health_record::check_health_record(evidence),
        api_contract::check_api_contract(evidence),
        deletes::check_deletes(evidence),
        tool_calls::check_tool_calls(evidence),
    ]
}
