//! A small gateway that speaks LiteLLM's dialect well enough to be judged,
//! with one flaw switched on at a time: each flaw is a bug of a kind the
//! checkers must catch from the outside.
//!
//! Without a flaw it discovers in the background (a check at registration
//! and every `RECHECK_MS`), lists every page, caches client-credentials
//! tokens, validates names and URLs before it changes anything, calls
//! tools with the owner's credentials, and closes every session it opened
//! upstream once it is done with it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use mcpsim_sut::{
    Clock, Declared, Dialect, HostSetup, HttpClient, Injected, Instance, LiteLlm, Profile,
    SetupError, SystemUnderTest, TokenReuse,
};
use serde::Deserialize;
use serde_json::{json, Value};

const RECHECK_MS: u64 = 300;
const BUDGET_MS: u64 = 1_000;

/// The one bug the gateway has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flaw {
    None,
    /// A created server is listed only half a second after its create.
    ListsLate,
    /// A create is stored before its name and URL are checked; an update
    /// takes its URL before its other fields are checked.
    HalfApplies,
    /// Tool calls carry the credentials of the first registered server.
    OthersCredentials,
    /// A deleted server comes back at the next re-check, once.
    Resurrects,
    /// `last_health_check` is written by the first check only.
    StampsOnce,
    /// Every error says `list:`, whatever failed.
    WrongStage,
    /// A server is healthy as soon as its first page is in.
    HealthyEarly,
    /// A tool's `isError` is dropped from the answer.
    DropsIsError,
    /// An update leaves the server's credentials as they were.
    UpdateKeepsAuth,
    /// Writes are taken as they come: no name, URL or transport is checked.
    TakesBadInputs,
    /// A call finds only the tools of the listing's first page.
    CallsFirstPageOnly,
    /// A server created again under the id of a deleted one is never
    /// checked: the id stays on a list of deleted ids.
    ForgetsRecreated,
    /// An update is answered with the row as it was before the update.
    AnswersStaleRow,
    /// A refusal quotes the value it could not take.
    QuotesBadValues,
    /// A listing that runs out of time is blamed on the connection,
    /// whatever step it was in.
    TimeoutBlamesConnect,
    /// A tool call's session is never closed.
    CallKeepsSession,
    /// An error status to a request after `initialize` is never seen: the
    /// listing waits until its budget runs out.
    SitsOnErrors,
    /// An updated server goes back to its definition before the update at
    /// the next re-check, for one interval, as a stale copy would.
    RevertsUpdates,
    /// The tools of every server at once hold the first server's only.
    AggregatesFirstOnly,
    /// A failed check changes the status and keeps the tools of the last
    /// good listing.
    KeepsStaleTools,
}

#[derive(Clone, Debug)]
enum Auth {
    None,
    Bearer(String),
    Client {
        token_url: String,
        id: String,
        secret: String,
    },
}

#[derive(Clone, Debug)]
struct Server {
    id: String,
    name: String,
    url: String,
    auth: Auth,
    status: &'static str,
    error: Option<String>,
    tools: Vec<Value>,
    /// How many of its tools came on the listing's first page.
    first_page: usize,
    last_check: Option<String>,
    created_unix_ms: u64,
}

impl Server {
    fn row(&self) -> Value {
        json!({"server_id": self.id, "server_name": self.name, "alias": self.name,
            "url": self.url, "source": "rest", "status": self.status,
            "health_check_error": self.error, "last_health_check": self.last_check})
    }
}

struct App {
    flaw: Flaw,
    servers: Mutex<BTreeMap<String, Server>>,
    /// Deleted servers a `Resurrects` gateway brings back once.
    ghosts: Mutex<Vec<Server>>,
    /// Servers as they were before an update, which a `RevertsUpdates`
    /// gateway puts back once.
    stale: Mutex<Vec<Server>>,
    /// Ids deleted so far, which a `ForgetsRecreated` gateway never checks.
    deleted: Mutex<Vec<String>>,
    tokens: Mutex<BTreeMap<String, String>>,
    next_id: Mutex<u64>,
    http: Arc<dyn HttpClient>,
    clock: Arc<dyn Clock>,
}

