//! Checkers fail when they should, on systems under test written to break
//! them: a gateway that echoes what it was sent (a secret included) and
//! lists nothing it acknowledged; one that keeps the operator waiting past
//! any deadline; the reference gateway with one misdeed put in through
//! the seam (it re-discovers in a tight loop, sends each listing twenty
//! times, never closes a session, keeps polling or fetching tokens for a
//! server it deleted or moved, storms its upstream, floods its trace, or
//! spins), each story also run on the reference alone, which passes it;
//! and a small gateway with one flaw at a time (`checkers/flawed.rs`),
//! each run beside the same gateway without the flaw and the reference
//! gateway, which pass. The storm bounds hold live too; and a write left
//! unanswered within the budget a gateway declared for writes is judged
//! with that patience.

#[path = "checkers/flawed.rs"]
mod flawed;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::{Json, Router};
use flawed::{Flaw, Flawed};
use mcpsim_gateway::Reference;
use mcpsim_harness::builder::*;
use mcpsim_harness::explore::{run_cases_within, Options};
use mcpsim_harness::generate::Target;
use mcpsim_harness::{Evidence, Report, ServerAuth, ServerDef, Status, Sut};
use mcpsim_sut::{
    BoxFuture, Declared, Dialect, HostSetup, HttpClient, HttpError, Injected, Instance, LiteLlm,
    Profile, SetupError, SystemUnderTest, TokenReuse,
};
use serde_json::{json, Value};

struct Echo;

struct EchoInstance;

impl Instance for EchoInstance {
    fn start(&self) {}

    fn router(&self) -> Router {
        Router::new()
            .route(
                "/v1/mcp/server",
                post(|Json(body): Json<Value>| async move {
                    (
                        axum::http::StatusCode::CREATED,
                        Json(json!({"server_id": "echoed", "received": body})),
                    )
                })
                .get(|| async { Json(json!([])) }),
            )
            .route("/v1/mcp/server/health", get(|| async { Json(json!([])) }))
    }

    fn shutdown(&self) {}
}

impl SystemUnderTest for Echo {
    fn name(&self) -> String {
        "echo".into()
    }

    fn dialect(&self) -> &dyn Dialect {
        &LiteLlm
    }

