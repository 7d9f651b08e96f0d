//! A tiny world: an MCP server per host, a token server at `auth`, a host
//! `down` that refuses connections; and a gateway wired to it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use mcpsim_gateway::http_client::{BodyChunks, BoxFuture, HttpClient, HttpError, Streamed};
use mcpsim_gateway::store::Store;
use mcpsim_gateway::{
    Clock, ConfigFile, Defect, Defects, Deps, Gateway, GatewayEvent, GatewaySettings, MemorySink,
};
use serde_json::{json, Value};
use tower::ServiceExt;

pub const SECRET: &str = "cl1ent-s3cret-value";
pub const STATIC_TOKEN: &str = "st4tic-t0ken-value";

/// One MCP server's behaviour.
#[derive(Clone, Debug)]
pub struct Mcp {
    pub tools: usize,
    pub page_size: usize,
    pub delay_ms: u64,
    /// Answer every POST with this status.
    pub status: Option<u16>,
    /// Forget the session at the first `tools/list` that carries one.
    pub forget_once: bool,
    /// `Authorization` values accepted; `None` accepts anything.
    pub accept: Option<BTreeSet<String>>,
    /// The tools' names; `tool0`, `tool1`, ... (`tools` of them) when empty.
    pub names: Vec<String>,
    /// Statuses answered to the next `tools/list` requests, one each.
    pub list_errors: Vec<u16>,
    /// The next `tools/list` requests break mid-answer (`HttpError::Io`).
    pub cut_lists: u32,
    /// `initialize` opens no session.
    pub stateless: bool,
    /// The status a `DELETE` gets.
    pub delete_status: u16,
    /// Replies as SSE: a priming event (an id, an empty `data:`), then a
    /// notification when `sse_notice`, then the response; CRLF when `crlf`.
    pub sse: bool,
    pub sse_notice: bool,
    pub crlf: bool,
    /// The only revision spoken, strictly: any other version header is 400.
    pub only_version: Option<&'static str>,
    /// Every page names the same `nextCursor`.
    pub stuck_cursor: bool,
    /// `initialize` declares `tools.listChanged`.
    pub list_changed: bool,
    /// A GET opens an SSE stream held open, on which
    /// [`World::announce`] writes `list_changed`; otherwise a GET is 405.
    pub stream: bool,
}

impl Default for Mcp {
    fn default() -> Self {
        Mcp {
            tools: 3,
            page_size: 100,
            delay_ms: 0,
            status: None,
            forget_once: false,
            accept: None,
            names: Vec::new(),
            list_errors: Vec::new(),
            cut_lists: 0,
            stateless: false,
            delete_status: 200,
            sse: false,
            sse_notice: false,
            crlf: false,
            only_version: None,
            stuck_cursor: false,
            list_changed: false,
            stream: false,
        }
    }
}

/// What the token server says of a token's lifetime.
#[derive(Clone, Copy, Debug, Default)]
pub enum Expiry {
    /// `expires_in: 3600`.
    #[default]
    Hour,
    Stated(u64),
    /// No `expires_in` at all.
    Unstated,
}

/// What the token server at `auth` insists on; by default nothing.
#[derive(Clone, Debug, Default)]
pub struct TokenRules {
    /// Only HTTP Basic client authentication is taken (`invalid_client`).
    pub basic_only: bool,
    /// Form fields the grant must carry, as sent (`audience=api`), or it
    /// is refused as `invalid_request`.
    pub required: Vec<String>,
    /// The `expires_in` stated and the token's real lifetime; 3600 s when
    /// not set.
    pub expires_in_s: Option<u64>,
}

/// One request the token server saw: its `Authorization` and its form body.
#[derive(Clone, Debug)]
pub struct TokenSeen {
    pub authorization: Option<String>,
    pub body: String,
}

