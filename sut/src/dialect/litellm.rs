//! LiteLLM's management API, as LiteLLM 1.83 answers it (and the reference
//! gateway speaks it): [`LiteLlm`], with a database behind it, and
//! [`LiteLlmProxy`], the real proxy without one (config-file servers only,
//! statuses from its health endpoint, tools per server from
//! `/mcp-rest/tools/list`).
//!
//! - config file: `{"mcp_servers": {NAME: {flat keys}}}`, written as JSON,
//!   which YAML readers also accept;
//! - `POST /v1/mcp/server` and `PUT /v1/mcp/server` with LiteLLM's REST
//!   body (`server_name`, `transport`, `url`, `auth_type`, `credentials`,
//!   `token_url`, `oauth2_flow`), `DELETE /v1/mcp/server/{id}`,
//!   `GET /v1/mcp/server[/{id}]`, `GET /v1/mcp/server/health`,
//!   `GET /v1/mcp/tools?server_id=`, `POST /mcp-rest/tools/call`;
//! - rows carry `status`, `health_check_error`, `last_health_check`;
//!   errors come as `{"detail": {"error": ...}}`; tools are named
//!   `<alias>-<tool>`;
//! - the operator's key goes as `Authorization: Bearer <key>`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{ApiAnswer, ApiRequest, Dialect, Registration};
use crate::model::{
    CallAnswer, HealthView, ServerAuth, ServerDef, ServerView, Status, ToolView, Transport,
    WriteAnswer,
};

/// LiteLLM's dialect.
#[derive(Clone, Copy, Debug, Default)]
pub struct LiteLlm;

/// A server in LiteLLM's REST body shape.
fn rest_body(def: &ServerDef) -> Value {
    let mut body = json!({
        "server_name": def.name,
        "transport": def.transport.as_str(),
        "url": def.url,
    });
    if let Some(id) = &def.server_id {
        body["server_id"] = json!(id);
    }
    match &def.auth {
        ServerAuth::None => {}
        ServerAuth::Bearer { token } => {
            body["auth_type"] = json!("bearer_token");
            body["credentials"] = json!({"auth_value": token});
        }
        ServerAuth::ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scopes,
            audience,
            resource,
            explicit_flow,
        } => {
            body["auth_type"] = json!("oauth2");
            body["token_url"] = json!(token_url);
            body["credentials"] = json!({"client_id": client_id, "client_secret": client_secret});
            if !scopes.is_empty() {
                body["credentials"]["scopes"] = json!(scopes);
            }
            if let Some(audience) = audience {
                body["credentials"]["audience"] = json!(audience);
            }
            if let Some(resource) = resource {
                body["credentials"]["resource"] = json!(resource);
            }
            if *explicit_flow {
                body["oauth2_flow"] = json!("client_credentials");
            }
        }
    }
    body
}

/// A server as an entry of the config file's `mcp_servers:`, LiteLLM's
/// flat keys.
fn config_entry(def: &ServerDef) -> Value {
    let mut entry = json!({"url": def.url, "transport": def.transport.as_str()});
    match &def.auth {
        ServerAuth::None => {}
        ServerAuth::Bearer { token } => {
            entry["auth_type"] = json!("bearer_token");
            entry["auth_value"] = json!(token);
        }
        ServerAuth::ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scopes,
            audience,
            resource,
            explicit_flow,
        } => {
            entry["auth_type"] = json!("oauth2");
            entry["token_url"] = json!(token_url);
            entry["client_id"] = json!(client_id);
            entry["client_secret"] = json!(client_secret);
            if !scopes.is_empty() {
                entry["scopes"] = json!(scopes);
            }
            if let Some(audience) = audience {
                entry["audience"] = json!(audience);
            }
            if let Some(resource) = resource {
                entry["resource"] = json!(resource);
            }
            if *explicit_flow {
                entry["oauth2_flow"] = json!("client_credentials");
            }
        }
    }
    entry
}

fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_string)
}

/// LiteLLM's error message: `{"detail": {"error": ...}}`, or `detail` as a
/// string (FastAPI's own errors), or `{"error": ...}`.
fn error_of(body: &Value) -> Option<String> {
    match body.get("detail") {
        Some(Value::Object(detail)) => detail
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string),
        Some(Value::String(detail)) => Some(detail.clone()),
        Some(other) if !other.is_null() => Some(other.to_string()),
        _ => text(body, "error"),
    }
}

