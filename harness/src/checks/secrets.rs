//! No secret in any response, the trace or the report.
//!
//! Every secret the scenario hands out (client secrets, static tokens,
//! signing keys, the operator's key, environment values) and every access
//! token a fake issued is looked for, by value, in every answer the
//! operator read, the trace and the report; a finding names a secret by its
//! index and length, never by its value.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{check, Check, Evidence};

/// Collects every secret a scenario hands out, and every token issued.
fn secrets(e: &Evidence<'_>) -> Vec<String> {
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
                            | "api_key"
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
        &serde_json::to_value(e.scenario).unwrap_or(Value::Null),
        &mut out,
    );
    for g in &e.scenario.gateways {
        // Values the config reads from the environment are secrets too.
        out.extend(g.env.values().cloned());
    }
    for server in e.outcome.token_servers.values() {
        out.extend(server.issued_tokens());
    }
    out.retain(|s| s.len() >= 4);
    out.sort();
    out.dedup();
    out
}

pub(crate) fn check_no_secrets(e: &Evidence<'_>) -> Check {
    let secrets = secrets(e);
    let trace_text = serde_json::to_string(e.trace).unwrap_or_default();
    let mut places: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    places.insert("report", vec![e.report_text]);
    places.insert("trace", vec![trace_text.as_str()]);
    places.insert(
        "responses",
        e.outcome
            .records
            .bodies
            .iter()
            .map(String::as_str)
            .collect(),
    );
    let mut findings = Vec::new();
    for (i, secret) in secrets.iter().enumerate() {
        for (place, texts) in &places {
            if texts.iter().any(|t| t.contains(secret.as_str())) {
                findings.push(format!(
                    "secret #{i} ({} characters) appears in the {place}",
                    secret.len()
                ));
            }
        }
    }
    check("no_secrets", findings)
}