type Shared = State<Arc<App>>;
type Answer = (StatusCode, Json<Value>);

fn refuse(status: StatusCode, message: &str) -> Answer {
    (status, Json(json!({"detail": {"error": message}})))
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn auth_of(body: &Value) -> Auth {
    let credentials = body.get("credentials").cloned().unwrap_or(Value::Null);
    match text(body, "auth_type").as_deref() {
        Some("bearer_token") => Auth::Bearer(text(&credentials, "auth_value").unwrap_or_default()),
        Some("oauth2") => Auth::Client {
            token_url: text(body, "token_url").unwrap_or_default(),
            id: text(&credentials, "client_id").unwrap_or_default(),
            secret: text(&credentials, "client_secret").unwrap_or_default(),
        },
        _ => Auth::None,
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('-') && !name.chars().any(char::is_whitespace)
}

fn valid_url(url: &str) -> bool {
    url.parse::<http::Uri>()
        .is_ok_and(|u| u.scheme_str() == Some("http") && u.authority().is_some())
}

impl App {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Server>> {
        self.servers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_unix_ms(&self) -> u64 {
        self.clock.now_unix().as_millis() as u64
    }

    fn now(&self) -> String {
        let at = std::time::UNIX_EPOCH + self.clock.now_unix();
        humantime::format_rfc3339_millis(at).to_string()
    }

    /// An error as this gateway words it: its stage, unless it lies.
    fn error(&self, stage: &str, what: impl std::fmt::Display) -> String {
        let stage = if self.flaw == Flaw::WrongStage {
            "list"
        } else {
            stage
        };
        format!("{stage}: {what}")
    }

    async fn token(&self, server: &Server, fresh: bool) -> Result<Option<String>, String> {
        match &server.auth {
            Auth::None => Ok(None),
            Auth::Bearer(token) => Ok(Some(token.clone())),
            Auth::Client {
                token_url,
                id,
                secret,
            } => {
                if !fresh {
                    if let Some(token) = self.tokens.lock().unwrap().get(&server.id) {
                        return Ok(Some(token.clone()));
                    }
                }
                let form = serde_urlencoded::to_string([
                    ("grant_type", "client_credentials"),
                    ("client_id", id),
                    ("client_secret", secret),
                ])
                .map_err(|_| self.error("token", "unwritable form"))?;
                let request = http::Request::post(token_url.as_str())
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form.into_bytes())
                    .map_err(|_| self.error("token", "bad token_url"))?;
                let response = self
                    .http
                    .send(request)
                    .await
                    .map_err(|e| self.error("token", e))?;
                if !response.status().is_success() {
                    return Err(self.error("token", response.status().as_u16()));
                }
                let body: Value = serde_json::from_slice(response.body())
                    .map_err(|_| self.error("token", "not JSON"))?;
                let token = text(&body, "access_token")
                    .ok_or_else(|| self.error("token", "no access_token"))?;
                self.tokens
                    .lock()
                    .unwrap()
                    .insert(server.id.clone(), token.clone());
                Ok(Some(token))
            }
        }
    }

    async fn open(&self, server: &Server, token: Option<String>) -> Result<Session, String> {
        let mut session = Session {
            url: server.url.clone(),
            token,
            id: None,
            next: 0,
        };
        session
            .rpc(
                self,
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "flawed", "version": "0.1.0"}}),
            )
            .await
            .map_err(|e| self.error("initialize", e))?;
        session
            .notify(self, "notifications/initialized")
            .await
            .map_err(|e| self.error("initialize", e))?;
        Ok(session)
    }

    async fn discover(&self, id: &str) {
        let Some(server) = self.lock().get(id).cloned() else {
            return;
        };
        if self.flaw == Flaw::ForgetsRecreated && self.deleted.lock().unwrap().contains(&server.id)
        {
            return;
        }
        // The step the listing is in, for the error if time runs out.
        let step = Mutex::new("token");
        let work = async {
            let token = self.token(&server, false).await?;
            *step.lock().unwrap() = "initialize";
            let mut session = self.open(&server, token).await?;
            *step.lock().unwrap() = "list";
            let mut tools = Vec::new();
            let mut first_page = None;
            let mut cursor: Option<String> = None;
            loop {
                let params = match &cursor {
                    Some(c) => json!({"cursor": c}),
                    None => json!({}),
                };
                let page = session
                    .rpc(self, "tools/list", params)
                    .await
                    .map_err(|e| self.error("list", e))?;
                tools.extend(page["tools"].as_array().cloned().unwrap_or_default());
                let first_page = *first_page.get_or_insert(tools.len());
                if self.flaw == Flaw::HealthyEarly {
                    self.write(id, Ok((tools.clone(), first_page)));
                }
                match text(&page, "nextCursor") {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            session.close(self).await;
            Ok((tools, first_page.unwrap_or(0)))
        };
        let result = match tokio::time::timeout(Duration::from_millis(BUDGET_MS), work).await {
            Ok(result) => result,
            Err(_) => Err(match self.flaw {
                Flaw::TimeoutBlamesConnect => "connect: timed out".to_string(),
                _ => self.error(*step.lock().unwrap(), "timed out"),
            }),
        };
        self.write(id, result);
    }

    fn write(&self, id: &str, result: Result<(Vec<Value>, usize), String>) {
        let now = self.now();
        let mut servers = self.lock();
        let Some(server) = servers.get_mut(id) else {
            return;
        };
        if server.last_check.is_none() || self.flaw != Flaw::StampsOnce {
            server.last_check = Some(now);
        }
        match result {
            Ok((tools, first_page)) => {
                server.status = "healthy";
                server.error = None;
                server.tools = tools;
                server.first_page = first_page;
            }
            Err(error) => {
                server.status = "unhealthy";
                server.error = Some(error);
                if self.flaw != Flaw::KeepsStaleTools {
                    server.tools = Vec::new();
                    server.first_page = 0;
                }
            }
        }
    }

    /// Checks every server again, one after the other, for ever; a
    /// `Resurrects` gateway brings its deleted servers back here for one
    /// interval, as a stale copy would, and a `RevertsUpdates` one its
    /// updated servers' old definitions.
    async fn recheck(self: Arc<Self>) {
        let mut back: Vec<String> = Vec::new();
        let mut reverted: Vec<Server> = Vec::new();
        loop {
            tokio::time::sleep(Duration::from_millis(RECHECK_MS)).await;
            for id in back.drain(..) {
                self.lock().remove(&id);
            }
            for server in reverted.drain(..) {
                self.lock().insert(server.id.clone(), server);
            }
            let stale: Vec<Server> = std::mem::take(&mut *self.stale.lock().unwrap());
            for old in stale {
                if let Some(now) = self.lock().insert(old.id.clone(), old) {
                    reverted.push(now);
                }
            }
            let ghosts: Vec<Server> = std::mem::take(&mut *self.ghosts.lock().unwrap());
            for ghost in ghosts {
                back.push(ghost.id.clone());
                self.lock().insert(ghost.id.clone(), ghost);
            }
            let ids: Vec<String> = self.lock().keys().cloned().collect();
            for id in ids.iter().filter(|id| !back.contains(id)) {
                self.discover(id).await;
            }
        }
    }
}

struct Session {
    url: String,
    token: Option<String>,
    id: Option<String>,
    next: u64,
}

impl Session {
    fn request(&self, body: Value) -> Result<http::Request<Vec<u8>>, String> {
        let mut request = http::Request::post(self.url.as_str())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(id) = &self.id {
            request = request
                .header("mcp-session-id", id.as_str())
                .header("mcp-protocol-version", "2025-06-18");
        }
        request
            .body(body.to_string().into_bytes())
            .map_err(|_| "bad url".to_string())
    }

    /// Ends the session upstream with DELETE, as a client must once it is
    /// done with it (`session_hygiene`); what the upstream answers does not
    /// matter.
    async fn close(&self, app: &App) {
        let Some(id) = &self.id else {
            return;
        };
        let mut request = http::Request::delete(self.url.as_str())
            .header("mcp-session-id", id.as_str())
            .header("mcp-protocol-version", "2025-06-18");
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Ok(request) = request.body(Vec::new()) {
            let _ = app.http.send(request).await;
        }
    }

    async fn notify(&mut self, app: &App, method: &str) -> Result<(), String> {
        let request = self.request(json!({"jsonrpc": "2.0", "method": method}))?;
        let response = app.http.send(request).await.map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("status {}", response.status().as_u16()))
        }
    }

    async fn rpc(&mut self, app: &App, method: &str, params: Value) -> Result<Value, String> {
        self.next += 1;
        let request = self.request(
            json!({"jsonrpc": "2.0", "id": self.next, "method": method, "params": params}),
        )?;
        let response = app.http.send(request).await.map_err(|e| e.to_string())?;
        if !response.status().is_success()
            && method != "initialize"
            && app.flaw == Flaw::SitsOnErrors
        {
            return std::future::pending().await;
        }
        if !response.status().is_success() {
            return Err(format!("status {}", response.status().as_u16()));
        }
        if let Some(id) = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            self.id = Some(id.to_string());
        }
        let text = String::from_utf8_lossy(response.body());
        let message: Value = serde_json::from_str(&text)
            .ok()
            .or_else(|| {
                text.lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
                    .next_back()
            })
            .ok_or("not JSON-RPC")?;
        if message.get("error").is_some() {
            return Err("JSON-RPC error".into());
        }
        Ok(message.get("result").cloned().unwrap_or(Value::Null))
    }
}

