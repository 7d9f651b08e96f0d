//! What a fake MCP server is told to be: its tools, framing, auth, quirks
//! and injected failures. Every behaviour beyond the plain protocol is off
//! by default; where the spec says MUST (Origin validation, Accept,
//! Content-Type, sessions, supported revisions, the `MCP-Protocol-Version`
//! header after `initialize`) the server is strict by default and leniency
//! is a stated option.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

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
    /// Origins allowed to call (any port): a request whose `Origin` is not one of them gets
    /// 403, as the transport spec requires. A request without `Origin` (server to server) is
    /// always served.
    pub allowed_origins: Vec<String>,
    /// How SSE replies are framed.
    pub sse: SseStyle,
    /// How `tools/list` pages behave.
    pub paging: Paging,
    /// The tool set changes at these instants of the run; `listChanged` is declared then, and
    /// an open GET stream is sent `notifications/tools/list_changed` at each.
    pub tool_changes: Vec<ToolChange>,
    /// What a GET (the server-to-client stream) gets.
    pub get_stream: GetStream,
    /// A session ends on the server this long after it opened: later requests get 404.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_ttl_ms: Option<u64>,
    /// A session ends on the server after this many requests: later ones get 404.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_max_requests: Option<u32>,
    /// Serve a request after `initialize` whose `MCP-Protocol-Version` is missing (the client
    /// MUST send it from 2025-06-18 on) or names another revision than its session agreed on,
    /// as lenient real servers do; a missing header then means 2025-03-26. By default such a
    /// request is refused with 400.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lenient_version_header: bool,
    /// Serve a request after `initialize` that carries no `Mcp-Session-Id` (the client MUST send
    /// the one it was given; a server SHOULD refuse with 400, as this one does by default) as
    /// one outside any session.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lenient_session: bool,
    /// Serve a POST whose `Accept` does not list both `application/json` and
    /// `text/event-stream` (the spec's MUST; refused with 406 by default), as lenient real
    /// servers do.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lenient_accept: bool,
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
            allowed_origins: ["http://localhost", "http://127.0.0.1", "http://[::1]"]
                .map(String::from)
                .to_vec(),
            sse: SseStyle::default(),
            paging: Paging::Normal,
            tool_changes: Vec::new(),
            get_stream: GetStream::Refuse,
            session_ttl_ms: None,
            session_max_requests: None,
            lenient_version_header: false,
            lenient_session: false,
            lenient_accept: false,
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
    /// A JSON Schema for `structuredContent`, listed with the tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// What a call of the tool answers.
    #[serde(default, skip_serializing_if = "ToolBehaviour::is_default")]
    pub behaviour: ToolBehaviour,
}

impl ToolSpec {
    /// A tool with a description, an open object schema, and the default answer.
    pub fn named(name: impl Into<String>) -> Self {
        let name = name.into();
        ToolSpec {
            description: Some(format!("The tool {name}.")),
            name,
            input_schema: empty_object_schema(),
            output_schema: None,
            behaviour: ToolBehaviour::default(),
        }
    }

    pub fn behaviour(mut self, behaviour: ToolBehaviour) -> Self {
        self.behaviour = behaviour;
        self
    }
}

pub(crate) fn empty_object_schema() -> Value {
    json!({"type": "object", "properties": {}})
}

/// What a tool call answers, once its arguments satisfy the tool's input schema (arguments
/// that do not are answered with `isError: true` saying which one is wrong).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ToolBehaviour {
    /// One text block naming the tool and the arguments it got.
    #[default]
    Text,
    /// A tool execution error: `isError: true` with this text.
    Error { text: String },
    /// One image block (a 1×1 PNG).
    Image,
    /// One audio block (`audio/wav`).
    Audio,
    /// One embedded text resource.
    Resource,
    /// Text, image and resource blocks together.
    Mixed,
    /// `structuredContent` with this value, and its JSON text as a text block.
    Structured { value: Value },
    /// `count` `notifications/message` log events on the reply stream before the result.
    Logging { count: u32 },
    /// `count` `notifications/progress` events for the request's progress token before the
    /// result.
    Progress { count: u32 },
}

impl ToolBehaviour {
    fn is_default(&self) -> bool {
        *self == ToolBehaviour::Text
    }
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

/// How SSE streams are framed. Event ids are unique across every stream of a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SseStyle {
    /// Start each stream with a priming event: an id and an empty `data:`.
    pub priming: bool,
    /// The `retry:` field of the priming event.
    pub retry_ms: Option<u64>,
    /// `: keep-alive` comments before the response.
    pub keep_alives: u32,
    /// `notifications/message` events before the response.
    pub notifications: u32,
    /// Lines end with CRLF instead of LF.
    pub crlf: bool,
}

impl Default for SseStyle {
    fn default() -> Self {
        SseStyle {
            priming: true,
            retry_ms: Some(3_000),
            keep_alives: 0,
            notifications: 0,
            crlf: false,
        }
    }
}

/// How `tools/list` pages behave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Paging {
    #[default]
    Normal,
    /// The first page is empty, with a `nextCursor` that continues to the tools.
    EmptyFirstPage,
    /// The cursor never advances: every page is the first, with the same `nextCursor`. A
    /// client must stop, not loop.
    StuckCursor,
}

/// From `at_ms` of the run on, the server has these tools instead.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolChange {
    pub at_ms: u64,
    #[serde(default)]
    pub tools: Vec<ToolSpec>,
    /// Generates `tool_000`, ... when `tools` is empty.
    #[serde(default)]
    pub tool_count: Option<usize>,
}

/// What a GET on the MCP path gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GetStream {
    /// 405: this server offers no server-to-client stream (allowed by the spec).
    #[default]
    Refuse,
    /// 200 with an event stream that stays open, carrying `list_changed` notifications.
    Open,
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
        /// The `iss` a token must carry.
        issuer: String,
        signing_key: String,
        #[serde(default)]
        required_scope: Option<String>,
        /// Milliseconds of simulated time after the run's start ([`crate::SIM_EPOCH_UNIX_S`]) at
        /// which every token issued earlier is revoked: from then on such a token gets 401
        /// `error="invalid_token"`, while tokens issued at or after the instant pass.
        #[serde(default)]
        revoke_at_ms: Option<u64>,
        /// The authorization server's URL, for the protected-resource metadata; the issuer
        /// when absent (which is discoverable only when the issuer is a URL).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        authorization_server: Option<String>,
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
                authorization_server,
                ..
            } => f
                .debug_struct("Oauth")
                .field("issuer", issuer)
                .field("signing_key", &"<redacted>")
                .field("required_scope", required_scope)
                .field("revoke_at_ms", revoke_at_ms)
                .field("authorization_server", authorization_server)
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

/// An injected failure: what a broken or hostile upstream answers.
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
    /// 200 and the start of a body that never ends.
    EndlessBody,
    /// A well-formed result padded to about this many megabytes (for `tools/list`, tools
    /// with very long descriptions).
    Huge { megabytes: u32 },
    /// 200 `application/json` whose body is not UTF-8.
    InvalidUtf8,
    /// 200 with a correct JSON-RPC body under `Content-Type: text/plain`.
    WrongContentType,
    /// 200 with a JSON-RPC response for another request id.
    WrongId,
    /// 200 `text/html`: a proxy's error page.
    HtmlPage,
    /// 307 to another host (`http://elsewhere/mcp`), which a client must not follow.
    Redirect,
}