#[derive(Default)]
pub struct World {
    pub mcp: Mutex<BTreeMap<String, Mcp>>,
    pub token_delay_ms: AtomicU64,
    pub token_calls: AtomicU64,
    pub expiry: Mutex<Expiry>,
    pub token_rules: Mutex<TokenRules>,
    /// Every token request, in order.
    pub token_seen: Mutex<Vec<TokenSeen>>,
    /// `(host, Authorization)` of every MCP POST.
    pub seen: Mutex<Vec<(String, Option<String>)>>,
    /// `(host, JSON-RPC method, MCP-Protocol-Version)` of every MCP POST
    /// (the first value of the header, as a server reads it).
    pub versions: Mutex<Vec<(String, String, Option<String>)>>,
    /// `(host, JSON-RPC method or DELETE)` of every MCP request.
    pub methods: Mutex<Vec<(String, String)>>,
    sessions: AtomicU64,
    /// The open GET streams, by host.
    streams: Mutex<Vec<(String, tokio::sync::mpsc::UnboundedSender<Vec<u8>>)>>,
}

impl World {
    pub fn with(servers: &[(&str, Mcp)]) -> Arc<World> {
        let world = World::default();
        for (host, mcp) in servers {
            world
                .mcp
                .lock()
                .unwrap()
                .insert(host.to_string(), mcp.clone());
        }
        Arc::new(world)
    }

    pub fn set(&self, host: &str, change: impl FnOnce(&mut Mcp)) {
        change(self.mcp.lock().unwrap().get_mut(host).unwrap());
    }