async fn list(State(app): Shared) -> Json<Value> {
    let now = app.now_unix_ms();
    let rows = app
        .lock()
        .values()
        .filter(|s| app.flaw != Flaw::ListsLate || now >= s.created_unix_ms + 500)
        .map(Server::row)
        .collect();
    Json(Value::Array(rows))
}

async fn health(State(app): Shared) -> Json<Value> {
    let items = app
        .lock()
        .values()
        .map(|s| json!({"server_id": s.id, "status": s.status}))
        .collect();
    Json(Value::Array(items))
}

async fn create(State(app): Shared, body: Bytes) -> Answer {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, "malformed JSON");
    };
    if let Some(credentials) = body.get("credentials").filter(|c| !c.is_object()) {
        let message = match app.flaw {
            Flaw::QuotesBadValues => format!("credentials: invalid value {credentials}"),
            _ => "credentials must be an object".to_string(),
        };
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, &message);
    }
    let transport_ok = body
        .get("transport")
        .is_none_or(|t| matches!(t.as_str(), Some("http") | Some("sse")));
    let name = text(&body, "server_name").unwrap_or_default();
    let url = text(&body, "url").unwrap_or_default();
    let id = text(&body, "server_id").unwrap_or_else(|| {
        let mut next = app.next_id.lock().unwrap();
        *next += 1;
        format!("srv{}", *next)
    });
    let server = Server {
        id: id.clone(),
        name: name.clone(),
        url: url.clone(),
        auth: auth_of(&body),
        status: "unknown",
        error: None,
        tools: Vec::new(),
        first_page: 0,
        last_check: None,
        created_unix_ms: app.now_unix_ms(),
    };
    if app.flaw == Flaw::HalfApplies {
        app.lock().insert(id.clone(), server.clone());
    }
    let checked = app.flaw != Flaw::TakesBadInputs;
    if checked && (!valid_name(&name) || !valid_url(&url) || !transport_ok) {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "server_name, url and transport must be valid",
        );
    }
    if app.lock().values().any(|s| s.name == name && s.id != id) {
        return refuse(StatusCode::BAD_REQUEST, "the name is taken");
    }
    app.lock().insert(id.clone(), server.clone());
    let worker = app.clone();
    tokio::spawn(async move { worker.discover(&id).await });
    (StatusCode::CREATED, Json(server.row()))
}

