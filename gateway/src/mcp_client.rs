//! A Streamable HTTP MCP client that lists a server's tools and calls one.
//!
//! One listing is one session, as LiteLLM does it: `initialize` (proposing
//! our latest revision and accepting any we support), then
//! `notifications/initialized`, then `tools/list` following `nextCursor`, then
//! `DELETE` of the session. Replies may be JSON or SSE. A 404 on a session
//! means the server forgot it: the client starts a new session once and lists
//! again from the first page, as the spec requires.
//!
//! A tool call is one session too: `initialize`, `notifications/initialized`,
//! `tools/call`, `DELETE`.
//!
//! A listing's session can be kept to listen ([`listen`]): a GET with
//! `Accept: text/event-stream` on the session opens the server's stream,
//! read as it arrives for `notifications/tools/list_changed`. A server that
//! answers the GET with 405 offers no stream, and the GET is not repeated.
//! The stream's SSE lines follow the same rules as a POST's SSE reply
//! ([`SseEvents`]).
//!
//! Every failure says the stage it happened in and the upstream's HTTP status
//! or JSON-RPC code, so that nothing turns into a silent empty list. The
//! stage in progress is also published through [`StageCell`], so a caller's
//! timeout can say where the time ran out.
//!
//! A hostile upstream ends an exchange with an error that names what was
//! wrong: a reply over [`MAX_REPLY_BYTES`], a reply for another request id,
//! a content type that is neither JSON nor SSE, a redirect (never
//! followed), a cursor that repeats. The session's closing `DELETE` is not
//! part of the exchange: the caller gets it back as a [`Closing`] and sends
//! it when the result is safe, so a clean-up that hangs cannot lose a
//! finished listing.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use http::header::{HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::http_client::{HttpClient, HttpError};

/// Revisions this client speaks, newest first.
pub const SUPPORTED_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// A server that keeps handing out cursors is broken; stop rather than loop.
const MAX_PAGES: usize = 1_000;
/// The largest reply the client reads; a larger one ends the exchange.
pub const MAX_REPLY_BYTES: usize = 2 * 1024 * 1024;

/// The request that ends a session, for the caller to send once the
/// exchange's result is safe; empty when there is no session to end. It
/// also says whether the server declared `tools.listChanged`, so that the
/// caller may keep the session to [`listen`] first.
#[derive(Debug, Default)]
pub struct Closing {
    delete: Option<http::Request<Vec<u8>>>,
    list_changed: bool,
}

impl Closing {
    pub fn request(self) -> Option<http::Request<Vec<u8>>> {
        self.delete
    }

    /// Whether the session is open and its server declared that it sends
    /// `notifications/tools/list_changed`.
    pub fn list_changed(&self) -> bool {
        self.list_changed && self.delete.is_some()
    }

    /// The GET that opens the session's stream: the session's URL and
    /// headers (credentials, session id, revision), accepting only SSE.
    pub fn listen_request(&self) -> Option<http::Request<Vec<u8>>> {
        let delete = self.delete.as_ref()?;
        let mut builder = http::Request::builder()
            .method(http::Method::GET)
            .uri(delete.uri().clone());
        for (name, value) in delete.headers() {
            if name != ACCEPT {
                builder = builder.header(name, value);
            }
        }
        builder
            .header(ACCEPT, "text/event-stream")
            .body(Vec::new())
            .ok()
    }
}

/// Where in a discovery attempt something happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Token,
    Connect,
    Initialize,
    List,
    /// A `tools/call` made on a caller's behalf.
    Call,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Token => "token",
            Stage::Connect => "connect",
            Stage::Initialize => "initialize",
            Stage::List => "list",
            Stage::Call => "call",
        }
    }

    fn from_u8(v: u8) -> Stage {
        match v {
            0 => Stage::Token,
            1 => Stage::Connect,
            2 => Stage::Initialize,
            3 => Stage::List,
            _ => Stage::Call,
        }
    }
}

/// The stage a listing has reached, readable after its future is dropped.
#[derive(Clone, Debug)]
pub struct StageCell(Arc<AtomicU8>);

impl StageCell {
    pub fn new(stage: Stage) -> Self {
        StageCell(Arc::new(AtomicU8::new(stage as u8)))
    }

    pub fn get(&self) -> Stage {
        Stage::from_u8(self.0.load(Ordering::SeqCst))
    }

