//! A fake MCP server speaking Streamable HTTP (revisions 2025-03-26, 2025-06-18, 2025-11-25).
//!
//! It implements the lifecycle (`initialize`, sessions, `DELETE`), `tools/list` with opaque
//! cursors, `tools/call` (every listed tool answers that it was called), `ping`, bearer-token
//! checks as an OAuth resource server, and injected failures.
//! Invariants: answers depend only on the request, the configuration, the injected clock and
//! per-method request ordinals; session ids come from a counter; sessions and counters live in
//! the [`McpServer`] value (ordered collections only), so a router rebuilt after a host restart
//! keeps them. Nothing here can panic on a client's input: every bad request gets a status code.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::stream::{self, StreamExt as _};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::log::{
    lock, run_ms, CredentialSeen, Log, McpOutcome, McpRequestRecord, Peer, Recording, TokenRef,
};
use crate::{access_token, rule_hits, sleep_ms, Clock, SIM_EPOCH_UNIX_S};

const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");
const VERSION_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");
const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";
/// The revision a client speaks when it sends no `MCP-Protocol-Version` header.
const FALLBACK_VERSION: &str = "2025-03-26";
const BODY_LIMIT_BYTES: usize = 4 * 1024 * 1024;
/// The first event of every SSE answer: an id with empty data, as 2025-11-25 servers send.
const PRIMING_EVENT: &str = "id: 0\ndata:\n\n";
const SSE_HEADERS: [(HeaderName, &str); 2] = [
    (header::CONTENT_TYPE, "text/event-stream"),
    (header::CACHE_CONTROL, "no-cache"),
];

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const INTERNAL_ERROR: i64 = -32603;
/// Implementation-defined server error, as the SDKs use for transport-level refusals.
const SERVER_ERROR: i64 = -32000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpServerConfig {
    pub path: String,
    pub server_name: String,
    pub tools: Vec<ToolSpec>,
    /// Generates `tool_000`, `tool_001`, ... when `tools` is empty.
    pub tool_count: Option<usize>,
    /// Tools per `tools/list` page; `None` (or 0) puts every tool on one page.
    pub page_size: Option<usize>,
    pub reply: ReplyMode,
    pub auth: McpAuth,
    /// Whether `initialize` opens a session (`Mcp-Session-Id`) that later requests must carry.
    pub sessions: bool,
    /// Delay per method (`"initialize"`, `"tools/list"`, `"GET"`, `"DELETE"`, ...) or `"*"`.
    pub latency_ms: BTreeMap<String, u64>,
    pub failures: Vec<McpFailureRule>,
    /// Supported revisions, latest first.
    pub protocol_versions: Vec<String>,
}

impl Default for McpServerConfig {
    fn default() -> Self {
        McpServerConfig {
            path: "/mcp".into(),
            server_name: "mcpsim-fake".into(),
            tools: Vec::new(),
            tool_count: None,
            page_size: None,
            reply: ReplyMode::Json,
            auth: McpAuth::None,
            sessions: true,
            latency_ms: BTreeMap::new(),
            failures: Vec::new(),
            protocol_versions: ["2025-11-25", "2025-06-18", "2025-03-26"]
                .map(String::from)
                .to_vec(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default = "empty_object_schema")]
    pub input_schema: Value,
}

fn empty_object_schema() -> Value {
    json!({"type": "object", "properties": {}})
}

/// How a request's response is framed; clients must accept both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyMode {
    /// `application/json`, one JSON-RPC object.
    #[default]
    Json,
    /// `text/event-stream`: a priming event, then the response as one `message` event.
    Sse,
}

#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum McpAuth {
    #[default]
    None,
    /// A fixed bearer token, as for an API key.
    Bearer { token: String },
    /// Tokens from [`crate::access_token`], checked locally with the shared key.
    Oauth {
        issuer: String,
        signing_key: String,
        #[serde(default)]
        required_scope: Option<String>,
        /// Milliseconds of simulated time after the run's start ([`crate::SIM_EPOCH_UNIX_S`]) at
        /// which every token issued earlier is revoked: from then on such a token gets 401
        /// `error="invalid_token"`, while tokens issued at or after the instant pass.
        #[serde(default)]
        revoke_at_ms: Option<u64>,
    },
}

