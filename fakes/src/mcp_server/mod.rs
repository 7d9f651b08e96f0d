//! A fake MCP server speaking Streamable HTTP (revisions 2025-03-26, 2025-06-18, 2025-11-25).
//!
//! It implements the lifecycle (`initialize`, sessions, `DELETE`), `tools/list` with opaque
//! cursors, `tools/call` with arguments checked against each tool's schema, `ping`, an optional
//! server-to-client GET stream, bearer-token checks as an OAuth resource server, the `Origin`
//! check, and the behaviours of real and hostile upstreams ([`McpServerConfig`]).
//! One room per job: `config` (what it is told to be), `tools` (tool sets over time, listing and
//! calls), `frame` (JSON and SSE framing, injected bodies), `auth` (Origin, bearer checks,
//! protected-resource metadata).
//!
//! Invariants: answers depend only on the request, the configuration, the injected clock and
//! per-method request ordinals; session ids and event ids come from counters; sessions and
//! counters live in the [`McpServer`] value (ordered collections only), so a router rebuilt
//! after a host restart keeps them. Nothing here can panic on a client's input: every bad
//! request gets a status code.

mod auth;
mod config;
mod frame;
mod tools;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use futures_util::stream::{self, StreamExt as _};
use serde::Serialize;
use serde_json::{json, Value};

pub use config::{
    GetStream, McpAuth, McpFailure, McpFailureRule, McpServerConfig, Paging, ReplyMode, SseStyle,
    ToolBehaviour, ToolChange, ToolSpec,
};

use crate::log::{
    lock, run_ms, CredentialSeen, Log, McpOutcome, McpRequestRecord, Peer, Recording, ToolCallSeen,
};
use crate::{rule_hits, sleep_ms, Clock};
use auth::{auth_refusal, bearer, credential, header_str, origin_refusal, protected_resource};
use frame::{refuse, rpc_error, rpc_error_body, EventIds, INTERNAL_ERROR, SSE_HEADERS};

const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");
const VERSION_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");
/// The revision a client speaks when it sends no `MCP-Protocol-Version` header.
const FALLBACK_VERSION: &str = "2025-03-26";
const BODY_LIMIT_BYTES: usize = 4 * 1024 * 1024;

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = tools::INVALID_PARAMS;

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
    /// Sessions the server ended on its own (`session_ttl_ms`, `session_max_requests`).
    #[serde(skip_serializing_if = "is_zero")]
    pub sessions_expired: u64,
    /// Requests refused for their `Origin`.
    #[serde(skip_serializing_if = "is_zero")]
    pub origins_refused: u64,
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
    /// The tool sets over the run, in time order.
    tool_sets: Vec<(u64, Vec<ToolSpec>)>,
    clock: Clock,
    state: Mutex<McpState>,
    log: Mutex<Log<McpRequestRecord>>,
    /// Every `list_changed` notice written to an open GET stream, in order.
    notices: Mutex<Vec<NoticeRecord>>,
}

/// A `notifications/tools/list_changed` the server wrote to a client's open
/// GET stream: when, on which session, to whom. Written is not read: the
/// client may have gone away meanwhile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NoticeRecord {
    pub at_ms: u64,
    pub session: Option<String>,
    pub peer: Option<String>,
}

/// One live session.
struct Session {
    /// When it opened, by the injected clock (unix ms).
    opened_unix_ms: u64,
    requests: u32,
    /// The next event id of its streams.
    next_event: u64,
    /// The revision `initialize` agreed on.
    version: String,
}