fn status_of(row: &Value, id: &str) -> Result<Status, String> {
    let word = row.get("status").and_then(Value::as_str).unwrap_or("");
    Status::parse(word).ok_or_else(|| {
        format!("server {id}: status {word:?} is not one of unknown, healthy, unhealthy")
    })
}

fn view(row: &Value) -> Result<ServerView, String> {
    let id = text(row, "server_id").ok_or("a server row has no server_id")?;
    Ok(ServerView {
        status: status_of(row, &id)?,
        name: text(row, "server_name").unwrap_or_default(),
        alias: text(row, "alias"),
        source: text(row, "source"),
        url: text(row, "url"),
        error: text(row, "health_check_error"),
        last_health_check: text(row, "last_health_check"),
        server_id: id,
    })
}

fn expect_ok(answer: ApiAnswer<'_>, what: &str) -> Result<(), String> {
    super::expect(answer, what, 200..=200, error_of)
}

impl Dialect for LiteLlm {
    fn name(&self) -> &'static str {
        "litellm"
    }

    fn authorization(&self, api_key: &str) -> (http::HeaderName, String) {
        (http::header::AUTHORIZATION, format!("Bearer {api_key}"))
    }

    fn config_file(
        &self,
        native: Option<&Value>,
        servers: &[ServerDef],
    ) -> Result<Option<String>, String> {
        let mut config = match native {
            None | Some(Value::Null) if servers.is_empty() => return Ok(None),
            None | Some(Value::Null) => json!({}),
            Some(Value::Object(map)) => Value::Object(map.clone()),
            Some(_) => return Err("the config file must be a JSON object".to_string()),
        };
        if !servers.is_empty() {
            let block = config
                .as_object_mut()
                .map(|c| c.entry("mcp_servers").or_insert_with(|| json!({})));
            let Some(Value::Object(block)) = block else {
                return Err("mcp_servers must be an object".to_string());
            };
            for def in servers {
                if block.contains_key(&def.name) {
                    return Err(format!("mcp_servers.{} is defined twice", def.name));
                }
                block.insert(def.name.clone(), config_entry(def));
            }
        }
        Ok(Some(config.to_string()))
    }

    fn registration_name(&self, registration: Registration<'_>) -> String {
        match registration {
            Registration::Native(body) => text(body, "server_name").unwrap_or_else(|| "?".into()),
            Registration::Def(def) => def.name.clone(),
        }
    }

    fn create(&self, registration: Registration<'_>) -> ApiRequest {
        let body = match registration {
            Registration::Native(body) => body.clone(),
            Registration::Def(def) => rest_body(def),
        };
        ApiRequest::with_body(http::Method::POST, "/v1/mcp/server", body)
    }

    fn update(&self, server_id: &str, registration: Registration<'_>) -> ApiRequest {
        let mut body = match registration {
            Registration::Native(body) => body.clone(),
            Registration::Def(def) => rest_body(def),
        };
        // LiteLLM names the server to update in the body.
        if let Value::Object(map) = &mut body {
            map.entry("server_id").or_insert_with(|| json!(server_id));
        }
        ApiRequest::with_body(http::Method::PUT, "/v1/mcp/server", body)
    }

    fn delete(&self, server_id: &str) -> ApiRequest {
        ApiRequest::delete(format!("/v1/mcp/server/{server_id}"))
    }

    fn get(&self, server_id: &str) -> ApiRequest {
        ApiRequest::get(format!("/v1/mcp/server/{server_id}"))
    }

    fn list(&self) -> Vec<ApiRequest> {
        vec![ApiRequest::get("/v1/mcp/server")]
    }

    fn health(&self) -> ApiRequest {
        ApiRequest::get("/v1/mcp/server/health")
    }

    fn tools(&self, server_id: &str) -> ApiRequest {
        ApiRequest::get(format!("/v1/mcp/tools?server_id={server_id}"))
    }

    fn call_tool(&self, _server: &ServerView, tool: &ToolView, arguments: &Value) -> ApiRequest {
        ApiRequest::with_body(
            http::Method::POST,
            "/mcp-rest/tools/call",
            json!({"name": tool.exposed, "arguments": arguments}),
        )
    }

    fn read_write(&self, answer: ApiAnswer<'_>) -> WriteAnswer {
        super::write_answer(answer, "server_id", "server_name", error_of)
    }

    fn read_list(&self, answers: &[ApiAnswer<'_>]) -> Result<Vec<ServerView>, String> {
        let answer = answers.first().ok_or("the server list was not read")?;
        rows(*answer)?.iter().map(view).collect()
    }

    fn read_one(&self, answer: ApiAnswer<'_>) -> Result<Option<ServerView>, String> {
        if answer.status == 404 {
            return Ok(None);
        }
        expect_ok(answer, "the server")?;
        view(answer.body).map(Some)
    }

    fn read_health(&self, answer: ApiAnswer<'_>) -> Result<Vec<HealthView>, String> {
        read_health(answer)
    }

    fn read_tools(
        &self,
        answer: ApiAnswer<'_>,
        server: &ServerView,
    ) -> Result<Vec<ToolView>, String> {
        expect_ok(answer, "the tool list")?;
        let tools = answer
            .body
            .get("tools")
            .and_then(Value::as_array)
            .ok_or("the tool list has no tools array")?;
        // Every name is `<alias>-<tool>`, however many servers there are:
        // a client calls a tool by that name, so a name without the
        // server's own prefix is not one it can keep.
        let prefix = format!("{}-", server.alias.as_deref().unwrap_or(&server.name));
        let mut out = Vec::new();
        for exposed in tools
            .iter()
            .filter_map(|t| t.get("name").and_then(Value::as_str))
        {
            let Some(upstream) = exposed.strip_prefix(&prefix) else {
                return Err(format!(
                    "the tool list names {exposed:?}, without the server's prefix {prefix:?}"
                ));
            };
            out.push(ToolView {
                upstream: upstream.to_string(),
                exposed: exposed.to_string(),
            });
        }
        out.sort();
        Ok(out)
    }

    fn tools_all(&self) -> Option<ApiRequest> {
        Some(ApiRequest::get("/v1/mcp/tools"))
    }

    fn read_tools_all(&self, answer: ApiAnswer<'_>) -> Result<Vec<String>, String> {
        expect_ok(answer, "the tools of every server")?;
        let tools = answer
            .body
            .get("tools")
            .and_then(Value::as_array)
            .ok_or("the tools of every server have no tools array")?;
        tools
            .iter()
            .map(|t| {
                t.get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| "a tool of the aggregate list has no name".to_string())
            })
            .collect()
    }

    fn read_call(&self, answer: ApiAnswer<'_>) -> CallAnswer {
        read_call(answer)
    }

    fn read_registration(&self, native: &Value) -> Result<ServerDef, String> {
        def_from_rest(native)
    }

    fn read_config(
        &self,
        native: &Value,
        env: &BTreeMap<String, String>,
    ) -> Result<Vec<ServerDef>, String> {
        defs_from_config(native, env)
    }
}