// Secrets are left out so that logging a configuration cannot leak them into a report.
impl fmt::Debug for McpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            McpAuth::None => f.write_str("None"),
            McpAuth::Bearer { .. } => f.write_str("Bearer { token: <redacted> }"),
            McpAuth::Oauth {
                issuer,
                required_scope,
                revoke_at_ms,
                ..
            } => f
                .debug_struct("Oauth")
                .field("issuer", issuer)
                .field("signing_key", &"<redacted>")
                .field("required_scope", required_scope)
                .field("revoke_at_ms", revoke_at_ms)
                .finish(),
        }
    }
}

/// Lets `after` requests of `method` (`"*"` = any) through, then fails `count` of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpFailureRule {
    pub method: String,
    pub kind: McpFailure,
    #[serde(default)]
    pub after: u32,
    #[serde(default)]
    pub count: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum McpFailure {
    /// That HTTP status with a short JSON-RPC error body (500 if the number is not a status).
    Http { status: u16 },
    /// 200 carrying a JSON-RPC error with this code for the request's id.
    JsonRpcError { code: i64 },
    /// 200 in the configured reply mode, with a body that is not JSON.
    MalformedBody,
    /// Never answers.
    Hang,
    /// 404, and the request's session is forgotten, as after a server restart.
    SessionTerminated,
    /// 200, then the connection breaks mid-answer: in `sse` mode after the priming event and
    /// before the message event, in `json` mode after half of a response body. The body ends
    /// with an error, so the server aborts the connection rather than ending the message.
    CutStream,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct McpStats {
    /// Every request to the MCP path, whatever became of it.
    pub requests: u64,
    /// Requests per JSON-RPC method, `"GET"`, `"DELETE"`, or `"response"` for client responses.
    pub by_method: BTreeMap<String, u64>,
    /// Requests refused by the bearer-token check (401 or 403).
    pub unauthorized: u64,
    /// The part of `unauthorized` refused only because the token was issued before the oauth
    /// `revoke_at_ms`. Left out of the serialized form while zero, so that reports of scenarios
    /// without a revocation stay as they were. The refused tokens themselves are never in the
    /// stats (see [`McpServer::rejected_bearers`]).
    #[serde(skip_serializing_if = "is_zero")]
    pub revoked_refused: u64,
    pub sessions_opened: u64,
    pub sessions_deleted: u64,
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

/// The fake MCP server; cheap to clone, all clones share state.
#[derive(Clone)]
pub struct McpServer {
    inner: Arc<Inner>,
}

struct Inner {
    config: McpServerConfig,
    tools: Vec<ToolSpec>,
    clock: Clock,
    state: Mutex<McpState>,
    log: Mutex<Log<McpRequestRecord>>,
}

#[derive(Default)]
struct McpState {
    stats: McpStats,
    sessions: BTreeSet<String>,
    next_session: u64,
    /// Requests seen per method name, plus `"*"` for all; failure rules count these.
    ordinals: BTreeMap<String, u64>,
    /// Every bearer token value refused by the auth check. Secret by nature, so never in stats.
    rejected_bearers: BTreeSet<String>,
    /// Every bearer token value that was neither this server's static token nor a token its
    /// issuer signed, refused or not. Secret by nature, so never in stats or the log.
    foreign_bearers: BTreeSet<String>,
}

impl McpServer {
    pub fn new(config: McpServerConfig, clock: Clock) -> Self {
        let tools = match config.tool_count {
            Some(n) if config.tools.is_empty() => (0..n)
                .map(|i| ToolSpec {
                    name: format!("tool_{i:03}"),
                    description: Some(format!("Generated tool number {i}.")),
                    input_schema: empty_object_schema(),
                })
                .collect(),
            _ => config.tools.clone(),
        };
        let state = Mutex::new(McpState::default());
        McpServer {
            inner: Arc::new(Inner {
                config,
                tools,
                clock,
                state,
                log: Mutex::default(),
            }),
        }
    }

    /// A router serving the MCP path and the protected-resource metadata; call again after a
    /// host restart.
    pub fn router(&self) -> Router {
        // A fallback instead of `route` keeps the configured path literal and cannot panic.
        Router::new()
            .fallback(handle)
            .with_state(self.inner.clone())
    }

    pub fn stats(&self) -> McpStats {
        self.inner.lock().stats.clone()
    }

    /// Every distinct bearer token this server refused (401 or 403), sorted. These are
    /// credentials, so they stay out of [`McpStats`] and thus out of reports; a checker uses
    /// them to ask whether a gateway ever sent a caller's own key upstream.
    pub fn rejected_bearers(&self) -> Vec<String> {
        self.inner.lock().rejected_bearers.iter().cloned().collect()
    }

    /// Every distinct bearer token this server was sent that was neither its static token nor
    /// one its issuer signed, accepted or not, sorted. Secret like [`Self::rejected_bearers`].
    pub fn foreign_bearers(&self) -> Vec<String> {
        self.inner.lock().foreign_bearers.iter().cloned().collect()
    }

    /// Every request to the MCP path so far, in the order they arrived.
    pub fn requests(&self) -> Log<McpRequestRecord> {
        lock(&self.inner.log).clone()
    }

    pub fn tool_names(&self) -> Vec<String> {
        self.inner.tools.iter().map(|t| t.name.clone()).collect()
    }
}

/// A request's record while it is handled, and the failure a rule answered it with.
struct Entry<'a> {
    recording: Recording<'a, McpRequestRecord>,
    clock: &'a Clock,
    /// Set by the failure gate when a rule answered.
    injected: Option<McpOutcome>,
}

impl Entry<'_> {
    fn set_rpc_method(&self, method: &str) {
        self.recording
            .update(|record| record.rpc_method = Some(method.to_owned()));
    }

    fn finish(&mut self, status: StatusCode) {
        let answered_ms = run_ms(self.clock);
        let outcome = self.injected.unwrap_or(McpOutcome::Answered);
        self.recording.finish(|record| {
            record.answered_ms = Some(answered_ms);
            record.status = Some(status.as_u16());
            record.outcome = outcome;
        });
    }
}

