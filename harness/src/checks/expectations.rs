//! What the scenario states about each server's end, and about the
//! gateways that must have said their store was unreachable.
//!
//! Outside-in: it reads what the operator last saw.

use super::{check, Check, Evidence};
use crate::observe;
use crate::operator::WriteKind;

pub(crate) fn check_expectations(e: &Evidence<'_>) -> Check {
    let mut findings = Vec::new();
    for (name, expect) in &e.scenario.expect {
        let seen: Vec<_> = e
            .seen
            .values()
            .filter(|s| &s.view.name == name && !s.deleted)
            .collect();
        if seen.is_empty() {
            // Say what became of its registration, if the operator sent one.
            let refused = e
                .outcome
                .records
                .writes
                .iter()
                .rfind(|w| &w.name == name && w.kind == WriteKind::Create)
                .map(|w| format!(" (its create: {})", w.text))
                .unwrap_or_default();
            findings.push(format!(
                "{name}: expected a server of that name, none was listed{refused}"
            ));
        }
        for s in seen {
            if let Some(status) = expect.status {
                if s.view.status != status {
                    findings.push(format!(
                        "{name} on {}: expected {status}, got {}",
                        s.gateway, s.view.status
                    ));
                }
            }
            // The scenario's expected error words are its own system's;
            // another gateway words its errors its own way.
            if let Some(part) = expect.error_contains.as_ref().filter(|_| e.error_words) {
                let error = s.view.error.as_deref().unwrap_or("");
                if !error.contains(part.as_str()) {
                    findings.push(format!(
                        "{name} on {}: expected an error containing {part:?}, got {:?}",
                        s.gateway, s.view.error
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
    let unreachable = observe::store_unreachable_seen(&e.outcome.records);
    for host in &e.scenario.expect_store_unreachable {
        if !unreachable.contains_key(host) {
            findings.push(format!(
                "{host}: expected its health to say the store is unreachable, it never did"
            ));
        }
    }
    check("expectations", findings)
}