fn read_call(answer: ApiAnswer<'_>) -> CallAnswer {
    let ok = answer.status == 200;
    CallAnswer {
        status: answer.status,
        ok,
        error: if ok { None } else { error_of(answer.body) },
    }
}

/// The rows of a list answer.
fn rows(answer: ApiAnswer<'_>) -> Result<&Vec<Value>, String> {
    expect_ok(answer, "the server list")?;
    match answer.body {
        Value::Array(rows) => Ok(rows),
        _ => Err("the server list is not a JSON array".to_string()),
    }
}

fn read_health(answer: ApiAnswer<'_>) -> Result<Vec<HealthView>, String> {
    expect_ok(answer, "health")?;
    let Value::Array(items) = answer.body else {
        return Err("health is not a JSON array".to_string());
    };
    items
        .iter()
        .map(|item| {
            let id = text(item, "server_id").ok_or("a health item has no server_id")?;
            Ok(HealthView {
                status: status_of(item, &id)?,
                store_reachable: item.get("store_reachable").and_then(Value::as_bool),
                server_id: id,
            })
        })
        .collect()
}

/// A string field, or `None`; a value that is there but not a string is
/// an error naming the field.
fn field(value: &Value, key: &str) -> Result<Option<String>, String> {
    match value.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{key} is not a string")),
    }
}