async fn update(State(app): Shared, body: Bytes) -> Answer {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, "malformed JSON");
    };
    let Some(id) = text(&body, "server_id") else {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, "server_id is required");
    };
    let transport_ok = body
        .get("transport")
        .is_none_or(|t| matches!(t.as_str(), Some("http") | Some("sse")));
    let url = text(&body, "url");
    let before = app.lock().get(&id).map(Server::row).unwrap_or(Value::Null);
    let old = app.lock().get(&id).cloned();
    {
        let mut servers = app.lock();
        let Some(server) = servers.get_mut(&id) else {
            return refuse(StatusCode::NOT_FOUND, "no such server");
        };
        if app.flaw == Flaw::HalfApplies {
            if let Some(url) = &url {
                server.url = url.clone();
            }
        }
        let checked = app.flaw != Flaw::TakesBadInputs;
        if checked && (!transport_ok || url.as_deref().is_some_and(|u| !valid_url(u))) {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "transport or url is invalid",
            );
        }
        if let Some(url) = url {
            server.url = url;
        }
        if body.get("auth_type").is_some() && app.flaw != Flaw::UpdateKeepsAuth {
            server.auth = auth_of(&body);
        }
        server.status = "unknown";
        server.error = None;
        server.last_check = None;
        server.tools = Vec::new();
        server.first_page = 0;
    }
    if let Some(old) = old.filter(|_| app.flaw == Flaw::RevertsUpdates) {
        app.stale.lock().unwrap().push(old);
    }
    let row = match app.flaw {
        Flaw::AnswersStaleRow => before,
        _ => app.lock().get(&id).map(Server::row).unwrap_or(Value::Null),
    };
    let worker = app.clone();
    tokio::spawn(async move { worker.discover(&id).await });
    (StatusCode::ACCEPTED, Json(row))
}

