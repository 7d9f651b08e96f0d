//! The MCP server, as a Streamable HTTP client sees it.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use mcpsim_fakes::access_token::{self, Claims};
use mcpsim_fakes::{
    ClientRegistration, McpAuth, McpFailure, McpFailureRule, McpServer, McpServerConfig, McpStats,
    ReplyMode, TokenServer, TokenServerConfig, ToolSpec, SIM_EPOCH_UNIX_S,
};
use serde_json::{json, Value};

use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use crate::{assert_hangs, send, Reply, TestClock};

const KEY: &str = "shared-key";
/// The revision `open` agrees on; real clients send it on every later request.
pub(crate) const LATEST: &str = "2025-11-25";

/// A POST as real clients send it; `session` and `version` become the MCP headers.
pub(crate) fn post(message: Value, session: Option<&str>, version: Option<&str>) -> Request<Body> {
    post_with(message.to_string(), session, version, None)
}

pub(crate) fn post_with(
    body: String,
    session: Option<&str>,
    version: Option<&str>,
    token: Option<&str>,
) -> Request<Body> {
    let mut request = Request::post("/mcp")
        .header("host", "mcp.sim:8080")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    if let Some(version) = version {
        request = request.header("mcp-protocol-version", version);
    }
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.body(Body::from(body)).unwrap()
}

pub(crate) fn initialize_msg(version: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}})
}

pub(crate) fn list_msg(id: u64, cursor: Option<&str>) -> Value {
    let params = cursor.map_or(json!({}), |c| json!({ "cursor": c }));
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/list", "params": params})
}

pub(crate) fn call_msg(id: u64, tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": {}}})
}

pub(crate) fn initialized_msg() -> Value {
    json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
}

pub(crate) fn plain(path: &str, method: &str, session: Option<&str>) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "mcp.sim:8080");
    if let Some(session) = session {
        request = request
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", LATEST);
    }
    request.body(Body::empty()).unwrap()
}

pub(crate) fn server(config: McpServerConfig) -> (McpServer, Router, TestClock) {
    let (time, clock) = TestClock::new(1_000_000);
    let server = McpServer::new(config, clock);
    let router = server.router();
    (server, router, time)
}

