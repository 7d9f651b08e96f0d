//! API dialects: how mcpsim's operator speaks to one kind of gateway.
//!
//! Everything the operator sends and reads goes through a [`Dialect`]: the
//! config file it writes (in the gateway's own format), registration by
//! REST, update, delete, reading one server, the list, health, tools and a
//! tool call, and how the gateway's statuses and errors map to mcpsim's
//! model ([`crate::model`]). A dialect builds requests and reads answers;
//! it never sends anything itself, so the same dialect serves the
//! simulation and real sockets.
//!
//! Invariant: a dialect never puts a secret into an error message it makes
//! (it names fields, never values).

mod contextforge;
mod litellm;

pub use contextforge::ContextForge;
pub use litellm::{LiteLlm, LiteLlmProxy};

use serde_json::Value;

use crate::model::{CallAnswer, HealthView, ServerDef, ServerView, ToolView, WriteAnswer};

/// One request to a gateway's API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiRequest {
    pub method: http::Method,
    /// Path and query, e.g. `/v1/mcp/tools?server_id=abc`.
    pub path: String,
    pub body: Option<Value>,
}

impl ApiRequest {
    pub fn get(path: impl Into<String>) -> Self {
        ApiRequest {
            method: http::Method::GET,
            path: path.into(),
            body: None,
        }
    }

    pub fn with_body(method: http::Method, path: impl Into<String>, body: Value) -> Self {
        ApiRequest {
            method,
            path: path.into(),
            body: Some(body),
        }
    }

    pub fn delete(path: impl Into<String>) -> Self {
        ApiRequest {
            method: http::Method::DELETE,
            path: path.into(),
            body: None,
        }
    }
}

/// A gateway's error message, as its dialect finds it in a body.
type ErrorOf = fn(&Value) -> Option<String>;

/// `Ok` for a status in `ok`, else an error that says what answered what,
/// with the gateway's own message when it gave one.
fn expect(
    answer: ApiAnswer<'_>,
    what: &str,
    ok: std::ops::RangeInclusive<u16>,
    error_of: ErrorOf,
) -> Result<(), String> {
    if ok.contains(&answer.status) {
        return Ok(());
    }
    Err(match error_of(answer.body) {
        Some(error) => format!("{what} answered {}: {error}", answer.status),
        None => format!("{what} answered {}", answer.status),
    })
}

/// A write's answer: taken when 2xx, with the id under `id_key` and the
/// server's name under `name_key` and URL under `url` when the answer shows
/// them; refused otherwise, with the gateway's message.
fn write_answer(
    answer: ApiAnswer<'_>,
    id_key: &str,
    name_key: &str,
    error_of: ErrorOf,
) -> WriteAnswer {
    let accepted = (200..300).contains(&answer.status);
    let shown = |key: &str| {
        accepted
            .then(|| answer.body.get(key).and_then(Value::as_str))
            .flatten()
            .map(str::to_string)
    };
    WriteAnswer {
        status: answer.status,
        accepted,
        server_id: shown(id_key),
        name: shown(name_key),
        url: shown("url"),
        error: if accepted {
            None
        } else {
            error_of(answer.body)
        },
    }
}

/// A gateway's answer: its status and its body, parsed as JSON when it is
/// JSON and kept as a JSON string otherwise.
#[derive(Clone, Copy, Debug)]
pub struct ApiAnswer<'a> {
    pub status: u16,
    pub body: &'a Value,
}

/// What the operator registers or updates: the gateway's own body, sent
/// verbatim, or a server in mcpsim's words that the dialect writes.
#[derive(Clone, Copy, Debug)]
pub enum Registration<'a> {
    Native(&'a Value),
    Def(&'a ServerDef),
}

/// How to speak to one kind of gateway's management API.
pub trait Dialect: Send + Sync + 'static {
    /// A short name: `litellm`.
    fn name(&self) -> &'static str;

    /// The header that carries the operator's own key.
    fn authorization(&self, api_key: &str) -> (http::HeaderName, String);

    /// The gateway's config file: the scenario's own native content, if
    /// any, with `servers` written in; `None` when there is neither.
    fn config_file(
        &self,
        native: Option<&Value>,
        servers: &[ServerDef],
    ) -> Result<Option<String>, String>;

    /// The name the operator means by a registration.
    fn registration_name(&self, registration: Registration<'_>) -> String;

    fn create(&self, registration: Registration<'_>) -> ApiRequest;
    fn update(&self, server_id: &str, registration: Registration<'_>) -> ApiRequest;
    fn delete(&self, server_id: &str) -> ApiRequest;
    fn get(&self, server_id: &str) -> ApiRequest;
    /// The requests that read the server list, in order: one for most
    /// gateways; LiteLLM without a database keeps statuses apart from rows.
    fn list(&self) -> Vec<ApiRequest>;
    fn health(&self) -> ApiRequest;
    fn tools(&self, server_id: &str) -> ApiRequest;
    fn call_tool(&self, server: &ServerView, tool: &ToolView, arguments: &Value) -> ApiRequest;

    fn read_write(&self, answer: ApiAnswer<'_>) -> WriteAnswer;
    /// Reads the answers to [`Dialect::list`], in the same order.
    fn read_list(&self, answers: &[ApiAnswer<'_>]) -> Result<Vec<ServerView>, String>;
    /// `Ok(None)` when the gateway says there is no such server.
    fn read_one(&self, answer: ApiAnswer<'_>) -> Result<Option<ServerView>, String>;
    fn read_health(&self, answer: ApiAnswer<'_>) -> Result<Vec<HealthView>, String>;
    fn read_tools(
        &self,
        answer: ApiAnswer<'_>,
        server: &ServerView,
    ) -> Result<Vec<ToolView>, String>;
    fn read_call(&self, answer: ApiAnswer<'_>) -> CallAnswer;

    /// The request that reads the tools of every server at once (the
    /// aggregate a client sees), if the gateway has one that this dialect
    /// can read; `None` leaves the aggregate unread and unjudged.
    fn tools_all(&self) -> Option<ApiRequest> {
        None
    }

    /// Reads the answer to [`Dialect::tools_all`]: the exposed name of every
    /// tool listed, in the order given.
    fn read_tools_all(&self, _answer: ApiAnswer<'_>) -> Result<Vec<String>, String> {
        Err(format!(
            "the {} dialect cannot read the tools of every server",
            self.name()
        ))
    }

    /// Whether the gateway's views carry the time of the last check
    /// (`last_health_check`), so that a settled status without one is a
    /// finding.
    fn reports_check_time(&self) -> bool {
        true
    }

    /// A registration body in this gateway's own words, read into
    /// mcpsim's: how a scenario written for this gateway is carried to a
    /// gateway of another dialect. `Err` says what cannot be carried.
    fn read_registration(&self, _native: &Value) -> Result<ServerDef, String> {
        Err(format!(
            "the {} dialect cannot read its own registration bodies",
            self.name()
        ))
    }

    /// The servers of a config file in this gateway's own format, read
    /// into mcpsim's words, with the environment the config refers to.
    fn read_config(
        &self,
        _native: &Value,
        _env: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<ServerDef>, String> {
        Err(format!(
            "the {} dialect cannot read its own config files",
            self.name()
        ))
    }
}