async fn remove(State(app): Shared, Path(id): Path<String>) -> Answer {
    let Some(server) = app.lock().remove(&id) else {
        return refuse(StatusCode::NOT_FOUND, "no such server");
    };
    app.deleted.lock().unwrap().push(id.clone());
    if app.flaw == Flaw::Resurrects {
        app.ghosts.lock().unwrap().push(server);
    }
    (
        StatusCode::ACCEPTED,
        Json(json!({"server_id": id, "deleted": true})),
    )
}

#[derive(Deserialize)]
struct ToolsQuery {
    server_id: Option<String>,
}

async fn tools(State(app): Shared, Query(query): Query<ToolsQuery>) -> Json<Value> {
    let mut out = Vec::new();
    let first_only = query.server_id.is_none() && app.flaw == Flaw::AggregatesFirstOnly;
    let servers = app.lock();
    let take = if first_only { 1 } else { servers.len() };
    for server in servers.values().take(take) {
        if query.server_id.as_ref().is_some_and(|id| id != &server.id) {
            continue;
        }
        for tool in &server.tools {
            let mut tool = tool.clone();
            let name = text(&tool, "name").unwrap_or_default();
            tool["name"] = json!(format!("{}-{name}", server.name));
            out.push(tool);
        }
    }
    Json(json!({ "tools": out }))
}