    pub fn set(&self, stage: Stage) {
        self.0.store(stage as u8, Ordering::SeqCst);
    }
}

/// One tool as the server described it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(rename = "inputSchema")]
    pub input_schema: Value,
}

/// What went wrong, without the stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    Transport(HttpError),
    Status { status: u16 },
    JsonRpc { code: i64, message: String },
    Protocol(String),
}

/// A listing that did not finish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct McpError {
    pub stage: Stage,
    pub failure: Failure,
}

impl McpError {
    /// The upstream's HTTP status, when it answered with one.
    pub fn status(&self) -> Option<u16> {
        match self.failure {
            Failure::Status { status } => Some(status),
            _ => None,
        }
    }
}

impl std::fmt::Display for McpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ", self.stage.as_str())?;
        match &self.failure {
            Failure::Transport(e) => write!(f, "{e}"),
            Failure::Status { status } => {
                let reason = http::StatusCode::from_u16(*status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("");
                write!(f, "HTTP {status} {reason}").map(|_| ())
            }
            Failure::JsonRpc { code, message } => write!(f, "JSON-RPC error {code}: {message}"),
            Failure::Protocol(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for McpError {}

/// Switches that make the client behave like known-broken clients. All off
/// in the reference gateway.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientQuirks {
    /// Fail on `404` instead of starting a new session.
    pub no_reinitialize_on_404: bool,
    /// Keep only the first `tools/list` page.
    pub first_page_only: bool,
    /// Refuse an `initialize` answer that opens no session.
    pub session_id_required: bool,
    /// Send the closing `DELETE` inside the exchange and fail it on a 404.
    pub delete_in_exchange: bool,
    /// Open a throwaway session before the one that does the work.
    pub throwaway_session: bool,
    /// Parse an SSE event's empty `data:` as JSON, and fail on any event
    /// whose data is not JSON.
    pub parse_empty_sse_data: bool,
    /// Read only the first SSE event that carries data.
    pub first_sse_event_only: bool,
    /// Split SSE lines on LF alone, leaving a CR in the line.
    pub sse_lf_only: bool,
    /// Wait forever for a response whose stream broke.
    pub hang_on_cut_stream: bool,
    /// Wait forever after an error status to a request after `initialize`.
    pub hang_on_error_status: bool,
    /// Send our own latest revision in `MCP-Protocol-Version`, whatever the
    /// server chose.
    pub hard_coded_version: bool,
    /// Follow a `nextCursor` that was handed out before.
    pub no_cursor_guard: bool,
    /// Send the listening GET again at once after a 405.
    pub get_again_after_405: bool,
}

/// What a listing needs.
pub struct ListRequest<'a> {
    pub url: &'a str,
    /// Authentication and static headers, already resolved.
    pub headers: &'a [(HeaderName, HeaderValue)],
    pub quirks: ClientQuirks,
}

struct Session<'a> {
    http: &'a dyn HttpClient,
    request: &'a ListRequest<'a>,
    id: Option<HeaderValue>,
    version: Option<HeaderValue>,
    /// Whether the server declared `capabilities.tools.listChanged`.
    list_changed: bool,
    next_id: u64,
}

impl<'a> Session<'a> {
    fn new(http: &'a dyn HttpClient, request: &'a ListRequest<'a>) -> Self {
        Session {
            http,
            request,
            id: None,
            version: None,
            list_changed: false,
            next_id: 1,
        }
    }

    /// How many times a forgotten session (404) may be started anew.
    fn fresh_sessions_allowed(&self) -> u32 {
        if self.request.quirks.no_reinitialize_on_404 {
            0
        } else {
            1
        }
    }
}

/// Why one POST failed: a 404 on a live session is told apart because it
/// starts a new session.
enum PostError {
    SessionGone,
    Other(Failure),
}

impl<'a> Session<'a> {
    fn build(
        &self,
        method: http::Method,
        body: Option<&Value>,
    ) -> Result<http::Request<Vec<u8>>, Failure> {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(self.request.url)
            .header(ACCEPT, "application/json, text/event-stream");
        if body.is_some() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        for (name, value) in self.request.headers {
            builder = builder.header(name, value);
        }
        if let Some(id) = &self.id {
            builder = builder.header(SESSION_HEADER, id);
        }
        if let Some(version) = &self.version {
            builder = builder.header(VERSION_HEADER, version);
        }
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        builder
            .body(bytes)
            .map_err(|e| Failure::Protocol(format!("could not build the request: {e}")))
    }

