//! A deliberately simple MCP gateway, written the way a quick
//! implementation would be, that plugs into mcpsim through the seam
//! (`mcpsim-sut`) with no change to the harness: the proof that mcpsim
//! judges any Rust gateway, and a demonstration of what it finds in one.
//!
//! It speaks the part of LiteLLM's management API that mcpsim's operator
//! uses, and takes the shortcuts a first version often takes. Each is a
//! bug that `mcpsim explore --sut simple` finds and shrinks:
//!
//! - discovery is awaited inside the create and update handlers: a client
//!   that gives up leaves the server `unknown` for good, and two writes to
//!   one server race, the slower result winning;
//! - no token cache: every exchange fetches a new token;
//! - only the first `tools/list` page is kept;
//! - no re-check: a server that failed once stays `unhealthy` after its
//!   upstream recovers, and no retry after a 401;
//! - one timeout around the token fetch and the listing together;
//! - it never ends an upstream session (no `DELETE`);
//! - registrations live in memory only (it takes no store).
//!
//! Invariants it does keep: no secret in any answer, and it reads time only
//! through the injected clock, so it runs deterministically in the
//! simulation.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use mcpsim_sut::{
    ClientAuth, Clock, Declared, Dialect, HostSetup, HttpClient, Injected, Instance, LiteLlm,
    Profile, Role, SetupError, SystemUnderTest, TokenReuse,
};
use serde::Deserialize;
use serde_json::{json, Value};

/// The simple gateway as a system under test.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimpleGateway;

impl SimpleGateway {
    /// This gateway as a shared system under test, for the harness.
    pub fn sut(self) -> mcpsim_sut::Sut {
        Arc::new(self)
    }
}

/// Its settings: one budget for everything, and how it authenticates to
/// token endpoints.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    /// One timeout around the token fetch and the listing together.
    timeout_ms: u64,
    /// `form` (the credentials in the body) or `basic` (HTTP Basic).
    client_auth: ClientAuth,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timeout_ms: 30_000,
            client_auth: ClientAuth::Form,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
struct ConfigEntry {
    url: Option<String>,
    auth_type: Option<String>,
    auth_value: Option<String>,
    token_url: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    mcp_servers: BTreeMap<String, ConfigEntry>,
}

fn settings(host: &HostSetup) -> Result<Settings, SetupError> {
    let value = match &host.settings {
        Value::Null => json!({}),
        other => other.clone(),
    };
    serde_json::from_value(value).map_err(|e| SetupError {
        path: "settings".to_string(),
        reason: e.to_string(),
    })
}

fn config(host: &HostSetup) -> Result<ConfigFile, SetupError> {
    match &host.config_file {
        None => Ok(ConfigFile::default()),
        Some(text) => serde_json::from_str(text).map_err(|e| SetupError {
            path: "config".to_string(),
            reason: e.to_string(),
        }),
    }
}

impl SystemUnderTest for SimpleGateway {
    fn name(&self) -> String {
        "simple".to_string()
    }

    fn dialect(&self) -> &dyn Dialect {
        &LiteLlm
    }

    fn declare(&self, host: &HostSetup) -> Result<Declared, SetupError> {
        let s = settings(host)?;
        config(host)?;
        Ok(Declared {
            serves_tools: true,
            token_budget_ms: None,
            listing_budget_ms: s.timeout_ms,
            recheck_interval_ms: None,
            sync_interval_ms: None,
            store_budget_ms: None,
            token_reuse: TokenReuse::default(),
            durable: false,
            emits_events: false,
            write_budget_ms: None,
            follows_list_changed: false,
        })
    }

    fn build(&self, host: &HostSetup, injected: Injected) -> Result<Box<dyn Instance>, String> {
        let s = settings(host).map_err(|e| e.to_string())?;
        let config = config(host).map_err(|e| e.to_string())?;
        let app = Arc::new(App {
            servers: Mutex::new(BTreeMap::new()),
            next_id: Mutex::new(1),
            http: injected.http,
            clock: injected.clock,
            timeout: Duration::from_millis(s.timeout_ms),
            client_auth: s.client_auth,
        });
        let mut state = app.lock();
        for (name, entry) in config.mcp_servers {
            let server = Server {
                id: format!("config-{name}"),
                name,
                url: entry.url.unwrap_or_default(),
                auth: Auth::from_fields(
                    entry.auth_type.as_deref(),
                    entry.auth_value,
                    entry.token_url,
                    entry.client_id,
                    entry.client_secret,
                ),
                source: "config",
                status: "unknown",
                error: None,
                tools: Vec::new(),
                last_check: None,
            };
            state.insert(server.id.clone(), server);
        }
        drop(state);
        Ok(Box::new(Simple(app)))
    }