async fn call_tool(State(app): Shared, Json(body): Json<Value>) -> Answer {
    let name = text(&body, "name").unwrap_or_default();
    let (found, first) = {
        let servers = app.lock();
        let found = servers.values().find_map(|s| {
            name.strip_prefix(&format!("{}-", s.name))
                .map(|tool| (s.clone(), tool.to_string()))
        });
        (found, servers.values().next().cloned())
    };
    let Some((mut server, tool)) = found else {
        return refuse(StatusCode::NOT_FOUND, "no such tool");
    };
    let known = match app.flaw {
        Flaw::CallsFirstPageOnly => &server.tools[..server.first_page],
        _ => &server.tools[..],
    };
    if !known
        .iter()
        .any(|t| text(t, "name").as_deref() == Some(tool.as_str()))
    {
        return refuse(StatusCode::NOT_FOUND, "no such tool");
    }
    if let (Flaw::OthersCredentials, Some(first)) = (app.flaw, first) {
        server.auth = first.auth;
        server.id = first.id;
    }
    let arguments = body.get("arguments").cloned().unwrap_or(json!({}));
    let work = async {
        let token = app.token(&server, false).await?;
        let mut session = app.open(&server, token).await?;
        let result = session
            .rpc(
                &app,
                "tools/call",
                json!({"name": tool, "arguments": arguments}),
            )
            .await?;
        if app.flaw != Flaw::CallKeepsSession {
            session.close(&app).await;
        }
        Ok::<Value, String>(result)
    };
    match tokio::time::timeout(Duration::from_millis(BUDGET_MS), work).await {
        Ok(Ok(mut result)) => {
            if app.flaw == Flaw::DropsIsError {
                if let Some(map) = result.as_object_mut() {
                    map.remove("isError");
                }
            }
            (StatusCode::OK, Json(result))
        }
        Ok(Err(error)) => refuse(StatusCode::BAD_GATEWAY, &error),
        Err(_) => refuse(StatusCode::GATEWAY_TIMEOUT, "timed out"),
    }
}

/// A running flawed gateway.
struct Running(Arc<App>);

impl Instance for Running {
    fn start(&self) {
        tokio::spawn(self.0.clone().recheck());
    }

    fn router(&self) -> Router {
        Router::new()
            .route("/v1/mcp/server", get(list).post(create).put(update))
            .route("/v1/mcp/server/health", get(health))
            .route("/v1/mcp/server/{id}", axum::routing::delete(remove))
            .route("/v1/mcp/tools", get(tools))
            .route("/mcp-rest/tools/call", post(call_tool))
            .with_state(self.0.clone())
    }

    fn shutdown(&self) {}
}

/// The flawed gateway as a system under test.
pub struct Flawed(pub Flaw);

impl SystemUnderTest for Flawed {
    fn name(&self) -> String {
        format!("flawed ({:?})", self.0)
    }

    fn dialect(&self) -> &dyn Dialect {
        &LiteLlm
    }

    fn declare(&self, _host: &HostSetup) -> Result<Declared, SetupError> {
        Ok(Declared {
            serves_tools: true,
            token_budget_ms: None,
            listing_budget_ms: BUDGET_MS,
            recheck_interval_ms: Some(RECHECK_MS),
            sync_interval_ms: None,
            store_budget_ms: None,
            token_reuse: TokenReuse::default(),
            durable: false,
            emits_events: false,
            write_budget_ms: None,
            follows_list_changed: false,
        })
    }

    fn build(&self, _host: &HostSetup, injected: Injected) -> Result<Box<dyn Instance>, String> {
        Ok(Box::new(Running(Arc::new(App {
            flaw: self.0,
            servers: Mutex::new(BTreeMap::new()),
            ghosts: Mutex::new(Vec::new()),
            stale: Mutex::new(Vec::new()),
            deleted: Mutex::new(Vec::new()),
            tokens: Mutex::new(BTreeMap::new()),
            next_id: Mutex::new(0),
            http: injected.http,
            clock: injected.clock,
        }))))
    }

    fn settings_for(&self, profile: &Profile) -> Option<Value> {
        (profile.role == mcpsim_sut::Role::AllInOne && !profile.with_store).then(|| json!({}))
    }
}