    /// POSTs a message; for a request, returns the JSON-RPC result.
    async fn post(
        &mut self,
        method: &str,
        params: Value,
        notification: bool,
    ) -> Result<(Value, http::HeaderMap), PostError> {
        let mut message = json!({"jsonrpc": "2.0", "method": method});
        if !params.is_null() {
            message["params"] = params;
        }
        let id = self.next_id;
        if !notification {
            message["id"] = json!(id);
            self.next_id += 1;
        }
        let request = self
            .build(http::Method::POST, Some(&message))
            .map_err(PostError::Other)?;
        let response = match self.http.send(request).await {
            Ok(response) => response,
            // Defect cut-stream-hangs: the reader task of MCP SDK 1.x ends
            // with the stream, and nothing wakes the request waiting for its
            // response (python-sdk issue 1577).
            Err(HttpError::Io(_)) if self.request.quirks.hang_on_cut_stream => {
                return std::future::pending().await
            }
            Err(e) => return Err(PostError::Other(Failure::Transport(e))),
        };
        let status = response.status();
        if status == http::StatusCode::NOT_FOUND && self.id.is_some() {
            return Err(PostError::SessionGone);
        }
        if status.is_redirection() {
            return Err(PostError::Other(Failure::Protocol(format!(
                "HTTP {} redirect, not followed: a gateway calls only the URL it was given",
                status.as_u16()
            ))));
        }
        // Defect http-error-after-initialize-hangs: after initialize the
        // error status goes to a reader task that drops it, and the request
        // waits for a response that never comes (python-sdk issue 2110).
        if !status.is_success()
            && method != "initialize"
            && self.request.quirks.hang_on_error_status
        {
            return std::future::pending().await;
        }
        if !status.is_success() {
            return Err(PostError::Other(Failure::Status {
                status: status.as_u16(),
            }));
        }
        if response.body().len() > MAX_REPLY_BYTES {
            return Err(PostError::Other(Failure::Protocol(format!(
                "reply is {} bytes, over the {MAX_REPLY_BYTES}-byte limit",
                response.body().len()
            ))));
        }
        let headers = response.headers().clone();
        if notification {
            return Ok((Value::Null, headers));
        }
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let body = response.into_body();
        let reply = if content_type.starts_with("text/event-stream") {
            match find_in_sse(&body, id, &self.request.quirks) {
                // Defect cut-stream-hangs: a stream that ended without the
                // response is waited on all the same.
                Err(SseError::Ended) if self.request.quirks.hang_on_cut_stream => {
                    return std::future::pending().await
                }
                other => other.map_err(SseError::into_post)?,
            }
        } else if content_type.starts_with("application/json") {
            let reply = serde_json::from_slice::<Value>(&body).map_err(|_| {
                PostError::Other(Failure::Protocol("reply is not valid JSON".to_string()))
            })?;
            if reply.get("id").and_then(Value::as_u64) != Some(id) {
                return Err(PostError::Other(Failure::Protocol(format!(
                    "reply is for request id {}, not {id}",
                    reply.get("id").map_or("none".to_string(), Value::to_string)
                ))));
            }
            reply
        } else {
            return Err(PostError::Other(Failure::Protocol(format!(
                "reply has content type {:?}, expected application/json or text/event-stream",
                content_type
            ))));
        };
        match (reply.get("result"), reply.get("error")) {
            (Some(result), _) => Ok((result.clone(), headers)),
            (None, Some(error)) => Err(PostError::Other(Failure::JsonRpc {
                code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .chars()
                    .take(200)
                    .collect(),
            })),
            (None, None) => Err(PostError::Other(Failure::Protocol(
                "reply has neither result nor error".to_string(),
            ))),
        }
    }