#[derive(Default)]
struct McpState {
    stats: McpStats,
    sessions: BTreeMap<String, Session>,
    next_session: u64,
    /// Event ids of streams outside any session.
    next_event: u64,
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
        let base = match config.tool_count {
            Some(n) if config.tools.is_empty() => tools::generated(n),
            _ => config.tools.clone(),
        };
        let tool_sets = tools::timeline(base, &config.tool_changes);
        McpServer {
            inner: Arc::new(Inner {
                config,
                tool_sets,
                clock,
                state: Mutex::new(McpState::default()),
                log: Mutex::default(),
                notices: Mutex::default(),
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
    /// Every `list_changed` notice this server wrote to an open stream.
    pub fn notices(&self) -> Vec<NoticeRecord> {
        self.inner
            .notices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn requests(&self) -> Log<McpRequestRecord> {
        lock(&self.inner.log).clone()
    }

    /// Keeps at most `capacity` request records from now on (the default is
    /// [`crate::LOG_CAPACITY`]): a harness sets a smaller one per run, so
    /// that a request storm ends quickly as a finding.
    pub fn limit_log(&self, capacity: usize) {
        lock(&self.inner.log).limit(capacity);
    }

    /// Whether the request log is full: later requests are only counted.
    pub fn log_full(&self) -> bool {
        lock(&self.inner.log).is_full()
    }

    /// The names of the tools the server has now (its tool set may change over the run).
    pub fn tool_names(&self) -> Vec<String> {
        self.tool_names_at(self.inner.now_ms())
    }

    /// The names of the tools the server has at `at_ms` of the run.
    pub fn tool_names_at(&self, at_ms: u64) -> Vec<String> {
        tools::at(&self.inner.tool_sets, at_ms)
            .iter()
            .map(|t| t.name.clone())
            .collect()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, McpState> {
        // A poisoned lock only means another handler panicked; the state is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ms(&self) -> u64 {
        run_ms(&self.clock)
    }

    fn tools_now(&self) -> &[ToolSpec] {
        tools::at(&self.tool_sets, self.now_ms())
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

    /// Reserves `count` event ids for one stream of `session`.
    fn event_ids(&self, session: Option<&str>, count: u64) -> EventIds {
        let mut state = self.lock();
        let (prefix, next) = match session.and_then(|s| state.sessions.get_mut(s).map(|e| (s, e))) {
            Some((id, entry)) => {
                let next = entry.next_event;
                entry.next_event += count;
                (format!("{id}/"), next)
            }
            None => {
                let next = state.next_event;
                state.next_event += count;
                (String::new(), next)
            }
        };
        EventIds { prefix, next }
    }

    /// Frames the messages of one reply for `session`.
    fn reply(&self, session: Option<&str>, messages: &[Value]) -> Response {
        let style = &self.config.sse;
        let mut ids = self.event_ids(session, frame::ids_needed(style, messages.len()));
        frame::reply(self.config.reply, style, &mut ids, messages)
    }
}

fn unix_ms(clock: &Clock) -> u64 {
    u64::try_from(clock().as_millis()).unwrap_or(u64::MAX)
}

/// What the failure gate needs to know about the request it may fail.
struct Call<'a> {
    method: &'a str,
    id: Value,
    session: Option<&'a str>,
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

    /// Notes what a request asked: its JSON-RPC method, and a call's tool,
    /// before anything can refuse it.
    fn note_request(&self, method: &str, message: &Value) {
        self.set_rpc_method(method);
        if method == "tools/call" {
            let tool = message
                .get("params")
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            self.recording.update(|record| {
                record.call = Some(ToolCallSeen {
                    tool,
                    is_error: None,
                    texts: Vec::new(),
                })
            });
        }
    }

    /// Notes what a listing page or a tool call was answered, for the log.
    fn saw_answer(&self, method: &str, answer: &Result<(Vec<Value>, Value), (i64, &str)>) {
        let Ok((_, result)) = answer else {
            return;
        };
        match method {
            "tools/list" => {
                let more = result.get("nextCursor").is_some_and(|c| !c.is_null());
                self.recording
                    .update(|record| record.next_cursor = Some(more));
            }
            "tools/call" => {
                let is_error = result.get("isError").and_then(Value::as_bool);
                let texts: Vec<String> = result
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|block| block.get("type").and_then(Value::as_str) == Some("text"))
                    .filter_map(|block| block.get("text").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect();
                self.recording.update(|record| {
                    if let Some(call) = &mut record.call {
                        call.is_error = Some(is_error.unwrap_or(false));
                        call.texts = texts;
                    }
                });
            }
            _ => {}
        }
    }

    fn finish(&mut self, response: &Response) {
        let answered_ms = run_ms(self.clock);
        let outcome = self.injected.unwrap_or(McpOutcome::Answered);
        let assigned = header_str(response.headers(), &SESSION_HEADER).map(str::to_owned);
        self.recording.finish(|record| {
            record.answered_ms = Some(answered_ms);
            record.status = Some(response.status().as_u16());
            record.assigned_session = assigned;
            record.outcome = outcome;
        });
    }
}

async fn handle(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    let path = request.uri().path();
    let config_path = inner.config.path.as_str();
    if path == auth::WELL_KNOWN || path.strip_prefix(auth::WELL_KNOWN) == Some(config_path) {
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
        received_ms: inner.now_ms(),
        answered_ms: None,
        peer: request.extensions().get::<Peer>().map(|p| p.0.clone()),
        http_method: request.method().to_string(),
        rpc_method: None,
        session: header_str(headers, &SESSION_HEADER).map(str::to_owned),
        assigned_session: None,
        protocol_version: header_str(headers, &VERSION_HEADER).map(str::to_owned),
        credential,
        status: None,
        outcome: McpOutcome::Pending,
        next_cursor: None,
        call: None,
    };
    let mut entry = Entry {
        recording: Recording::open(&inner.log, record),
        clock: &inner.clock,
        injected: None,
    };
    let response = serve(&inner, request, &mut entry).await;
    entry.finish(&response);
    response
}

/// Handles one request to the MCP path.
async fn serve(inner: &Arc<Inner>, request: Request, entry: &mut Entry<'_>) -> Response {
    // DNS rebinding protection comes first: a browser page must learn nothing, not even
    // whether a token would have been accepted.
    if let Some(refusal) = origin_refusal(inner, request.headers()) {
        inner.lock().stats.origins_refused += 1;
        return refusal;
    }
    if let Some(refusal) = auth_refusal(inner, request.headers()) {
        {
            let mut state = inner.lock();
            state.stats.unauthorized += 1;
            if let Some(token) = bearer(request.headers()) {
                state.rejected_bearers.insert(token.to_owned());
            }
        }
        // The log still says what was refused: which step of a client's
        // work failed shows only there.
        if request.method() == Method::POST {
            if let Ok(body) = to_bytes(request.into_body(), BODY_LIMIT_BYTES).await {
                if let Ok(message) = serde_json::from_slice::<Value>(&body) {
                    if let Some(method) = message.get("method").and_then(Value::as_str) {
                        entry.note_request(method, &message);
                    }
                }
            }
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
            None => {
                let peer = request.extensions().get::<Peer>().map(|p| p.0.clone());
                get_stream(inner, request.headers(), peer)
            }
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
    let accepted = accepts("application/json") && accepts("text/event-stream");
    if !accepted && !inner.config.lenient_accept {
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
    entry.note_request(method, &message);
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
    let params = message.get("params");
    let answer = match method {
        "ping" => Ok((Vec::new(), json!({}))),
        "logging/setLevel" => Ok((Vec::new(), json!({}))),
        "tools/list" => tools::list(
            inner.tools_now(),
            inner.config.page_size,
            inner.config.paging,
            params,
        )
        .map(|result| (Vec::new(), result)),
        "tools/call" => tools::call(inner.tools_now(), params)
            .map(|called| (called.notifications, called.result)),
        _ => Err((METHOD_NOT_FOUND, "Method not found")),
    };
    entry.saw_answer(method, &answer);
    let mut messages = match answer {
        Ok((notifications, result)) => {
            let mut messages = notifications;
            messages.push(json!({"jsonrpc": "2.0", "id": id, "result": result}));
            messages
        }
        Err((code, text)) => vec![rpc_error_body(id, code, text)],
    };
    if messages.len() > 1 && inner.config.reply == ReplyMode::Json {
        // Notifications before a result need an event stream, whatever the usual framing.
        let mut ids = inner.event_ids(
            session,
            frame::ids_needed(&inner.config.sse, messages.len()),
        );
        return (
            StatusCode::OK,
            SSE_HEADERS,
            frame::sse_text(&inner.config.sse, &mut ids, &messages),
        )
            .into_response();
    }
    inner.reply(session, &std::mem::take(&mut messages))
}

fn initialize(inner: &Inner, id: Value, params: Option<&Value>) -> Response {
    let Some(requested) = params
        .and_then(|p| p.get("protocolVersion"))
        .and_then(Value::as_str)
    else {
        let body = rpc_error_body(id, INVALID_PARAMS, "protocolVersion is required");
        return inner.reply(None, &[body]);
    };
    // Real servers answer a version they do not know with their latest rather than an error.
    let version = if inner.supports(requested) {
        requested
    } else {
        inner.latest_version()
    };
    let result = json!({
        "protocolVersion": version,
        "capabilities": {
            "tools": {"listChanged": !inner.config.tool_changes.is_empty()},
            "logging": {},
        },
        "serverInfo": {"name": inner.config.server_name, "version": "0.1.0"},
    });
    let session = inner.config.sessions.then(|| {
        let mut state = inner.lock();
        state.next_session += 1;
        let session = format!("s-{:06}", state.next_session);
        state.stats.sessions_opened += 1;
        let opened_unix_ms = unix_ms(&inner.clock);
        state.sessions.insert(
            session.clone(),
            Session {
                opened_unix_ms,
                requests: 0,
                next_event: 0,
                version: version.to_string(),
            },
        );
        session
    });
    let message = json!({"jsonrpc": "2.0", "id": id, "result": result});
    let mut response = inner.reply(session.as_deref(), &[message]);
    if let Some(session) = session {
        let value = HeaderValue::from_str(&session).expect("session ids are visible ASCII");
        response.headers_mut().insert(SESSION_HEADER, value);
    }
    response
}

/// A GET on the MCP path: 405, or a stream that stays open and says when the tool set changes.
fn get_stream(inner: &Arc<Inner>, headers: &HeaderMap, peer: Option<String>) -> Response {
    if inner.config.get_stream == GetStream::Refuse {
        // This server never pushes messages, so it offers no GET stream (spec-allowed 405).
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "POST, DELETE")],
        )
            .into_response();
    }
    if let Some(refusal) = session_refusal(inner, headers) {
        return refusal;
    }
    let session = header_str(headers, &SESSION_HEADER);
    let now = inner.now_ms();
    let changes: Vec<u64> = inner
        .tool_sets
        .iter()
        .map(|(at, _)| *at)
        .filter(|at| *at > now)
        .collect();
    let style = &inner.config.sse;
    let mut ids = inner.event_ids(session, 1 + changes.len() as u64);
    let priming = frame::sse_text(
        &SseStyle {
            priming: true,
            keep_alives: 0,
            notifications: 0,
            ..style.clone()
        },
        &mut ids,
        &[],
    );
    let notice = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
    let events: Vec<(u64, String)> = changes
        .into_iter()
        .map(|at| {
            let text = frame::sse_text(
                &SseStyle {
                    priming: false,
                    keep_alives: 0,
                    notifications: 0,
                    ..style.clone()
                },
                &mut ids,
                std::slice::from_ref(&notice),
            );
            (at, text)
        })
        .collect();
    let stream_inner = inner.clone();
    let session = session.map(str::to_owned);
    let notices = stream::iter(events).then(move |(at, text)| {
        let inner = stream_inner.clone();
        let (session, peer) = (session.clone(), peer.clone());
        async move {
            sleep_ms(at.saturating_sub(run_ms(&inner.clock))).await;
            let notice = NoticeRecord {
                at_ms: run_ms(&inner.clock),
                session,
                peer,
            };
            inner
                .notices
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(notice);
            Ok::<_, std::io::Error>(Bytes::from(text))
        }
    });
    let body = stream::once(async { Ok(Bytes::from(priming)) })
        .chain(notices)
        .chain(stream::pending());
    (StatusCode::OK, SSE_HEADERS, Body::from_stream(body)).into_response()
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

/// Refuses a request that lacks a live session (400 missing, unless the server is lenient about
/// it; 404 unknown or expired), lacks the
/// revision its session agreed on (400, unless the server is lenient about the header), or
/// names a protocol revision this server does not speak (400). Without sessions an absent
/// version header means 2025-03-26, as the spec says.
fn session_refusal(inner: &Inner, headers: &HeaderMap) -> Option<Response> {
    let session = header_str(headers, &SESSION_HEADER);
    if inner.config.sessions && (session.is_some() || !inner.config.lenient_session) {
        let Some(session) = session else {
            return Some(refuse(
                StatusCode::BAD_REQUEST,
                "Bad Request: Mcp-Session-Id header is required",
            ));
        };
        let now = unix_ms(&inner.clock);
        let mut state = inner.lock();
        let expired = match state.sessions.get_mut(session) {
            None => return Some(refuse(StatusCode::NOT_FOUND, "Session not found")),
            Some(live) => {
                if let Some(refusal) = strict_version(inner, headers, &live.version) {
                    return Some(refusal);
                }
                live.requests += 1;
                let too_old = inner
                    .config
                    .session_ttl_ms
                    .is_some_and(|ttl| now.saturating_sub(live.opened_unix_ms) >= ttl);
                let too_used = inner
                    .config
                    .session_max_requests
                    .is_some_and(|max| live.requests > max);
                too_old || too_used
            }
        };
        if expired {
            state.sessions.remove(session);
            state.stats.sessions_expired += 1;
            return Some(refuse(StatusCode::NOT_FOUND, "Session expired"));
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

/// The refusal of a request whose `MCP-Protocol-Version` is missing (from 2025-06-18 on, which
/// requires it) or names another revision than the session agreed on, unless the server is
/// lenient about the header.
fn strict_version(inner: &Inner, headers: &HeaderMap, agreed: &str) -> Option<Response> {
    if inner.config.lenient_version_header {
        return None;
    }
    match header_str(headers, &VERSION_HEADER) {
        None if agreed != FALLBACK_VERSION => Some(refuse(
            StatusCode::BAD_REQUEST,
            "Bad Request: MCP-Protocol-Version header is required",
        )),
        Some(sent) if sent != agreed => Some(refuse(
            StatusCode::BAD_REQUEST,
            "Bad Request: MCP-Protocol-Version differs from the negotiated one",
        )),
        _ => None,
    }
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
    let style = &inner.config.sse;
    let mode = inner.config.reply;
    Some(match kind {
        McpFailure::Http { status } => rpc_error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Value::Null,
            INTERNAL_ERROR,
            "injected failure",
        ),
        McpFailure::JsonRpcError { code } => inner.reply(
            call.session,
            &[rpc_error_body(call.id, code, "injected failure")],
        ),
        McpFailure::MalformedBody => {
            let (content_type, body) = match mode {
                ReplyMode::Json => ("application/json", "{\"jsonrpc\":\"2.0\",\"id\":"),
                ReplyMode::Sse => (
                    "text/event-stream",
                    "event: message\ndata: {\"jsonrpc\":\n\n",
                ),
            };
            (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        McpFailure::Hang => std::future::pending().await,
        McpFailure::CutStream => {
            let mut ids = inner.event_ids(call.session, 1);
            frame::cut_stream(mode, style, &mut ids, call.id)
        }
        McpFailure::SessionTerminated => {
            if let Some(session) = call.session {
                inner.lock().sessions.remove(session);
            }
            refuse(StatusCode::NOT_FOUND, "Session not found")
        }
        hostile => {
            // The honest answer the hostile one distorts: the first page of tools for a
            // listing, an empty result otherwise.
            let result = match call.method {
                "tools/list" => tools::list(
                    inner.tools_now(),
                    inner.config.page_size,
                    Paging::Normal,
                    None,
                )
                .unwrap_or_else(|_| json!({})),
                _ => json!({}),
            };
            let mut ids = inner.event_ids(call.session, frame::ids_needed(style, 1));
            frame::hostile(hostile, mode, style, &mut ids, call.id, result)?
        }
    })
}