/// Which credential a request carries, as far as this server can tell.
fn credential(inner: &Inner, headers: &HeaderMap) -> CredentialSeen {
    let Some(presented) = bearer(headers) else {
        return CredentialSeen::None;
    };
    match &inner.config.auth {
        McpAuth::Bearer { token } if presented == token => CredentialSeen::Static,
        McpAuth::Oauth {
            issuer,
            signing_key,
            ..
        } => match access_token::verify_signature(signing_key, presented) {
            Ok(claims) if &claims.iss == issuer => CredentialSeen::Issued {
                token: TokenRef {
                    issuer: claims.iss,
                    client_id: claims.sub,
                    serial: claims.jti,
                    issued_ms: claims
                        .iat_ms
                        .unwrap_or(0)
                        .saturating_sub(SIM_EPOCH_UNIX_S * 1_000),
                },
            },
            _ => CredentialSeen::Other,
        },
        _ => CredentialSeen::Other,
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, McpState> {
        // A poisoned lock only means another handler panicked; the state is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn latest_version(&self) -> &str {
        self.config
            .protocol_versions
            .first()
            .map_or("2025-11-25", String::as_str)
    }

    fn supports(&self, version: &str) -> bool {
        self.config.protocol_versions.iter().any(|v| v == version)
    }
}

/// What the failure gate needs to know about the request it may fail.
struct Call<'a> {
    method: &'a str,
    id: Value,
    session: Option<&'a str>,
}

async fn handle(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    let path = request.uri().path();
    let config_path = inner.config.path.as_str();
    if path == WELL_KNOWN || path.strip_prefix(WELL_KNOWN) == Some(config_path) {
        return protected_resource(&inner, request.method(), request.headers());
    }
    if path != config_path {
        return StatusCode::NOT_FOUND.into_response();
    }
    inner.lock().stats.requests += 1;
    let headers = request.headers();
    let credential = credential(&inner, headers);
    if credential == CredentialSeen::Other {
        if let Some(token) = bearer(headers) {
            inner.lock().foreign_bearers.insert(token.to_owned());
        }
    }
    let record = McpRequestRecord {
        received_ms: run_ms(&inner.clock),
        answered_ms: None,
        peer: request.extensions().get::<Peer>().map(|p| p.0.clone()),
        http_method: request.method().to_string(),
        rpc_method: None,
        session: header_str(headers, &SESSION_HEADER).map(str::to_owned),
        protocol_version: header_str(headers, &VERSION_HEADER).map(str::to_owned),
        credential,
        status: None,
        outcome: McpOutcome::Pending,
    };
    let mut entry = Entry {
        recording: Recording::open(&inner.log, record),
        clock: &inner.clock,
        injected: None,
    };
    let response = serve(&inner, request, &mut entry).await;
    entry.finish(response.status());
    response
}