    pub fn auth_seen(&self, host: &str) -> Vec<Option<String>> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|(h, _)| h == host)
            .map(|(_, a)| a.clone())
            .collect()
    }

    /// Writes `notifications/tools/list_changed` on every open stream of
    /// `host`.
    pub fn announce(&self, host: &str) {
        let event = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n";
        for (h, stream) in self.streams.lock().unwrap().iter() {
            if h == host {
                let _ = stream.send(event.to_vec());
            }
        }
    }

    /// How many requests of this JSON-RPC method (or `DELETE`) `host` got.
    pub fn count(&self, host: &str, method: &str) -> usize {
        let methods = self.methods.lock().unwrap();
        methods
            .iter()
            .filter(|(h, m)| h == host && m == method)
            .count()
    }

    fn token(&self, request: &http::Request<Vec<u8>>) -> http::Response<Vec<u8>> {
        let authorization = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap().to_string());
        let body = String::from_utf8_lossy(request.body()).to_string();
        self.token_seen.lock().unwrap().push(TokenSeen {
            authorization: authorization.clone(),
            body: body.clone(),
        });
        let rules = self.token_rules.lock().unwrap().clone();
        let basic = authorization.is_some_and(|a| a.starts_with("Basic "));
        if rules.basic_only && !basic {
            return json_response(401, &json!({"error": "invalid_client"}));
        }
        let fields: Vec<&str> = body.split('&').collect();
        if rules.required.iter().any(|r| !fields.contains(&r.as_str())) {
            return json_response(400, &json!({"error": "invalid_request"}));
        }
        let n = self.token_calls.fetch_add(1, Ordering::SeqCst);
        let mut body = json!({"access_token": format!("tok{n}"), "token_type": "Bearer"});
        match (rules.expires_in_s, *self.expiry.lock().unwrap()) {
            (Some(s), _) | (None, Expiry::Stated(s)) => body["expires_in"] = json!(s),
            (None, Expiry::Hour) => body["expires_in"] = json!(3600),
            (None, Expiry::Unstated) => {}
        }
        json_response(200, &body)
    }

    /// The form bodies of every token request, in order.
    pub fn token_bodies(&self) -> Vec<String> {
        let seen = self.token_seen.lock().unwrap();
        seen.iter().map(|t| t.body.clone()).collect()
    }

    fn mcp(&self, host: &str, request: &http::Request<Vec<u8>>) -> http::Response<Vec<u8>> {
        let mut servers = self.mcp.lock().unwrap();
        let Some(mcp) = servers.get_mut(host) else {
            return json_response(404, &json!({}));
        };
        let auth = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap().to_string());
        if request.method() == http::Method::DELETE {
            return json_response(mcp.delete_status, &json!({}));
        }
        if request.method() == http::Method::GET {
            return json_response(405, &json!({}));
        }
        self.seen
            .lock()
            .unwrap()
            .push((host.to_string(), auth.clone()));
        if let Some(accept) = &mcp.accept {
            if !auth.is_some_and(|a| accept.contains(&a)) {
                return json_response(401, &json!({"error": "invalid_token"}));
            }
        }
        if let Some(status) = mcp.status {
            return json_response(status, &json!({}));
        }
        let message: Value = serde_json::from_slice(request.body()).unwrap();
        self.versions.lock().unwrap().push((
            host.to_string(),
            message["method"].as_str().unwrap_or("").to_string(),
            request
                .headers()
                .get("mcp-protocol-version")
                .map(|v| v.to_str().unwrap().to_string()),
        ));
        let id = message["id"].clone();
        let method = message["method"].as_str().unwrap();
        let version = request.headers().get("mcp-protocol-version");
        if let (Some(only), true) = (mcp.only_version, method != "initialize") {
            let sent = version.map(|v| v.to_str().unwrap());
            if sent.is_some_and(|v| v != only) || (sent.is_none() && only != "2025-03-26") {
                return json_response(400, &json!({}));
            }
        }
        if method == "tools/list" && !mcp.list_errors.is_empty() {
            return json_response(mcp.list_errors.remove(0), &json!({}));
        }
        let (sse, notice, crlf) = (mcp.sse, mcp.sse_notice, mcp.crlf);
        let reply = |result: Value| {
            let body = json!({"jsonrpc": "2.0", "id": id, "result": result});
            if !sse {
                return json_response(200, &body);
            }
            let mut text = "id: 0\ndata:\n\n".to_string();
            if notice {
                text.push_str("event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}}\n\n");
            }
            text.push_str(&format!("event: message\nid: 1\ndata: {body}\n\n"));
            if crlf {
                text = text.replace('\n', "\r\n");
            }
            http::Response::builder()
                .status(200)
                .header("content-type", "text/event-stream")
                .body(text.into_bytes())
                .unwrap()
        };
        match method {
            "initialize" => {
                let n = self.sessions.fetch_add(1, Ordering::SeqCst);
                let mut response = reply(
                    json!({"protocolVersion": mcp.only_version.unwrap_or("2025-06-18"),
                    "capabilities": {"tools": {"listChanged": mcp.list_changed}},
                    "serverInfo": {"name": "mock", "version": "1"}}),
                );
                if !mcp.stateless {
                    response
                        .headers_mut()
                        .insert("mcp-session-id", format!("s{n}").parse().unwrap());
                }
                response
            }
            "notifications/initialized" => json_response(202, &json!({})),
            "tools/list" => {
                if mcp.forget_once && request.headers().contains_key("mcp-session-id") {
                    mcp.forget_once = false;
                    return json_response(404, &json!({}));
                }
                let start: usize = message["params"]["cursor"]
                    .as_str()
                    .map(|c| c.parse().unwrap())
                    .unwrap_or(0);
                let count = if mcp.names.is_empty() {
                    mcp.tools
                } else {
                    mcp.names.len()
                };
                let end = (start + mcp.page_size).min(count);
                let name = |i: usize| match mcp.names.get(i) {
                    Some(name) => name.clone(),
                    None => format!("tool{i}"),
                };
                let tools: Vec<Value> = (start..end)
                    .map(|i| json!({"name": name(i), "inputSchema": {"type": "object"}}))
                    .collect();
                let mut result = json!({"tools": tools});
                if end < count {
                    result["nextCursor"] = json!(end.to_string());
                }
                if mcp.stuck_cursor {
                    result["nextCursor"] = json!("0");
                }
                reply(result)
            }
            "tools/call" => {
                let name = message["params"]["name"].as_str().unwrap_or("");
                let arguments = message["params"]["arguments"].clone();
                reply(
                    json!({"content": [{"type": "text", "text": format!("{name} on {host}: {arguments}")}],
                    "isError": false}),
                )
            }
            _ => json_response(400, &json!({})),
        }
    }
}