fn scopes_of(value: Option<&Value>) -> Result<Vec<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s.split_whitespace().map(str::to_string).collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| "scopes must be strings".to_string())
            })
            .collect(),
        Some(_) => Err("scopes must be a list of strings".to_string()),
    }
}

/// The parts of a LiteLLM registration that mcpsim's words carry, from
/// whichever place the path keeps them (the REST body nests credentials,
/// the config file keeps them flat).
struct Parts {
    name: String,
    url: String,
    transport: Option<String>,
    server_id: Option<String>,
    auth_type: Option<String>,
    oauth2_flow: Option<String>,
    token_url: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scopes: Vec<String>,
    audience: Option<String>,
    resource: Option<String>,
    token: Option<String>,
    has_headers: bool,
}

fn def_of(parts: Parts, default_transport: Transport) -> Result<ServerDef, String> {
    let name = &parts.name;
    if parts.has_headers {
        return Err(format!(
            "{name}: static or extra headers have no equivalent in mcpsim's words"
        ));
    }
    let transport = match parts.transport.as_deref() {
        None => default_transport,
        Some("http") | Some("streamable_http") | Some("streamable-http") => Transport::Http,
        Some("sse") => Transport::Sse,
        Some(other) => return Err(format!("{name}: transport {other:?} cannot be carried")),
    };
    let auth = match parts.auth_type.as_deref() {
        None | Some("none") => ServerAuth::None,
        Some("bearer_token") | Some("token") => ServerAuth::Bearer {
            token: parts
                .token
                .ok_or_else(|| format!("{name}: a bearer token server has no token"))?,
        },
        Some("oauth2") => {
            let flow = parts.oauth2_flow.as_deref();
            match (flow, parts.token_url, parts.client_id, parts.client_secret) {
                (Some("client_credentials") | None, Some(token_url), Some(id), Some(secret)) => {
                    ServerAuth::ClientCredentials {
                        token_url,
                        client_id: id,
                        client_secret: secret,
                        scopes: parts.scopes,
                        audience: parts.audience,
                        resource: parts.resource,
                        explicit_flow: flow.is_some(),
                    }
                }
                _ => {
                    return Err(format!(
                        "{name}: per-user OAuth2 (no client credentials) has no equivalent in mcpsim's words"
                    ))
                }
            }
        }
        Some(other) => {
            return Err(format!(
                "{name}: auth_type {other:?} has no equivalent in mcpsim's words"
            ))
        }
    };
    Ok(ServerDef {
        name: parts.name,
        url: parts.url,
        transport,
        server_id: parts.server_id,
        auth,
    })
}

fn has_headers(value: &Value) -> bool {
    ["static_headers", "extra_headers"].iter().any(|key| {
        value
            .get(*key)
            .is_some_and(|h| !h.is_null() && h != &json!({}) && h != &json!([]))
    })
}

/// A REST create or update body, read into mcpsim's words. LiteLLM's REST
/// default transport is `sse`.
fn def_from_rest(body: &Value) -> Result<ServerDef, String> {
    if !body.is_object() {
        return Err("a registration body must be a JSON object".to_string());
    }
    let credentials = body.get("credentials").cloned().unwrap_or(Value::Null);
    let name = field(body, "server_name")?
        .or(field(body, "alias")?)
        .ok_or("the body has no server_name")?;
    let parts = Parts {
        url: field(body, "url")?.ok_or_else(|| format!("{name}: the body has no url"))?,
        transport: field(body, "transport")?,
        server_id: field(body, "server_id")?,
        auth_type: field(body, "auth_type")?,
        oauth2_flow: field(body, "oauth2_flow")?,
        token_url: field(body, "token_url")?,
        client_id: field(&credentials, "client_id")?,
        client_secret: field(&credentials, "client_secret")?,
        scopes: scopes_of(credentials.get("scopes"))?,
        audience: field(&credentials, "audience")?,
        resource: field(&credentials, "resource")?,
        token: field(&credentials, "auth_value")?,
        has_headers: has_headers(body),
        name,
    };
    def_of(parts, Transport::Sse)
}