/// Handles one request to the MCP path.
async fn serve(inner: &Inner, request: Request, entry: &mut Entry<'_>) -> Response {
    if let Some(refusal) = auth_refusal(inner, request.headers()) {
        let mut state = inner.lock();
        state.stats.unauthorized += 1;
        if let Some(token) = bearer(request.headers()) {
            state.rejected_bearers.insert(token.to_owned());
        }
        return refusal;
    }
    let session = header_str(request.headers(), &SESSION_HEADER).map(str::to_owned);
    let call = |method| Call {
        method,
        id: Value::Null,
        session: session.as_deref(),
    };
    match *request.method() {
        Method::POST => post(inner, request, entry).await,
        Method::GET => match gate(inner, call("GET"), entry).await {
            Some(injected) => injected,
            // This server never pushes messages, so it offers no GET stream (spec-allowed 405).
            None => (
                StatusCode::METHOD_NOT_ALLOWED,
                [(header::ALLOW, "POST, DELETE")],
            )
                .into_response(),
        },
        Method::DELETE => match gate(inner, call("DELETE"), entry).await {
            Some(injected) => injected,
            None => delete(inner, request.headers()),
        },
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, POST, DELETE")],
        )
            .into_response(),
    }
}

async fn post(inner: &Inner, request: Request, entry: &mut Entry<'_>) -> Response {
    let headers = request.headers().clone();
    let accepts = |media: &str| {
        headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|item| {
                let media_type = item.split(';').next().unwrap_or("").trim();
                media_type.eq_ignore_ascii_case(media)
            })
    };
    if !accepts("application/json") || !accepts("text/event-stream") {
        return refuse(
            StatusCode::NOT_ACCEPTABLE,
            "Accept must list application/json and text/event-stream",
        );
    }
    let is_json = header_str(&headers, &header::CONTENT_TYPE).is_some_and(|ct| {
        let media_type = ct.split(';').next().unwrap_or("").trim();
        media_type.eq_ignore_ascii_case("application/json")
    });
    if !is_json {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        );
    }
    let Ok(body) = to_bytes(request.into_body(), BODY_LIMIT_BYTES).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let bad = |code, message| rpc_error(StatusCode::BAD_REQUEST, Value::Null, code, message);
    let message: Value = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(_) => return bad(PARSE_ERROR, "Parse error"),
    };
    if message.is_array() {
        return bad(INVALID_REQUEST, "batches are not supported");
    }
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return bad(INVALID_REQUEST, "not a JSON-RPC 2.0 message");
    }
    let id = message.get("id").cloned();
    let method = match message.get("method") {
        Some(Value::String(method)) => method.as_str(),
        None if id.is_some()
            && (message.get("result").is_some() || message.get("error").is_some()) =>
        {
            "response"
        }
        _ => return bad(INVALID_REQUEST, "not a request, notification or response"),
    };
    entry.set_rpc_method(method);
    let session = header_str(&headers, &SESSION_HEADER);
    let call = Call {
        method,
        id: id.clone().unwrap_or(Value::Null),
        session,
    };
    if let Some(injected) = gate(inner, call, entry).await {
        return injected;
    }

    if method == "server/discover" {
        // The 2026-07-28 probe: a 4xx tells the client to fall back to `initialize`.
        let id = id.unwrap_or(Value::Null);
        return rpc_error(
            StatusCode::BAD_REQUEST,
            id,
            METHOD_NOT_FOUND,
            "Method not found",
        );
    }
    if method == "initialize" && id.is_some() {
        return initialize(inner, id.unwrap_or(Value::Null), message.get("params"));
    }
    if let Some(refusal) = session_refusal(inner, &headers) {
        return refusal;
    }
    let Some(id) = id.filter(|_| method != "response") else {
        // Notifications and client responses are accepted without a body.
        return StatusCode::ACCEPTED.into_response();
    };
    let result = match method {
        "ping" => Ok(json!({})),
        "tools/list" => list_tools(inner, message.get("params")),
        "tools/call" => call_tool(inner, message.get("params")),
        _ => Err((METHOD_NOT_FOUND, "Method not found")),
    };
    let response = match result {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err((code, text)) => rpc_error_body(id, code, text),
    };
    reply(inner.config.reply, &response)
}

