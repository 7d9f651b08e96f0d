//! mcpsim's model of what an operator registers and what a gateway shows:
//! server definitions, statuses, views of servers, health and tools.
//!
//! Every dialect maps its gateway's own words onto these, so checkers speak
//! one language whatever the system under test. Invariant: nothing here
//! prints a secret (`ServerAuth`'s `Debug` redacts).

use serde::{Deserialize, Serialize};

/// Health of one server as mcpsim understands it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No discovery attempt has finished yet, and nothing else.
    Unknown,
    Healthy,
    Unhealthy,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unknown => "unknown",
            Status::Healthy => "healthy",
            Status::Unhealthy => "unhealthy",
        }
    }

    /// The status named `text` in mcpsim's words.
    pub fn parse(text: &str) -> Option<Status> {
        match text {
            "unknown" => Some(Status::Unknown),
            "healthy" => Some(Status::Healthy),
            "unhealthy" => Some(Status::Unhealthy),
            _ => None,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a registration came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The gateway's config file.
    Config,
    /// The management API (LiteLLM keeps these in its database).
    Rest,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Rest => "rest",
        }
    }
}

/// How a gateway talks to an upstream MCP server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// Streamable HTTP.
    #[default]
    Http,
    /// The legacy HTTP+SSE transport.
    Sse,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Sse => "sse",
        }
    }
}

/// How a gateway authenticates to an upstream, in mcpsim's words.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerAuth {
    #[default]
    None,
    /// A static `Authorization: Bearer` token.
    Bearer { token: String },
    /// OAuth2 client credentials: a token from `token_url`, then `Bearer`.
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        scopes: Vec<String>,
        /// The grant's `audience`, for providers that require one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audience: Option<String>,
        /// The grant's RFC 8707 `resource`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource: Option<String>,
        /// Whether the registration names the flow explicitly (LiteLLM's
        /// `oauth2_flow: client_credentials`); the reporter of LiteLLM
        /// issue 27635 left it out. Dialects without such a field ignore it.
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        explicit_flow: bool,
    },
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

// Secrets stay out of debug output, so a scenario printed with `{:?}` leaks
// nothing.
impl std::fmt::Debug for ServerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerAuth::None => f.write_str("None"),
            ServerAuth::Bearer { .. } => f.write_str("Bearer { token: <redacted> }"),
            ServerAuth::ClientCredentials {
                token_url,
                client_id,
                scopes,
                audience,
                resource,
                explicit_flow,
                ..
            } => f
                .debug_struct("ClientCredentials")
                .field("token_url", token_url)
                .field("client_id", client_id)
                .field("client_secret", &"<redacted>")
                .field("scopes", scopes)
                .field("audience", audience)
                .field("resource", resource)
                .field("explicit_flow", explicit_flow)
                .finish(),
        }
    }
}

/// One upstream MCP server as an operator registers it, in mcpsim's words;
/// a dialect writes it in its gateway's own shape (a config-file entry or a
/// REST body).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerDef {
    pub name: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "is_http")]
    pub transport: Transport,
    /// The id the operator asks for (a client that retries names the
    /// server it meant); the gateway chooses one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    #[serde(default, skip_serializing_if = "is_no_auth")]
    pub auth: ServerAuth,
}

fn is_http(transport: &Transport) -> bool {
    *transport == Transport::Http
}

fn is_no_auth(auth: &ServerAuth) -> bool {
    *auth == ServerAuth::None
}

impl ServerDef {
    /// An unauthenticated Streamable HTTP server.
    pub fn http(name: impl Into<String>, url: impl Into<String>) -> Self {
        ServerDef {
            name: name.into(),
            url: url.into(),
            transport: Transport::Http,
            server_id: None,
            auth: ServerAuth::None,
        }
    }

    pub fn auth(mut self, auth: ServerAuth) -> Self {
        self.auth = auth;
        self
    }

    pub fn server_id(mut self, id: impl Into<String>) -> Self {
        self.server_id = Some(id.into());
        self
    }
}

/// One server as a gateway's API shows it, in mcpsim's words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServerView {
    pub server_id: String,
    pub name: String,
    /// The prefix of its tools' names, where the gateway has one.
    pub alias: Option<String>,
    /// How it was registered, in the gateway's words (`config`, `rest`).
    pub source: Option<String>,
    pub url: Option<String>,
    pub status: Status,
    pub error: Option<String>,
    /// When the gateway last checked it, as the gateway writes the time.
    pub last_health_check: Option<String>,
}

/// One item of a gateway's health answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HealthView {
    pub server_id: String,
    pub status: Status,
    /// Whether the gateway could read its store at its last try; `None`
    /// when it does not say.
    pub store_reachable: Option<bool>,
}

/// One tool as a gateway lists it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ToolView {
    /// The name the gateway exposes (LiteLLM: `<alias>-<tool>`).
    pub exposed: String,
    /// The name the upstream MCP server gave it.
    pub upstream: String,
}

/// What a gateway answered to a write (create, update, delete).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WriteAnswer {
    pub status: u16,
    /// Whether the gateway took the write.
    pub accepted: bool,
    /// The server's id, when the answer names it.
    pub server_id: Option<String>,
    /// The server's name and URL as a taken write's answer shows them,
    /// when it shows the server (a row).
    pub name: Option<String>,
    pub url: Option<String>,
    /// The gateway's error message, when it refused.
    pub error: Option<String>,
}

/// What a gateway answered to a tool call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CallAnswer {
    pub status: u16,
    /// The call reached the tool and the tool answered (even `isError`).
    pub ok: bool,
    pub error: Option<String>,
}