/// `os.environ/NAME` read from the environment the config was given.
fn resolve(
    value: Option<String>,
    env: &BTreeMap<String, String>,
    name: &str,
) -> Result<Option<String>, String> {
    match value {
        Some(v) => match v.strip_prefix("os.environ/") {
            Some(var) => env.get(var).cloned().map(Some).ok_or_else(|| {
                format!("{name}: the environment has no {var}, which the config refers to")
            }),
            None => Ok(Some(v)),
        },
        None => Ok(None),
    }
}

/// The servers of a config file (`mcp_servers:`), read into mcpsim's
/// words. The config's default transport is `http`.
fn defs_from_config(
    native: &Value,
    env: &BTreeMap<String, String>,
) -> Result<Vec<ServerDef>, String> {
    let servers = match native.get("mcp_servers") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(servers)) => servers,
        Some(_) => return Err("mcp_servers must be an object".to_string()),
    };
    let mut out = Vec::new();
    for (name, entry) in servers {
        let get = |key: &str| -> Result<Option<String>, String> {
            resolve(field(entry, key)?, env, name)
        };
        let parts = Parts {
            name: name.clone(),
            url: get("url")?.ok_or_else(|| format!("{name}: the entry has no url"))?,
            transport: get("transport")?,
            server_id: None,
            auth_type: get("auth_type")?,
            oauth2_flow: get("oauth2_flow")?,
            token_url: get("token_url")?,
            client_id: get("client_id")?,
            client_secret: get("client_secret")?,
            scopes: scopes_of(entry.get("scopes"))?,
            audience: get("audience")?,
            resource: get("resource")?,
            token: get("auth_value")?.or(get("authentication_token")?),
            has_headers: has_headers(entry),
        };
        out.push(def_of(parts, Transport::Http)?);
    }
    Ok(out)
}

/// The real LiteLLM proxy (1.83) without a database: servers come from its
/// config file only (every REST write answers 500 "Database not
/// connected"), its server rows carry no health (`status` is null), and
/// its health endpoint gives statuses, no error text and no time of the
/// last check; it computes them afresh on every read, skipping OAuth2
/// servers (`unknown`). Tools are read per server from
/// `/mcp-rest/tools/list?server_id=` (the aggregate list ignores
/// `server_id`), by their upstream names; calls name the prefixed tool.
#[derive(Clone, Copy, Debug, Default)]
pub struct LiteLlmProxy;