    fn settings_for(&self, profile: &Profile) -> Option<Value> {
        // It keeps no token, so the profile's token reuse asks nothing of it.
        (profile.role == Role::AllInOne && !profile.with_store).then(
            || json!({"timeout_ms": profile.listing_budget_ms, "client_auth": profile.client_auth}),
        )
    }
}

#[derive(Clone, Debug)]
enum Auth {
    None,
    Bearer(String),
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: String,
    },
}

impl Auth {
    fn from_fields(
        auth_type: Option<&str>,
        auth_value: Option<String>,
        token_url: Option<String>,
        client_id: Option<String>,
        client_secret: Option<String>,
    ) -> Auth {
        match (auth_type, auth_value, token_url, client_id, client_secret) {
            (Some("oauth2"), _, Some(token_url), Some(client_id), Some(client_secret)) => {
                Auth::ClientCredentials {
                    token_url,
                    client_id,
                    client_secret,
                }
            }
            (Some("bearer_token"), Some(token), ..) => Auth::Bearer(token),
            _ => Auth::None,
        }
    }

    fn from_rest(body: &Value) -> Auth {
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let credentials = body.get("credentials").cloned().unwrap_or(Value::Null);
        Auth::from_fields(
            body.get("auth_type").and_then(Value::as_str),
            text(&credentials, "auth_value"),
            text(body, "token_url"),
            text(&credentials, "client_id"),
            text(&credentials, "client_secret"),
        )
    }
}

#[derive(Clone, Debug)]
struct Server {
    id: String,
    name: String,
    url: String,
    auth: Auth,
    source: &'static str,
    status: &'static str,
    error: Option<String>,
    tools: Vec<Value>,
    last_check: Option<String>,
}

impl Server {
    fn row(&self) -> Value {
        json!({
            "server_id": self.id,
            "server_name": self.name,
            "alias": self.name,
            "url": self.url,
            "source": self.source,
            "status": self.status,
            "health_check_error": self.error,
            "last_health_check": self.last_check,
            "tool_count": self.tools.len(),
        })
    }
}

struct App {
    servers: Mutex<BTreeMap<String, Server>>,
    next_id: Mutex<u64>,
    http: Arc<dyn HttpClient>,
    clock: Arc<dyn Clock>,
    timeout: Duration,
    client_auth: ClientAuth,
}

impl App {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Server>> {
        self.servers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> String {
        let at = std::time::UNIX_EPOCH + self.clock.now_unix();
        humantime::format_rfc3339_millis(at).to_string()
    }

    /// Lists the server's tools and writes the result by id, whatever
    /// happened to the server meanwhile.
    async fn discover(&self, id: &str) {
        let Some((url, auth)) = self.lock().get(id).map(|s| (s.url.clone(), s.auth.clone())) else {
            return;
        };
        let result = match tokio::time::timeout(self.timeout, self.list(&url, &auth)).await {
            Ok(result) => result,
            Err(_) => Err(format!("timed out after {} ms", self.timeout.as_millis())),
        };
        let now = self.now();
        if let Some(server) = self.lock().get_mut(id) {
            server.last_check = Some(now);
            match result {
                Ok(tools) => {
                    server.status = "healthy";
                    server.error = None;
                    server.tools = tools;
                }
                Err(error) => {
                    server.status = "unhealthy";
                    server.error = Some(error);
                    server.tools = Vec::new();
                }
            }
        }
    }