    async fn initialize(&mut self, stage: &StageCell) -> Result<(), McpError> {
        self.id = None;
        self.version = None;
        self.list_changed = false;
        stage.set(Stage::Initialize);
        let params = json!({
            "protocolVersion": SUPPORTED_VERSIONS[0],
            "capabilities": {},
            "clientInfo": {"name": "mcpsim-gateway", "version": env!("CARGO_PKG_VERSION")},
        });
        let (result, headers) = self
            .post("initialize", params, false)
            .await
            .map_err(|e| at(Stage::Initialize, e))?;
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(McpError {
                stage: Stage::Initialize,
                failure: Failure::Protocol(format!(
                    "server chose protocol version {version:?}, which this client does not speak"
                )),
            });
        }
        // Defect protocol-version-hard-coded: the header names the revision
        // the client proposed, not the one the server chose (envoy
        // ai-gateway issue 2542).
        if self.request.quirks.hard_coded_version {
            self.version = Some(HeaderValue::from_static(SUPPORTED_VERSIONS[0]));
        } else if version != "2025-03-26" {
            // 2025-03-26 has no protocol-version header.
            self.version = Some(HeaderValue::from_static(match version {
                "2025-11-25" => "2025-11-25",
                _ => "2025-06-18",
            }));
        }
        self.list_changed = result
            .pointer("/capabilities/tools/listChanged")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        self.id = headers.get(SESSION_HEADER).cloned();
        // Defect stateless-upstream-refused: a session id is demanded of
        // every upstream, though a server may be stateless (ContextForge
        // issue 5484).
        if self.id.is_none() && self.request.quirks.session_id_required {
            return Err(McpError {
                stage: Stage::Initialize,
                failure: Failure::Protocol(
                    "the server opened no session (no Mcp-Session-Id)".to_string(),
                ),
            });
        }
        self.post("notifications/initialized", Value::Null, true)
            .await
            .map_err(|e| at(Stage::Initialize, e))?;
        Ok(())
    }

    async fn list_all(&mut self, stage: &StageCell) -> Result<Vec<Tool>, PostError> {
        stage.set(Stage::List);
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => Value::Null,
            };
            let (result, _) = self.post("tools/list", params, false).await?;
            let page: Vec<Tool> = match result.get("tools") {
                Some(list) => serde_json::from_value(list.clone()).map_err(|e| {
                    PostError::Other(Failure::Protocol(format!(
                        "tools/list result is malformed: {}",
                        crate::spec::describe_serde_error(&e)
                    )))
                })?,
                None => {
                    return Err(PostError::Other(Failure::Protocol(
                        "tools/list result has no tools".to_string(),
                    )))
                }
            };
            tools.extend(page);
            match result.get("nextCursor").and_then(Value::as_str) {
                Some(next) if !self.request.quirks.first_page_only => {
                    // Defect no-stuck-cursor-guard: a repeated cursor is
                    // followed as if it were new (codebase-memory-mcp issue
                    // 1247), until the listing's timeout.
                    if !seen.insert(next.to_string()) && !self.request.quirks.no_cursor_guard {
                        return Err(PostError::Other(Failure::Protocol(format!(
                            "tools/list handed out a cursor it had handed out before, after {} tools; stopped rather than loop",
                            tools.len()
                        ))));
                    }
                    cursor = Some(next.to_string());
                }
                _ => return Ok(tools),
            }
        }
        Err(PostError::Other(Failure::Protocol(format!(
            "tools/list still had a nextCursor after {MAX_PAGES} pages"
        ))))
    }

    /// The request that ends the session, for the caller to send; best
    /// effort, since the exchange already succeeded or failed on its own
    /// terms.
    fn closing(&mut self) -> Closing {
        if self.id.is_none() {
            return Closing::default();
        }
        let delete = self.build(http::Method::DELETE, None).ok();
        self.id = None;
        Closing {
            delete,
            list_changed: self.list_changed,
        }
    }

    /// Ends an exchange that succeeded: hands its `DELETE` to the caller,
    /// or, with the `delete-404-fails-session` defect, sends it here.
    async fn finish<T>(&mut self, output: T, stage: Stage) -> (Result<T, McpError>, Closing) {
        let closing = self.closing();
        // Defect delete-404-fails-session: the closing DELETE is awaited in
        // the exchange, and a 404 to it (the server had already ended the
        // session) is an error (typescript-sdk PR 2466).
        if !self.request.quirks.delete_in_exchange {
            return (Ok(output), closing);
        }
        if let Some(request) = closing.request() {
            if let Ok(response) = self.http.send(request).await {
                if response.status() == http::StatusCode::NOT_FOUND {
                    let error = McpError {
                        stage,
                        failure: Failure::Status { status: 404 },
                    };
                    return (Err(error), Closing::default());
                }
            }
        }
        (Ok(output), Closing::default())
    }

    /// Opens the session that does the work; with the
    /// `initialize-twice-per-exchange` defect, one to throw away first.
    async fn open(&mut self, stage: &StageCell) -> Result<(), McpError> {
        // Defect initialize-twice-per-exchange: a client per request that
        // connects (initialize) and is then replaced by the one that does the
        // work, without ending the first session (FastMCP issues 2019, 3466).
        if self.request.quirks.throwaway_session {
            self.initialize(stage).await?;
        }
        self.initialize(stage).await
    }
}