fn json_response(status: u16, body: &Value) -> http::Response<Vec<u8>> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string().into_bytes())
        .unwrap()
}

impl HttpClient for World {
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> BoxFuture<'_, Result<http::Response<Vec<u8>>, HttpError>> {
        Box::pin(async move {
            let host = request.uri().host().unwrap_or("").to_string();
            match host.as_str() {
                "down" => Err(HttpError::Connect("connection refused".into())),
                "auth" => {
                    let delay = self.token_delay_ms.load(Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    Ok(self.token(&request))
                }
                _ => {
                    let method = serde_json::from_slice::<Value>(request.body())
                        .ok()
                        .and_then(|m| m["method"].as_str().map(str::to_string))
                        .unwrap_or_else(|| request.method().to_string());
                    self.methods
                        .lock()
                        .unwrap()
                        .push((host.clone(), method.clone()));
                    let delay = self
                        .mcp
                        .lock()
                        .unwrap()
                        .get(&host)
                        .map_or(0, |m| m.delay_ms);
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    if method == "tools/list" {
                        if let Some(mcp) = self.mcp.lock().unwrap().get_mut(&host) {
                            if mcp.cut_lists > 0 {
                                mcp.cut_lists -= 1;
                                return Err(HttpError::Io("connection reset mid-body".into()));
                            }
                        }
                    }
                    Ok(self.mcp(&host, &request))
                }
            }
        })
    }

    /// A GET takes a millisecond (so that a client looping on it lets
    /// time pass), and opens a held stream where the server offers one.
    fn stream(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> BoxFuture<'_, Result<Streamed, HttpError>> {
        Box::pin(async move {
            let host = request.uri().host().unwrap_or("").to_string();
            let streams = self
                .mcp
                .lock()
                .unwrap()
                .get(&host)
                .is_some_and(|m| m.stream);
            if request.method() != http::Method::GET || !streams {
                if request.method() == http::Method::GET {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let (head, body) = self.send(request).await?.into_parts();
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                let _ = tx.send(body);
                return Ok(Streamed {
                    head,
                    body: Box::new(Announced(rx)),
                });
            }
            self.methods
                .lock()
                .unwrap()
                .push((host.clone(), "GET".to_string()));
            tokio::time::sleep(Duration::from_millis(1)).await;
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let _ = tx.send(b"id: 0\ndata:\n\n".to_vec());
            self.streams.lock().unwrap().push((host, tx));
            let (head, ()) = http::Response::builder()
                .status(200)
                .header("content-type", "text/event-stream")
                .body(())
                .unwrap()
                .into_parts();
            Ok(Streamed {
                head,
                body: Box::new(Announced(rx)),
            })
        })
    }
}

/// An open GET stream: what [`World::announce`] writes, as it comes.
struct Announced(tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>);

impl BodyChunks for Announced {
    fn next_chunk(&mut self) -> BoxFuture<'_, Option<Result<Vec<u8>, HttpError>>> {
        Box::pin(async move { self.0.recv().await.map(Ok) })
    }
}

/// Unix time on tokio's (paused) clock.
struct TokioClock(tokio::time::Instant);

impl Clock for TokioClock {
    fn now_unix(&self) -> Duration {
        Duration::from_secs(1_767_225_600) + self.0.elapsed()
    }
}

pub struct Rig {
    pub events: Arc<MemorySink>,
    pub gateway: Gateway,
    pub router: axum::Router,
}

/// `[defect]` when `on`, else no defect: one test body, both ways.
pub fn switched(on: bool, defect: Defect) -> Vec<Defect> {
    if on {
        vec![defect]
    } else {
        vec![]
    }
}

pub fn settings(defects: &[Defect]) -> GatewaySettings {
    GatewaySettings {
        defects: defects.iter().copied().collect::<Defects>(),
        ..GatewaySettings::default()
    }
}

