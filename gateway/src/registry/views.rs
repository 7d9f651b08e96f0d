//! What the API shows: LiteLLM-shaped rows, health items and tools.
//!
//! Invariant: no view carries a secret; credentials show `[REDACTED]`
//! (unless the `credentials-unmasked-in-row` defect is on).

use std::collections::{BTreeMap, BTreeSet};

use http::StatusCode;
use serde_json::{json, Value};

use super::{ApiError, Entry, Registry};
use crate::clock::rfc3339;
use crate::defects::Defect;
use crate::spec::{Auth, Secret, REDACTED};

impl Registry {
    /// One server as the API shows it: LiteLLM's row, secrets redacted.
    pub fn row(&self, id: &str) -> Option<Value> {
        // Defect credentials-unmasked-in-row: ContextForge's single-gateway
        // read (and the answer to a write) skips the masking that its list
        // applies (issue 601).
        let redact = !self.has(Defect::CredentialsUnmaskedInRow);
        let state = self.lock();
        state.servers.get(id).map(|entry| render_row(entry, redact))
    }

    pub fn rows(&self) -> Vec<Value> {
        let state = self.lock();
        state
            .servers
            .values()
            .map(|entry| render_row(entry, true))
            .collect()
    }

    /// `[{"server_id", "status"}]` as LiteLLM answers; with a store, each
    /// item also says whether the last read of the store succeeded, so a
    /// data plane serving what it last knew says so.
    pub fn health(&self) -> Vec<Value> {
        let state = self.lock();
        let has_store = self.deps.store.is_some();
        state
            .servers
            .values()
            .map(|e| {
                let mut item =
                    json!({"server_id": e.spec.id, "status": e.health.status().as_str()});
                if has_store {
                    item["store_reachable"] = json!(state.store_reachable);
                }
                item
            })
            .collect()
    }

    /// Tools of one server or of all, named `<alias>-<tool>`.
    pub fn tools(&self, server_id: Option<&str>) -> Result<Vec<Value>, ApiError> {
        let mut state = self.lock();
        if let Some(id) = server_id {
            if !state.servers.contains_key(id) {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("no server with server_id {id}"),
                ));
            }
        }
        // Defect prefix-only-with-two-upstreams: while one server is
        // registered its tools are listed by their bare names; the prefix
        // appears once a second server does (agentgateway issue 495).
        let bare = self.has(Defect::PrefixOnlyWithTwoUpstreams) && state.servers.len() == 1;
        // Defect sanitized-names-collide: names are forced into
        // `[A-Za-z0-9_-]`, and a name met again is dropped, so of
        // `pat.batch` and `pat_batch` the first listed wins
        // (craft-agents-oss issue 1002).
        let sanitize = self.has(Defect::SanitizedNamesCollide);
        if server_id.is_none() {
            // Every stored error names its stage first (`connect: ...`),
            // and an upstream's refusal its status (`HTTP 401 ...`).
            let errors = || {
                state
                    .servers
                    .values()
                    .filter_map(|e| e.health.error.as_deref())
            };
            // Defect one-upstream-aborts-aggregate: the aggregate listing
            // fails as a whole when one server cannot be connected to
            // (agentgateway issue 1266).
            if self.has(Defect::OneUpstreamAbortsAggregate)
                && errors().any(|error| error.starts_with("connect:"))
            {
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "listing the tools of every server failed: an upstream could not be reached",
                ));
            }
            // Defect one-401-empties-aggregate: one server that answers
            // 401 turns the whole aggregate into an empty list (LiteLLM PR
            // 31684).
            if self.has(Defect::One401EmptiesAggregate)
                && errors().any(|error| error.contains("HTTP 401"))
            {
                return Ok(Vec::new());
            }
        }
        let mut out = Vec::new();
        for entry in state.servers.values() {
            if server_id.is_some_and(|id| id != entry.spec.id) {
                continue;
            }
            let mut names = BTreeSet::new();
            for tool in &entry.health.tools {
                let name = if sanitize {
                    sanitized(&tool.name)
                } else {
                    tool.name.clone()
                };
                if sanitize && !names.insert(name.clone()) {
                    continue;
                }
                let mut value = serde_json::to_value(tool).unwrap_or(Value::Null);
                value["name"] = if bare {
                    json!(name)
                } else {
                    json!(format!("{}-{name}", entry.spec.alias))
                };
                value["mcp_info"] =
                    json!({"server_name": entry.spec.name, "server_id": entry.spec.id});
                out.push(value);
            }
        }
        // Defect tool-routes-per-replica: listing fills this process's
        // route map, and only what it holds can be called (LiteLLM issue
        // 42655, PR 38955).
        if self.has(Defect::ToolRoutesPerReplica) {
            let names: Vec<String> = out
                .iter()
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect();
            state.routes.extend(names);
        }
        Ok(out)
    }
}

/// A tool name with every character outside `[A-Za-z0-9_-]` made `_`
/// (the `sanitized-names-collide` defect only: MCP allows `.` as well, and
/// the reference keeps names as the upstream gave them).
fn sanitized(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A row, with every secret shown as [`REDACTED`] unless `redact` is false
/// (only the `credentials-unmasked-in-row` defect asks that).
fn render_row(entry: &Entry, redact: bool) -> Value {
    let spec = &entry.spec;
    let shown = |secret: &Secret| shown(secret, redact).to_string();
    let mut credentials = serde_json::Map::new();
    match &spec.auth {
        Auth::Header { value, .. } => {
            credentials.insert("auth_value".into(), json!(shown(value)));
        }
        Auth::ClientCredentials {
            client_id,
            client_secret,
            scopes,
            audience,
            resource,
            ..
        } => {
            credentials.insert("client_id".into(), json!(client_id));
            credentials.insert("client_secret".into(), json!(shown(client_secret)));
            credentials.insert("scopes".into(), json!(scopes));
            if let Some(audience) = audience {
                credentials.insert("audience".into(), json!(audience));
            }
            if let Some(resource) = resource {
                credentials.insert("resource".into(), json!(resource));
            }
        }
        Auth::None | Auth::UserOAuth => {}
    }
    let static_headers: BTreeMap<&str, String> = spec
        .static_headers
        .iter()
        .map(|(k, v)| (k.as_str(), shown(v)))
        .collect();
    json!({
        "server_id": spec.id,
        "server_name": spec.name,
        "alias": spec.alias,
        "description": spec.description,
        "transport": spec.transport.as_str(),
        "url": spec.url,
        "auth_type": spec.auth_type,
        "oauth2_flow": spec.oauth2_flow(),
        "token_url": spec.token_url,
        "authorization_url": spec.authorization_url,
        "credentials": if credentials.is_empty() { Value::Null } else { Value::Object(credentials) },
        "static_headers": static_headers,
        "extra_headers": spec.extra_headers,
        "command": spec.command,
        "source": spec.source.as_str(),
        "status": entry.health.status().as_str(),
        "last_health_check": entry.health.last_health_check.map(rfc3339),
        "health_check_error": entry.health.error,
        "tool_count": entry.health.tools.len(),
        "created_at": rfc3339(entry.created_at),
        "updated_at": rfc3339(entry.updated_at),
    })
}

fn shown(secret: &Secret, redact: bool) -> &str {
    if redact {
        REDACTED
    } else {
        secret.expose()
    }
}