fn initialize(inner: &Inner, id: Value, params: Option<&Value>) -> Response {
    let Some(requested) = params
        .and_then(|p| p.get("protocolVersion"))
        .and_then(Value::as_str)
    else {
        let body = rpc_error_body(id, INVALID_PARAMS, "protocolVersion is required");
        return reply(inner.config.reply, &body);
    };
    // Real servers answer a version they do not know with their latest rather than an error.
    let version = if inner.supports(requested) {
        requested
    } else {
        inner.latest_version()
    };
    let result = json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": {"name": inner.config.server_name, "version": "0.1.0"},
    });
    let mut response = reply(
        inner.config.reply,
        &json!({"jsonrpc": "2.0", "id": id, "result": result}),
    );
    if inner.config.sessions {
        let mut state = inner.lock();
        state.next_session += 1;
        let session = format!("s-{:06}", state.next_session);
        state.stats.sessions_opened += 1;
        let value = HeaderValue::from_str(&session).expect("session ids are visible ASCII");
        state.sessions.insert(session);
        response.headers_mut().insert(SESSION_HEADER, value);
    }
    response
}

fn list_tools(inner: &Inner, params: Option<&Value>) -> Result<Value, (i64, &'static str)> {
    let total = inner.tools.len();
    let start = match params.and_then(|p| p.get("cursor")) {
        None | Some(Value::Null) => 0,
        Some(Value::String(cursor)) => decode_cursor(cursor)
            .filter(|&offset| offset <= total)
            .ok_or((INVALID_PARAMS, "Invalid cursor"))?,
        Some(_) => return Err((INVALID_PARAMS, "Invalid cursor")),
    };
    let page_size = inner.config.page_size.filter(|&n| n > 0).unwrap_or(total);
    let end = start.saturating_add(page_size).min(total);
    let tools: Vec<Value> = inner.tools[start..end]
        .iter()
        .map(|tool| {
            let mut value = json!({"name": tool.name, "inputSchema": tool.input_schema});
            if let Some(description) = &tool.description {
                value["description"] = description.clone().into();
            }
            value
        })
        .collect();
    let mut result = json!({ "tools": tools });
    if end < total {
        result["nextCursor"] = encode_cursor(end).into();
    }
    Ok(result)
}

/// Answers a call of a listed tool with one text item naming it; the arguments are not looked at.
fn call_tool(inner: &Inner, params: Option<&Value>) -> Result<Value, (i64, &'static str)> {
    let name = params
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .ok_or((INVALID_PARAMS, "Tool name is required"))?;
    let tool = inner
        .tools
        .iter()
        .find(|tool| tool.name == name)
        .ok_or((INVALID_PARAMS, "Unknown tool"))?;
    Ok(json!({
        "content": [{"type": "text", "text": format!("{} called", tool.name)}],
        "isError": false,
    }))
}

fn encode_cursor(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    std::str::from_utf8(&raw)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()
}

fn delete(inner: &Inner, headers: &HeaderMap) -> Response {
    if !inner.config.sessions {
        // Without sessions there is nothing to end; the spec lets a server refuse with 405.
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "POST")]).into_response();
    }
    if let Some(refusal) = session_refusal(inner, headers) {
        return refusal;
    }
    let mut state = inner.lock();
    if let Some(session) = header_str(headers, &SESSION_HEADER) {
        state.sessions.remove(session);
    }
    state.stats.sessions_deleted += 1;
    StatusCode::OK.into_response()
}

/// Refuses a request that lacks a live session (400 missing, 404 unknown) or names a protocol
/// revision this server does not speak (400). An absent version header means 2025-03-26.
fn session_refusal(inner: &Inner, headers: &HeaderMap) -> Option<Response> {
    if inner.config.sessions {
        let Some(session) = headers.get(SESSION_HEADER) else {
            return Some(refuse(
                StatusCode::BAD_REQUEST,
                "Bad Request: Mcp-Session-Id header is required",
            ));
        };
        let known = session
            .to_str()
            .is_ok_and(|s| inner.lock().sessions.contains(s));
        if !known {
            return Some(refuse(StatusCode::NOT_FOUND, "Session not found"));
        }
    }
    let version = headers
        .get(VERSION_HEADER)
        .map(|v| v.to_str().unwrap_or(""));
    if !inner.supports(version.unwrap_or(FALLBACK_VERSION)) {
        return Some(refuse(
            StatusCode::BAD_REQUEST,
            "Bad Request: unsupported MCP-Protocol-Version",
        ));
    }
    None
}

