//! No secret in any response, the trace or the report.
//!
//! Every secret the scenario hands out is looked for, by value, in every
//! answer the operator read, the trace and the report, and so is every
//! access token a fake issued. A secret is the value of a secret field
//! (client secrets, static and bearer tokens, signing keys, the operator's
//! key), every static header value (an API key often travels in one), and
//! the environment value a secret field names with `os.environ/NAME`, and
//! a string given where a field that holds secrets (`credentials`,
//! `static_headers`) expects an object. Only
//! those: a client id or a URL is shown in rows, as it should be, wherever
//! it comes from. A finding names a secret by its index and length, never
//! by its value.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{check, Check, Evidence};
use crate::scenario::Scenario;

/// Fields whose value is a secret, wherever they appear in a scenario.
const SECRET_FIELDS: [&str; 6] = [
    "client_secret",
    "auth_value",
    "authentication_token",
    "token",
    "signing_key",
    "api_key",
];

/// Fields whose every value is a secret.
const SECRET_MAPS: [&str; 1] = ["static_headers"];

/// Fields that hold secrets: a string standing where their object belongs
/// (a client secret pasted as `credentials`, a header line as
/// `static_headers`) is a secret too.
const SECRET_HOLDERS: [&str; 2] = ["credentials", "static_headers"];

/// Collects every secret value of a scenario, and the environment variables
/// that secret fields name.
fn walk(value: &Value, out: &mut Vec<String>, env_names: &mut BTreeSet<String>) {
    fn take(s: &str, out: &mut Vec<String>, env_names: &mut BTreeSet<String>) {
        match s.strip_prefix("os.environ/") {
            Some(name) => {
                env_names.insert(name.to_string());
            }
            None => out.push(s.to_string()),
        }
    }
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match v {
                    Value::String(s)
                        if SECRET_FIELDS.contains(&key.as_str())
                            || SECRET_HOLDERS.contains(&key.as_str()) =>
                    {
                        take(s, out, env_names)
                    }
                    Value::Object(values) if SECRET_MAPS.contains(&key.as_str()) => {
                        for value in values.values() {
                            match value {
                                Value::String(s) => take(s, out, env_names),
                                other => walk(other, out, env_names),
                            }
                        }
                    }
                    _ => walk(v, out, env_names),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| walk(v, out, env_names)),
        _ => {}
    }
}

/// Every secret a scenario hands out, sorted, without repeats.
fn scenario_secrets(scenario: &Scenario) -> Vec<String> {
    let mut out = Vec::new();
    let mut env_names = BTreeSet::new();
    walk(
        &serde_json::to_value(scenario).unwrap_or(Value::Null),
        &mut out,
        &mut env_names,
    );
    for g in &scenario.gateways {
        // Only the environment values a secret field reads.
        out.extend(
            g.env
                .iter()
                .filter(|(name, _)| env_names.contains(*name))
                .map(|(_, value)| value.clone()),
        );
    }
    out.retain(|s| s.len() >= 4);
    out.sort();
    out.dedup();
    out
}

/// Every secret the scenario hands out, and every token issued.
fn secrets(e: &Evidence<'_>) -> Vec<String> {
    let mut out = scenario_secrets(e.scenario);
    for server in e.outcome.token_servers.values() {
        out.extend(server.issued_tokens());
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{GatewayHost, Scenario};
    use serde_json::json;

    /// A gateway whose config names its client id and secret from the
    /// environment, sends a static header, and has an unrelated variable.
    fn scenario() -> Scenario {
        let config = json!({"mcp_servers": {"docs": {
            "url": "http://docs/mcp", "auth_type": "oauth2",
            "token_url": "http://auth/token",
            "client_id": "os.environ/DOCS_CLIENT_ID",
            "client_secret": "os.environ/DOCS_CLIENT_SECRET",
            "static_headers": {"X-Api-Key": "hdr-k3y-never-shown"},
        }}});
        let gateway = GatewayHost::new("gateway")
            .config(config)
            .env("DOCS_CLIENT_ID", "docs-client-id")
            .env("DOCS_CLIENT_SECRET", "docs-s3cret-from-env")
            .env("LOG_FORMAT", "json-lines");
        Scenario::builder("secrets from the environment and a header")
            .gateway(gateway)
            .build()
            .unwrap()
    }

    #[test]
    fn secrets_are_secret_fields_header_values_and_the_env_values_they_name() {
        let secrets = scenario_secrets(&scenario());
        assert_eq!(secrets, ["docs-s3cret-from-env", "hdr-k3y-never-shown"]);
    }

    #[test]
    fn a_string_where_credentials_or_headers_belong_is_a_secret() {
        use crate::builder::Step;
        let scenario = Scenario::builder("a secret pasted in the wrong place")
            .gateway(GatewayHost::new("gateway"))
            .step(Step::create_native(json!({
                "server_name": "a", "url": "http://a/mcp",
                "credentials": "pasted-s3cret-0", "static_headers": "X-Api-Key: k3y-0",
            })))
            .step(Step::create_native(json!({
                "server_name": "b", "url": "http://b/mcp", "transport": "http",
                "credentials": {"client_id": "shown-id", "client_secret": "s3cret-b"},
            })))
            .build()
            .unwrap();
        assert_eq!(
            scenario_secrets(&scenario),
            ["X-Api-Key: k3y-0", "pasted-s3cret-0", "s3cret-b"]
        );
    }

    #[test]
    fn a_leaked_header_value_is_caught_and_an_env_sourced_client_id_is_not_a_finding() {
        let scenario = scenario();
        let judge = |bodies: &[&str]| {
            let outcome = crate::world::Outcome {
                records: crate::operator::Records {
                    bodies: bodies.iter().map(|b| b.to_string()).collect(),
                    ..Default::default()
                },
                hosts: BTreeMap::new(),
                trace: Vec::new(),
                token_servers: BTreeMap::new(),
                mcp_servers: BTreeMap::new(),
                stores: BTreeMap::new(),
                token_requests: BTreeMap::new(),
                mcp_requests: BTreeMap::new(),
            };
            let seen = BTreeMap::new();
            let authorities = BTreeMap::new();
            let evidence = Evidence {
                scenario: &scenario,
                outcome: &outcome,
                seen: &seen,
                trace: &[],
                no_events: None,
                faults: crate::faults::Faults::new(&scenario),
                report_text: "",
                reports_check_time: true,
                hop_ms: 1,
                authorities: &authorities,
                error_words: true,
            };
            check_no_secrets(&evidence)
        };
        let row = r#"[{"server_id": "x", "client_id": "docs-client-id", "log": "json-lines"}]"#;
        assert!(judge(&[row]).passed, "{:?}", judge(&[row]).findings);
        let leaked = r#"{"static_headers": {"X-Api-Key": "hdr-k3y-never-shown"}}"#;
        let verdict = judge(&[row, leaked]);
        assert_eq!(
            verdict.findings,
            ["secret #1 (19 characters) appears in the responses"]
        );
        let verdict = judge(&["docs-s3cret-from-env"]);
        assert_eq!(verdict.findings.len(), 1);
    }
}