fn at(stage: Stage, error: PostError) -> McpError {
    let failure = match error {
        PostError::SessionGone => Failure::Status { status: 404 },
        PostError::Other(f) => f,
    };
    let stage = match failure {
        Failure::Transport(HttpError::Connect(_)) => Stage::Connect,
        _ => stage,
    };
    McpError { stage, failure }
}

/// Why an SSE body gave no response.
enum SseError {
    /// The stream ended without it.
    Ended,
    Other(String),
}

impl SseError {
    fn into_post(self) -> PostError {
        PostError::Other(Failure::Protocol(match self {
            SseError::Ended => "SSE stream ended without the response".to_string(),
            SseError::Other(why) => why,
        }))
    }
}

/// Finds the JSON-RPC response with this id among the events of an SSE body.
/// An event without data (a priming event, whose `data:` is empty) is not
/// dispatched, and an event whose data is not JSON is passed over, as the
/// SSE spec has it.
fn find_in_sse(body: &[u8], id: u64, quirks: &ClientQuirks) -> Result<Value, SseError> {
    let text = String::from_utf8_lossy(body);
    let mut dispatched = 0;
    let mut dispatch = |data: &mut Option<String>| -> Result<Option<Value>, SseError> {
        let Some(data) = data.take() else {
            return Ok(None);
        };
        // Defect empty-sse-data-parsed: every data field is parsed as JSON,
        // an empty one included, and a parse error ends the exchange
        // (agentgateway PR 681: "EOF while parsing").
        if quirks.parse_empty_sse_data {
            if let Err(e) = serde_json::from_str::<Value>(&data) {
                return Err(SseError::Other(format!("SSE event data is not JSON: {e}")));
            }
        }
        if data.is_empty() {
            return Ok(None);
        }
        dispatched += 1;
        let found = serde_json::from_str::<Value>(&data)
            .ok()
            .filter(|v| v.get("id").and_then(Value::as_u64) == Some(id));
        // Defect first-sse-event-only: the first event is taken for the
        // response (envoy ai-gateway issue 2219).
        if found.is_none() && quirks.first_sse_event_only && dispatched == 1 {
            return Err(SseError::Other(
                "the first SSE event is not the response".to_string(),
            ));
        }
        Ok(found)
    };
    let mut events = SseEvents::new(quirks);
    for line in text.split('\n') {
        if let Some(mut ended) = events.line(line) {
            if let Some(found) = dispatch(&mut ended)? {
                return Ok(found);
            }
        }
    }
    let mut data = events.data.take();
    if let Some(found) = dispatch(&mut data)? {
        return Ok(found);
    }
    Err(SseError::Ended)
}

/// The line rules of an SSE stream, shared by a POST's reply and the
/// listening stream: a line ends at LF, a CR before it is dropped, a blank
/// line ends an event, and `data:` fields join with LF. Other fields
/// (`id:`, `event:`, comments) carry nothing this client uses.
struct SseEvents {
    data: Option<String>,
    lf_only: bool,
}

impl SseEvents {
    fn new(quirks: &ClientQuirks) -> Self {
        SseEvents {
            data: None,
            lf_only: quirks.sse_lf_only,
        }
    }

    /// Takes one line without its LF; at the end of an event, gives the
    /// event's data if it had a `data:` field (an empty one included).
    fn line(&mut self, line: &str) -> Option<Option<String>> {
        // Defect crlf-sse-not-split: lines end at LF alone, so a CRLF
        // stream's blank lines keep their CR and never end an event (envoy
        // ai-gateway issue 1398).
        let line = if self.lf_only {
            line
        } else {
            line.strip_suffix('\r').unwrap_or(line)
        };
        if line.is_empty() {
            return Some(self.data.take());
        }
        if let Some(rest) = line.strip_prefix("data:") {
            let data = self.data.get_or_insert_with(String::new);
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
        }
        None
    }
}

