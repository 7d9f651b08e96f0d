//! What the scenario states about each server's end.

use super::{check, Check};
use crate::scenario::Scenario;
use crate::world::Outcome;

/// The scenario's stated expectations per server name.
pub(crate) fn check_expectations(scenario: &Scenario, outcome: &Outcome) -> Check {
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