/// Opens a session at [`LATEST`] and returns its id.
pub(crate) async fn open(router: &Router) -> String {
    let reply = send(router, post(initialize_msg(LATEST), None, None)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.header("mcp-session-id").unwrap().to_string()
}

pub(crate) fn error_code(reply: &Reply) -> i64 {
    reply.json()["error"]["code"].as_i64().unwrap()
}

#[tokio::test]
async fn happy_flow_lists_three_pages_then_deletes() {
    let config = McpServerConfig {
        tool_count: Some(7),
        page_size: Some(3),
        ..McpServerConfig::default()
    };
    let (server, router, _time) = server(config);
    let v = Some("2025-11-25");

    let reply = send(&router, post(initialize_msg("2025-11-25"), None, None)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("mcp-session-id"), Some("s-000001"));
    let result = &reply.json()["result"];
    assert_eq!(result["protocolVersion"], "2025-11-25");
    assert_eq!(
        result["capabilities"],
        json!({"tools": {"listChanged": false}, "logging": {}})
    );
    assert_eq!(result["serverInfo"]["name"], "mcpsim-fake");
    let session = Some("s-000001");

    let reply = send(&router, post(initialized_msg(), session, v)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert!(reply.body.is_empty());

    let reply = send(&router, plain("/mcp", "GET", session)).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.header("allow"), Some("POST, DELETE"));

    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let reply = send(&router, post(list_msg(2, cursor.as_deref()), session, v)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let result = reply.json()["result"].clone();
        for tool in result["tools"].as_array().unwrap() {
            assert_eq!(
                tool["inputSchema"],
                json!({"type": "object", "properties": {}})
            );
            assert!(tool["description"].is_string());
            names.push(tool["name"].as_str().unwrap().to_string());
        }
        pages += 1;
        match result.get("nextCursor") {
            Some(next) => cursor = Some(next.as_str().unwrap().to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, server.tool_names());
    assert_eq!(names.first().map(String::as_str), Some("tool_000"));
    assert_eq!(names.len(), 7);

    let ping = json!({"jsonrpc": "2.0", "id": "p", "method": "ping"});
    let reply = send(&router, post(ping, session, v)).await;
    assert_eq!(
        reply.json(),
        json!({"jsonrpc": "2.0", "id": "p", "result": {}})
    );

    let reply = send(&router, plain("/mcp", "DELETE", session)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = send(&router, post(list_msg(3, None), session, v)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = send(&router, plain("/mcp", "DELETE", session)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let stats = server.stats();
    let by_method = |m: &str| stats.by_method.get(m).copied().unwrap_or(0);
    assert_eq!(stats.requests, 10);
    assert_eq!(by_method("tools/list"), 4);
    assert_eq!(by_method("initialize"), 1);
    assert_eq!(by_method("GET"), 1);
    assert_eq!(by_method("DELETE"), 2);
    assert_eq!((stats.sessions_opened, stats.sessions_deleted), (1, 1));
}

#[tokio::test]
async fn configured_tools_and_bad_cursor() {
    let config: McpServerConfig = serde_json::from_value(json!({
        "tools": [
            {"name": "get_weather", "description": "Weather",
             "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
            {"name": "bare"}
        ],
        "page_size": 1,
    }))
    .unwrap();
    let (_server, router, _time) = server(config);
    let session = open(&router).await;
    let s = Some(session.as_str());

    let reply = send(&router, post(list_msg(1, None), s, Some(LATEST))).await;
    let result = reply.json()["result"].clone();
    assert_eq!(result["tools"][0]["name"], "get_weather");
    assert_eq!(
        result["tools"][0]["inputSchema"]["properties"]["city"]["type"],
        "string"
    );
    let next = result["nextCursor"].as_str().unwrap().to_string();
    let reply = send(&router, post(list_msg(2, Some(&next)), s, Some(LATEST))).await;
    let result = reply.json()["result"].clone();
    assert_eq!(
        result["tools"][0],
        json!({"name": "bare", "inputSchema": {"type": "object", "properties": {}}})
    );
    assert!(result.get("nextCursor").is_none());

    for bad in ["not base64!", "b2Zmc2V0Ojk5", ""] {
        let reply = send(&router, post(list_msg(3, Some(bad)), s, Some(LATEST))).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(error_code(&reply), -32602, "cursor {bad:?}");
        assert_eq!(reply.json()["id"], 3);
    }
    let unknown = json!({"jsonrpc": "2.0", "id": 4, "method": "resources/list"});
    assert_eq!(
        error_code(&send(&router, post(unknown, s, Some(LATEST))).await),
        -32601
    );
}

#[tokio::test]
async fn sse_reply_parses() {
    let config = McpServerConfig {
        reply: ReplyMode::Sse,
        tool_count: Some(2),
        ..McpServerConfig::default()
    };
    let (_server, router, _time) = server(config);
    let reply = send(&router, post(initialize_msg("2025-06-18"), None, None)).await;
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let session = reply.header("mcp-session-id").unwrap().to_string();
    // A priming event with an empty data line and a retry hint, then the response.
    assert!(
        reply
            .body
            .starts_with("id: s-000001/0\nretry: 3000\ndata:\n\n"),
        "{}",
        reply.body
    );

    let reply = send(
        &router,
        post(list_msg(7, None), Some(&session), Some("2025-06-18")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let events: Vec<&str> = reply.body.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 2);
    // Event ids go on across the streams of a session.
    assert!(events[0].starts_with("id: s-000001/2\n"), "{}", reply.body);
    assert!(events[1].contains("\nid: s-000001/3\n"), "{}", reply.body);
    let data = events[1]
        .lines()
        .find_map(|line| line.strip_prefix("data: "))
        .unwrap();
    assert!(events[1].starts_with("event: message\n"));
    let message: Value = serde_json::from_str(data).unwrap();
    assert_eq!(message["id"], 7);
    assert_eq!(message["result"]["tools"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn tools_call_answers_listed_tools_only() {
    let config = McpServerConfig {
        tool_count: Some(2),
        latency_ms: [("tools/call".to_string(), 20)].into(),
        failures: vec![rule(
            "tools/call",
            McpFailure::Http { status: 503 },
            2,
            Some(1),
        )],
        ..McpServerConfig::default()
    };
    let (server, router, _time) = server(config);
    let session = open(&router).await;
    let s = Some(session.as_str());

    let started = tokio::time::Instant::now();
    let reply = send(&router, post(call_msg(1, "tool_001"), s, Some(LATEST))).await;
    assert!(started.elapsed() >= Duration::from_millis(20));
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({"jsonrpc": "2.0", "id": 1, "result": {
            "content": [{"type": "text", "text": "tool_001 called with {}"}], "isError": false}})
    );
    let reply = send(&router, post(call_msg(2, "no_such_tool"), s, Some(LATEST))).await;
    assert_eq!((reply.status, error_code(&reply)), (StatusCode::OK, -32602));
    assert_eq!(reply.json()["id"], 2);
    let reply = send(&router, post(call_msg(3, "tool_000"), s, Some(LATEST))).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let nameless = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {}});
    assert_eq!(
        error_code(&send(&router, post(nameless, s, Some(LATEST))).await),
        -32602
    );
    // Without its session a call is refused like any other request.
    let reply = send(&router, post(call_msg(5, "tool_000"), None, None)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(server.stats().by_method.get("tools/call"), Some(&5));
}

#[tokio::test]
async fn tools_call_in_sse_mode() {
    let config = McpServerConfig {
        reply: ReplyMode::Sse,
        tools: vec![ToolSpec {
            description: None,
            input_schema: json!({"type": "object"}),
            ..ToolSpec::named("get_weather")
        }],
        ..McpServerConfig::default()
    };
    let (_server, router, _time) = server(config);
    let reply = send(&router, post(initialize_msg("2025-11-25"), None, None)).await;
    let session = reply.header("mcp-session-id").unwrap().to_string();
    let reply = send(
        &router,
        post(call_msg(9, "get_weather"), Some(&session), Some(LATEST)),
    )
    .await;
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let data = reply
        .body
        .lines()
        .find_map(|line| line.strip_prefix("data: "))
        .unwrap();
    let message: Value = serde_json::from_str(data).unwrap();
    assert_eq!(message["id"], 9);
    assert_eq!(
        message["result"]["content"][0]["text"],
        "get_weather called with {}"
    );
}

#[tokio::test]
async fn version_negotiation() {
    let (_server, router, _time) = server(McpServerConfig::default());
    for (asked, answered) in [
        ("2025-03-26", "2025-03-26"),
        ("2025-06-18", "2025-06-18"),
        ("2026-07-28", "2025-11-25"),
        ("1999-01-01", "2025-11-25"),
    ] {
        let reply = send(&router, post(initialize_msg(asked), None, None)).await;
        assert_eq!(reply.json()["result"]["protocolVersion"], answered);
    }
    let session = open(&router).await;
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let reply = send(
        &router,
        post(ping.clone(), Some(&session), Some("2026-07-28")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = send(&router, post(ping.clone(), Some(&session), Some(LATEST))).await;
    assert_eq!(reply.status, StatusCode::OK);
    // A session that agreed on 2025-03-26 may leave the header out.
    let reply = send(&router, post(initialize_msg("2025-03-26"), None, None)).await;
    let old = reply.header("mcp-session-id").unwrap().to_string();
    let reply = send(&router, post(ping, Some(&old), None)).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn discover_probe_gets_a_4xx() {
    let (_server, router, _time) = server(McpServerConfig::default());
    let probe = json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {}});
    let reply = send(&router, post(probe, None, Some("2026-07-28"))).await;
    assert!(reply.status.is_client_error());
    assert_eq!(error_code(&reply), -32601);
}

#[tokio::test]
async fn session_and_transport_errors() {
    let (_server, router, _time) = server(McpServerConfig::default());
    let _session = open(&router).await;

    let reply = send(&router, post(list_msg(1, None), None, None)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = send(
        &router,
        post(list_msg(1, None), Some("s-999999"), Some(LATEST)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = send(
        &router,
        post(initialized_msg(), Some("s-999999"), Some(LATEST)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = send(&router, plain("/mcp", "DELETE", None)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let reply = send(&router, post_with("{not json".into(), None, None, None)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&reply), -32700);
    let batch = json!([list_msg(1, None)]).to_string();
    let reply = send(&router, post_with(batch, None, None, None)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&reply), -32600);

    let narrow_accept = Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(Body::from(initialize_msg("2025-11-25").to_string()))
        .unwrap();
    assert_eq!(
        send(&router, narrow_accept).await.status,
        StatusCode::NOT_ACCEPTABLE
    );
    let reply = send(&router, plain("/elsewhere", "POST", None)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = send(
        &router,
        plain("/.well-known/oauth-protected-resource", "GET", None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_sessions_no_header_is_needed() {
    let config = McpServerConfig {
        sessions: false,
        tool_count: Some(1),
        ..McpServerConfig::default()
    };
    let (_server, router, _time) = server(config);
    let reply = send(&router, post(initialize_msg("2025-11-25"), None, None)).await;
    assert_eq!(reply.header("mcp-session-id"), None);
    let reply = send(&router, post(list_msg(1, None), None, Some("2025-11-25"))).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = send(&router, plain("/mcp", "DELETE", None)).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
}

fn oauth_config(required_scope: Option<&str>) -> McpServerConfig {
    McpServerConfig {
        auth: McpAuth::Oauth {
            issuer: "auth.sim".into(),
            signing_key: KEY.into(),
            required_scope: required_scope.map(String::from),
            revoke_at_ms: None,
            authorization_server: None,
        },
        tool_count: Some(1),
        ..McpServerConfig::default()
    }
}

fn claims(scope: &str, exp_ms: u64) -> Claims {
    Claims {
        iss: "auth.sim".into(),
        sub: "gw".into(),
        scope: scope.into(),
        exp_ms,
        iat_ms: None,
        jti: 1,
    }
}

fn init_with(token: Option<&str>) -> Request<Body> {
    post_with(initialize_msg("2025-11-25").to_string(), None, None, token)
}

#[tokio::test]
async fn missing_token_is_401_with_resource_metadata() {
    let (server, router, _time) = server(oauth_config(None));
    let reply = send(&router, init_with(None)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(
            "Bearer resource_metadata=\"http://mcp.sim:8080/.well-known/oauth-protected-resource/mcp\""
        )
    );
    let reply = send(&router, init_with(Some("garbage"))).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply
        .header("www-authenticate")
        .unwrap()
        .contains("error=\"invalid_token\""));
    let reply = send(&router, plain("/mcp", "GET", None)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(server.stats().unauthorized, 3);

    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let reply = send(&router, plain(path, "GET", None)).await;
        assert_eq!(reply.status, StatusCode::OK);
        let metadata = reply.json();
        assert_eq!(metadata["resource"], "http://mcp.sim:8080/mcp");
        assert_eq!(metadata["authorization_servers"], json!(["auth.sim"]));
    }
}

#[tokio::test]
async fn token_from_the_token_server_is_accepted() {
    let (time, clock) = TestClock::new(1_000_000);
    let tokens = TokenServer::new(
        TokenServerConfig {
            issuer: "auth.sim".into(),
            signing_key: KEY.into(),
            expires_in_s: Some(60),
            clients: vec![ClientRegistration {
                client_id: "gw".into(),
                client_secret: "s".into(),
                scopes: vec![],
                auth_method: None,
            }],
            ..TokenServerConfig::default()
        },
        clock.clone(),
    );
    let grant = Request::post("/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(
            "grant_type=client_credentials&client_id=gw&client_secret=s&scope=mcp",
        ))
        .unwrap();
    let body = send(&tokens.router(), grant).await.json();
    let token = body["access_token"].as_str().unwrap().to_string();

    let mcp = McpServer::new(oauth_config(Some("mcp")), clock);
    let router = mcp.router();
    let reply = send(&router, init_with(Some(&token))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let session = reply.header("mcp-session-id").unwrap().to_string();

    // Expiry is judged by the injected clock, so moving it past the lifetime revokes the token.
    time.advance(Duration::from_secs(60));
    let request = post_with(
        list_msg(1, None).to_string(),
        Some(&session),
        Some(LATEST),
        Some(&token),
    );
    let reply = send(&router, request).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply
        .header("www-authenticate")
        .unwrap()
        .contains("error=\"invalid_token\""));
    assert!(!reply.body.contains(&token));
}

fn token_server(clock: mcpsim_fakes::Clock) -> TokenServer {
    TokenServer::new(
        TokenServerConfig {
            issuer: "auth.sim".into(),
            signing_key: KEY.into(),
            clients: vec![ClientRegistration {
                client_id: "gw".into(),
                client_secret: "s".into(),
                scopes: vec![],
                auth_method: None,
            }],
            ..TokenServerConfig::default()
        },
        clock,
    )
}

async fn fetch_token(tokens: &TokenServer) -> String {
    let grant = Request::post("/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(
            "grant_type=client_credentials&client_id=gw&client_secret=s",
        ))
        .unwrap();
    let body = send(&tokens.router(), grant).await.json();
    body["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn tokens_issued_before_the_revocation_are_refused_from_then_on() {
    // The clock starts where a simulated run starts, so `revoke_at_ms` is time into the run.
    let (time, clock) = TestClock::new(SIM_EPOCH_UNIX_S * 1000);
    let tokens = token_server(clock.clone());
    let mut config = oauth_config(None);
    config.auth = serde_json::from_value(json!({"type": "oauth", "issuer": "auth.sim",
        "signing_key": KEY, "revoke_at_ms": 5_000}))
    .unwrap();
    let mcp = McpServer::new(config, clock);
    let router = mcp.router();
    let list = |token: &str, session: &str| {
        post_with(
            list_msg(1, None).to_string(),
            Some(session),
            Some(LATEST),
            Some(token),
        )
    };

    let cached = fetch_token(&tokens).await;
    let reply = send(&router, init_with(Some(&cached))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let session = reply.header("mcp-session-id").unwrap().to_string();
    time.advance(Duration::from_millis(4_999));
    assert_eq!(
        send(&router, list(&cached, &session)).await.status,
        StatusCode::OK
    );

    // From the revocation instant on the cached token is refused as the spec says for a token
    // the authorization server no longer honours, although it has not expired.
    time.advance(Duration::from_millis(1));
    let reply = send(&router, list(&cached, &session)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let challenge = reply.header("www-authenticate").unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    let without_issue_time = access_token::mint(KEY, &claims("", u64::MAX));
    assert_eq!(
        send(&router, list(&without_issue_time, &session))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    // A token fetched at or after the instant is honoured, on the same session.
    let fresh = fetch_token(&tokens).await;
    assert_ne!(fresh, cached);
    assert_eq!(
        send(&router, list(&fresh, &session)).await.status,
        StatusCode::OK
    );
    time.advance(Duration::from_secs(10));
    assert_eq!(
        send(&router, list(&fresh, &session)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&router, list(&cached, &session)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let stats = mcp.stats();
    assert_eq!((stats.unauthorized, stats.revoked_refused), (3, 3));
    assert!(mcp.rejected_bearers().contains(&cached));
    let text = serde_json::to_string(&stats).unwrap();
    assert!(text.contains("\"revoked_refused\":3"), "{text}");
    assert!(!text.contains(&cached));
}

#[tokio::test]
async fn expired_wrong_issuer_and_insufficient_scope_are_refused() {
    let (server, router, _time) = server(oauth_config(Some("mcp")));
    let expired = access_token::mint(KEY, &claims("mcp", 1_000_000));
    let reply = send(&router, init_with(Some(&expired))).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    let mut foreign = claims("mcp", 2_000_000);
    foreign.iss = "someone-else".into();
    let foreign = access_token::mint(KEY, &foreign);
    assert_eq!(
        send(&router, init_with(Some(&foreign))).await.status,
        StatusCode::UNAUTHORIZED
    );

    let unsigned = access_token::mint("other-key", &claims("mcp", 2_000_000));
    assert_eq!(
        send(&router, init_with(Some(&unsigned))).await.status,
        StatusCode::UNAUTHORIZED
    );

    let narrow = access_token::mint(KEY, &claims("read", 2_000_000));
    let reply = send(&router, init_with(Some(&narrow))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let challenge = reply.header("www-authenticate").unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"mcp\""), "{challenge}");
    assert_eq!(server.stats().unauthorized, 4);
    assert_eq!(server.stats().by_method.get("initialize"), None);
}

#[tokio::test]
async fn static_bearer_token() {
    let config = McpServerConfig {
        auth: McpAuth::Bearer {
            token: "api-key".into(),
        },
        ..McpServerConfig::default()
    };
    assert!(!format!("{config:?}").contains("api-key"));
    let (_server, router, _time) = server(config);
    assert_eq!(
        send(&router, init_with(Some("nope"))).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&router, init_with(Some("api-key"))).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn rejected_bearers_are_kept_out_of_the_stats() {
    let (server, router, _time) = server(oauth_config(Some("mcp")));
    let serialized = |server: &McpServer| serde_json::to_value(server.stats()).unwrap();
    assert!(serialized(&server).get("revoked_refused").is_none());

    let narrow = access_token::mint(KEY, &claims("read", 2_000_000));
    for token in ["caller-key", "other-key", "caller-key", narrow.as_str()] {
        let reply = send(&router, init_with(Some(token))).await;
        assert!(reply.status.is_client_error());
    }
    // No credentials, or credentials of another scheme, are refused but leave nothing to keep.
    send(&router, init_with(None)).await;
    let basic = Request::post("/mcp")
        .header("authorization", "Basic Z3c6cw==")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&router, basic).await.status, StatusCode::UNAUTHORIZED);
    let good = access_token::mint(KEY, &claims("mcp", 2_000_000));
    assert_eq!(
        send(&router, init_with(Some(&good))).await.status,
        StatusCode::OK
    );

    let mut expected = vec!["caller-key".to_string(), "other-key".into(), narrow];
    expected.sort();
    assert_eq!(server.rejected_bearers(), expected);
    assert_eq!(server.stats().unauthorized, 6);
    let text = serialized(&server).to_string();
    for token in server.rejected_bearers() {
        assert!(!text.contains(&token));
    }
}

#[tokio::test]
async fn static_bearer_records_the_wrong_key() {
    let config = McpServerConfig {
        auth: McpAuth::Bearer {
            token: "api-key".into(),
        },
        ..McpServerConfig::default()
    };
    let (server, router, _time) = server(config);
    send(&router, init_with(Some("sk-caller"))).await;
    send(&router, init_with(Some("api-key"))).await;
    assert_eq!(server.rejected_bearers(), ["sk-caller"]);
}

pub(crate) fn rule(
    method: &str,
    kind: McpFailure,
    after: u32,
    count: Option<u32>,
) -> McpFailureRule {
    McpFailureRule {
        method: method.into(),
        kind,
        after,
        count,
    }
}

#[tokio::test]
async fn failure_rules_count_per_method() {
    let config = McpServerConfig {
        tool_count: Some(1),
        failures: vec![
            rule("tools/list", McpFailure::Http { status: 503 }, 1, Some(1)),
            rule(
                "tools/list",
                McpFailure::JsonRpcError { code: -32603 },
                2,
                Some(1),
            ),
            rule("tools/list", McpFailure::MalformedBody, 3, Some(1)),
            rule("ping", McpFailure::Hang, 0, None),
        ],
        ..McpServerConfig::default()
    };
    let (_server, router, _time) = server(config);
    let session = open(&router).await;
    let s = Some(session.as_str());

    let reply = send(&router, post(list_msg(1, None), s, Some(LATEST))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.json()["result"]["tools"].is_array());
    let reply = send(&router, post(list_msg(2, None), s, Some(LATEST))).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let reply = send(&router, post(list_msg(3, None), s, Some(LATEST))).await;
    assert_eq!((reply.status, error_code(&reply)), (StatusCode::OK, -32603));
    assert_eq!(reply.json()["id"], 3);
    let reply = send(&router, post(list_msg(4, None), s, Some(LATEST))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(serde_json::from_str::<Value>(&reply.body).is_err());
    let reply = send(&router, post(list_msg(5, None), s, Some(LATEST))).await;
    assert!(reply.json()["result"]["tools"].is_array());

    let ping = json!({"jsonrpc": "2.0", "id": 6, "method": "ping"});
    assert_hangs(&router, post(ping, s, Some(LATEST))).await;
}

/// Sends and reads the body frame by frame; returns the status, the content type and what
/// arrived before the body failed. Panics if the body ends cleanly instead.
pub(crate) async fn send_cut(
    router: &Router,
    request: Request<Body>,
) -> (StatusCode, String, String) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    let mut body = response.into_body();
    let mut received = Vec::new();
    loop {
        match body.frame().await {
            Some(Ok(frame)) => received.extend_from_slice(frame.data_ref().unwrap()),
            Some(Err(_)) => break,
            None => panic!(
                "the body ended cleanly: {}",
                String::from_utf8_lossy(&received)
            ),
        }
    }
    (status, content_type, String::from_utf8(received).unwrap())
}

#[tokio::test]
async fn cut_stream_in_sse_mode_stops_after_the_priming_event() {
    let config = McpServerConfig {
        reply: ReplyMode::Sse,
        tool_count: Some(1),
        failures: vec![rule("tools/call", McpFailure::CutStream, 1, Some(1))],
        ..McpServerConfig::default()
    };
    let (server, router, _time) = server(config);
    let reply = send(&router, post(initialize_msg("2025-11-25"), None, None)).await;
    let session = reply.header("mcp-session-id").unwrap().to_string();
    let s = Some(session.as_str());

    let reply = send(&router, post(call_msg(1, "tool_000"), s, Some(LATEST))).await;
    assert!(reply.body.contains("tool_000 called"));
    let (status, content_type, received) =
        send_cut(&router, post(call_msg(2, "tool_000"), s, Some(LATEST))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/event-stream");
    assert_eq!(received, "id: s-000001/4\nretry: 3000\ndata:\n\n");
    // The rule cut one answer; the next is whole again.
    let reply = send(&router, post(call_msg(3, "tool_000"), s, Some(LATEST))).await;
    assert!(reply.body.contains("tool_000 called"));
    assert_eq!(server.stats().by_method.get("tools/call"), Some(&3));
}

#[tokio::test]
async fn cut_stream_in_json_mode_stops_mid_body() {
    let config: McpServerConfig = serde_json::from_value(json!({
        "tool_count": 1,
        "failures": [{"method": "*", "kind": {"type": "cut_stream"}, "after": 1, "count": 2}],
    }))
    .unwrap();
    let (_server, router, _time) = server(config);
    let session = open(&router).await;
    let s = Some(session.as_str());
    let (status, content_type, received) =
        send_cut(&router, post(list_msg(7, None), s, Some(LATEST))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    assert!(!received.is_empty());
    assert!(r#"{"id":7,"jsonrpc":"2.0","result":{}}"#.starts_with(&received));
    assert!(serde_json::from_str::<Value>(&received).is_err());
    let (status, _, _) = send_cut(&router, plain("/mcp", "GET", s)).await;
    assert_eq!(status, StatusCode::OK);
    let reply = send(&router, post(list_msg(8, None), s, Some(LATEST))).await;
    assert!(reply.json()["result"]["tools"].is_array());
}

#[tokio::test]
async fn session_terminated_forces_a_new_session() {
    let config = McpServerConfig {
        tool_count: Some(1),
        failures: vec![rule("*", McpFailure::SessionTerminated, 2, Some(1))],
        ..McpServerConfig::default()
    };
    let (server, router, _time) = server(config);
    let first = open(&router).await;
    let reply = send(&router, post(list_msg(1, None), Some(&first), Some(LATEST))).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = send(&router, post(list_msg(2, None), Some(&first), Some(LATEST))).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = send(&router, post(list_msg(3, None), Some(&first), Some(LATEST))).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let second = open(&router).await;
    assert_eq!(second, "s-000002");
    let reply = send(
        &router,
        post(list_msg(4, None), Some(&second), Some(LATEST)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let stats = server.stats();
    assert_eq!(
        stats,
        McpStats {
            requests: 6,
            by_method: [("initialize".into(), 2), ("tools/list".into(), 4)].into(),
            unauthorized: 0,
            revoked_refused: 0,
            sessions_opened: 2,
            sessions_deleted: 0,
            ..McpStats::default()
        }
    );
}

#[tokio::test]
async fn latency_delays_the_answer() {
    let config: McpServerConfig = serde_json::from_value(json!({
        "latency_ms": {"initialize": 30, "*": 0},
    }))
    .unwrap();
    let (_server, router, _time) = server(config);
    let started = tokio::time::Instant::now();
    open(&router).await;
    assert!(started.elapsed() >= Duration::from_millis(30));
}

#[test]
fn config_reads_from_json() {
    let config: McpServerConfig = serde_json::from_value(json!({
        "path": "/v1/mcp",
        "tool_count": 250,
        "page_size": 100,
        "reply": "sse",
        "auth": {"type": "oauth", "issuer": "auth.sim", "signing_key": "k", "required_scope": "mcp",
                 "revoke_at_ms": 1500},
        "sessions": true,
        "latency_ms": {"tools/list": 20, "*": 1},
        "failures": [
            {"method": "tools/list", "kind": {"type": "http", "status": 503}, "after": 1, "count": 2},
            {"method": "*", "kind": {"type": "session_terminated"}, "after": 5, "count": 1},
            {"method": "ping", "kind": {"type": "json_rpc_error", "code": -32603}},
        ],
        "protocol_versions": ["2025-06-18"],
    }))
    .unwrap();
    assert_eq!(config.reply, ReplyMode::Sse);
    assert!(format!("{:?}", config.auth).contains("revoke_at_ms: Some(1500)"));
    assert_eq!(config.failures[0].kind, McpFailure::Http { status: 503 });
    assert_eq!(
        McpServer::new(config, std::sync::Arc::new(|| Duration::ZERO))
            .tool_names()
            .len(),
        250
    );
    let typo = json!({"auth": {"type": "bearer", "tokn": "x"}});
    assert!(serde_json::from_value::<McpServerConfig>(typo).is_err());
    let typo = json!({"page_sise": 3});
    assert!(serde_json::from_value::<McpServerConfig>(typo).is_err());
}
