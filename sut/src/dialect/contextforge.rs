//! IBM ContextForge's gateway API, as ContextForge 1.0.7 answers it.
//!
//! - no config file: upstream MCP servers ("gateways") are registered
//!   through `POST /gateways` only, with `{"name", "url", "transport":
//!   "STREAMABLEHTTP", "visibility": "public"}` and `auth_type: "bearer"`
//!   (`auth_token`) or `auth_type: "oauth"` (`oauth_config`, client
//!   credentials);
//! - `PUT /gateways/{id}` (a partial body), `DELETE /gateways/{id}`,
//!   `GET /gateways[/{id}]` (an unknown id answers 403);
//! - a gateway's record carries `status` (`pending`, `active`, `deleting`),
//!   `reachable`, `lastError`, `statusMessage` and `lastSeen` (its last
//!   successful check); mcpsim reads `pending` without an error as
//!   `unknown`, `pending` with one as `unhealthy` (it keeps retrying),
//!   `active` and reachable as `healthy`, `active` and unreachable as
//!   `unhealthy` (ContextForge gives no error text then);
//! - tools: `GET /tools?gateway_id=` (names `<slug>-<tool slug>`,
//!   `originalName` the upstream's), calls through `POST /rpc` `tools/call`;
//! - errors come as `{"message"}` or `{"detail"}`; the operator's key is an
//!   admin JWT sent as `Authorization: Bearer`.

use serde_json::{json, Value};

use super::{ApiAnswer, ApiRequest, Dialect, Registration};
use crate::model::{
    CallAnswer, HealthView, ServerAuth, ServerDef, ServerView, Status, ToolView, Transport,
    WriteAnswer,
};

/// ContextForge's dialect.
#[derive(Clone, Copy, Debug, Default)]
pub struct ContextForge;

fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_string)
}

/// A gateway in ContextForge's REST body shape. Its client authentication
/// to a token endpoint is ContextForge's default (`client_secret_post`);
/// RFC 8707's `resource` has no field there.
fn body(def: &ServerDef) -> Value {
    let transport = match def.transport {
        Transport::Http => "STREAMABLEHTTP",
        Transport::Sse => "SSE",
    };
    let mut body = json!({
        "name": def.name,
        "url": def.url,
        "transport": transport,
        "visibility": "public",
    });
    match &def.auth {
        ServerAuth::None => {}
        ServerAuth::Bearer { token } => {
            body["auth_type"] = json!("bearer");
            body["auth_token"] = json!(token);
        }
        ServerAuth::ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scopes,
            audience,
            ..
        } => {
            body["auth_type"] = json!("oauth");
            let mut oauth = json!({
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
                "token_url": token_url,
                "scopes": scopes,
                "token_endpoint_auth_method": "client_secret_post",
            });
            if let Some(audience) = audience {
                oauth["audience"] = json!(audience);
            }
            body["oauth_config"] = oauth;
        }
    }
    body
}

/// ContextForge's error message: `{"message"}`, `{"detail": "..."}`, or a
/// validation error's list.
fn error_of(body: &Value) -> Option<String> {
    if let Some(message) = text(body, "message") {
        return Some(message);
    }
    match body.get("detail") {
        Some(Value::String(detail)) => Some(detail.clone()),
        Some(other) if !other.is_null() => Some(other.to_string()),
        _ => match body {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        },
    }
}

fn expect_ok(answer: ApiAnswer<'_>, what: &str) -> Result<(), String> {
    super::expect(answer, what, 200..=299, error_of)
}

/// mcpsim's status of a gateway record, and its error.
fn status_of(record: &Value) -> Result<(Status, Option<String>), String> {
    let id = text(record, "id").unwrap_or_default();
    let word = record.get("status").and_then(Value::as_str).unwrap_or("");
    let error = text(record, "lastError");
    let reachable = record.get("reachable").and_then(Value::as_bool);
    let enabled = record
        .get("enabled")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    match word {
        "pending" => match error {
            None => Ok((Status::Unknown, None)),
            Some(error) => Ok((Status::Unhealthy, Some(error))),
        },
        "active" if enabled && reachable == Some(true) => Ok((Status::Healthy, None)),
        "active" => Ok((Status::Unhealthy, error)),
        other => Err(format!(
            "gateway {id}: status {other:?} is not one of pending, active, deleting"
        )),
    }
}

fn view(record: &Value) -> Result<ServerView, String> {
    let id = text(record, "id").ok_or("a gateway record has no id")?;
    let (status, error) = status_of(record)?;
    Ok(ServerView {
        status,
        error,
        name: text(record, "name").unwrap_or_default(),
        alias: text(record, "slug"),
        source: Some("rest".to_string()),
        url: text(record, "url"),
        last_health_check: text(record, "lastSeen"),
        server_id: id,
    })
}

/// Records that are not on their way out.
fn records(answer: ApiAnswer<'_>) -> Result<Vec<&Value>, String> {
    expect_ok(answer, "the gateway list")?;
    let Value::Array(records) = answer.body else {
        return Err("the gateway list is not a JSON array".to_string());
    };
    Ok(records
        .iter()
        .filter(|r| r.get("status").and_then(Value::as_str) != Some("deleting"))
        .collect())
}