    async fn list(&self, url: &str, auth: &Auth) -> Result<Vec<Value>, String> {
        let mut session = self.open(url, auth).await?;
        let result = session.rpc(self, "tools/list", json!({})).await?;
        // The first page is all there is.
        Ok(result
            .get("tools")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    async fn token(&self, auth: &Auth) -> Result<Option<String>, String> {
        match auth {
            Auth::None => Ok(None),
            Auth::Bearer(token) => Ok(Some(token.clone())),
            Auth::ClientCredentials {
                token_url,
                client_id,
                client_secret,
            } => {
                let mut fields = vec![("grant_type", "client_credentials")];
                let mut request = http::Request::post(token_url.as_str())
                    .header("content-type", "application/x-www-form-urlencoded");
                match self.client_auth {
                    ClientAuth::Form => {
                        fields.push(("client_id", client_id));
                        fields.push(("client_secret", client_secret));
                    }
                    ClientAuth::Basic => {
                        // RFC 6749 §2.3.1: each half form-encoded, then base64.
                        let encode = |text: &str| {
                            serde_urlencoded::to_string([("x", text)])
                                .map(|pair| pair[2..].to_string())
                                .unwrap_or_default()
                        };
                        let pair = format!("{}:{}", encode(client_id), encode(client_secret));
                        request = request
                            .header("authorization", format!("Basic {}", BASE64.encode(pair)));
                    }
                }
                let form = serde_urlencoded::to_string(&fields)
                    .map_err(|_| "token: could not write the request".to_string())?;
                let request = request
                    .body(form.into_bytes())
                    .map_err(|_| "token: bad token_url".to_string())?;
                let response = self
                    .http
                    .send(request)
                    .await
                    .map_err(|e| format!("token: {e}"))?;
                if !response.status().is_success() {
                    return Err(format!("token: status {}", response.status().as_u16()));
                }
                let body: Value = serde_json::from_slice(response.body())
                    .map_err(|_| "token: the answer is not JSON".to_string())?;
                body.get("access_token")
                    .and_then(Value::as_str)
                    .map(|t| Some(t.to_string()))
                    .ok_or_else(|| "token: no access_token".to_string())
            }
        }
    }

    /// A fresh session with a fresh token.
    async fn open(&self, url: &str, auth: &Auth) -> Result<Session, String> {
        let mut session = Session {
            url: url.to_string(),
            token: self.token(auth).await?,
            id: None,
            version: None,
            next: 0,
        };
        let result = session
            .rpc(
                self,
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "simple-gateway", "version": "0.1.0"}}),
            )
            .await?;
        // Every later request names the agreed revision (2025-03-26 has no
        // such header).
        session.version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .filter(|v| *v != "2025-03-26")
            .map(str::to_string);
        session.notify(self, "notifications/initialized").await?;
        Ok(session)
    }

    async fn call(&self, server: &Server, tool: &str, arguments: Value) -> Result<Value, String> {
        let work = async {
            let mut session = self.open(&server.url, &server.auth).await?;
            session
                .rpc(
                    self,
                    "tools/call",
                    json!({"name": tool, "arguments": arguments}),
                )
                .await
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(format!("timed out after {} ms", self.timeout.as_millis())),
        }
    }
}

struct Session {
    url: String,
    token: Option<String>,
    id: Option<String>,
    /// The revision `initialize` agreed on, when it has a header.
    version: Option<String>,
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
            request = request.header("mcp-session-id", id.as_str());
        }
        if let Some(version) = &self.version {
            request = request.header("mcp-protocol-version", version.as_str());
        }
        request
            .body(body.to_string().into_bytes())
            .map_err(|_| "connect: bad url".to_string())
    }

    async fn notify(&mut self, app: &App, method: &str) -> Result<(), String> {
        let request = self.request(json!({"jsonrpc": "2.0", "method": method}))?;
        let response = app
            .http
            .send(request)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("{method}: status {}", response.status().as_u16()))
        }
    }

    async fn rpc(&mut self, app: &App, method: &str, params: Value) -> Result<Value, String> {
        self.next += 1;
        let request = self.request(
            json!({"jsonrpc": "2.0", "id": self.next, "method": method, "params": params}),
        )?;
        let response = app
            .http
            .send(request)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{method}: status {}", response.status().as_u16()));
        }
        if let Some(id) = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            self.id = Some(id.to_string());
        }
        let text = String::from_utf8_lossy(response.body());
        // JSON, or the last `data:` line of an event stream that parses.
        let message: Value = serde_json::from_str(&text)
            .ok()
            .or_else(|| {
                text.lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
                    .next_back()
            })
            .ok_or_else(|| format!("{method}: the answer is not JSON-RPC"))?;
        if let Some(error) = message.get("error") {
            let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
            return Err(format!("{method}: JSON-RPC error {code}"));
        }
        Ok(message.get("result").cloned().unwrap_or(Value::Null))
    }
}

/// A running simple gateway.
struct Simple(Arc<App>);

impl Instance for Simple {
    fn start(&self) {
        let ids: Vec<String> = self.0.lock().keys().cloned().collect();
        for id in ids {
            let app = self.0.clone();
            tokio::spawn(async move { app.discover(&id).await });
        }
    }

    fn router(&self) -> Router {
        Router::new()
            .route("/v1/mcp/server", get(list).post(create).put(update))
            .route("/v1/mcp/server/health", get(health))
            .route("/v1/mcp/server/{id}", get(one).delete(remove))
            .route("/v1/mcp/tools", get(tools))
            .route("/mcp-rest/tools/call", post(call_tool))
            .with_state(self.0.clone())
    }

    fn shutdown(&self) {}
}

type Shared = State<Arc<App>>;
type Answer = (StatusCode, Json<Value>);

fn refuse(status: StatusCode, message: &str) -> Answer {
    (status, Json(json!({"detail": {"error": message}})))
}

