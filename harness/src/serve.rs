//! A scenario's fakes on real sockets: every token server, MCP server and
//! store on 127.0.0.1, on real time, for reproducing a race by hand against
//! any gateway (`mcpsim serve`) and for interop tests with real clients.
//!
//! Real time is the point here, so this is the one part of the harness that
//! reads the wall clock: the fakes' instants (`revoke_at_ms`, tool changes)
//! count from when serving started. Names of the scenario's hosts in URLs
//! the fakes hand out (an issuer, an authorization server) become the
//! served addresses, and an OAuth-protected MCP server names the token
//! server that signs its tokens as its authorization server, so a client
//! that discovers finds it.
//!
//! Invariants: it binds 127.0.0.1 only; a log line, like the trace, holds
//! method, path, JSON-RPC method and status, never a header or a body.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;
use mcpsim_fakes::{McpAuth, McpServer, Peer, StoreServer, TokenServer, SIM_EPOCH_UNIX_S};
use tokio::task::JoinHandle;

use crate::scenario::Scenario;

/// Receives one log line per request.
pub type LogSink = Arc<dyn Fn(String) + Send + Sync>;

/// How to serve.
#[derive(Clone, Default)]
pub struct ServeOptions {
    /// The first port to bind; the fakes take consecutive ports in scenario order (token
    /// servers, MCP servers, stores). `None` lets the system choose each.
    pub first_port: Option<u16>,
    /// Where request log lines go; none logs nothing.
    pub log: Option<LogSink>,
}

/// The fakes being served.
pub struct Served {
    /// Each fake host of the scenario and its base URL (`http://127.0.0.1:PORT`).
    pub urls: BTreeMap<String, String>,
    pub token_servers: BTreeMap<String, TokenServer>,
    pub mcp_servers: BTreeMap<String, McpServer>,
    pub stores: BTreeMap<String, StoreServer>,
    tasks: Vec<JoinHandle<()>>,
}

impl Served {
    /// Stops serving.
    pub fn shutdown(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Replaces `http://<host>` of a served host at the start of `text` with its address.
fn rewrite(text: &str, urls: &BTreeMap<String, String>) -> String {
    for (host, url) in urls {
        let name = format!("http://{host}");
        if text == name {
            return url.clone();
        }
        if let Some(rest) = text.strip_prefix(&format!("{name}/")) {
            return format!("{url}/{rest}");
        }
    }
    text.to_string()
}

/// Serves every fake of `scenario` on 127.0.0.1 until the returned value is shut down.
pub async fn serve(scenario: &Scenario, options: ServeOptions) -> std::io::Result<Served> {
    let hosts: Vec<String> = scenario
        .token_servers
        .iter()
        .map(|t| t.host.clone())
        .chain(scenario.mcp_servers.iter().map(|m| m.host.clone()))
        .chain(scenario.stores.iter().map(|s| s.host.clone()))
        .collect();
    let mut listeners = BTreeMap::new();
    let mut urls = BTreeMap::new();
    for (i, host) in hosts.iter().enumerate() {
        let port = options.first_port.map_or(0, |p| p.saturating_add(i as u16));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        urls.insert(host.clone(), format!("http://{}", listener.local_addr()?));
        listeners.insert(host.clone(), listener);
    }
    let started = Instant::now();
    let clock: mcpsim_fakes::Clock =
        Arc::new(move || Duration::from_secs(SIM_EPOCH_UNIX_S) + started.elapsed());

    let mut token_servers = BTreeMap::new();
    let mut routers = Vec::new();
    for t in &scenario.token_servers {
        let mut config = t.config.clone();
        config.issuer = rewrite(&config.issuer, &urls);
        let server = TokenServer::new(config, clock.clone());
        routers.push((t.host.clone(), server.router()));
        token_servers.insert(t.host.clone(), server);
    }
    let mut mcp_servers = BTreeMap::new();
    for m in &scenario.mcp_servers {
        let mut config = m.config.clone();
        if let McpAuth::Oauth {
            issuer,
            signing_key,
            authorization_server,
            ..
        } = &mut config.auth
        {
            *issuer = rewrite(issuer, &urls);
            let signer = scenario
                .token_servers
                .iter()
                .find(|t| &t.config.signing_key == signing_key)
                .map(|t| t.host.clone());
            *authorization_server = match authorization_server.take() {
                Some(named) => Some(rewrite(&named, &urls)),
                None => signer.and_then(|host| urls.get(&host).cloned()),
            };
        }
        let server = McpServer::new(config, clock.clone());
        routers.push((m.host.clone(), server.router()));
        mcp_servers.insert(m.host.clone(), server);
    }
    let mut stores = BTreeMap::new();
    for s in &scenario.stores {
        let server = StoreServer::new(s.config.clone());
        routers.push((s.host.clone(), server.router()));
        stores.insert(s.host.clone(), server);
    }

    let mut tasks = Vec::new();
    for (host, router) in routers {
        let Some(listener) = listeners.remove(&host) else {
            continue;
        };
        let (log, name) = (options.log.clone(), host.clone());
        let router = router.layer(axum::middleware::from_fn(move |request, next| {
            record(request, next, name.clone(), log.clone(), started)
        }));
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(listener, service).await;
        }));
    }
    Ok(Served {
        urls,
        token_servers,
        mcp_servers,
        stores,
        tasks,
    })
}

/// Tags a request with its peer, and logs it in the trace's format when it is answered.
async fn record(
    mut request: Request,
    next: Next,
    host: String,
    log: Option<LogSink>,
    started: Instant,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    request.extensions_mut().insert(Peer(peer.clone()));
    let Some(log) = log else {
        return next.run(request).await;
    };
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    // The JSON-RPC method names the MCP step; it is never a secret.
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, 8 * 1024 * 1024).await.unwrap_or_default();
    let rpc = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("method").and_then(|m| m.as_str()).map(str::to_string))
        .map(|m| format!(" {m}"))
        .unwrap_or_default();
    let request = Request::from_parts(parts, Body::from(bytes));
    let sent = started.elapsed();
    let response = next.run(request).await;
    let at = started.elapsed();
    log(format!(
        "{:>7} ms  {:<21} -> {host} {method} {path}{rpc} = {} ({} ms)",
        at.as_millis(),
        peer,
        response.status().as_u16(),
        at.saturating_sub(sent).as_millis()
    ));
    response
}
