//! Checkers: each looks at a finished run and names itself when it fails.
//!
//! Checkers never touch the world they check; they read the operator's
//! observations, the trace and the fakes' counters.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::scenario::Scenario;
use crate::world::Outcome;

/// One checker's verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    /// Why it failed, one line per finding; empty when it passed.
    pub findings: Vec<String>,
}

fn check(name: &'static str, findings: Vec<String>) -> Check {
    Check {
        name,
        passed: findings.is_empty(),
        findings,
    }
}

/// Every server leaves `unknown` before the deadline, and every acknowledged
/// registration is listed on every gateway that shares its store.
pub(crate) fn settles(outcome: &Outcome) -> Check {
    let mut findings: Vec<String> = outcome.observed.missing.clone();
    let unsettled: Vec<String> = outcome
        .observed
        .servers
        .values()
        .filter(|s| !s.deleted && s.status == "unknown")
        .map(|s| {
            format!(
                "{} on {} is still unknown at the deadline",
                s.name, s.gateway
            )
        })
        .collect();
    findings.extend(unsettled);
    check("settles", findings)
}

/// Health records are consistent at every poll, and a healthy server lists
/// exactly the tools of the fake behind it.
pub(crate) fn health_consistent(outcome: &Outcome) -> Check {
    let mut findings = outcome.observed.violations.clone();
    for seen in outcome
        .observed
        .servers
        .values()
        .filter(|s| !s.deleted && s.serves_tools)
    {
        if seen.status != "healthy" {
            if !seen.tools.is_empty() {
                findings.push(format!(
                    "{} is {} but lists {} tools",
                    seen.name,
                    seen.status,
                    seen.tools.len()
                ));
            }
            continue;
        }
        let host = seen
            .url
            .as_deref()
            .and_then(|u| u.parse::<http::Uri>().ok())
            .and_then(|u| u.host().map(str::to_string));
        let Some(fake) = host.and_then(|h| outcome.mcp_servers.get(&h)) else {
            continue;
        };
        // The row's alias is the prefix; the operator saw `<alias>-<tool>`.
        let mut expected: Vec<String> = fake.tool_names();
        expected.sort();
        let mut listed: Vec<String> = seen
            .tools
            .iter()
            .map(|t| {
                t.split_once('-')
                    .map(|(_, tool)| tool.to_string())
                    .unwrap_or_default()
            })
            .collect();
        listed.sort();
        if listed != expected {
            findings.push(format!(
                "{} is healthy with {} tools, but its MCP server has {}",
                seen.name,
                listed.len(),
                expected.len()
            ));
        }
    }
    check("health_consistent", findings)
}

/// Collects every secret a scenario hands out, and every token issued.
fn secrets(scenario: &Scenario, outcome: &Outcome) -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    let secret_key = matches!(
                        key.as_str(),
                        "client_secret"
                            | "auth_value"
                            | "authentication_token"
                            | "token"
                            | "signing_key"
                    );
                    match v {
                        Value::String(s) if secret_key && !s.starts_with("os.environ/") => {
                            out.push(s.clone())
                        }
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(
        &serde_json::to_value(scenario).unwrap_or(Value::Null),
        &mut out,
    );
    for g in &scenario.gateways {
        // Values the config reads from the environment are secrets too.
        out.extend(g.env.values().cloned());
    }
    for server in outcome.token_servers.values() {
        out.extend(server.issued_tokens());
    }
    out.retain(|s| s.len() >= 4);
    out.sort();
    out.dedup();
    out
}

/// No secret appears in any response, the trace or the report.
pub(crate) fn no_secrets(scenario: &Scenario, outcome: &Outcome, report_text: &str) -> Check {
    let secrets = secrets(scenario, outcome);
    let trace_text = serde_json::to_string(&outcome.trace).unwrap_or_default();
    let mut places: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    places.insert("report", vec![report_text]);
    places.insert("trace", vec![trace_text.as_str()]);
    places.insert(
        "responses",
        outcome.observed.bodies.iter().map(String::as_str).collect(),
    );
    let mut findings = Vec::new();
    for (i, secret) in secrets.iter().enumerate() {
        for (place, texts) in &places {
            if texts.iter().any(|t| t.contains(secret.as_str())) {
                // Name the secret by its index, never by its value.
                findings.push(format!(
                    "secret #{i} ({} characters) appears in the {place}",
                    secret.len()
                ));
            }
        }
    }
    check("no_secrets", findings)
}

/// The scenario's stated expectations per server name.
pub(crate) fn expectations(scenario: &Scenario, outcome: &Outcome) -> Check {
    let mut findings = Vec::new();
    for (name, expect) in &scenario.expect {
        let seen: Vec<_> = outcome
            .observed
            .servers
            .values()
            .filter(|s| &s.name == name && !s.deleted)
            .collect();
        if seen.is_empty() {
            findings.push(format!(
                "{name}: expected a server of that name, none was listed"
            ));
        }
        for s in seen {
            if let Some(status) = &expect.status {
                if &s.status != status {
                    findings.push(format!(
                        "{name} on {}: expected {status}, got {}",
                        s.gateway, s.status
                    ));
                }
            }
            if let Some(part) = &expect.error_contains {
                if !s.error.as_deref().unwrap_or("").contains(part.as_str()) {
                    findings.push(format!(
                        "{name} on {}: expected an error containing {part:?}, got {:?}",
                        s.gateway, s.error
                    ));
                }
            }
            if let (Some(count), true) = (expect.tool_count, s.serves_tools) {
                if s.tools.len() != count {
                    findings.push(format!(
                        "{name} on {}: expected {count} tools, got {}",
                        s.gateway,
                        s.tools.len()
                    ));
                }
            }
        }
    }
    for host in &scenario.expect_store_unreachable {
        if !outcome.observed.store_unreachable_seen.contains_key(host) {
            findings.push(format!(
                "{host}: expected its health to say the store is unreachable, it never did"
            ));
        }
    }
    check("expectations", findings)
}

/// Every gateway that shares a store and is touched by no fault registers
/// an acknowledged server (its own `registered` event in the trace) within
/// one of its sync intervals plus the store round trip.
pub(crate) fn converges(scenario: &Scenario, outcome: &Outcome) -> Check {
    let mut findings = Vec::new();
    let touched = |host: &str| {
        scenario
            .faults
            .iter()
            .any(|f| f.verb.hosts().contains(&host))
    };
    for (taker, id, acked_ms) in &outcome.observed.acked {
        let Some(store) = scenario
            .gateways
            .iter()
            .find(|g| &g.host == taker)
            .and_then(|g| g.store.clone())
        else {
            continue;
        };
        if touched(&store) {
            continue;
        }
        for g in scenario
            .gateways
            .iter()
            .filter(|g| g.store.as_ref() == Some(&store) && &g.host != taker)
        {
            if touched(&g.host) {
                continue;
            }
            // A read of the store is three one-way trips on a new
            // connection, and the write itself one more round trip.
            let bound = g.settings.sync_interval_ms + 6 * scenario.network.latency_ms_max + 1;
            match crate::trace::first_registered(&outcome.trace, &g.host, id, *acked_ms) {
                Some(first) if first.saturating_sub(*acked_ms) <= bound => {}
                Some(first) => findings.push(format!(
                    "{} registered {id} {} ms after it was acknowledged, over the bound of {bound} ms",
                    g.host,
                    first - acked_ms
                )),
                None => findings.push(format!("{} never registered {id}", g.host)),
            }
        }
    }
    check("converges", findings)
}