impl Dialect for ContextForge {
    fn name(&self) -> &'static str {
        "contextforge"
    }

    fn authorization(&self, api_key: &str) -> (http::HeaderName, String) {
        (http::header::AUTHORIZATION, format!("Bearer {api_key}"))
    }

    fn config_file(
        &self,
        native: Option<&Value>,
        servers: &[ServerDef],
    ) -> Result<Option<String>, String> {
        match (native, servers.is_empty()) {
            (None | Some(Value::Null), true) => Ok(None),
            _ => Err(
                "ContextForge has no config file: it registers gateways through its REST API only"
                    .to_string(),
            ),
        }
    }

    fn registration_name(&self, registration: Registration<'_>) -> String {
        match registration {
            Registration::Native(body) => text(body, "name").unwrap_or_else(|| "?".into()),
            Registration::Def(def) => def.name.clone(),
        }
    }

    fn create(&self, registration: Registration<'_>) -> ApiRequest {
        let body = match registration {
            Registration::Native(native) => native.clone(),
            Registration::Def(def) => body(def),
        };
        ApiRequest::with_body(http::Method::POST, "/gateways", body)
    }

    fn update(&self, server_id: &str, registration: Registration<'_>) -> ApiRequest {
        let body = match registration {
            Registration::Native(native) => native.clone(),
            Registration::Def(def) => body(def),
        };
        ApiRequest::with_body(http::Method::PUT, format!("/gateways/{server_id}"), body)
    }

    fn delete(&self, server_id: &str) -> ApiRequest {
        ApiRequest::delete(format!("/gateways/{server_id}"))
    }

    fn get(&self, server_id: &str) -> ApiRequest {
        ApiRequest::get(format!("/gateways/{server_id}"))
    }

    fn list(&self) -> Vec<ApiRequest> {
        vec![ApiRequest::get("/gateways?include_inactive=true")]
    }

    fn health(&self) -> ApiRequest {
        ApiRequest::get("/gateways?include_inactive=true")
    }

    fn tools(&self, server_id: &str) -> ApiRequest {
        ApiRequest::get(format!("/tools?gateway_id={server_id}&limit=0"))
    }

    fn call_tool(&self, _server: &ServerView, tool: &ToolView, arguments: &Value) -> ApiRequest {
        ApiRequest::with_body(
            http::Method::POST,
            "/rpc",
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": tool.exposed, "arguments": arguments}}),
        )
    }

    fn read_write(&self, answer: ApiAnswer<'_>) -> WriteAnswer {
        super::write_answer(answer, "id", "name", error_of)
    }

    fn read_list(&self, answers: &[ApiAnswer<'_>]) -> Result<Vec<ServerView>, String> {
        let answer = answers.first().ok_or("the gateway list was not read")?;
        records(*answer)?.into_iter().map(view).collect()
    }

    fn read_one(&self, answer: ApiAnswer<'_>) -> Result<Option<ServerView>, String> {
        if matches!(answer.status, 403 | 404) {
            return Ok(None);
        }
        expect_ok(answer, "the gateway")?;
        if answer.body.get("status").and_then(Value::as_str) == Some("deleting") {
            return Ok(None);
        }
        view(answer.body).map(Some)
    }

    fn read_health(&self, answer: ApiAnswer<'_>) -> Result<Vec<HealthView>, String> {
        records(answer)?
            .into_iter()
            .map(|record| {
                let view = view(record)?;
                Ok(HealthView {
                    server_id: view.server_id,
                    status: view.status,
                    store_reachable: None,
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
        let Value::Array(tools) = answer.body else {
            return Err("the tool list is not a JSON array".to_string());
        };
        let mut out: Vec<ToolView> = tools
            .iter()
            .filter(|t| text(t, "gatewayId").is_none_or(|g| g == server.server_id))
            .filter_map(|t| {
                let exposed = text(t, "name")?;
                let upstream = text(t, "originalName").unwrap_or_else(|| exposed.clone());
                Some(ToolView { exposed, upstream })
            })
            .collect();
        out.sort();
        Ok(out)
    }

    fn tools_all(&self) -> Option<ApiRequest> {
        Some(ApiRequest::get("/tools?limit=0"))
    }

    fn read_tools_all(&self, answer: ApiAnswer<'_>) -> Result<Vec<String>, String> {
        expect_ok(answer, "the tools of every gateway")?;
        let Value::Array(tools) = answer.body else {
            return Err("the tools of every gateway are not a JSON array".to_string());
        };
        tools
            .iter()
            .map(|t| text(t, "name").ok_or_else(|| "a tool has no name".to_string()))
            .collect()
    }

    fn read_call(&self, answer: ApiAnswer<'_>) -> CallAnswer {
        let rpc_error = answer
            .body
            .get("error")
            .filter(|e| !e.is_null())
            .map(|e| text(e, "message").unwrap_or_else(|| e.to_string()));
        let ok = answer.status == 200 && rpc_error.is_none() && answer.body.get("result").is_some();
        CallAnswer {
            status: answer.status,
            ok,
            error: if ok {
                None
            } else {
                rpc_error.or_else(|| error_of(answer.body))
            },
        }
    }

    fn reports_check_time(&self) -> bool {
        // `lastSeen` is the last successful check, not the last check.
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_written_as_contextforge_gateways() {
        let def = ServerDef::http("docs", "http://127.0.0.1:4101/mcp").auth(
            ServerAuth::ClientCredentials {
                token_url: "http://127.0.0.1:4100/token".into(),
                client_id: "gw".into(),
                client_secret: "s3cret".into(),
                scopes: vec!["mcp.read".into()],
                audience: Some("api".into()),
                resource: None,
                explicit_flow: false,
            },
        );
        let request = ContextForge.create(Registration::Def(&def));
        assert_eq!(request.path, "/gateways");
        let body = request.body.unwrap();
        assert_eq!(body["transport"], "STREAMABLEHTTP");
        assert_eq!(body["auth_type"], "oauth");
        assert_eq!(body["oauth_config"]["grant_type"], "client_credentials");
        assert_eq!(body["oauth_config"]["audience"], "api");
        assert_eq!(
            ContextForge.update("g1", Registration::Def(&def)).path,
            "/gateways/g1"
        );
        assert!(ContextForge.config_file(None, &[def]).is_err());
        assert_eq!(ContextForge.config_file(None, &[]), Ok(None));
    }

    #[test]
    fn records_map_to_mcpsims_statuses() {
        let body = json!([
            {"id": "a", "name": "new", "status": "pending", "reachable": false, "lastError": null},
            {"id": "b", "name": "bad", "status": "pending", "lastError": "OAuth authentication failed"},
            {"id": "c", "name": "good", "status": "active", "reachable": true, "enabled": true,
             "lastSeen": "2026-12-05T09:53:40"},
            {"id": "d", "name": "lost", "status": "active", "reachable": false, "lastError": null},
            {"id": "e", "name": "going", "status": "deleting"},
        ]);
        let views = ContextForge
            .read_list(&[ApiAnswer {
                status: 200,
                body: &body,
            }])
            .unwrap();
        let got: Vec<(&str, Status, Option<&str>)> = views
            .iter()
            .map(|v| (v.name.as_str(), v.status, v.error.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("new", Status::Unknown, None),
                (
                    "bad",
                    Status::Unhealthy,
                    Some("OAuth authentication failed")
                ),
                ("good", Status::Healthy, None),
                ("lost", Status::Unhealthy, None),
            ]
        );
        let weird = json!([{"id": "x", "status": "offline"}]);
        assert!(ContextForge
            .read_list(&[ApiAnswer {
                status: 200,
                body: &weird,
            }])
            .unwrap_err()
            .contains("offline"));
    }

    #[test]
    fn writes_tools_and_calls_read_as_mcpsims() {
        let refused = json!({"message": "Gateway already exists"});
        let answer = ContextForge.read_write(ApiAnswer {
            status: 409,
            body: &refused,
        });
        assert_eq!(
            (answer.accepted, answer.error.as_deref()),
            (false, Some("Gateway already exists"))
        );
        let made = json!({"id": "g1", "status": "pending"});
        let answer = ContextForge.read_write(ApiAnswer {
            status: 202,
            body: &made,
        });
        assert_eq!(answer.server_id.as_deref(), Some("g1"));
        let denied = json!({"detail": "Access denied"});
        assert_eq!(
            ContextForge.read_one(ApiAnswer {
                status: 403,
                body: &denied
            }),
            Ok(None)
        );
        let server = ServerView {
            server_id: "g1".into(),
            name: "open".into(),
            alias: Some("open".into()),
            source: None,
            url: None,
            status: Status::Healthy,
            error: None,
            last_health_check: None,
        };
        let tools = json!([
            {"name": "open-tool-000", "originalName": "tool_000", "gatewayId": "g1"},
            {"name": "other-tool-000", "originalName": "tool_000", "gatewayId": "g2"},
        ]);
        let read = ContextForge
            .read_tools(
                ApiAnswer {
                    status: 200,
                    body: &tools,
                },
                &server,
            )
            .unwrap();
        assert_eq!(
            read,
            [ToolView {
                exposed: "open-tool-000".into(),
                upstream: "tool_000".into()
            }]
        );
        let call = ContextForge.call_tool(&server, &read[0], &json!({}));
        assert_eq!(call.body.unwrap()["params"]["name"], "open-tool-000");
        let missing = json!({"jsonrpc": "2.0", "error": {"code": -32601, "message": "Tool not found: x"}, "id": 1});
        let answer = ContextForge.read_call(ApiAnswer {
            status: 200,
            body: &missing,
        });
        assert!(!answer.ok);
        assert_eq!(answer.error.as_deref(), Some("Tool not found: x"));
        let result = json!({"jsonrpc": "2.0", "result": {"content": [], "isError": true}, "id": 1});
        assert!(
            ContextForge
                .read_call(ApiAnswer {
                    status: 200,
                    body: &result
                })
                .ok
        );
    }
}
