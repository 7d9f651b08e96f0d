//! LiteLLM's management API, as LiteLLM 1.83 answers it (and the reference
//! gateway speaks it).
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

use serde_json::{json, Value};

use super::{ApiAnswer, ApiRequest, Dialect, Registration};
use crate::model::{
    CallAnswer, HealthView, ServerAuth, ServerDef, ServerView, Status, ToolView, WriteAnswer,
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
    if answer.status == 200 {
        return Ok(());
    }
    Err(match error_of(answer.body) {
        Some(error) => format!("{what} answered {}: {error}", answer.status),
        None => format!("{what} answered {}", answer.status),
    })
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
        ApiRequest {
            method: http::Method::DELETE,
            path: format!("/v1/mcp/server/{server_id}"),
            body: None,
        }
    }

    fn get(&self, server_id: &str) -> ApiRequest {
        ApiRequest::get(format!("/v1/mcp/server/{server_id}"))
    }

    fn list(&self) -> ApiRequest {
        ApiRequest::get("/v1/mcp/server")
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
        let accepted = (200..300).contains(&answer.status);
        WriteAnswer {
            status: answer.status,
            accepted,
            server_id: accepted.then(|| text(answer.body, "server_id")).flatten(),
            error: if accepted {
                None
            } else {
                error_of(answer.body)
            },
        }
    }

    fn read_list(&self, answer: ApiAnswer<'_>) -> Result<Vec<ServerView>, String> {
        expect_ok(answer, "the server list")?;
        let Value::Array(rows) = answer.body else {
            return Err("the server list is not a JSON array".to_string());
        };
        rows.iter().map(view).collect()
    }

    fn read_one(&self, answer: ApiAnswer<'_>) -> Result<Option<ServerView>, String> {
        if answer.status == 404 {
            return Ok(None);
        }
        expect_ok(answer, "the server")?;
        view(answer.body).map(Some)
    }

    fn read_health(&self, answer: ApiAnswer<'_>) -> Result<Vec<HealthView>, String> {
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
        let prefix = format!("{}-", server.alias.as_deref().unwrap_or(&server.name));
        let mut out: Vec<ToolView> = tools
            .iter()
            .filter_map(|t| t.get("name").and_then(Value::as_str))
            .map(|exposed| ToolView {
                upstream: exposed
                    .strip_prefix(&prefix)
                    .or_else(|| exposed.split_once('-').map(|(_, tool)| tool))
                    .unwrap_or(exposed)
                    .to_string(),
                exposed: exposed.to_string(),
            })
            .collect();
        out.sort();
        Ok(out)
    }

    fn read_call(&self, answer: ApiAnswer<'_>) -> CallAnswer {
        let ok = answer.status == 200;
        CallAnswer {
            status: answer.status,
            ok,
            error: if ok { None } else { error_of(answer.body) },
        }
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
            .read_list(ApiAnswer {
                status: 200,
                body: &body,
            })
            .unwrap();
        assert_eq!(views[0].status, Status::Unhealthy);
        assert_eq!(views[0].error.as_deref(), Some("list: 500"));
        let weird = json!([{"server_id": "a", "status": "offline"}]);
        let error = LiteLlm
            .read_list(ApiAnswer {
                status: 200,
                body: &weird,
            })
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
    }
}
