//! What the scenario states about each server's end, about the gateways
//! that must have said their store was unreachable, and about how clients
//! authenticate to each token server: a token endpoint that accepts one
//! client authentication only (`client_auth: basic_only | form_only`), or a
//! client registered with one (`auth_method`), must see that one on every
//! request it issued a token to, even where the endpoint is lenient and
//! would have let the other pass.
//!
//! Outside-in: it reads what the operator last saw and the token servers'
//! own request logs.

use mcpsim_fakes::{AcceptedClientAuth, AuthMethod, ClientAuthSeen, TokenOutcome};

use super::{check, Check, Evidence};
use crate::observe;
use crate::operator::WriteKind;

/// Every token issued to a request that authenticated otherwise than the
/// scenario configures for its client.
fn client_auth_findings(e: &Evidence<'_>) -> Vec<String> {
    let mut findings = Vec::new();
    for server in &e.scenario.token_servers {
        let Some(log) = e.outcome.token_requests.get(&server.host) else {
            continue;
        };
        let config = &server.config;
        for r in &log.records {
            if !matches!(r.outcome, TokenOutcome::Issued { .. }) {
                continue;
            }
            let registered = config
                .clients
                .iter()
                .filter(|c| r.client_id.as_ref() == Some(&c.client_id))
                .find_map(|c| c.auth_method);
            let (required, why) = match (config.client_auth, registered) {
                (AcceptedClientAuth::BasicOnly, _) => (AuthMethod::Basic, "its endpoint accepts"),
                (AcceptedClientAuth::FormOnly, _) => (AuthMethod::Form, "its endpoint accepts"),
                (AcceptedClientAuth::Any, Some(method)) => (method, "the client is registered for"),
                (AcceptedClientAuth::Any, None) => continue,
            };
            let used = match r.client_auth {
                ClientAuthSeen::Basic => Some(AuthMethod::Basic),
                ClientAuthSeen::Form => Some(AuthMethod::Form),
                ClientAuthSeen::None | ClientAuthSeen::Both => None,
            };
            if used != Some(required) {
                let name = |m: Option<AuthMethod>| match m {
                    Some(AuthMethod::Basic) => "HTTP Basic",
                    Some(AuthMethod::Form) => "the form body",
                    None => "neither or both",
                };
                findings.push(format!(
                    "{}: issued a token at {} ms to {} (client {}), which authenticated by {}, though {why} {} only",
                    server.host,
                    r.received_ms,
                    r.peer.as_deref().unwrap_or("?"),
                    r.client_id.as_deref().unwrap_or("?"),
                    name(used),
                    name(Some(required)),
                ));
            }
        }
    }
    findings
}

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
    findings.extend(client_auth_findings(e));
    check("expectations", findings)
}