impl Dialect for LiteLlmProxy {
    fn name(&self) -> &'static str {
        "litellm"
    }

    fn authorization(&self, api_key: &str) -> (http::HeaderName, String) {
        LiteLlm.authorization(api_key)
    }

    fn config_file(
        &self,
        native: Option<&Value>,
        servers: &[ServerDef],
    ) -> Result<Option<String>, String> {
        LiteLlm.config_file(native, servers)
    }

    fn registration_name(&self, registration: Registration<'_>) -> String {
        LiteLlm.registration_name(registration)
    }

    fn create(&self, registration: Registration<'_>) -> ApiRequest {
        LiteLlm.create(registration)
    }

    fn update(&self, server_id: &str, registration: Registration<'_>) -> ApiRequest {
        LiteLlm.update(server_id, registration)
    }

    fn delete(&self, server_id: &str) -> ApiRequest {
        LiteLlm.delete(server_id)
    }

    fn get(&self, server_id: &str) -> ApiRequest {
        LiteLlm.get(server_id)
    }

    fn list(&self) -> Vec<ApiRequest> {
        vec![
            ApiRequest::get("/v1/mcp/server"),
            ApiRequest::get("/v1/mcp/server/health"),
        ]
    }

    fn health(&self) -> ApiRequest {
        LiteLlm.health()
    }

    fn tools(&self, server_id: &str) -> ApiRequest {
        ApiRequest::get(format!("/mcp-rest/tools/list?server_id={server_id}"))
    }

    fn call_tool(&self, server: &ServerView, tool: &ToolView, arguments: &Value) -> ApiRequest {
        ApiRequest::with_body(
            http::Method::POST,
            "/mcp-rest/tools/call",
            json!({"server_id": server.server_id, "name": tool.exposed, "arguments": arguments}),
        )
    }

    fn read_write(&self, answer: ApiAnswer<'_>) -> WriteAnswer {
        LiteLlm.read_write(answer)
    }

    fn read_list(&self, answers: &[ApiAnswer<'_>]) -> Result<Vec<ServerView>, String> {
        let [list, health] = answers else {
            return Err("the server list and its health were not both read".to_string());
        };
        let statuses = read_health(*health)?;
        rows(*list)?
            .iter()
            .map(|row| {
                let id = text(row, "server_id").ok_or("a server row has no server_id")?;
                // A server the health answer leaves out was not checked.
                let status = statuses
                    .iter()
                    .find(|h| h.server_id == id)
                    .map_or(Status::Unknown, |h| h.status);
                Ok(ServerView {
                    status,
                    name: text(row, "server_name").unwrap_or_default(),
                    alias: text(row, "alias"),
                    source: Some("config".to_string()),
                    url: text(row, "url"),
                    error: text(row, "health_check_error"),
                    last_health_check: text(row, "last_health_check"),
                    server_id: id,
                })
            })
            .collect()
    }

    fn read_one(&self, answer: ApiAnswer<'_>) -> Result<Option<ServerView>, String> {
        LiteLlm.read_one(answer)
    }

    fn read_health(&self, answer: ApiAnswer<'_>) -> Result<Vec<HealthView>, String> {
        read_health(answer)
    }

    fn read_tools(
        &self,
        answer: ApiAnswer<'_>,
        server: &ServerView,
    ) -> Result<Vec<ToolView>, String> {
        expect_ok(answer, "the tool list")?;
        if let Some(error) = answer.body.get("error").and_then(Value::as_str) {
            return Err(format!("the tool list says: {error}"));
        }
        let tools = answer
            .body
            .get("tools")
            .and_then(Value::as_array)
            .ok_or("the tool list has no tools array")?;
        let prefix = server.alias.as_deref().unwrap_or(&server.name);
        let mut out: Vec<ToolView> = tools
            .iter()
            .filter_map(|t| t.get("name").and_then(Value::as_str))
            .map(|upstream| ToolView {
                exposed: format!("{prefix}-{upstream}"),
                upstream: upstream.to_string(),
            })
            .collect();
        out.sort();
        Ok(out)
    }

    fn read_call(&self, answer: ApiAnswer<'_>) -> CallAnswer {
        read_call(answer)
    }

    fn reports_check_time(&self) -> bool {
        false
    }

    fn read_registration(&self, native: &Value) -> Result<ServerDef, String> {
        def_from_rest(native)
    }

    fn read_config(
        &self,
        native: &Value,
        env: &BTreeMap<String, String>,
    ) -> Result<Vec<ServerDef>, String> {
        defs_from_config(native, env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_credentials(explicit_flow: bool) -> ServerDef {
        ServerDef::http("srv", "http://mcp/mcp").auth(ServerAuth::ClientCredentials {
            token_url: "http://auth/oauth/token".into(),
            client_id: "gw".into(),
            client_secret: "s3cret".into(),
            scopes: vec![],
            audience: None,
            resource: None,
            explicit_flow,
        })
    }

    #[test]
    fn a_server_is_written_as_a_rest_body_and_as_a_config_entry() {
        let request = LiteLlm.create(Registration::Def(&client_credentials(false)));
        assert_eq!(request.path, "/v1/mcp/server");
        assert_eq!(
            request.body.unwrap(),
            json!({"server_name": "srv", "transport": "http", "url": "http://mcp/mcp",
                "auth_type": "oauth2", "token_url": "http://auth/oauth/token",
                "credentials": {"client_id": "gw", "client_secret": "s3cret"}})
        );
        let config = LiteLlm
            .config_file(None, &[client_credentials(true)])
            .unwrap()
            .unwrap();
        let config: Value = serde_json::from_str(&config).unwrap();
        assert_eq!(
            config["mcp_servers"]["srv"]["oauth2_flow"],
            json!("client_credentials")
        );
        assert_eq!(config["mcp_servers"]["srv"]["client_id"], json!("gw"));
        assert_eq!(LiteLlm.config_file(None, &[]).unwrap(), None);
        let twice = LiteLlm.config_file(
            Some(&json!({"mcp_servers": {"srv": {"url": "http://x/"}}})),
            &[client_credentials(true)],
        );
        assert!(twice.unwrap_err().contains("mcp_servers.srv"));
    }

    #[test]
    fn an_update_names_its_server() {
        let request = LiteLlm.update("abc", Registration::Native(&json!({"url": "http://y/"})));
        assert_eq!(
            request.body.unwrap(),
            json!({"url": "http://y/", "server_id": "abc"})
        );
    }

    #[test]
    fn rows_map_to_views_and_unknown_statuses_are_refused() {
        let body = json!([{"server_id": "a", "server_name": "docs", "alias": "docs",
            "status": "unhealthy", "health_check_error": "list: 500", "source": "rest"}]);
        let views = LiteLlm
            .read_list(&[ApiAnswer {
                status: 200,
                body: &body,
            }])
            .unwrap();
        assert_eq!(views[0].status, Status::Unhealthy);
        assert_eq!(views[0].error.as_deref(), Some("list: 500"));
        let weird = json!([{"server_id": "a", "status": "offline"}]);
        let error = LiteLlm
            .read_list(&[ApiAnswer {
                status: 200,
                body: &weird,
            }])
            .unwrap_err();
        assert!(error.contains("offline"), "{error}");
        let refused = json!({"detail": {"error": "no"}});
        let answer = LiteLlm.read_write(ApiAnswer {
            status: 400,
            body: &refused,
        });
        assert_eq!(
            (answer.accepted, answer.error.as_deref()),
            (false, Some("no"))
        );
    }

    #[test]
    fn one_server_reads_as_a_view_or_as_none_and_calls_name_the_exposed_tool() {
        let row = json!({"server_id": "a", "server_name": "docs", "status": "healthy"});
        let one = LiteLlm.read_one(ApiAnswer {
            status: 200,
            body: &row,
        });
        assert_eq!(one.unwrap().unwrap().status, Status::Healthy);
        let missing = json!({"detail": {"error": "no server"}});
        let none = LiteLlm.read_one(ApiAnswer {
            status: 404,
            body: &missing,
        });
        assert_eq!(none, Ok(None));
        let broken = LiteLlm.read_one(ApiAnswer {
            status: 500,
            body: &missing,
        });
        assert!(broken.unwrap_err().contains("500: no server"));
        assert_eq!(LiteLlm.get("a").path, "/v1/mcp/server/a");
        let server = view(&row).unwrap();
        let tool = ToolView {
            exposed: "docs-search".into(),
            upstream: "search".into(),
        };
        let call = LiteLlm.call_tool(&server, &tool, &json!({"q": 1}));
        assert_eq!(call.body.unwrap()["name"], json!("docs-search"));
        let (name, value) = LiteLlm.authorization("sk-1");
        assert_eq!(
            (name.as_str(), value.as_str()),
            ("authorization", "Bearer sk-1")
        );
    }

    #[test]
    fn tools_lose_their_alias_prefix() {
        let server = view(
            &json!({"server_id": "a", "server_name": "docs", "alias": "docs",
            "status": "healthy"}),
        )
        .unwrap();
        let body = json!({"tools": [{"name": "docs-search"}, {"name": "docs-read-page"}]});
        let tools = LiteLlm
            .read_tools(
                ApiAnswer {
                    status: 200,
                    body: &body,
                },
                &server,
            )
            .unwrap();
        let upstream: Vec<&str> = tools.iter().map(|t| t.upstream.as_str()).collect();
        assert_eq!(upstream, ["read-page", "search"]);
        // A bare name, or another server's prefix, is not this server's
        // tool name.
        for name in ["search", "wiki-search"] {
            let body = json!({"tools": [{"name": "docs-read"}, {"name": name}]});
            let answer = ApiAnswer {
                status: 200,
                body: &body,
            };
            let error = LiteLlm.read_tools(answer, &server).unwrap_err();
            assert!(error.contains(name) && error.contains("docs-"), "{error}");
        }
    }

    #[test]
    fn registrations_and_configs_read_back_into_mcpsims_words() {
        for def in [
            client_credentials(true),
            client_credentials(false),
            ServerDef::http("gh", "http://gh/mcp").auth(ServerAuth::Bearer {
                token: "t0k3n".into(),
            }),
            ServerDef::http("open", "http://open/mcp").server_id("fixed"),
        ] {
            let written = LiteLlm.create(Registration::Def(&def)).body.unwrap();
            assert_eq!(LiteLlm.read_registration(&written).unwrap(), def);
            let config = LiteLlm
                .config_file(None, std::slice::from_ref(&def))
                .unwrap()
                .unwrap();
            let config: Value = serde_json::from_str(&config).unwrap();
            let read = LiteLlm.read_config(&config, &BTreeMap::new()).unwrap();
            assert_eq!(
                read,
                [ServerDef {
                    server_id: None,
                    ..def
                }]
            );
        }
        // The reporter's body: no flow, credentials nested, REST's own default transport.
        let reporter = json!({"server_name": "dbx", "url": "http://ws/mcp", "auth_type": "oauth2",
            "token_url": "http://auth/token", "credentials": {"client_id": "c", "client_secret": "s"}});
        let def = LiteLlm.read_registration(&reporter).unwrap();
        assert_eq!(def.transport, Transport::Sse);
        assert!(matches!(
            def.auth,
            ServerAuth::ClientCredentials {
                explicit_flow: false,
                ..
            }
        ));
        // The environment fills os.environ/ values; what cannot be carried says so.
        let config = json!({"mcp_servers": {"dbx": {"url": "http://ws/mcp", "auth_type": "oauth2",
            "oauth2_flow": "client_credentials", "token_url": "http://auth/token",
            "client_id": "c", "client_secret": "os.environ/SECRET"}}});
        let env = BTreeMap::from([("SECRET".to_string(), "from-env".to_string())]);
        let read = LiteLlm.read_config(&config, &env).unwrap();
        assert!(
            matches!(&read[0].auth, ServerAuth::ClientCredentials { client_secret, .. } if client_secret == "from-env")
        );
        let missing = LiteLlm.read_config(&config, &BTreeMap::new()).unwrap_err();
        assert!(
            missing.contains("SECRET") && !missing.contains("from-env"),
            "{missing}"
        );
        let per_user = json!({"server_name": "u", "url": "http://u/", "auth_type": "oauth2",
            "oauth2_flow": "authorization_code"});
        assert!(LiteLlm
            .read_registration(&per_user)
            .unwrap_err()
            .contains("per-user"));
        let headers =
            json!({"server_name": "h", "url": "http://h/", "static_headers": {"X-Key": "v"}});
        assert!(LiteLlm
            .read_registration(&headers)
            .unwrap_err()
            .contains("headers"));
    }

    #[test]
    fn the_proxy_without_a_database_reads_statuses_from_its_health_endpoint() {
        let rows = json!([
            {"server_id": "a", "server_name": "open", "status": null, "url": "http://127.0.0.1:1/mcp"},
            {"server_id": "b", "server_name": "dbx", "status": null},
        ]);
        let health = json!([{"server_id": "a", "status": "healthy"}]);
        assert_eq!(LiteLlmProxy.list().len(), 2);
        let views = LiteLlmProxy
            .read_list(&[
                ApiAnswer {
                    status: 200,
                    body: &rows,
                },
                ApiAnswer {
                    status: 200,
                    body: &health,
                },
            ])
            .unwrap();
        let statuses: Vec<Status> = views.iter().map(|v| v.status).collect();
        assert_eq!(statuses, [Status::Healthy, Status::Unknown]);
        assert!(!LiteLlmProxy.reports_check_time());
        let tools = json!({"tools": [{"name": "get_forecast"}], "error": null});
        let read = LiteLlmProxy
            .read_tools(
                ApiAnswer {
                    status: 200,
                    body: &tools,
                },
                &views[0],
            )
            .unwrap();
        assert_eq!(read[0].exposed, "open-get_forecast");
        assert_eq!(read[0].upstream, "get_forecast");
        let call = LiteLlmProxy.call_tool(&views[0], &read[0], &json!({}));
        assert_eq!(call.body.unwrap()["server_id"], "a");
        let failed = json!({"tools": [], "error": "partial_failure"});
        assert!(LiteLlmProxy
            .read_tools(
                ApiAnswer {
                    status: 200,
                    body: &failed,
                },
                &views[0],
            )
            .is_err());
    }
}