async fn list(State(app): Shared) -> Json<Value> {
    Json(Value::Array(app.lock().values().map(Server::row).collect()))
}

async fn one(State(app): Shared, Path(id): Path<String>) -> Answer {
    match app.lock().get(&id) {
        Some(server) => (StatusCode::OK, Json(server.row())),
        None => refuse(StatusCode::NOT_FOUND, "no such server"),
    }
}

async fn health(State(app): Shared) -> Json<Value> {
    let items = app
        .lock()
        .values()
        .map(|s| json!({"server_id": s.id, "status": s.status}))
        .collect();
    Json(Value::Array(items))
}

async fn create(State(app): Shared, Json(body): Json<Value>) -> Answer {
    let (Some(name), Some(url)) = (
        body.get("server_name").and_then(Value::as_str),
        body.get("url").and_then(Value::as_str),
    ) else {
        return refuse(StatusCode::BAD_REQUEST, "server_name and url are required");
    };
    let id = match body.get("server_id").and_then(Value::as_str) {
        Some(id) => id.to_string(),
        None => {
            let mut next = app.next_id.lock().unwrap_or_else(|e| e.into_inner());
            *next += 1;
            format!("srv-{}", *next - 1)
        }
    };
    {
        let mut servers = app.lock();
        if servers.contains_key(&id) || servers.values().any(|s| s.name == name) {
            return refuse(StatusCode::BAD_REQUEST, "the server already exists");
        }
        let server = Server {
            id: id.clone(),
            name: name.to_string(),
            url: url.to_string(),
            auth: Auth::from_rest(&body),
            source: "rest",
            status: "unknown",
            error: None,
            tools: Vec::new(),
            last_check: None,
        };
        servers.insert(id.clone(), server);
    }
    // Discovery in the handler: the answer says how it went.
    app.discover(&id).await;
    let row = app.lock().get(&id).map(Server::row).unwrap_or(Value::Null);
    (StatusCode::CREATED, Json(row))
}

async fn update(State(app): Shared, Json(body): Json<Value>) -> Answer {
    let Some(id) = body
        .get("server_id")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return refuse(StatusCode::BAD_REQUEST, "server_id is required");
    };
    {
        let mut servers = app.lock();
        let Some(server) = servers.get_mut(&id) else {
            return refuse(StatusCode::NOT_FOUND, "no such server");
        };
        if let Some(url) = body.get("url").and_then(Value::as_str) {
            server.url = url.to_string();
        }
        if body.get("auth_type").is_some() {
            server.auth = Auth::from_rest(&body);
        }
        server.status = "unknown";
        server.error = None;
        server.tools = Vec::new();
        server.last_check = None;
    }
    app.discover(&id).await;
    let row = app.lock().get(&id).map(Server::row).unwrap_or(Value::Null);
    (StatusCode::ACCEPTED, Json(row))
}

async fn remove(State(app): Shared, Path(id): Path<String>) -> Answer {
    match app.lock().remove(&id) {
        Some(_) => (
            StatusCode::ACCEPTED,
            Json(json!({"server_id": id, "deleted": true})),
        ),
        None => refuse(StatusCode::NOT_FOUND, "no such server"),
    }
}

#[derive(Deserialize)]
struct ToolsQuery {
    server_id: Option<String>,
}

async fn tools(State(app): Shared, Query(query): Query<ToolsQuery>) -> Json<Value> {
    let servers = app.lock();
    let mut out = Vec::new();
    for server in servers.values() {
        if query.server_id.as_ref().is_some_and(|id| id != &server.id) {
            continue;
        }
        for tool in &server.tools {
            let mut tool = tool.clone();
            let name = tool.get("name").and_then(Value::as_str).unwrap_or("");
            tool["name"] = json!(format!("{}-{name}", server.name));
            out.push(tool);
        }
    }
    Json(json!({ "tools": out }))
}

async fn call_tool(State(app): Shared, Json(body): Json<Value>) -> Answer {
    let name = body.get("name").and_then(Value::as_str).unwrap_or("");
    let found = app.lock().values().find_map(|s| {
        name.strip_prefix(&format!("{}-", s.name))
            .map(|tool| (s.clone(), tool.to_string()))
    });
    let Some((server, tool)) = found else {
        return refuse(StatusCode::NOT_FOUND, "no such tool");
    };
    let arguments = body.get("arguments").cloned().unwrap_or(json!({}));
    match app.call(&server, &tool, arguments).await {
        Ok(result) => (StatusCode::OK, Json(result)),
        Err(error) => refuse(StatusCode::BAD_GATEWAY, &error),
    }
}