    fn declare(&self, _host: &HostSetup) -> Result<Declared, SetupError> {
        Ok(Declared {
            serves_tools: true,
            token_budget_ms: None,
            listing_budget_ms: 1_000,
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

    fn build(&self, _host: &HostSetup, _injected: Injected) -> Result<Box<dyn Instance>, String> {
        Ok(Box::new(EchoInstance))
    }

    fn settings_for(&self, _profile: &Profile) -> Option<Value> {
        Some(json!({}))
    }
}

#[test]
fn a_gateway_that_echoes_a_secret_and_lists_nothing_fails_secrets_and_liveness() {
    let sut: Sut = std::sync::Arc::new(Echo);
    let server = ServerDef::http("docs", "http://docs/mcp").auth(ServerAuth::Bearer {
        token: "st4tic-t0ken-never-shown".into(),
    });
    let scenario = Scenario::builder("a create whose answer repeats the body")
        .deadline_ms(2_000)
        .gateway(GatewayHost::new("gateway"))
        .step(Step::create(server))
        .build()
        .unwrap();
    let report = mcpsim_harness::run(&sut, &scenario).unwrap();
    let failed: Vec<&str> = report.failed_checks().map(|c| c.name).collect();
    assert_eq!(
        failed,
        ["liveness", "no_secrets", "api_contract"],
        "{:?}",
        report.checks
    );
    let secrets = &report
        .checks
        .iter()
        .find(|c| c.name == "no_secrets")
        .unwrap();
    assert!(secrets.findings[0].contains("appears in the responses"));
    // Findings name a secret by its index, never by its value.
    let text = serde_json::to_string(&report).unwrap();
    assert!(!text.contains("st4tic-t0ken-never-shown"));
    assert!(report.deadline_hit);
}

// Gateways that break the upstream checkers: the reference gateway, with
// one misdeed of its own put in through the seam, so that everything else
// about them is sound and the misdeed alone must be what a checker sees.

/// Where every misdeed is aimed.
const UPSTREAM: &str = "http://mcp/mcp";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Misdeed {
    /// Lists the upstream again every 20 ms, whatever it declares.
    TightLoop,
    /// Its client's session close is a no-op: no DELETE ever leaves.
    NeverCloses,
    /// Its client sends every `tools/list` twenty times over.
    ListsTwentyTimes,
    /// Once a server is deleted or updated, lists its first upstream every
    /// 600 ms for good.
    KeepsPollingOldUpstream,
    /// Once a server is deleted, asks its token server for a token every
    /// 600 ms for good.
    KeepsFetchingTokens,
    /// This many loops, each sending requests as fast as answers come.
    Storm(usize),
    /// Twenty loops, each opening a connection to its MCP server every
    /// millisecond or so and keeping every one of them.
    HoardsConnections,
    /// Reports a hundred events about itself every millisecond.
    Chatters,
    /// From 300 ms on, loops inside one task, yielding, until told to stop.
    SpinYielding,
    /// From 300 ms on, loops inside one poll without yielding, until told to
    /// stop.
    SpinBusy,
}

/// Tells the spinning gateways to stop, so that an abandoned worker thread
/// does not outlive its test.
static STOP_YIELDING: AtomicBool = AtomicBool::new(false);
static STOP_BUSY: AtomicBool = AtomicBool::new(false);

struct Broken {
    misdeed: Misdeed,
    reference: Sut,
}

fn broken(misdeed: Misdeed) -> Sut {
    Arc::new(Broken {
        misdeed,
        reference: Reference::new().sut(),
    })
}

impl SystemUnderTest for Broken {
    fn name(&self) -> String {
        format!("reference with {:?}", self.misdeed)
    }

    fn dialect(&self) -> &dyn Dialect {
        self.reference.dialect()
    }

    fn declare(&self, host: &HostSetup) -> Result<Declared, SetupError> {
        self.reference.declare(host)
    }

    fn build(&self, host: &HostSetup, mut injected: Injected) -> Result<Box<dyn Instance>, String> {
        let http = injected.http.clone();
        let events = injected.events.clone();
        match self.misdeed {
            Misdeed::NeverCloses => injected.http = Arc::new(NoGoodbye(http.clone())),
            Misdeed::ListsTwentyTimes => injected.http = Arc::new(Twenty(http.clone())),
            _ => {}
        }
        let inner = self.reference.build(host, injected)?;
        Ok(Box::new(BrokenInstance {
            misdeed: self.misdeed,
            inner,
            http,
            events,
        }))
    }

    fn settings_for(&self, profile: &Profile) -> Option<Value> {
        self.reference.settings_for(profile)
    }
}

struct BrokenInstance {
    misdeed: Misdeed,
    inner: Box<dyn Instance>,
    http: Arc<dyn HttpClient>,
    events: Arc<dyn mcpsim_sut::EventSink>,
}

impl Instance for BrokenInstance {
    fn start(&self) {
        self.inner.start();
        let http = self.http.clone();
        match self.misdeed {
            Misdeed::TightLoop => {
                tokio::spawn(poll_forever(http, 20));
            }
            Misdeed::Storm(loops) => {
                for _ in 0..loops {
                    let http = http.clone();
                    tokio::spawn(async move {
                        loop {
                            let _ = http.send(rpc(json!({"method": "ping"}), None)).await;
                        }
                    });
                }
            }
            Misdeed::HoardsConnections => {
                for _ in 0..20 {
                    tokio::spawn(async {
                        let mut kept = Vec::new();
                        loop {
                            if let Ok(stream) = turmoil::net::TcpStream::connect("mcp:80").await {
                                kept.push(stream);
                            }
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    });
                }
            }
            Misdeed::Chatters => {
                let events = self.events.clone();
                tokio::spawn(async move {
                    loop {
                        for _ in 0..100 {
                            events.record(mcpsim_sut::GatewayEvent::SyncFailed {
                                error: "chatter".into(),
                            });
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                });
            }
            Misdeed::SpinYielding => {
                tokio::spawn(async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    while !STOP_YIELDING.load(Ordering::SeqCst) {
                        tokio::task::yield_now().await;
                    }
                });
            }
            Misdeed::SpinBusy => {
                tokio::spawn(async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    while !STOP_BUSY.load(Ordering::SeqCst) {
                        std::hint::spin_loop();
                    }
                });
            }
            Misdeed::NeverCloses
            | Misdeed::ListsTwentyTimes
            | Misdeed::KeepsPollingOldUpstream
            | Misdeed::KeepsFetchingTokens => {}
        }
    }

    fn router(&self) -> Router {
        let inner = self.inner.router();
        let misdeed = self.misdeed;
        if !matches!(
            misdeed,
            Misdeed::KeepsPollingOldUpstream | Misdeed::KeepsFetchingTokens
        ) {
            return inner;
        }
        let http = self.http.clone();
        Router::new().fallback(move |request: axum::extract::Request| {
            let (inner, http) = (inner.clone(), http.clone());
            async move {
                let path = request.uri().path();
                let deleting = (request.method() == axum::http::Method::DELETE
                    && path.starts_with("/v1/mcp/server/"))
                    || (request.method() == axum::http::Method::PUT && path == "/v1/mcp/server");
                let response = match tower::ServiceExt::oneshot(inner, request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                if deleting && response.status().is_success() {
                    if misdeed == Misdeed::KeepsPollingOldUpstream {
                        tokio::spawn(poll_forever(http, 600));
                    } else {
                        tokio::spawn(fetch_tokens_forever(http, 600));
                    }
                }
                response
            }
        })
    }

    fn shutdown(&self) {
        self.inner.shutdown();
    }
}

/// A client whose DELETE goes nowhere and is answered 200 at once.
struct NoGoodbye(Arc<dyn HttpClient>);

impl HttpClient for NoGoodbye {
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> BoxFuture<'_, Result<http::Response<Vec<u8>>, HttpError>> {
        if request.method() == http::Method::DELETE {
            return Box::pin(async { Ok(http::Response::new(Vec::new())) });
        }
        self.0.send(request)
    }
}

/// A client that sends every `tools/list` twenty times and gives the last
/// answer.
struct Twenty(Arc<dyn HttpClient>);

impl HttpClient for Twenty {
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> BoxFuture<'_, Result<http::Response<Vec<u8>>, HttpError>> {
        let listing = serde_json::from_slice::<Value>(request.body())
            .is_ok_and(|body| body["method"] == "tools/list");
        if !listing {
            return self.0.send(request);
        }
        Box::pin(async move {
            for _ in 1..20 {
                let _ = self.0.send(request.clone()).await;
            }
            self.0.send(request).await
        })
    }
}

/// A JSON-RPC POST to the upstream, in a session or none.
fn rpc(mut message: Value, session: Option<&str>) -> http::Request<Vec<u8>> {
    message["jsonrpc"] = json!("2.0");
    let mut request = http::Request::post(UPSTREAM)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    request.body(message.to_string().into_bytes()).unwrap()
}

/// One whole listing, as a sound client does it: initialize, initialized,
/// tools/list, DELETE.
async fn list_once(http: &dyn HttpClient) -> Option<()> {
    let init = json!({"id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "broken", "version": "0"}}});
    let answer = http.send(rpc(init, None)).await.ok()?;
    let session = answer
        .headers()
        .get("mcp-session-id")?
        .to_str()
        .ok()?
        .to_string();
    let initialized = json!({"method": "notifications/initialized"});
    http.send(rpc(initialized, Some(&session))).await.ok()?;
    let list = json!({"id": 2, "method": "tools/list"});
    http.send(rpc(list, Some(&session))).await.ok()?;
    let delete = http::Request::delete(UPSTREAM)
        .header("mcp-session-id", session.as_str())
        .body(Vec::new())
        .ok()?;
    http.send(delete).await.ok()?;
    Some(())
}

/// Lists the upstream, then again every `pause_ms`, for good.
async fn poll_forever(http: Arc<dyn HttpClient>, pause_ms: u64) {
    loop {
        let _ = list_once(http.as_ref()).await;
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
    }
}

/// Asks the token server for a token, then again every `pause_ms`, for
/// good.
async fn fetch_tokens_forever(http: Arc<dyn HttpClient>, pause_ms: u64) {
    loop {
        let grant = format!("grant_type=client_credentials&client_id=gw&client_secret={SECRET}");
        let request = http::Request::post("http://auth/oauth/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(grant.into_bytes())
            .unwrap();
        let _ = http.send(request).await;
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
    }
}

/// The client secret of the OAuth stories.
const SECRET: &str = "gw-s3cret-value";

/// The reference's settings in these stories: a re-check every 500 ms.
fn settings() -> Value {
    json!({"list_timeout_ms": 750, "token_timeout_ms": 500, "check_interval_ms": 500, "id_seed": 1})
}

/// A config server with two tools, watched for three seconds.
fn watched_server(description: &str) -> Scenario {
    Scenario::builder(description)
        .gateway(
            GatewayHost::new("gateway")
                .settings(settings())
                .server(ServerDef::http("docs", UPSTREAM)),
        )
        .mcp_server(McpHost::new("mcp").tools(2))
        .poll_until_ms(3_000)
        .deadline_ms(5_000)
        .expect("docs", Expectation::status(Status::Healthy).tool_count(2))
        .build()
        .unwrap()
}

/// A server registered through the API, deleted at 1 s, watched until 4 s.
fn deleted_server(description: &str) -> Scenario {
    Scenario::builder(description)
        .gateway(GatewayHost::new("gateway").settings(settings()))
        .mcp_server(McpHost::new("mcp").tools(2))
        .step(Step::create(ServerDef::http("docs", UPSTREAM)))
        .step(Step::delete("docs").at_ms(1_000))
        .poll_until_ms(4_000)
        .deadline_ms(6_000)
        .build()
        .unwrap()
}

/// As [`deleted_server`], with OAuth client credentials from `auth`.
fn deleted_oauth_server(description: &str) -> Scenario {
    let tokens = TokenServerConfig {
        clients: vec![ClientRegistration {
            client_id: "gw".into(),
            client_secret: SECRET.into(),
            scopes: Vec::new(),
            auth_method: None,
        }],
        ..TokenServerConfig::default()
    };
    let mcp = McpServerConfig {
        tool_count: Some(2),
        auth: McpAuth::Oauth {
            issuer: tokens.issuer.clone(),
            signing_key: tokens.signing_key.clone(),
            required_scope: None,
            revoke_at_ms: None,
            authorization_server: None,
        },
        ..McpServerConfig::default()
    };
    let server = ServerDef::http("docs", UPSTREAM).auth(ServerAuth::ClientCredentials {
        token_url: "http://auth/oauth/token".into(),
        client_id: "gw".into(),
        client_secret: SECRET.into(),
        scopes: Vec::new(),
        audience: None,
        resource: None,
        explicit_flow: true,
    });
    Scenario::builder(description)
        .gateway(GatewayHost::new("gateway").settings(settings()))
        .token_server(TokenHost::new("auth").config(tokens))
        .mcp_server(McpHost::new("mcp").config(mcp))
        .step(Step::create(server))
        .step(Step::delete("docs").at_ms(1_000))
        .poll_until_ms(4_000)
        .deadline_ms(6_000)
        .build()
        .unwrap()
}

fn findings_of(report: &Report, check: &str) -> Vec<String> {
    report
        .checks
        .iter()
        .find(|c| c.name == check)
        .map(|c| c.findings.clone())
        .unwrap_or_default()
}

fn passes_on_the_reference(scenario: &Scenario) {
    let report = mcpsim_harness::run(&Reference::new().sut(), scenario).unwrap();
    let failed: Vec<String> = report
        .failed_checks()
        .map(|c| format!("{}: {}", c.name, c.findings.join("; ")))
        .collect();
    assert!(failed.is_empty(), "{failed:?}\n{}", report.timeline());
}

#[test]
fn a_gateway_that_rediscovers_in_a_tight_loop_fails_upstream_load() {
    let scenario = watched_server("a config server, re-listed every 20 ms");
    passes_on_the_reference(&scenario);
    let report = mcpsim_harness::run(&broken(Misdeed::TightLoop), &scenario).unwrap();
    let found = findings_of(&report, "upstream_load");
    assert!(
        found.iter().any(|f| f.starts_with("gateway started")
            && f.contains("discovery attempts on mcp too soon")
            && f.contains("re-check interval of 500 ms")),
        "{found:?}\n{}",
        report.timeline()
    );
    // Its listings are otherwise sound: sessions are closed, nothing storms.
    for sound in ["session_hygiene", "storm", "liveness"] {
        assert!(findings_of(&report, sound).is_empty(), "{sound}");
    }
}

#[test]
fn a_gateway_that_never_closes_its_sessions_fails_session_hygiene() {
    let scenario = watched_server("a config server, its sessions never closed");
    passes_on_the_reference(&scenario);
    let report = mcpsim_harness::run(&broken(Misdeed::NeverCloses), &scenario).unwrap();
    let found = findings_of(&report, "session_hygiene");
    assert_eq!(found.len(), 1, "{found:?}\n{}", report.timeline());
    assert!(
        found[0].starts_with("gateway left") && found[0].contains("at mcp open: s-0000"),
        "{found:?}"
    );
    assert!(found[0].contains("never closed"), "{found:?}");
    for sound in ["upstream_load", "storm", "liveness", "consistency"] {
        assert!(findings_of(&report, sound).is_empty(), "{sound}");
    }
}

#[test]
fn a_gateway_that_sends_each_listing_twenty_times_fails_upstream_load() {
    let scenario = watched_server("a config server, each page asked for twenty times");
    passes_on_the_reference(&scenario);
    let report = mcpsim_harness::run(&broken(Misdeed::ListsTwentyTimes), &scenario).unwrap();
    let found = findings_of(&report, "upstream_load");
    assert_eq!(found.len(), 1, "{found:?}\n{}", report.timeline());
    assert!(
        found[0].starts_with(
            "gateway stormed mcp within single discovery attempts: 23 requests in the attempt from"
        ) && found[0].contains("(1 session(s), at most 8)"),
        "{found:?}"
    );
    assert!(findings_of(&report, "storm").is_empty());
}

#[test]
fn a_storm_in_an_attempt_the_operator_waited_on_fails_upstream_load() {
    // Checked once, at start-up, while the operator's first poll waits on
    // the gateway: the spacing rule leaves that attempt to the operator,
    // the bound on its requests does not.
    let scenario = Scenario::builder("a config server, checked once, each page asked twenty times")
        .gateway(
            GatewayHost::new("gateway")
                .settings(json!({"list_timeout_ms": 750, "id_seed": 1}))
                .server(ServerDef::http("docs", UPSTREAM)),
        )
        .mcp_server(McpHost::new("mcp").tools(2))
        .poll_until_ms(1_000)
        .deadline_ms(3_000)
        .expect("docs", Expectation::status(Status::Healthy).tool_count(2))
        .build()
        .unwrap();
    passes_on_the_reference(&scenario);
    let report = mcpsim_harness::run(&broken(Misdeed::ListsTwentyTimes), &scenario).unwrap();
    let found = findings_of(&report, "upstream_load");
    assert!(
        found.len() == 1 && found[0].contains("23 requests in the attempt from 2 ms"),
        "{found:?}\n{}",
        report.timeline()
    );
}

#[test]
fn a_gateway_that_keeps_polling_a_deleted_server_fails_upstream_load() {
    let scenario = deleted_server("a server deleted at 1 s, and its upstream");
    passes_on_the_reference(&scenario);
    let report = mcpsim_harness::run(&broken(Misdeed::KeepsPollingOldUpstream), &scenario).unwrap();
    let found = findings_of(&report, "upstream_load");
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("gateway sent")
                && f.contains("to mcp after server docs was deleted")),
        "{found:?}\n{}",
        report.timeline()
    );
    // Polling every 600 ms is within the re-check interval: only the delete
    // is what it broke.
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(findings_of(&report, "liveness").is_empty());
}

#[test]
fn a_gateway_that_keeps_polling_a_server_s_old_upstream_fails_upstream_load() {
    let scenario = Scenario::builder("a server moved to another upstream at 1 s")
        .gateway(GatewayHost::new("gateway").settings(settings()))
        .mcp_server(McpHost::new("mcp").tools(2))
        .mcp_server(McpHost::new("other").tools(3))
        .step(Step::create(ServerDef::http("docs", UPSTREAM)))
        .step(Step::update("docs", ServerDef::http("docs", "http://other/mcp")).at_ms(1_000))
        .poll_until_ms(4_000)
        .deadline_ms(6_000)
        .expect("docs", Expectation::status(Status::Healthy).tool_count(3))
        .build()
        .unwrap();
    passes_on_the_reference(&scenario);
    let report = mcpsim_harness::run(&broken(Misdeed::KeepsPollingOldUpstream), &scenario).unwrap();
    let found = findings_of(&report, "upstream_load");
    assert_eq!(found.len(), 1, "{found:?}\n{}", report.timeline());
    assert!(
        found[0].starts_with("gateway sent")
            && found[0].contains("to mcp after server docs was moved elsewhere"),
        "{found:?}"
    );
}

#[test]
fn a_gateway_that_keeps_fetching_tokens_for_a_deleted_server_fails_upstream_load() {
    let scenario = deleted_oauth_server("an OAuth server deleted at 1 s, and its token server");
    passes_on_the_reference(&scenario);
    let report = mcpsim_harness::run(&broken(Misdeed::KeepsFetchingTokens), &scenario).unwrap();
    let found = findings_of(&report, "upstream_load");
    assert_eq!(found.len(), 1, "{found:?}\n{}", report.timeline());
    assert!(
        found[0].starts_with("gateway sent")
            && found[0]
                .contains("token request(s) to auth for client gw after server docs was deleted"),
        "{found:?}"
    );
    assert!(!serde_json::to_string(&report).unwrap().contains(SECRET));
}

#[test]
fn a_gateway_that_storms_its_upstream_is_stopped_with_a_named_finding() {
    let scenario = watched_server("a config server, and a storm of pings");
    let report = mcpsim_harness::run(&broken(Misdeed::Storm(40)), &scenario).unwrap();
    let found = findings_of(&report, "storm");
    assert_eq!(found.len(), 1, "{:?}", report.checks);
    assert!(
        found[0].starts_with("request storm: MCP server mcp was sent 20000 requests by t=")
            && found[0].contains("most from gateway"),
        "{found:?}"
    );
    // The run was stopped before its deadline, with the log at its cap.
    assert!(report.end_ms < scenario.deadline_ms, "{}", report.end_ms);
    assert_eq!(report.mcp_requests["mcp"].records.len(), 20_000);
    assert!(report.timeline().contains("# stopped: request storm"));
}

#[test]
fn a_gateway_that_floods_the_trace_is_stopped_with_a_named_finding() {
    let scenario = watched_server("a config server, and a hundred events a millisecond");
    let report = mcpsim_harness::run(&broken(Misdeed::Chatters), &scenario).unwrap();
    let found = findings_of(&report, "storm");
    assert_eq!(found.len(), 1, "{:?}", report.checks);
    assert!(
        found[0].starts_with("request storm: the trace passed 50000 events by t=")
            && found[0].contains("most from gateway"),
        "{found:?}"
    );
    // The cap holds every event of the hosts, and the harness's own.
    assert_eq!(report.trace.len(), 50_001);
}

/// Runs a story live (real sockets on 127.0.0.1, real time) against a
/// system under test in this process.
fn run_live(sut: Sut, scenario: &Scenario) -> Report {
    use mcpsim_harness::live::{run_live, LiveGateway, LiveOptions, LiveVerdict};
    let options = LiveOptions {
        settings_of: sut.clone(),
        work_dir: std::env::temp_dir().join("mcpsim-checkers-live"),
        hop_ms: 25,
    };
    match run_live(&LiveGateway::InProcess(sut), scenario, &options).unwrap() {
        LiveVerdict::Ran(report) => *report,
        other => panic!("the story did not run live: {other:?}"),
    }
}

#[test]
fn a_gateway_that_storms_its_upstream_live_is_stopped_with_a_named_finding() {
    // The same bound as in the simulation, asked on real time. Watched for
    // up to 30 s: how fast the storm fills the fake's log depends on the
    // machine; the run stops as soon as it is full (about 1 s here).
    let mut scenario = watched_server("a config server, and a storm of pings, live");
    scenario.operator.poll_until_ms = 30_000;
    scenario.deadline_ms = 40_000;
    let report = run_live(broken(Misdeed::Storm(40)), &scenario);
    let found = findings_of(&report, "storm");
    assert_eq!(found.len(), 1, "{:?}", report.checks);
    assert!(
        found[0].starts_with("request storm: MCP server mcp was sent 20000 requests by t=")
            && found[0].contains("most from gateway"),
        "{found:?}"
    );
    assert!(report.end_ms < scenario.deadline_ms, "{}", report.end_ms);
    assert_eq!(report.mcp_requests["mcp"].records.len(), 20_000);
    assert!(report.timeline().contains("# stopped: request storm"));
}

#[test]
fn a_gateway_that_floods_the_trace_live_is_stopped_with_a_named_finding() {
    // Watched for up to 30 s, stopped as soon as the trace is full.
    let mut scenario = watched_server("a config server, and a hundred events a millisecond, live");
    scenario.operator.poll_until_ms = 30_000;
    scenario.deadline_ms = 40_000;
    let report = run_live(broken(Misdeed::Chatters), &scenario);
    let found = findings_of(&report, "storm");
    assert_eq!(found.len(), 1, "{:?}", report.checks);
    assert!(
        found[0].starts_with("request storm: the trace passed 50000 events by t=")
            && found[0].contains("most from gateway"),
        "{found:?}"
    );
    assert!(report.end_ms < scenario.deadline_ms, "{}", report.end_ms);
}

#[test]
fn a_gateway_that_opens_hundreds_of_connections_at_once_is_stopped_with_a_named_finding() {
    // More connections at once than turmoil's listener queue holds: turmoil
    // panics, and the harness tells it as a storm instead of going down.
    let scenario = watched_server("a config server, and five hundred pings at once");
    let report = mcpsim_harness::run(&broken(Misdeed::Storm(500)), &scenario).unwrap();
    let found = findings_of(&report, "storm");
    assert_eq!(
        found,
        ["request storm: more connections to mcp waited at once than the simulated network holds (turmoil's listener queue of 64)"],
        "{:?}",
        report.checks
    );
    assert!(report.end_ms < scenario.deadline_ms, "{}", report.end_ms);
}

#[test]
fn a_gateway_that_keeps_thousands_of_connections_open_is_stopped_with_a_named_finding() {
    // Every connection holds one of the host's ephemeral ports until turmoil
    // has none left, or reuses one whose end the other side still holds,
    // and panics: the harness tells it as a storm instead.
    let scenario = watched_server("a config server, and connections kept by the thousand");
    let report = mcpsim_harness::run(&broken(Misdeed::HoardsConnections), &scenario).unwrap();
    let found = findings_of(&report, "storm");
    assert_eq!(found.len(), 1, "{:?}", report.checks);
    assert!(
        found[0] == "request storm: gateway held every ephemeral port of its simulated network in open connections at once"
            || found[0].starts_with("request storm: a host opened connections by the thousand"),
        "{found:?}"
    );
    assert!(report.end_ms < scenario.deadline_ms, "{}", report.end_ms);
}

/// Runs a story on the reference, which must pass it; gives the report.
fn reference_passes(scenario: &Scenario) -> Report {
    passes_on_the_reference(scenario);
    mcpsim_harness::run(&Reference::new().sut(), scenario).unwrap()
}

/// Explore's seed 6, case 749, shrunk: a delete lands while the first
/// listing pages (the generated scenario as written, so that its timing
/// stays what it was).
const DELETE_CANCELS_LISTING: &str = r#"{"description":"Regression (explore seed 6): a delete lands while the first listing pages, and the reference never closes the session it cancels","seed":12834079522839862174,"deadline_ms":5000,"network":{"latency_ms_min":1,"latency_ms_max":16,"tick_ms":2},"gateways":[{"host":"gateway","settings":{"check_interval_ms":500,"id_seed":1,"list_timeout_ms":750,"role":"all_in_one","store_timeout_ms":500,"sync_interval_ms":500,"token_client_auth":"request_body","token_timeout_ms":500},"store":"db","env":{}}],"token_servers":[{"host":"auth","listening":true,"config":{"path":"/oauth/token","issuer":"http://auth","signing_key":"gen-signing-key-4711","clients":[{"client_id":"gen-client","client_secret":"gen-client-secret-4711","scopes":[]}],"expires_in_s":30,"latency_ms":0,"failures":[]}}],"mcp_servers":[{"host":"mcp","listening":true,"config":{"path":"/mcp","server_name":"mcpsim-fake","tools":[],"tool_count":4,"page_size":1,"reply":"json","auth":{"type":"oauth","issuer":"http://auth","signing_key":"gen-signing-key-4711","required_scope":null,"revoke_at_ms":300},"sessions":true,"latency_ms":{"tools/list":0},"failures":[],"protocol_versions":["2025-11-25","2025-06-18","2025-03-26"],"allowed_origins":["http://localhost","http://127.0.0.1","http://[::1]"],"sse":{"priming":true,"retry_ms":3000,"keep_alives":0,"notifications":0,"crlf":false},"paging":"normal","tool_changes":[],"get_stream":"refuse"}}],"stores":[{"host":"db","config":{"latency_ms":0,"rows":{}}}],"operator":{"poll_interval_ms":200,"api_key":"sk-gen-operator-4711","call_tools":true,"poll_until_ms":2650,"steps":[{"at_ms":0,"gateway":null,"op":"create","spec":{"name":"srv","url":"http://mcp/mcp","auth":{"type":"client_credentials","token_url":"http://auth/oauth/token","client_id":"gen-client","client_secret":"gen-client-secret-4711","explicit_flow":false}}},{"at_ms":100,"gateway":null,"op":"delete","server":"srv"},{"at_ms":200,"gateway":null,"op":"create","spec":{"name":"srv","url":"http://mcp/mcp","auth":{"type":"client_credentials","token_url":"http://auth/oauth/token","client_id":"gen-client","client_secret":"gen-client-secret-4711","explicit_flow":false}}}]},"faults":[],"expect":{"srv":{"status":"healthy","error_contains":null,"tool_count":4}},"expect_store_unreachable":[]}"#;

#[test]
fn a_delete_that_cancels_a_listing_mid_session_leaves_no_finding() {
    // The reference aborts an attempt that a delete cancels, and the
    // session it was paging through is never closed; session hygiene
    // states that reason and lets it be.
    let scenario = Scenario::from_json("seed 6, case 749", DELETE_CANCELS_LISTING).unwrap();
    let report = reference_passes(&scenario);
    // The situation came about: a session in use was never closed, and no
    // request in it went unanswered.
    let records = &report.mcp_requests["mcp"].records;
    let left_open = records
        .iter()
        .filter_map(|r| r.assigned_session.as_deref())
        .filter(|s| {
            let mut in_it = records.iter().filter(|r| r.session.as_deref() == Some(*s));
            in_it.clone().count() > 0
                && in_it.all(|r| r.http_method != "DELETE" && r.status.is_some())
        })
        .count();
    assert!(left_open > 0, "{}", report.timeline());
}

#[test]
fn a_retry_after_a_404_in_an_attempt_begun_during_a_poll_is_one_attempt() {
    // Regression (explore seed 10): the attempt of a second create began
    // while the operator was polling (so it is the operator's to answer
    // for), and its fresh session after a 404 came after the poll; that
    // fresh session belongs to the same attempt, not to one of its own.
    let tokens = TokenServerConfig {
        issuer: "http://auth".into(),
        clients: vec![ClientRegistration {
            client_id: "gw".into(),
            client_secret: SECRET.into(),
            scopes: Vec::new(),
            auth_method: None,
        }],
        expires_in_s: Some(30),
        ..TokenServerConfig::default()
    };
    let mcp = McpServerConfig {
        tool_count: Some(1),
        auth: McpAuth::Oauth {
            issuer: tokens.issuer.clone(),
            signing_key: tokens.signing_key.clone(),
            required_scope: None,
            revoke_at_ms: None,
            authorization_server: None,
        },
        failures: vec![McpFailureRule {
            method: "tools/list".into(),
            kind: McpFailure::SessionTerminated,
            after: 1,
            count: Some(1),
        }],
        ..McpServerConfig::default()
    };
    let server = ServerDef::http("srv", UPSTREAM).auth(ServerAuth::ClientCredentials {
        token_url: "http://auth/oauth/token".into(),
        client_id: "gw".into(),
        client_secret: SECRET.into(),
        scopes: Vec::new(),
        audience: None,
        resource: None,
        explicit_flow: false,
    });
    let mut settings = settings();
    settings["sync_interval_ms"] = json!(500);
    settings["store_timeout_ms"] = json!(500);
    let scenario = Scenario::builder("delete then create, a session dropped in the second listing")
        .seed(0)
        .latency_ms(1, 1)
        .tick_ms(2)
        .gateway(GatewayHost::new("gateway").settings(settings).store("db"))
        .store(StoreHost::new("db"))
        .token_server(TokenHost::new("auth").config(tokens))
        .mcp_server(McpHost::new("mcp").config(mcp))
        .step(Step::create(server.clone()))
        .step(Step::delete("srv").at_ms(100))
        .step(Step::create(server).at_ms(200))
        .poll_interval_ms(200)
        .call_tools()
        .build()
        .unwrap();
    let report = reference_passes(&scenario);
    // The situation came about: an initialize right after a 404.
    let records = &report.mcp_requests["mcp"].records;
    let refused = records.iter().position(|r| r.status == Some(404));
    assert!(
        refused.is_some_and(|i| records[i + 1..]
            .iter()
            .any(|r| r.rpc_method.as_deref() == Some("initialize"))),
        "{}",
        report.timeline()
    );
}

/// The reference gateway, but it declares that a write may take 8 s to be
/// answered, and holds every update for 6 s before it applies it, never
/// answering.
struct SlowUpdates(Sut);

struct SlowUpdatesInstance(Box<dyn Instance>);

impl SystemUnderTest for SlowUpdates {
    fn name(&self) -> String {
        "reference with slow updates".into()
    }

    fn dialect(&self) -> &dyn Dialect {
        self.0.dialect()
    }

    fn declare(&self, host: &HostSetup) -> Result<Declared, SetupError> {
        let mut declared = self.0.declare(host)?;
        declared.write_budget_ms = Some(8_000);
        Ok(declared)
    }

    fn build(&self, host: &HostSetup, injected: Injected) -> Result<Box<dyn Instance>, String> {
        Ok(Box::new(SlowUpdatesInstance(self.0.build(host, injected)?)))
    }

    fn settings_for(&self, profile: &Profile) -> Option<Value> {
        self.0.settings_for(profile)
    }
}

impl Instance for SlowUpdatesInstance {
    fn start(&self) {
        self.0.start();
    }

    fn router(&self) -> Router {
        let inner = self.0.router();
        Router::new().fallback(move |request: axum::extract::Request| {
            let inner = inner.clone();
            async move {
                if request.method() == axum::http::Method::PUT {
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(6_000)).await;
                        let _ = tower::ServiceExt::oneshot(inner, request).await;
                    });
                    return std::future::pending().await;
                }
                match tower::ServiceExt::oneshot(inner, request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            }
        })
    }

    fn shutdown(&self) {
        self.0.shutdown();
    }
}

#[test]
fn a_write_unanswered_within_the_declared_write_budget_may_still_cancel_a_session() {
    // The operator waits 8 s for a write on a gateway that declares that
    // budget; an update applied 6 s after it was sent, while a listing was
    // in its session, may cancel it, and the session left open has a stated
    // reason (the operator's usual 5 s would not cover it).
    let mcp: McpServerConfig = serde_json::from_value(json!({
        "tool_count": 4, "page_size": 1
    }))
    .unwrap();
    let scenario = Scenario::builder("an update held for 6 s lands mid-session")
        .latency_ms(20, 40)
        .gateway(GatewayHost::new("gateway").settings(settings()))
        .mcp_server(McpHost::new("mcp").config(mcp))
        .step(Step::create(ServerDef::http("docs", UPSTREAM)))
        .step(Step::update("docs", ServerDef::http("docs", UPSTREAM)).at_ms(760))
        .poll_until_ms(9_500)
        .deadline_ms(10_000)
        .build()
        .unwrap();
    let sut: Sut = Arc::new(SlowUpdates(Reference::new().sut()));
    let report = mcpsim_harness::run(&sut, &scenario).unwrap();
    let failed: Vec<String> = report
        .failed_checks()
        .map(|c| format!("{}: {}", c.name, c.findings.join("; ")))
        .collect();
    assert!(failed.is_empty(), "{failed:?}\n{}", report.timeline());
    // The situation came about: the update went unanswered for longer than
    // 5 s, and cancelled a session whose every request the upstream had
    // answered (so only the update explains it), then brought an attempt
    // early.
    let timeline = report.timeline();
    assert!(
        timeline.contains("PUT /v1/mcp/server = failed: abandoned by the caller (8000 ms)"),
        "{timeline}"
    );
    let records = &report.mcp_requests["mcp"].records;
    let left_open = records
        .iter()
        .filter_map(|r| r.assigned_session.as_deref())
        .filter(|s| {
            let mut in_it = records.iter().filter(|r| r.session.as_deref() == Some(*s));
            in_it.clone().count() > 0
                && in_it.all(|r| r.http_method != "DELETE" && r.status.is_some())
        })
        .count();
    assert!(left_open > 0, "{timeline}");
}

/// Explores a few cases of a gateway that spins, with a short watchdog.
fn explore_spinning(misdeed: Misdeed, stop: &AtomicBool) {
    let options = Options {
        cases: 4,
        seed: 1,
        jobs: 1,
        shard: (1, 1),
        out: std::env::temp_dir().join("mcpsim-checkers-spin"),
        progress: false,
        target: Target::new(broken(misdeed)).unwrap(),
        evidence: Evidence::Everything,
    };
    let (results, _) = run_cases_within(&options, Duration::from_secs(2));
    // Let the abandoned worker's host out of its loop, and its thread end.
    stop.store(true, Ordering::SeqCst);
    assert_eq!(results.len(), 1, "the first case hangs, and ends the run");
    let hung = &results[0];
    assert!(hung.hung);
    assert_eq!(hung.index, 0);
    assert_eq!(
        hung.failed,
        ["no progress: case 0 did not end within 2 s of wall time (a host that never yields stops the simulation's step)"]
    );
}

#[test]
fn exploration_goes_on_past_a_gateway_that_spins_with_yields() {
    explore_spinning(Misdeed::SpinYielding, &STOP_YIELDING);
}

#[test]
fn exploration_goes_on_past_a_gateway_that_spins_without_yielding() {
    explore_spinning(Misdeed::SpinBusy, &STOP_BUSY);
}

/// A gateway that lists thirty healthy servers and never answers a read of
/// their tools: the operator waits five seconds on each.
struct Stalls;

struct StallsInstance;

impl Instance for StallsInstance {
    fn start(&self) {}

    fn router(&self) -> Router {
        let rows: Vec<Value> = (0..30)
            .map(|i| {
                json!({"server_id": format!("s{i}"), "server_name": format!("s{i}"),
                    "alias": format!("s{i}"), "url": "http://nowhere/mcp", "source": "config",
                    "status": "healthy", "health_check_error": null,
                    "last_health_check": "2026-01-01T00:00:00.000Z", "tool_count": 1})
            })
            .collect();
        Router::new()
            .route(
                "/v1/mcp/server",
                get(move || async move { Json(json!(rows)) }),
            )
            .route("/v1/mcp/tools", get(std::future::pending::<Json<Value>>))
    }

    fn shutdown(&self) {}
}

impl SystemUnderTest for Stalls {
    fn name(&self) -> String {
        "stalls".into()
    }

    fn dialect(&self) -> &dyn Dialect {
        &LiteLlm
    }

    fn declare(&self, host: &HostSetup) -> Result<Declared, SetupError> {
        Echo.declare(host)
    }

    fn build(&self, _host: &HostSetup, _injected: Injected) -> Result<Box<dyn Instance>, String> {
        Ok(Box::new(StallsInstance))
    }

    fn settings_for(&self, _profile: &Profile) -> Option<Value> {
        Some(json!({}))
    }
}

#[test]
fn a_run_whose_operator_cannot_finish_is_stopped_as_making_no_progress() {
    let scenario = Scenario::builder("thirty servers whose tools are never read")
        .deadline_ms(1_000)
        .tick_ms(10)
        .gateway(GatewayHost::new("gateway"))
        .build()
        .unwrap();
    let sut: Sut = Arc::new(Stalls);
    let report = mcpsim_harness::run(&sut, &scenario).unwrap();
    assert_eq!(
        findings_of(&report, "storm"),
        ["no progress at t=61000 ms: the operator had not finished 60000 ms after the deadline of 1000 ms"],
    );
    assert_eq!(report.end_ms, 61_000);
}

/// A static header value is a secret: a gateway that echoes a create body
/// carrying one fails `no_secrets`, and the report never shows the value.
#[test]
fn an_echoed_static_header_value_fails_no_secrets() {
    let sut: Sut = std::sync::Arc::new(Echo);
    let body = json!({"server_name": "docs", "url": "http://docs/mcp", "transport": "http",
        "static_headers": {"X-Api-Key": "hdr-k3y-never-shown"}});
    let scenario = Scenario::builder("a create whose answer repeats its static header")
        .deadline_ms(2_000)
        .gateway(GatewayHost::new("gateway"))
        .step(Step::create_native(body))
        .build()
        .unwrap();
    let report = mcpsim_harness::run(&sut, &scenario).unwrap();
    let secrets = report
        .checks
        .iter()
        .find(|c| c.name == "no_secrets")
        .unwrap();
    assert!(!secrets.passed, "{:?}", report.checks);
    assert!(secrets.findings[0].contains("appears in the responses"));
    assert!(!serde_json::to_string(&report)
        .unwrap()
        .contains("hdr-k3y-never-shown"));
}

/// Only the environment values a secret field names are secrets: a client
/// id read from the environment is shown in rows, as it should be, and the
/// reference passes every check.
#[test]
fn a_client_id_from_the_environment_is_no_secret() {
    let config = json!({"mcp_servers": {"docs": {
        "url": "http://docs/mcp", "transport": "http", "auth_type": "oauth2",
        "oauth2_flow": "client_credentials", "token_url": "http://auth/oauth/token",
        "client_id": "os.environ/DOCS_CLIENT_ID",
        "client_secret": "os.environ/DOCS_CLIENT_SECRET"}}});
    let tokens = mcpsim_fakes::TokenServerConfig {
        signing_key: "docs-signing-key".into(),
        clients: vec![mcpsim_fakes::ClientRegistration {
            client_id: "docs-client-id".into(),
            client_secret: "docs-s3cret-from-env".into(),
            scopes: Vec::new(),
            auth_method: None,
        }],
        ..Default::default()
    };
    let mcp = mcpsim_fakes::McpServerConfig {
        tool_count: Some(2),
        auth: mcpsim_fakes::McpAuth::Oauth {
            issuer: tokens.issuer.clone(),
            signing_key: "docs-signing-key".into(),
            required_scope: None,
            revoke_at_ms: None,
            authorization_server: None,
        },
        ..Default::default()
    };
    let scenario = Scenario::builder("a config server whose client id comes from the environment")
        .deadline_ms(5_000)
        .gateway(
            GatewayHost::new("gateway")
                .settings(json!({"list_timeout_ms": 2_000}))
                .config(config)
                .env("DOCS_CLIENT_ID", "docs-client-id")
                .env("DOCS_CLIENT_SECRET", "docs-s3cret-from-env"),
        )
        .token_server(TokenHost::new("auth").config(tokens))
        .mcp_server(McpHost::new("docs").config(mcp))
        .expect("docs", Expectation::status(mcpsim_harness::Status::Healthy))
        .build()
        .unwrap();
    let report = mcpsim_harness::run(&mcpsim_gateway::Reference::new().sut(), &scenario).unwrap();
    assert!(report.passed(), "{:?}", report.checks);
    // The id was read from the environment and went to the token server,
    // and so into the report, as it may.
    assert!(report.token_requests["auth"]
        .records
        .iter()
        .any(|r| r.client_id.as_deref() == Some("docs-client-id")));
}

/// A client registered for HTTP Basic must be seen using it on every token
/// it got. A gateway told to use the form body gets its tokens from a
/// lenient endpoint anyway, and `expectations` says so; a strict endpoint
/// refuses the form body and the reference asks again by Basic; a gateway
/// told to use Basic passes either way.
#[test]
fn a_token_got_with_another_client_authentication_than_registered_fails_expectations() {
    let scenario = |gateway_auth: &str, lenient: bool| {
        let tokens = mcpsim_fakes::TokenServerConfig {
            signing_key: "docs-signing-key".into(),
            clients: vec![mcpsim_fakes::ClientRegistration {
                client_id: "docs-client".into(),
                client_secret: "docs-s3cret".into(),
                scopes: Vec::new(),
                auth_method: Some(mcpsim_fakes::AuthMethod::Basic),
            }],
            lenient_client_auth: lenient,
            ..Default::default()
        };
        let mcp = mcpsim_fakes::McpServerConfig {
            tool_count: Some(1),
            auth: mcpsim_fakes::McpAuth::Oauth {
                issuer: tokens.issuer.clone(),
                signing_key: "docs-signing-key".into(),
                required_scope: None,
                revoke_at_ms: None,
                authorization_server: None,
            },
            ..Default::default()
        };
        let server =
            ServerDef::http("docs", "http://docs/mcp").auth(ServerAuth::ClientCredentials {
                token_url: "http://auth/oauth/token".into(),
                client_id: "docs-client".into(),
                client_secret: "docs-s3cret".into(),
                scopes: Vec::new(),
                audience: None,
                resource: None,
                explicit_flow: true,
            });
        let settings = json!({"list_timeout_ms": 2_000, "token_client_auth": gateway_auth});
        Scenario::builder("a client registered for HTTP Basic")
            .deadline_ms(5_000)
            .gateway(
                GatewayHost::new("gateway")
                    .settings(settings)
                    .server(server),
            )
            .token_server(TokenHost::new("auth").config(tokens))
            .mcp_server(McpHost::new("docs").config(mcp))
            .expect("docs", Expectation::status(mcpsim_harness::Status::Healthy))
            .build()
            .unwrap()
    };
    let sut = mcpsim_gateway::Reference::new().sut();
    for (gateway_auth, lenient, holds) in [
        ("request_body", true, false),
        ("request_body", false, true),
        ("basic", true, true),
        ("basic", false, true),
    ] {
        let report = mcpsim_harness::run(&sut, &scenario(gateway_auth, lenient)).unwrap();
        let failed: Vec<&str> = report.failed_checks().map(|c| c.name).collect();
        let case = format!("{gateway_auth}, lenient {lenient}: {:?}", report.checks);
        if holds {
            assert!(failed.is_empty(), "{case}");
        } else {
            assert_eq!(failed, ["expectations"], "{case}");
            let expectations = report.checks.iter().find(|c| c.name == "expectations");
            let finding = &expectations.unwrap().findings[0];
            assert!(
                finding.contains("authenticated by the form body")
                    && finding.contains("registered for HTTP Basic only"),
                "{finding}"
            );
        }
    }
}

/// Runs `scenario` on the gateway with `flaw`, which must fail `checker`
/// with a finding that contains `finding`, and on the same gateway without
/// the flaw and on the reference gateway, which must pass every checker.
fn caught(flaw: Flaw, scenario: &Scenario, checker: &str, finding: &str) -> Report {
    for sut in [
        std::sync::Arc::new(Flawed(Flaw::None)) as Sut,
        Reference::new().sut(),
    ] {
        let report = mcpsim_harness::run(&sut, scenario).unwrap();
        let failed: Vec<String> = report
            .failed_checks()
            .map(|c| format!("{}: {:?}", c.name, c.findings))
            .collect();
        assert!(
            failed.is_empty(),
            "{} fails: {failed:?}\n{}",
            sut.name(),
            report.timeline()
        );
    }
    let report =
        mcpsim_harness::run(&(std::sync::Arc::new(Flawed(flaw)) as Sut), scenario).unwrap();
    let check = report
        .checks
        .iter()
        .find(|c| c.name == checker)
        .unwrap_or_else(|| panic!("no checker {checker}"));
    assert!(
        !check.passed && check.findings.iter().any(|f| f.contains(finding)),
        "{flaw:?}: {checker} gave {:?}\n{}",
        check.findings,
        report.timeline()
    );
    report
}

fn docs(tools: usize) -> McpHost {
    McpHost::new("docs").tools(tools)
}

fn gateway() -> GatewayHost {
    GatewayHost::new("gateway")
}

#[test]
fn a_create_listed_late_fails_the_api_contract() {
    let scenario = Scenario::builder("a created server is listed at the next poll")
        .deadline_ms(3_000)
        .gateway(gateway())
        .mcp_server(docs(2))
        .step(Step::create(ServerDef::http("docs", "http://docs/mcp")))
        .poll_until_ms(700)
        .expect("docs", Expectation::status(Status::Healthy).tool_count(2))
        .build()
        .unwrap();
    caught(
        Flaw::ListsLate,
        &scenario,
        "api_contract",
        "does not list it",
    );
}

#[test]
fn an_update_answered_with_the_row_before_it_fails_the_api_contract() {
    let scenario = Scenario::builder("an update's answer shows the updated server")
        .deadline_ms(3_000)
        .gateway(gateway())
        .mcp_server(docs(2))
        .mcp_server(McpHost::new("docs2").tools(2))
        .step(Step::create(ServerDef::http("docs", "http://docs/mcp")))
        .step(Step::update("docs", ServerDef::http("docs", "http://docs2/mcp")).at_ms(200))
        .poll_until_ms(700)
        .expect("docs", Expectation::status(Status::Healthy).tool_count(2))
        .build()
        .unwrap();
    caught(
        Flaw::AnswersStaleRow,
        &scenario,
        "api_contract",
        "its answer shows its url as docs/mcp instead of docs2/mcp",
    );
}

/// An update that a stale copy undoes for a while, after the gateway
/// showed it, fails the API contract: a taken write stays.
#[test]
fn an_update_undone_for_a_while_fails_the_api_contract() {
    let scenario = Scenario::builder("an update stays once it shows")
        .deadline_ms(3_000)
        .gateway(gateway())
        .mcp_server(docs(2))
        .mcp_server(McpHost::new("docs2").tools(2))
        .step(Step::create(ServerDef::http("docs", "http://docs/mcp")))
        .step(Step::update("docs", ServerDef::http("docs", "http://docs2/mcp")).at_ms(200))
        .poll_until_ms(1_200)
        .expect("docs", Expectation::status(Status::Healthy).tool_count(2))
        .build()
        .unwrap();
    caught(Flaw::RevertsUpdates, &scenario, "api_contract", "yet at");
}

/// A server whose upstream went away after a good listing, and that keeps
/// that listing's tools while unhealthy, fails consistency as soon as the
/// operator reads its tools between two polls after the same failed check.
#[test]
fn an_unhealthy_server_that_keeps_its_tools_fails_consistency() {
    let scenario = Scenario::builder("an unhealthy server lists no tools")
        .deadline_ms(4_000)
        .gateway(GatewayHost::new("gateway").settings(settings()))
        .mcp_server(docs(2))
        .step(Step::create(ServerDef::http("docs", "http://docs/mcp")))
        .fault(Fault::crash(500, "docs"))
        .poll_until_ms(2_500)
        .expect("docs", Expectation::status(Status::Unhealthy))
        .build()
        .unwrap();
    let report = caught(
        Flaw::KeepsStaleTools,
        &scenario,
        "consistency",
        "yet lists 2 tools",
    );
    let check = report
        .checks
        .iter()
        .find(|c| c.name == "consistency")
        .unwrap();
    assert!(check
        .findings
        .iter()
        .any(|f| f.contains("unhealthy since its check")));
}

#[test]
fn a_refusal_quoting_a_pasted_secret_fails_no_secrets() {
    let scenario = Scenario::builder("a client secret pasted as credentials is refused unquoted")
        .deadline_ms(3_000)
        .gateway(gateway())
        .mcp_server(docs(2))
        .step(Step::create(ServerDef::http("docs", "http://docs/mcp")))
        .step(
            Step::create_native(json!({"server_name": "pasted", "transport": "http",
                "url": "http://docs/mcp", "credentials": "pasted-s3cret-0-q8Zr"}))
            .at_ms(100)
            .bad_input(),
        )
        .expect("docs", Expectation::status(Status::Healthy).tool_count(2))
        .build()
        .unwrap();
    caught(
        Flaw::QuotesBadValues,
        &scenario,
        "no_secrets",
        "appears in the responses",
    );
}

#[test]
fn bad_inputs_applied_half_way_fail_the_api_contract() {
    let scenario = Scenario::builder("a bad create and a bad update change nothing")
        .deadline_ms(3_000)
        .gateway(gateway())
        .mcp_server(docs(2))
        .step(Step::create(ServerDef::http("docs", "http://docs/mcp")))
        .step(
            Step::create_native(json!({"server_name": "bad-name", "transport": "http",
                "url": "http://docs/mcp"}))
            .at_ms(100)
            .bad_input(),
        )
        .step(
            Step::update_native(
                "docs",
                json!({"url": "http://elsewhere/mcp", "transport": "carrier-pigeon"}),
            )
            .at_ms(150)
            .bad_input(),
        )
        .step(
            Step::create_raw("{\"server_name\": ")
                .at_ms(200)
                .bad_input(),
        )
        .expect("docs", Expectation::status(Status::Healthy).tool_count(2))
        .build()
        .unwrap();
    let report = caught(
        Flaw::HalfApplies,
        &scenario,
        "api_contract",
        "which no write it may have applied gave it",
    );
    let contract = report
        .checks
        .iter()
        .find(|c| c.name == "api_contract")
        .unwrap();
    assert!(
        contract
            .findings
            .iter()
            .any(|f| f.contains("lists a server of that name")),
        "{:?}",
        contract.findings
    );
}

#[test]
fn a_call_with_another_servers_credentials_fails_tool_calls() {
    let bearer = |token: &str| McpServerConfig {
        tool_count: Some(1),
        auth: McpAuth::Bearer {
            token: token.into(),
        },
        ..McpServerConfig::default()
    };
    let server = |name: &str, token: &str| {
        ServerDef::http(name, format!("http://{name}/mcp")).auth(ServerAuth::Bearer {
            token: token.into(),
        })
    };
    let scenario = Scenario::builder("each tool is called with its own server's token")
        .deadline_ms(3_000)
        .gateway(gateway())
        .mcp_server(McpHost::new("alpha").config(bearer("alpha-t0ken")))
        .mcp_server(McpHost::new("beta").config(bearer("beta-t0ken")))
        .step(Step::create(server("alpha", "alpha-t0ken")))
        .step(Step::create(server("beta", "beta-t0ken")).at_ms(10))
        .call_tools()
        .build()
        .unwrap();
    caught(
        Flaw::OthersCredentials,
        &scenario,
        "tool_calls",
        "reached beta with a bearer it was not given, not its own static bearer",
    );
}

#[test]
fn a_tool_error_dropped_on_the_way_fails_tool_calls() {
    let tools = McpServerConfig {
        tools: vec![
            ToolSpec::named("search"),
            ToolSpec::named("write").behaviour(ToolBehaviour::Error {
                text: "read-only".into(),
            }),
        ],
        ..McpServerConfig::default()
    };
    let scenario = Scenario::builder("a tool's error reaches the caller as an error")
        .deadline_ms(3_000)
        .gateway(gateway())
        .mcp_server(McpHost::new("docs").config(tools))
        .step(Step::create(ServerDef::http("docs", "http://docs/mcp")))
        .call_tools()
        .build()
        .unwrap();
    caught(
        Flaw::DropsIsError,
        &scenario,
        "tool_calls",
        "with isError true, the caller got isError false",
    );
}

#[test]
fn a_deleted_server_that_comes_back_once_fails_deletes() {
    let scenario = Scenario::builder("a deleted server stays deleted")
        .deadline_ms(3_000)
        .gateway(gateway())
        .mcp_server(docs(1))
        .mcp_server(McpHost::new("search").tools(1))
        .step(Step::create(ServerDef::http("docs", "http://docs/mcp")))
        .step(Step::create(ServerDef::http("search", "http://search/mcp")))
        .step(Step::delete("docs").at_ms(200))
        .poll_until_ms(1_200)
        .expect("search", Expectation::status(Status::Healthy))
        .build()
        .unwrap();
    caught(Flaw::Resurrects, &scenario, "deletes", "lists it again");
}

#[test]
fn a_check_time_stamped_once_fails_the_health_record() {
    let scenario = Scenario::builder("every check moves last_health_check")
        .deadline_ms(3_000)
        .gateway(gateway())
        .mcp_server(docs(1))
        .step(Step::create(ServerDef::http("docs", "http://docs/mcp")))
        .poll_until_ms(1_200)
        .build()
        .unwrap();
    caught(
        Flaw::StampsOnce,
        &scenario,
        "health_record",
        "last_health_check is 2026-01-01T00:00:00",
    );
}

#[test]
fn an_error_status_sat_on_until_the_budget_fails_the_health_record() {
    // The first listing is answered 503 (an injected answer, over when it
    // is answered): the check it ended must show at once, not when the
    // gateway's own budget runs out.
    let mut docs = docs(1);
    docs.config.failures.push(McpFailureRule {
        method: "tools/list".into(),
        kind: McpFailure::Http { status: 503 },
        after: 0,
        count: Some(1),
    });
    let scenario = Scenario::builder("an error status ends the attempt")
        .deadline_ms(3_000)
        .gateway(gateway())
        .mcp_server(docs)
        .step(Step::create(ServerDef::http("docs", "http://docs/mcp")))
        .poll_until_ms(1_500)
        .build()
        .unwrap();
    caught(
        Flaw::SitsOnErrors,
        &scenario,
        "health_record",
        "an attempt ended",
    );
}

#[test]
fn an_error_that_names_the_wrong_stage_fails_the_health_record() {
    let auth = TokenServerConfig {
        clients: vec![ClientRegistration {
            client_id: "docs-client".into(),
            client_secret: "the-right-s3cret".into(),
            scopes: Vec::new(),
            auth_method: None,
        }],
        ..TokenServerConfig::default()
    };
    let server = ServerDef::http("docs", "http://docs/mcp").auth(ServerAuth::ClientCredentials {
        token_url: "http://auth/oauth/token".into(),
        client_id: "docs-client".into(),
        client_secret: "a-wr0ng-s3cret".into(),
        scopes: Vec::new(),
        audience: None,
        resource: None,
        explicit_flow: true,
    });
    let scenario = Scenario::builder("a refused token is the token stage")
        .deadline_ms(3_000)
        .gateway(gateway())
        .token_server(TokenHost::new("auth").config(auth))
        .mcp_server(docs(1))
        .step(Step::create(server))
        .expect("docs", Expectation::status(Status::Unhealthy))
        .build()
        .unwrap();
    caught(
        Flaw::WrongStage,
        &scenario,
        "health_record",
        "its error names the list stage, but the attempts that could have ended it",
    );
}

#[test]
fn a_slow_initialize_blamed_on_the_connection_fails_the_health_record() {
    let slow = McpServerConfig {
        tool_count: Some(1),
        latency_ms: std::collections::BTreeMap::from([("initialize".to_string(), 1_500)]),
        ..McpServerConfig::default()
    };
    let scenario = Scenario::builder("a timeout in initialize is the initialize stage")
        .deadline_ms(4_000)
        .gateway(gateway().settings(json!({"list_timeout_ms": 1_000})))
        .mcp_server(McpHost::new("docs").config(slow))
        .step(Step::create(ServerDef::http("docs", "http://docs/mcp")))
        .expect("docs", Expectation::status(Status::Unhealthy))
        .build()
        .unwrap();
    caught(
        Flaw::TimeoutBlamesConnect,
        &scenario,
        "health_record",
        "its error names the connect stage, but the attempts that could have ended it",
    );
}

#[test]
fn a_tool_call_that_leaves_its_session_open_fails_session_hygiene() {
    // The calls come last in a run: the run goes on until the session the
    // call opened is closed or its bound has passed.
    let scenario = Scenario::builder("every tool call closes the session it opened")
        .deadline_ms(4_000)
        .gateway(gateway())
        .mcp_server(docs(2))
        .step(Step::create(ServerDef::http("docs", "http://docs/mcp")))
        .call_tools()
        .expect("docs", Expectation::status(Status::Healthy).tool_count(2))
        .build()
        .unwrap();
    let report = caught(
        Flaw::CallKeepsSession,
        &scenario,
        "session_hygiene",
        "never closed",
    );
    assert!(report
        .checks
        .iter()
        .all(|c| c.passed || c.name == "session_hygiene"));
}

#[test]
fn healthy_before_the_last_page_fails_the_health_record() {
    let paged = McpServerConfig {
        tool_count: Some(3),
        page_size: Some(1),
        latency_ms: std::collections::BTreeMap::from([("tools/list".to_string(), 100)]),
        ..McpServerConfig::default()
    };
    let scenario = Scenario::builder("healthy only once the last page is in")
        .deadline_ms(3_000)
        .gateway(gateway())
        .mcp_server(McpHost::new("docs").config(paged))
        .step(Step::create(ServerDef::http("docs", "http://docs/mcp")))
        .expect("docs", Expectation::status(Status::Healthy).tool_count(3))
        .build()
        .unwrap();
    caught(
        Flaw::HealthyEarly,
        &scenario,
        "health_record",
        "had answered no last page of a listing",
    );
}

#[test]
fn an_update_that_keeps_the_old_credentials_fails_the_update_twin() {
    use mcpsim_harness::explore::plan_tree;
    use mcpsim_harness::generate::{AuthPlan, RegistrationPath, Swarm, Target, UpdateChange};
    use proptest::strategy::ValueTree;

    let mut plan = plan_tree(1, 0).current();
    plan.path = RegistrationPath::RestThenUpdate;
    plan.auth = AuthPlan::Bearer;
    plan.swarm = Swarm::default();
    plan.restart = None;
    plan.list_latency_ms = 0;
    plan.latency_ms_max = 2;
    plan.faults.update_change = UpdateChange::Credentials;
    for (sut, holds) in [
        (std::sync::Arc::new(Flawed(Flaw::None)) as Sut, true),
        (Reference::new().sut(), true),
        (
            std::sync::Arc::new(Flawed(Flaw::UpdateKeepsAuth)) as Sut,
            false,
        ),
    ] {
        let target = Target::new(sut).unwrap();
        let plan = plan.for_target(target.caps);
        let twin = plan.update_twin().expect("a certain update has a twin");
        let run = |plan: &mcpsim_harness::generate::Plan| {
            mcpsim_harness::run(&target.sut, &plan.to_scenario(&target).unwrap()).unwrap()
        };
        let (updated, merged) = (run(&plan), run(&twin));
        let verdict =
            mcpsim_harness::check_update_merge(&updated, &merged, plan.asked_host(), "srv");
        assert_eq!(
            verdict.passed,
            holds,
            "{}: {:?}\n{}",
            target.sut.name(),
            verdict.findings,
            updated.timeline()
        );
    }
}

#[test]
fn a_bad_input_taken_fails_the_api_contract() {
    let scenario = Scenario::builder("a bad create is refused")
        .deadline_ms(3_000)
        .gateway(gateway())
        .mcp_server(docs(2))
        .step(Step::create(ServerDef::http("docs", "http://docs/mcp")))
        .step(
            Step::create_native(
                json!({"server_name": "bad name", "transport": "carrier-pigeon",
                "url": "http://docs/mcp"}),
            )
            .at_ms(100)
            .bad_input(),
        )
        .expect("docs", Expectation::status(Status::Healthy).tool_count(2))
        .build()
        .unwrap();
    caught(
        Flaw::TakesBadInputs,
        &scenario,
        "api_contract",
        "the bad input create bad name at 100 ms was taken",
    );
}

#[test]
fn a_listed_tool_that_cannot_be_called_fails_tool_calls() {
    let paged = McpServerConfig {
        tool_count: Some(3),
        page_size: Some(1),
        ..McpServerConfig::default()
    };
    let scenario = Scenario::builder("every listed tool of a healthy server is callable")
        .deadline_ms(3_000)
        .gateway(gateway())
        .mcp_server(McpHost::new("docs").config(paged))
        .step(Step::create(ServerDef::http("docs", "http://docs/mcp")))
        .expect("docs", Expectation::status(Status::Healthy).tool_count(3))
        .call_tools()
        .build()
        .unwrap();
    let report = caught(
        Flaw::CallsFirstPageOnly,
        &scenario,
        "tool_calls",
        "of healthy docs at",
    );
    // The tool of the first page answers; those of the other two do not.
    let calls = &report
        .checks
        .iter()
        .find(|c| c.name == "tool_calls")
        .unwrap()
        .findings;
    assert_eq!(
        calls
            .iter()
            .filter(|f| f.contains("was answered 404"))
            .count(),
        2,
        "{calls:?}"
    );
}

/// A delete followed by a create of the same `server_id` is a fresh server:
/// it must be checked again and judged as new. The reference passes (on one
/// gateway here; split across planes in the catalogue's
/// `split-delete-then-create-same-id`, where `converges` once reported a
/// false positive); a gateway that never checks a re-created id fails
/// `liveness`.
#[test]
fn a_server_created_again_under_a_deleted_id_is_a_fresh_server() {
    let server = || ServerDef::http("docs", "http://docs/mcp").server_id("docs1");
    let scenario = Scenario::builder("delete, then create the same id again")
        .deadline_ms(3_000)
        .gateway(gateway())
        .mcp_server(docs(2))
        .step(Step::create(server()))
        .step(Step::delete("docs").at_ms(400))
        .step(Step::create(server()).at_ms(410))
        .expect("docs", Expectation::status(Status::Healthy).tool_count(2))
        .build()
        .unwrap();
    let report = caught(
        Flaw::ForgetsRecreated,
        &scenario,
        "liveness",
        "docs on gateway is still unknown at the deadline",
    );
    assert!(report.deadline_hit);

    let split = Scenario::load(
        &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios/split-delete-then-create-same-id.json"),
    )
    .unwrap();
    let report = mcpsim_harness::run(&Reference::new().sut(), &split).unwrap();
    assert!(
        report.passed(),
        "{:?}\n{}",
        report.failed_checks().collect::<Vec<_>>(),
        report.timeline()
    );
}

/// Explore's seed 3, case 739, shrunk (as written, so that its timing stays
/// what it was): the create's answer is lost in a bounce after the store
/// took it, so its id never comes back.
const CREATE_ANSWER_LOST: &str = r#"{"description":"Regression (explore seed 3): a bounce cuts the answer to a create the store took, and the update finds the server's id in a list that shows the create's URL","seed":931257878546513962,"deadline_ms":5000,"network":{"latency_ms_max":10,"tick_ms":2},"gateways":[{"host":"gateway","settings":{"check_interval_ms":500,"id_seed":1,"list_timeout_ms":750,"store_timeout_ms":500,"sync_interval_ms":500,"token_timeout_ms":500},"store":"db"}],"mcp_servers":[{"host":"mcp","config":{"latency_ms":{"tools/list":0},"tools":[{"description":"The tool tool_000.","input_schema":{"properties":{},"type":"object"},"name":"tool_000"}]}}],"stores":[{"host":"db"}],"operator":{"api_key":"sk-gen-operator-4711","call_tools":true,"poll_interval_ms":200,"poll_until_ms":2650,"steps":[{"at_ms":0,"gateway":"gateway","op":"create","spec":{"name":"srv","url":"http://nowhere/mcp"}},{"at_ms":100,"gateway":"gateway","op":"update","server":"srv","spec":{"name":"srv","url":"http://mcp/mcp"}}]},"faults":[{"at_ms":20,"host":"gateway","verb":"bounce"}]}"#;

#[test]
fn a_create_whose_id_never_came_back_counts_for_the_server_of_its_name() {
    // The operator finds the id in the list for its update, and that list
    // shows the create's URL: api_contract must count the unanswered
    // create as one that may have given it, not name a URL nobody wrote.
    let scenario = Scenario::from_json("seed 3, case 739", CREATE_ANSWER_LOST).unwrap();
    let report = reference_passes(&scenario);
    // The situation came about: no answer to the create, a 202 to the
    // update of the id found in the list.
    assert!(report.steps[0].ends_with("no answer"), "{:?}", report.steps);
    assert!(report.steps[1].ends_with("202"), "{:?}", report.steps);
}

/// Explore's seed 2, case 570, shrunk (as written): a create given up on,
/// its retry refused, then a rewrite of the server on the data plane.
const REWRITE_LOOKS_UP_ID: &str = r#"{"description":"Regression (explore seed 2): a rewrite looks up the id of a server whose create it gave up on, and the list it reads shows the server healthy before the update goes out","seed":12226406313575209552,"deadline_ms":5000,"network":{"latency_ms_max":20,"tick_ms":2},"gateways":[{"host":"control","settings":{"check_interval_ms":500,"id_seed":1,"list_timeout_ms":750,"role":"control","store_timeout_ms":500,"sync_interval_ms":500,"token_timeout_ms":500},"store":"db"},{"host":"data","settings":{"check_interval_ms":500,"id_seed":2,"list_timeout_ms":750,"role":"data","store_timeout_ms":500,"sync_interval_ms":500,"token_timeout_ms":500},"store":"db"}],"mcp_servers":[{"host":"mcp","config":{"latency_ms":{"tools/list":0},"tools":[{"description":"The tool tool_000.","input_schema":{"properties":{},"type":"object"},"name":"tool_000"}]}}],"stores":[{"host":"db"}],"operator":{"api_key":"sk-gen-operator-4711","call_tools":true,"poll_interval_ms":200,"steps":[{"at_ms":0,"gateway":"data","give_up_after_ms":40,"op":"create","spec":{"name":"srv","server_id":"srv-given-up","url":"http://mcp/mcp"}},{"at_ms":90,"gateway":"data","op":"create","spec":{"name":"srv","server_id":"srv-given-up","url":"http://mcp/mcp"}},{"at_ms":180,"gateway":"data","op":"update","server":"srv","spec":{"name":"srv","url":"http://mcp:80/mcp"}}]},"expect":{"srv":{"status":"healthy","tool_count":1}}}"#;

#[test]
fn a_write_is_sent_after_the_look_up_of_its_id() {
    // The operator reads the list to find the id of a server it did not
    // create, then writes; the write's sent time is when it went out, so
    // health_record does not hold the look-up's poll (healthy, as the
    // server was) to an update the gateway had not yet been sent.
    let scenario = Scenario::from_json("seed 2, case 570", REWRITE_LOOKS_UP_ID).unwrap();
    let report = reference_passes(&scenario);
    // The situation came about: a list read right before the update.
    let timeline = report.timeline();
    let lines: Vec<&str> = timeline.lines().collect();
    let update = lines
        .iter()
        .position(|l| l.contains("operator   -> data PUT /v1/mcp/server"))
        .expect("the update went out");
    assert!(
        lines[..update]
            .iter()
            .rev()
            .find(|l| l.contains("operator   -> "))
            .is_some_and(|l| l.contains("GET /v1/mcp/server =")),
        "{timeline}"
    );
}

/// The tools of every server at once are the union of each server's own
/// list, read just before: a gateway whose aggregate leaves a server out
/// fails `consistency`; the reference and the unflawed gateway pass.
#[test]
fn an_aggregate_that_leaves_a_server_out_fails_consistency() {
    let scenario = Scenario::builder("the aggregate holds every server's tools")
        .deadline_ms(3_000)
        .gateway(gateway())
        .mcp_server(docs(2))
        .mcp_server(McpHost::new("search").tools(1))
        .step(Step::create(ServerDef::http("docs", "http://docs/mcp")))
        .step(Step::create(ServerDef::http("search", "http://search/mcp")))
        .poll_until_ms(700)
        .expect("docs", Expectation::status(Status::Healthy).tool_count(2))
        .expect("search", Expectation::status(Status::Healthy).tool_count(1))
        .build()
        .unwrap();
    caught(
        Flaw::AggregatesFirstOnly,
        &scenario,
        "consistency",
        "the tools of every server leave out",
    );
}
