//! Path independence: the same server and upstream behaviour end the same
//! (status and tool set) whatever path registered the server; and a create
//! followed by an update ends as a create of what the update merged into it
//! (update merge).
//!
//! Outside-in: it compares what the operator saw in two reports.

use mcpsim_sut::Status;

use super::{check, Check};
use crate::Report;

/// What `host` ended with for the server named `name`: status and sorted
/// tools, `None` if it lists no such server.
fn ending(report: &Report, host: &str, name: &str) -> Option<(Status, Vec<String>)> {
    let server = report
        .servers
        .iter()
        .rfind(|s| s.gateway == host && s.name == name && !s.deleted)?;
    let mut tools = server.tools.clone();
    tools.sort();
    Some((server.status, tools))
}

/// Compares the server `name` on `host` in two runs that differ only in
/// how the server was registered (`a_path`, `b_path`).
pub fn check_path_independence(
    a: &Report,
    a_path: &str,
    b: &Report,
    b_path: &str,
    host: &str,
    name: &str,
) -> Check {
    let mut findings = Vec::new();
    let (left, right) = (ending(a, host, name), ending(b, host, name));
    if left != right {
        let show = |e: &Option<(Status, Vec<String>)>| match e {
            Some((status, tools)) => format!("{status} with {} tools", tools.len()),
            None => "not listed".to_string(),
        };
        findings.push(format!(
            "{name} on {host} ends {} when registered by {a_path}, but {} by {b_path}",
            show(&left),
            show(&right)
        ));
    }
    check("path_independence", findings)
}

/// Compares the server `name` on `host` in a run that created it and then
/// updated it, and one that created its merged definition at once.
pub fn check_update_merge(updated: &Report, merged: &Report, host: &str, name: &str) -> Check {
    let mut findings = Vec::new();
    let (left, right) = (ending(updated, host, name), ending(merged, host, name));
    if left != right {
        let show = |e: &Option<(Status, Vec<String>)>| match e {
            Some((status, tools)) => format!("{status} with {} tools", tools.len()),
            None => "not listed".to_string(),
        };
        let differ = match (&left, &right) {
            (Some((a, x)), Some((b, y))) if a == b && x.len() == y.len() => ", by tool names",
            _ => "",
        };
        findings.push(format!(
            "{name} on {host} ends {} when created and then updated, but {} when created as the update left it{differ}",
            show(&left),
            show(&right)
        ));
    }
    check("update_merge", findings)
}
