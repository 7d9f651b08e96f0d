//! Consistency of every observed health record, at every poll.

use super::{check, Check};
use crate::world::Outcome;

/// Health records are consistent at every poll, and a healthy server lists
/// exactly the tools of the fake behind it.
pub(crate) fn check_consistency(outcome: &Outcome) -> Check {
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
    check("consistency", findings)
}