/// What the listening stream said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heard {
    /// `notifications/tools/list_changed`: the tool set changed.
    ListChanged,
    /// The stream ended or broke: nothing more will come on it.
    Ended,
}

/// A session's open stream, read as it arrives.
pub struct Listener {
    body: Box<dyn crate::http_client::BodyChunks>,
    pending: Vec<u8>,
    events: SseEvents,
}

impl Listener {
    /// Waits for the next notice; events other than `list_changed`
    /// (priming events, keep-alives, other notifications) are passed over.
    pub async fn next(&mut self) -> Heard {
        loop {
            while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                if let Some(Some(data)) = self.events.line(&line) {
                    let method = serde_json::from_str::<Value>(&data)
                        .ok()
                        .and_then(|v| v.get("method").and_then(Value::as_str).map(str::to_owned));
                    if method.as_deref() == Some("notifications/tools/list_changed") {
                        return Heard::ListChanged;
                    }
                }
            }
            match self.body.next_chunk().await {
                Some(Ok(chunk)) if self.pending.len() + chunk.len() <= MAX_REPLY_BYTES => {
                    self.pending.extend_from_slice(&chunk)
                }
                // An event larger than a whole reply may be is hostile.
                Some(Ok(_)) | Some(Err(_)) | None => return Heard::Ended,
            }
        }
    }
}

/// Opens a kept session's stream with its GET ([`Closing::listen_request`]).
/// `None` when the server offers none (405, as the spec allows, or any
/// answer that is not a 200 event stream): the caller falls back to
/// re-checking, and the GET is not sent again.
pub async fn listen(
    http: &dyn HttpClient,
    request: http::Request<Vec<u8>>,
    quirks: &ClientQuirks,
) -> Option<Listener> {
    loop {
        let streamed = http.stream(request.clone()).await.ok()?;
        let status = streamed.head.status;
        // Defect get-405-retry-loop: a 405 to the GET is taken for a
        // passing failure and the GET is sent again at once, without end
        // (envoy ai-gateway issue 1924; python-sdk PR 1943).
        if status == http::StatusCode::METHOD_NOT_ALLOWED && quirks.get_again_after_405 {
            continue;
        }
        let content_type = streamed
            .head
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if !status.is_success() || !content_type.starts_with("text/event-stream") {
            return None;
        }
        return Some(Listener {
            body: streamed.body,
            pending: Vec::new(),
            events: SseEvents::new(quirks),
        });
    }
}

/// Lists every tool of one server in a fresh session; gives the result and
/// the request that ends the session.
pub async fn list_tools(
    http: &dyn HttpClient,
    request: &ListRequest<'_>,
    stage: &StageCell,
) -> (Result<Vec<Tool>, McpError>, Closing) {
    let mut session = Session::new(http, request);
    let mut fresh_sessions_left = session.fresh_sessions_allowed();
    loop {
        if let Err(error) = session.open(stage).await {
            return (Err(error), Closing::default());
        }
        match session.list_all(stage).await {
            Ok(tools) => return session.finish(tools, Stage::List).await,
            Err(PostError::SessionGone) if fresh_sessions_left > 0 => {
                // The server forgot the session: start again, without DELETE.
                fresh_sessions_left -= 1;
            }
            Err(e) => {
                let error = at(Stage::List, e);
                // A 401 must reach the caller at once, so it can drop the
                // token: a DELETE with rejected credentials would only be
                // refused too.
                let closing = if error.status() == Some(401) {
                    Closing::default()
                } else {
                    session.closing()
                };
                return (Err(error), closing);
            }
        }
    }
}