/// Counts the request, waits the configured latency, and answers it with an injected failure
/// when a rule hits its ordinal. `None` means: handle it normally.
async fn gate(inner: &Inner, call: Call<'_>, entry: &mut Entry<'_>) -> Option<Response> {
    let rule = {
        let mut state = inner.lock();
        *state.stats.by_method.entry(call.method.into()).or_default() += 1;
        let mut next = |key: &str| {
            let count = state.ordinals.entry(key.into()).or_default();
            *count += 1;
            *count - 1
        };
        let ordinal_method = next(call.method);
        let ordinal_any = next("*");
        inner.config.failures.iter().find(|rule| {
            let ordinal = match rule.method.as_str() {
                "*" => ordinal_any,
                m if m == call.method => ordinal_method,
                _ => return false,
            };
            rule_hits(rule.after, rule.count, ordinal)
        })
    };
    let latency = inner.config.latency_ms.get(call.method);
    sleep_ms(*latency.or(inner.config.latency_ms.get("*")).unwrap_or(&0)).await;

    let kind = rule?.kind;
    entry.injected = Some(if kind == McpFailure::CutStream {
        McpOutcome::Cut
    } else {
        McpOutcome::Injected
    });
    Some(match kind {
        McpFailure::Http { status } => rpc_error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Value::Null,
            INTERNAL_ERROR,
            "injected failure",
        ),
        McpFailure::JsonRpcError { code } => reply(
            inner.config.reply,
            &rpc_error_body(call.id, code, "injected failure"),
        ),
        McpFailure::MalformedBody => {
            let (content_type, body) = match inner.config.reply {
                ReplyMode::Json => ("application/json", "{\"jsonrpc\":\"2.0\",\"id\":"),
                ReplyMode::Sse => (
                    "text/event-stream",
                    "event: message\ndata: {\"jsonrpc\":\n\n",
                ),
            };
            (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        McpFailure::Hang => std::future::pending().await,
        McpFailure::CutStream => cut_stream(inner.config.reply, call.id),
        McpFailure::SessionTerminated => {
            if let Some(session) = call.session {
                inner.lock().sessions.remove(session);
            }
            refuse(StatusCode::NOT_FOUND, "Session not found")
        }
    })
}

/// Checks the bearer token when auth is configured; a refusal carries the challenge.
fn auth_refusal(inner: &Inner, headers: &HeaderMap) -> Option<Response> {
    let presented = bearer(headers);
    let challenge = |status: StatusCode, params: String| {
        let value = HeaderValue::from_str(&format!("Bearer {params}"))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        let message = if status == StatusCode::FORBIDDEN {
            "Forbidden: insufficient scope"
        } else {
            "Unauthorized"
        };
        let mut response = refuse(status, message);
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
        response
    };
    match &inner.config.auth {
        McpAuth::None => None,
        McpAuth::Bearer { token } => match presented {
            Some(p) if p == token => None,
            Some(_) => Some(challenge(
                StatusCode::UNAUTHORIZED,
                "error=\"invalid_token\"".into(),
            )),
            None => Some(challenge(
                StatusCode::UNAUTHORIZED,
                "realm=\"mcpsim\"".into(),
            )),
        },
        McpAuth::Oauth {
            issuer,
            signing_key,
            required_scope,
            revoke_at_ms,
        } => {
            let mut params = format!("resource_metadata=\"http://{}{WELL_KNOWN}\"", host(headers));
            if let Some(scope) = required_scope {
                params.push_str(&format!(", scope=\"{scope}\""));
            }
            // RFC 6750 §3.1: a request without credentials gets the challenge but no error code.
            let Some(token) = presented else {
                return Some(challenge(StatusCode::UNAUTHORIZED, params));
            };
            let now = (inner.clock)();
            let claims = access_token::verify(signing_key, token, now)
                .ok()
                .filter(|claims| &claims.iss == issuer);
            let Some(claims) = claims else {
                params.push_str(", error=\"invalid_token\"");
                return Some(challenge(StatusCode::UNAUTHORIZED, params));
            };
            if revoke_at_ms.is_some_and(|at_ms| revoked(&claims, at_ms, now)) {
                inner.lock().stats.revoked_refused += 1;
                params.push_str(", error=\"invalid_token\"");
                return Some(challenge(StatusCode::UNAUTHORIZED, params));
            }
            match required_scope {
                Some(scope) if !claims.has_scope(scope) => {
                    params.push_str(", error=\"insufficient_scope\"");
                    Some(challenge(StatusCode::FORBIDDEN, params))
                }
                _ => None,
            }
        }
    }
}

/// Whether a revocation at `revoke_at_ms` after the simulation epoch has taken effect by `now`
/// and covers this token. A token without an issue time counts as issued at the unix epoch.
fn revoked(claims: &access_token::Claims, revoke_at_ms: u64, now: Duration) -> bool {
    let revoke_unix_ms = (SIM_EPOCH_UNIX_S * 1000).saturating_add(revoke_at_ms);
    now.as_millis() >= u128::from(revoke_unix_ms) && claims.iat_ms.unwrap_or(0) < revoke_unix_ms
}

/// The token of an `Authorization: Bearer` header, `None` when absent or of another scheme.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = header_str(headers, &header::AUTHORIZATION)?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// RFC 9728 protected-resource metadata, served without auth so clients can discover the
/// authorization server. Only an OAuth-protected server has any.
fn protected_resource(inner: &Inner, method: &Method, headers: &HeaderMap) -> Response {
    let McpAuth::Oauth {
        issuer,
        required_scope,
        ..
    } = &inner.config.auth
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if method != Method::GET {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET")]).into_response();
    }
    let mut body = json!({
        "resource": format!("http://{}{}", host(headers), inner.config.path),
        "authorization_servers": [issuer],
        "bearer_methods_supported": ["header"],
    });
    if let Some(scope) = required_scope {
        body["scopes_supported"] = json!([scope]);
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The `Host` the client addressed, or `localhost` when it is absent or could break a header.
fn host(headers: &HeaderMap) -> &str {
    header_str(headers, &header::HOST)
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        })
        .unwrap_or("localhost")
}

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn rpc_error_body(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// A transport-level refusal: an HTTP error status with a JSON-RPC error body and no id.
fn refuse(status: StatusCode, message: &str) -> Response {
    rpc_error(status, Value::Null, SERVER_ERROR, message)
}

fn rpc_error(status: StatusCode, id: Value, code: i64, message: &str) -> Response {
    let body = rpc_error_body(id, code, message).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A 200 whose body stops with an error after a first part, so that hyper aborts the connection
/// (an HTTP/1.1 chunked body without its last chunk) and the client sees a truncated answer.
fn cut_stream(mode: ReplyMode, id: Value) -> Response {
    let sent = match mode {
        ReplyMode::Json => {
            let full = json!({"jsonrpc": "2.0", "id": id, "result": {}}).to_string();
            let full = Bytes::from(full);
            full.slice(..full.len() / 2)
        }
        ReplyMode::Sse => Bytes::from_static(PRIMING_EVENT.as_bytes()),
    };
    let cut = async {
        // Pending once before the error lets hyper flush the first part to the socket; an
        // error right behind it would drop the part with the connection.
        tokio::task::yield_now().await;
        Err::<Bytes, _>(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "injected cut_stream",
        ))
    };
    let body = stream::once(async { Ok(sent) }).chain(stream::once(cut));
    let body = Body::from_stream(body);
    match mode {
        ReplyMode::Json => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        ReplyMode::Sse => (StatusCode::OK, SSE_HEADERS, body).into_response(),
    }
}

/// Frames one JSON-RPC response in the configured reply mode.
fn reply(mode: ReplyMode, message: &Value) -> Response {
    match mode {
        ReplyMode::Json => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            message.to_string(),
        )
            .into_response(),
        // The priming event (an id with empty data) is what 2025-11-25 servers send first;
        // the stream then ends with the response, so no resumption is ever needed.
        ReplyMode::Sse => (
            StatusCode::OK,
            SSE_HEADERS,
            format!("{PRIMING_EVENT}event: message\nid: 1\ndata: {message}\n\n"),
        )
            .into_response(),
    }
}
