//! Storm: the run ended by itself. No fake was sent more requests than its
//! log keeps, the trace stayed under its cap, and simulated time did not run
//! past the deadline and its overtime with the operator still at work.
//!
//! The driving loop stops a run that reaches one of these bounds and says
//! why in the trace (a `stopped` event: "request storm: ...", "no progress
//! at t=... ms: ..."); this checker reports that reason, so a gateway that
//! storms or stalls ends as a named finding, never as an out-of-memory or a
//! hang. A live run is stopped the same way, by a watch on real time. A run
//! that ended before its bounds were asked again (the operator finished as
//! a log filled) is judged by what the fakes' logs left out.
//!
//! Outside-in: it reads the harness's own trace events and the fakes' logs,
//! never the gateway's events.

use super::{check, Check, Evidence};
use crate::trace::What;

pub(crate) fn check_storm(e: &Evidence<'_>) -> Check {
    let mut findings: Vec<String> = e
        .trace
        .iter()
        .filter_map(|event| match &event.what {
            What::Stopped { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    // A stopped run already says which bound it reached; a log that also
    // left requests out (the same step) says nothing more.
    if findings.is_empty() {
        let token = e
            .outcome
            .token_requests
            .iter()
            .map(|(h, l)| ("token server", h, l.records.len(), l.dropped));
        let mcp = e
            .outcome
            .mcp_requests
            .iter()
            .map(|(h, l)| ("MCP server", h, l.records.len(), l.dropped));
        for (kind, host, kept, dropped) in token.chain(mcp) {
            if dropped > 0 {
                findings.push(format!(
                    "request storm: {kind} {host} was sent more than {kept} requests"
                ));
            }
        }
    }
    check("storm", findings)
}