/// A started gateway over `world`.
pub fn rig(
    settings: GatewaySettings,
    world: &Arc<World>,
    config: Value,
    store: Option<Arc<dyn Store>>,
) -> Rig {
    let events = Arc::new(MemorySink::default());
    let deps = Deps {
        http: world.clone(),
        clock: Arc::new(TokioClock(tokio::time::Instant::now())),
        events: events.clone(),
        store,
    };
    let config: ConfigFile = serde_json::from_value(json!({"mcp_servers": config})).unwrap();
    let gateway = Gateway::new(settings, deps, &config, &BTreeMap::new()).unwrap();
    gateway.start();
    let router = gateway.router();
    Rig {
        events,
        gateway,
        router,
    }
}

impl Rig {
    pub async fn call(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        self.call_as(method, path, body, None).await
    }

    pub async fn call_as(
        &self,
        method: &str,
        path: &str,
        body: Value,
        authorization: Option<&str>,
    ) -> (u16, Value) {
        let (status, text) = self.call_text(method, path, body, authorization).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn call_text(
        &self,
        method: &str,
        path: &str,
        body: Value,
        authorization: Option<&str>,
    ) -> (u16, String) {
        let headers: Vec<(&str, &str)> = authorization
            .map(|auth| ("authorization", auth))
            .into_iter()
            .collect();
        self.call_with(method, path, body, &headers).await
    }

    /// A request with these headers beside the content type.
    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Value,
        headers: &[(&str, &str)],
    ) -> (u16, String) {
        let body = if body.is_null() {
            String::new()
        } else if let Some(raw) = body.as_str() {
            raw.to_string()
        } else {
            body.to_string()
        };
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).to_string())
    }

    pub async fn row(&self, id: &str) -> Value {
        let (status, row) = self
            .call("GET", &format!("/v1/mcp/server/{id}"), Value::Null)
            .await;
        assert_eq!(status, 200, "{row}");
        row
    }

    /// The names the gateway lists for one server's tools, or for all.
    pub async fn tool_names(&self, id: Option<&str>) -> Vec<String> {
        let path = match id {
            Some(id) => format!("/v1/mcp/tools?server_id={id}"),
            None => "/v1/mcp/tools".to_string(),
        };
        let (status, tools) = self.call("GET", &path, Value::Null).await;
        assert_eq!(status, 200, "{tools}");
        let mut names: Vec<String> = tools["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    }

    pub async fn tool_count(&self, id: &str) -> usize {
        let (_, tools) = self
            .call("GET", &format!("/v1/mcp/tools?server_id={id}"), Value::Null)
            .await;
        tools["tools"].as_array().map_or(0, Vec::len)
    }

    pub fn events(&self) -> Vec<GatewayEvent> {
        self.events.0.lock().unwrap().clone()
    }

    pub fn count(&self, what: impl Fn(&GatewayEvent) -> bool) -> usize {
        self.events().iter().filter(|e| what(e)).count()
    }
}

/// Lets simulated time pass (the clock is paused and advances itself).
pub async fn pass(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// A REST body for a server at `http://<host>/mcp`.
pub fn bearer_body(id: &str, host: &str) -> Value {
    json!({"server_id": id, "server_name": id, "transport": "http", "url": format!("http://{host}/mcp"),
        "auth_type": "bearer_token", "credentials": {"auth_value": STATIC_TOKEN}})
}

/// A REST body for a server at `http://<host>/mcp` without credentials.
pub fn open_body(id: &str, host: &str) -> Value {
    json!({"server_id": id, "server_name": id, "transport": "http", "url": format!("http://{host}/mcp")})
}

/// The reporter's body of issue 27635: OAuth2 client credentials, no flow.
pub fn oauth_body(id: &str, host: &str) -> Value {
    json!({"server_id": id, "server_name": id, "transport": "http", "url": format!("http://{host}/mcp"),
        "auth_type": "oauth2", "token_url": "http://auth/token",
        "credentials": {"client_id": "gateway", "client_secret": SECRET}})
}

/// Accepts the first `n` tokens the token server hands out.
pub fn tokens(n: u64) -> Option<BTreeSet<String>> {
    Some((0..n).map(|i| format!("Bearer tok{i}")).collect())
}
