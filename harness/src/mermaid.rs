//! The trace as a Mermaid sequence diagram: hosts as participants, HTTP
//! exchanges as arrows, status changes, cancellations and faults as notes,
//! simulated time in every label. It is what a reviewer reads first.

use mcpsim_sut::GatewayEvent;

use crate::trace::{TraceEvent, What};

/// Mermaid treats these as syntax inside a message.
fn clean(text: &str) -> String {
    text.replace(';', ",")
        .replace('#', "no. ")
        .replace('\n', " ")
}

fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

fn meet<'a>(host: &'a str, participants: &mut Vec<&'a str>) {
    if !participants.contains(&host) {
        participants.push(host);
    }
}

/// The whole diagram, fenced for a Markdown file.
pub fn sequence_diagram(title: &str, events: &[TraceEvent]) -> String {
    // The operator starts every story, so it stands leftmost.
    let mut participants: Vec<&str> = Vec::new();
    if events.iter().any(|e| e.host == "operator") {
        participants.push("operator");
    }
    let mut lines = Vec::new();
    for e in events {
        meet(e.host.as_str(), &mut participants);
        let t = e.at_ms;
        match &e.what {
            What::Http {
                to,
                method,
                path,
                status,
                error,
                ..
            } => {
                meet(to.as_str(), &mut participants);
                let (arrow, result) = match (status, error) {
                    (Some(s), _) => ("->>", s.to_string()),
                    (None, Some(err)) => ("-x", clean(err)),
                    (None, None) => ("-x", "no answer".to_string()),
                };
                lines.push(format!(
                    "    {}{arrow}{to}: {t} ms {method} {} = {result}",
                    e.host,
                    clean(path)
                ));
            }
            What::Gateway { event } => {
                let note = match event {
                    GatewayEvent::StatusChanged {
                        server_id,
                        from,
                        to,
                    } => Some(format!(
                        "{} {} -> {}",
                        short(server_id),
                        from.as_str(),
                        to.as_str()
                    )),
                    GatewayEvent::DiscoveryCancelled {
                        server_id,
                        attempt,
                        reason,
                    } => Some(format!(
                        "discovery {attempt} of {} cancelled ({reason:?})",
                        short(server_id)
                    )),
                    GatewayEvent::DiscoveryFinished {
                        server_id, outcome, ..
                    } => Some(format!("{}: {}", short(server_id), clean(outcome))),
                    GatewayEvent::TokenInvalidated { server_id, .. } => Some(format!(
                        "token of {} invalidated after 401",
                        short(server_id)
                    )),
                    GatewayEvent::SyncFailed { error } => {
                        Some(format!("store sync failed: {}", clean(error)))
                    }
                    GatewayEvent::RowSkipped {
                        server_id, reason, ..
                    } => Some(format!(
                        "row {} skipped: {}",
                        short(server_id),
                        clean(reason)
                    )),
                    GatewayEvent::Registered {
                        server_id,
                        name,
                        source,
                    } => Some(format!(
                        "registered {name} as {} from {}",
                        short(server_id),
                        source.as_str()
                    )),
                    GatewayEvent::Deleted { server_id } => {
                        Some(format!("deleted {}", short(server_id)))
                    }
                    _ => None,
                };
                if let Some(note) = note {
                    lines.push(format!("    Note over {}: {t} ms {note}", e.host));
                }
            }
            What::Fault { verb } => lines.push(format!(
                "    Note over {}: {t} ms {}",
                e.host,
                clean(&verb.describe())
            )),
            What::Note { text } => {
                lines.push(format!("    Note over {}: {t} ms {}", e.host, clean(text)))
            }
            What::Stopped { reason } => lines.push(format!(
                "    Note over {}: {t} ms stopped: {}",
                e.host,
                clean(reason)
            )),
        }
    }
    let mut out = format!("# {}\n\n```mermaid\nsequenceDiagram\n", clean(title));
    for p in &participants {
        out.push_str(&format!("    participant {p}\n"));
    }
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str("```\n");
    out
}