/// Calls one tool in a fresh session and returns the JSON-RPC `result` as
/// the server sent it (a result with `isError` is still a result), and the
/// request that ends the session.
pub async fn call_tool(
    http: &dyn HttpClient,
    request: &ListRequest<'_>,
    stage: &StageCell,
    name: &str,
    arguments: &Value,
) -> (Result<Value, McpError>, Closing) {
    let mut session = Session::new(http, request);
    let mut fresh_sessions_left = session.fresh_sessions_allowed();
    let params = json!({"name": name, "arguments": arguments});
    loop {
        if let Err(error) = session.open(stage).await {
            return (Err(error), Closing::default());
        }
        stage.set(Stage::Call);
        match session.post("tools/call", params.clone(), false).await {
            Ok((result, _)) => return session.finish(result, Stage::Call).await,
            Err(PostError::SessionGone) if fresh_sessions_left > 0 => {
                // The server forgot the session before the call reached a
                // tool: start again, without DELETE.
                fresh_sessions_left -= 1;
            }
            Err(e) => {
                let error = at(Stage::Call, e);
                return (Err(error), session.closing());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A script's answer to a JSON-RPC method and request id.
    type Script = Box<dyn Fn(&str, u64) -> http::Response<Vec<u8>> + Send + Sync>;

    /// A hostile reply to a request id.
    type Reply = Box<dyn Fn(u64) -> http::Response<Vec<u8>> + Send + Sync>;

    /// Answers each POST from a script, by JSON-RPC method; counts them.
    struct Scripted {
        answer: Script,
        sent: Mutex<Vec<String>>,
    }

    impl HttpClient for Scripted {
        fn send(
            &self,
            request: http::Request<Vec<u8>>,
        ) -> crate::http_client::BoxFuture<'_, Result<http::Response<Vec<u8>>, HttpError>> {
            let body: Value = serde_json::from_slice(request.body()).unwrap_or(Value::Null);
            let method = body["method"].as_str().unwrap_or("DELETE").to_string();
            let id = body["id"].as_u64().unwrap_or(0);
            self.sent.lock().unwrap().push(method.clone());
            let response = (self.answer)(&method, id);
            Box::pin(async move { Ok(response) })
        }
    }

    fn json_reply(id: u64, result: Value) -> http::Response<Vec<u8>> {
        let body = json!({"jsonrpc": "2.0", "id": id, "result": result});
        http::Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .header(SESSION_HEADER, "s-1")
            .body(body.to_string().into_bytes())
            .unwrap()
    }

    fn initialized(method: &str, id: u64) -> Option<http::Response<Vec<u8>>> {
        match method {
            "initialize" => Some(json_reply(id, json!({"protocolVersion": "2025-11-25"}))),
            "notifications/initialized" => Some(
                http::Response::builder()
                    .status(202)
                    .body(Vec::new())
                    .unwrap(),
            ),
            _ => None,
        }
    }

    fn list_with(
        tools: impl Fn(u64) -> http::Response<Vec<u8>> + Send + Sync + 'static,
    ) -> (Result<Vec<Tool>, McpError>, Closing, Vec<String>) {
        let http = Scripted {
            answer: Box::new(move |method, id| {
                initialized(method, id).unwrap_or_else(|| tools(id))
            }),
            sent: Mutex::new(Vec::new()),
        };
        let request = ListRequest {
            url: "http://mcp/mcp",
            headers: &[],
            quirks: ClientQuirks::default(),
        };
        let stage = StageCell::new(Stage::Connect);
        let (result, closing) =
            futures_util::FutureExt::now_or_never(list_tools(&http, &request, &stage))
                .expect("the scripted client never waits");
        let sent = http.sent.lock().unwrap().clone();
        (result, closing, sent)
    }

    #[test]
    fn hostile_replies_end_the_listing_with_what_was_wrong() {
        let tool = json!({"name": "t", "inputSchema": {"type": "object"}});
        let cases: Vec<(Reply, &str)> = vec![
            (
                Box::new(|id| json_reply(id + 7, json!({"tools": []}))),
                "reply is for request id",
            ),
            (
                Box::new(|_| {
                    http::Response::builder()
                        .status(302)
                        .header("location", "http://elsewhere/mcp")
                        .body(Vec::new())
                        .unwrap()
                }),
                "redirect, not followed",
            ),
            (
                Box::new(|_| {
                    http::Response::builder()
                        .status(200)
                        .header("content-type", "application/json")
                        .body(vec![b' '; MAX_REPLY_BYTES + 1])
                        .unwrap()
                }),
                "over the 2097152-byte limit",
            ),
            (
                Box::new(|_| {
                    http::Response::builder()
                        .status(200)
                        .header("content-type", "text/html")
                        .body(b"<html>oops</html>".to_vec())
                        .unwrap()
                }),
                "content type \"text/html\"",
            ),
            (
                Box::new(|_| {
                    http::Response::builder()
                        .status(200)
                        .header("content-type", "application/json")
                        .body(vec![0xff, 0xfe, b'{'])
                        .unwrap()
                }),
                "not valid JSON",
            ),
            (
                Box::new(move |id| json_reply(id, json!({"tools": [tool], "nextCursor": "same"}))),
                "cursor it had handed out before",
            ),
        ];
        for (answer, expected) in cases {
            let (result, closing, _) = list_with(answer);
            let error = result.unwrap_err();
            assert_eq!(error.stage, Stage::List, "{error}");
            assert!(error.to_string().contains(expected), "{error}");
            // The session is still ended, by the caller.
            assert!(closing.request().is_some());
        }
    }

    #[test]
    fn a_finished_listing_hands_its_delete_to_the_caller() {
        let tool = json!({"name": "t", "inputSchema": {"type": "object"}});
        let (result, closing, sent) =
            list_with(move |id| json_reply(id, json!({"tools": [tool.clone()]})));
        assert_eq!(result.unwrap().len(), 1);
        assert_eq!(
            sent,
            ["initialize", "notifications/initialized", "tools/list"]
        );
        let delete = closing.request().unwrap();
        assert_eq!(delete.method(), http::Method::DELETE);
        assert_eq!(delete.headers()[SESSION_HEADER], "s-1");
    }

    #[test]
    fn sse_bodies_yield_the_matching_response() {
        let body = b"id: 0\ndata:\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\nevent: message\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"ok\":true}}\n\n";
        let quirks = ClientQuirks::default();
        let found = find_in_sse(body, 3, &quirks).ok().unwrap();
        assert_eq!(found["result"]["ok"], true);
        assert!(find_in_sse(body, 4, &quirks).is_err());
    }

    /// A body handed out in the chunks given.
    struct Chunked(Vec<&'static [u8]>);

    impl crate::http_client::BodyChunks for Chunked {
        fn next_chunk(
            &mut self,
        ) -> crate::http_client::BoxFuture<'_, Option<Result<Vec<u8>, HttpError>>> {
            let next = (!self.0.is_empty()).then(|| Ok(self.0.remove(0).to_vec()));
            Box::pin(async move { next })
        }
    }

    #[test]
    fn the_listening_stream_is_read_across_chunks_with_the_sse_line_rules() {
        let chunks: Vec<&'static [u8]> = vec![
            b"id: 0\r\ndata:\r\n\r\n: keep-alive\r\n\r\nevent: message\r\ndata: {\"jsonrpc\":\"2.0\",",
            b"\"method\":\"notifications/message\"}\r\n\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":",
            b"\"notifications/tools/list_changed\"}\r\n",
            b"\r\n",
        ];
        let mut listener = Listener {
            body: Box::new(Chunked(chunks)),
            pending: Vec::new(),
            events: SseEvents::new(&ClientQuirks::default()),
        };
        let heard = |listener: &mut Listener| {
            futures_util::FutureExt::now_or_never(listener.next()).expect("never waits")
        };
        assert_eq!(heard(&mut listener), Heard::ListChanged);
        assert_eq!(heard(&mut listener), Heard::Ended);
    }

    #[test]
    fn a_405_to_the_listening_get_is_final() {
        struct Refusing(Mutex<u32>);
        impl HttpClient for Refusing {
            fn send(
                &self,
                _request: http::Request<Vec<u8>>,
            ) -> crate::http_client::BoxFuture<'_, Result<http::Response<Vec<u8>>, HttpError>>
            {
                *self.0.lock().unwrap() += 1;
                let response = http::Response::builder()
                    .status(405)
                    .body(Vec::new())
                    .unwrap();
                Box::pin(async move { Ok(response) })
            }
        }
        let http = Refusing(Mutex::new(0));
        let request = http::Request::get("http://mcp/mcp")
            .body(Vec::new())
            .unwrap();
        let listener =
            futures_util::FutureExt::now_or_never(listen(&http, request, &ClientQuirks::default()))
                .expect("never waits");
        assert!(listener.is_none());
        assert_eq!(*http.0.lock().unwrap(), 1);
    }

    #[test]
    fn errors_name_the_stage_and_the_status() {
        let e = McpError {
            stage: Stage::Initialize,
            failure: Failure::Status { status: 401 },
        };
        assert_eq!(e.to_string(), "initialize: HTTP 401 Unauthorized");
        let e = at(
            Stage::List,
            PostError::Other(Failure::Transport(HttpError::Connect(
                "connection refused".into(),
            ))),
        );
        assert_eq!(
            e.to_string(),
            "connect: connection failed: connection refused"
        );
    }
}
