//! What the fakes record about each request: the outside view checkers
//! judge a gateway by. Records name clients and tokens, never secrets.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use mcpsim_fakes::{
    ClientAuthSeen, ClientRegistration, CredentialSeen, McpAuth, McpFailure, McpFailureRule,
    McpOutcome, McpServer, McpServerConfig, Peer, TokenOutcome, TokenServer, TokenServerConfig,
    SIM_EPOCH_UNIX_S,
};
use serde_json::json;

use crate::{send, TestClock};

fn tokens(clock: mcpsim_fakes::Clock) -> TokenServer {
    TokenServer::new(
        TokenServerConfig {
            signing_key: "k".into(),
            expires_in_s: Some(90),
            clients: vec![
                ClientRegistration {
                    client_id: "gw".into(),
                    client_secret: "very-secret-value".into(),
                    scopes: vec![],
                    auth_method: None,
                },
                ClientRegistration {
                    client_id: "gw".into(),
                    client_secret: "rotated-secret-value".into(),
                    scopes: vec![],
                    auth_method: None,
                },
            ],
            ..TokenServerConfig::default()
        },
        clock,
    )
}

fn grant(body: &str, peer: Option<&str>) -> Request<Body> {
    let mut request = Request::post("/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body.to_string()))
        .unwrap();
    if let Some(peer) = peer {
        request.extensions_mut().insert(Peer(peer.to_string()));
    }
    request
}

#[tokio::test]
async fn a_token_request_is_recorded_with_its_client_parameters_and_outcome() {
    let (time, clock) = TestClock::new(SIM_EPOCH_UNIX_S * 1000 + 250);
    let server = tokens(clock);
    let router = server.router();
    let body = "grant_type=client_credentials&client_id=gw&client_secret=very-secret-value\
                &scope=mcp&resource=http%3A%2F%2Fmcp%2Fmcp&audience=api";
    assert_eq!(
        send(&router, grant(body, Some("gateway"))).await.status,
        StatusCode::OK
    );
    time.advance(Duration::from_millis(10));
    let wrong = "grant_type=client_credentials&client_id=gw&client_secret=nope";
    assert_eq!(
        send(&router, grant(wrong, None)).await.status,
        StatusCode::UNAUTHORIZED
    );

    let log = server.requests();
    assert_eq!(log.records.len(), 2);
    let first = &log.records[0];
    assert_eq!(first.received_ms, 250);
    assert_eq!(first.answered_ms, Some(250));
    assert_eq!(first.peer.as_deref(), Some("gateway"));
    assert_eq!(first.client_id.as_deref(), Some("gw"));
    assert_eq!(first.client_auth, ClientAuthSeen::Form);
    assert_eq!(first.scope.as_deref(), Some("mcp"));
    assert_eq!(first.resource.as_deref(), Some("http://mcp/mcp"));
    assert_eq!(first.audience.as_deref(), Some("api"));
    let TokenOutcome::Issued {
        token,
        expires_in_s,
        registration,
    } = &first.outcome
    else {
        panic!("{:?}", first.outcome);
    };
    assert_eq!(
        (token.serial, token.issued_ms, *expires_in_s, *registration),
        (1, 250, Some(90), 0)
    );
    assert_eq!(token.client_id, "gw");
    let second = &log.records[1];
    assert_eq!(second.received_ms, 260);
    assert_eq!(
        second.outcome,
        TokenOutcome::Refused {
            status: 401,
            error: "invalid_client".into()
        }
    );
    let text = serde_json::to_string(&log).unwrap();
    assert!(
        !text.contains("very-secret-value") && !text.contains("nope"),
        "{text}"
    );
    assert!(!text.contains(&server.issued_tokens()[0]), "{text}");
}

#[tokio::test]
async fn a_token_records_the_registration_whose_secret_it_was_asked_with() {
    let (_time, clock) = TestClock::new(SIM_EPOCH_UNIX_S * 1000);
    let server = tokens(clock);
    let router = server.router();
    for secret in ["rotated-secret-value", "very-secret-value"] {
        let body = format!("grant_type=client_credentials&client_id=gw&client_secret={secret}");
        assert_eq!(
            send(&router, grant(&body, None)).await.status,
            StatusCode::OK
        );
    }
    let registrations: Vec<usize> = server
        .requests()
        .records
        .iter()
        .map(|r| match r.outcome {
            TokenOutcome::Issued { registration, .. } => registration,
            _ => usize::MAX,
        })
        .collect();
    assert_eq!(registrations, [1, 0]);
    let text = serde_json::to_string(&server.requests()).unwrap();
    assert!(!text.contains("secret-value"), "{text}");
}

#[tokio::test]
async fn a_token_request_whose_client_goes_away_is_recorded_as_abandoned() {
    let (_time, clock) = TestClock::new(SIM_EPOCH_UNIX_S * 1000);
    let config = TokenServerConfig {
        latency_ms: 1_000,
        ..TokenServerConfig::default()
    };
    let server = TokenServer::new(config, clock);
    let router = server.router();
    let answer = tokio::time::timeout(
        Duration::from_millis(20),
        send(&router, grant("grant_type=client_credentials", None)),
    )
    .await;
    assert!(answer.is_err());
    let records = server.requests().records;
    assert_eq!(records[0].outcome, TokenOutcome::Abandoned);
    assert_eq!(records[0].client_auth, ClientAuthSeen::None);
}

fn mcp_post(
    message: serde_json::Value,
    session: Option<&str>,
    token: Option<&str>,
) -> Request<Body> {
    let mut request = Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18");
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let mut request = request.body(Body::from(message.to_string())).unwrap();
    request.extensions_mut().insert(Peer("gateway".into()));
    request
}

#[tokio::test]
async fn an_mcp_request_is_recorded_with_its_method_session_version_and_token() {
    let (_time, clock) = TestClock::new(SIM_EPOCH_UNIX_S * 1000 + 40);
    let issuer = tokens(clock.clone());
    let reply = send(
        &issuer.router(),
        grant(
            "grant_type=client_credentials&client_id=gw&client_secret=very-secret-value",
            None,
        ),
    )
    .await;
    let token = reply.json()["access_token"].as_str().unwrap().to_string();
    let server = McpServer::new(
        McpServerConfig {
            tool_count: Some(2),
            auth: McpAuth::Oauth {
                issuer: "mcpsim-auth".into(),
                signing_key: "k".into(),
                required_scope: None,
                revoke_at_ms: None,
                authorization_server: None,
            },
            failures: vec![McpFailureRule {
                method: "tools/list".into(),
                kind: McpFailure::CutStream,
                after: 0,
                count: Some(1),
            }],
            ..McpServerConfig::default()
        },
        clock,
    );
    let router = server.router();
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let reply = send(&router, mcp_post(init, None, Some(&token))).await;
    let session = reply.header("mcp-session-id").unwrap().to_string();
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    // The cut answer's body ends in an error, which the in-process send reports by panicking
    // inside collect; the record is what this test reads, so drive the router directly.
    let _ =
        tower::ServiceExt::oneshot(router.clone(), mcp_post(list, Some(&session), Some(&token)))
            .await;
    let forged = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    let reply = send(
        &router,
        mcp_post(forged, Some(&session), Some("sk-not-a-token")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    let records = server.requests().records;
    assert_eq!(records.len(), 3);
    let CredentialSeen::Issued { token: seen } = &records[0].credential else {
        panic!("{:?}", records[0].credential);
    };
    assert_eq!(
        (seen.serial, seen.issued_ms, seen.client_id.as_str()),
        (1, 40, "gw")
    );
    assert_eq!(records[0].rpc_method.as_deref(), Some("initialize"));
    assert_eq!(records[0].protocol_version.as_deref(), Some("2025-06-18"));
    assert_eq!(records[0].peer.as_deref(), Some("gateway"));
    assert_eq!(
        (records[0].status, records[0].outcome),
        (Some(200), McpOutcome::Answered)
    );
    assert_eq!(records[1].session.as_deref(), Some(session.as_str()));
    assert_eq!(records[1].outcome, McpOutcome::Cut);
    assert_eq!(records[2].credential, CredentialSeen::Other);
    assert_eq!(records[2].status, Some(401));
    assert_eq!(server.foreign_bearers(), vec!["sk-not-a-token".to_string()]);
    let text = serde_json::to_string(&server.requests()).unwrap();
    assert!(
        !text.contains(&token) && !text.contains("sk-not-a-token"),
        "{text}"
    );
}

#[tokio::test]
async fn the_session_an_initialize_hands_out_is_recorded_with_it_and_its_delete() {
    let (_time, clock) = TestClock::new(SIM_EPOCH_UNIX_S * 1000);
    let server = McpServer::new(McpServerConfig::default(), clock);
    let router = server.router();
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let reply = send(&router, mcp_post(init.clone(), None, None)).await;
    let session = reply.header("mcp-session-id").unwrap().to_string();
    let delete = Request::delete("/mcp")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&router, delete).await.status, StatusCode::OK);
    // A server without sessions hands none out, and records none.
    let (_time, clock) = TestClock::new(SIM_EPOCH_UNIX_S * 1000);
    let sessionless = McpServer::new(
        McpServerConfig {
            sessions: false,
            ..McpServerConfig::default()
        },
        clock,
    );
    send(&sessionless.router(), mcp_post(init, None, None)).await;

    let records = server.requests().records;
    assert_eq!(
        records[0].assigned_session.as_deref(),
        Some(session.as_str())
    );
    assert_eq!(records[0].session, None);
    assert_eq!(records[1].http_method, "DELETE");
    assert_eq!(records[1].session.as_deref(), Some(session.as_str()));
    assert_eq!(records[1].assigned_session, None);
    assert_eq!(sessionless.requests().records[0].assigned_session, None);
}

#[tokio::test]
async fn a_log_limited_for_a_run_keeps_that_many_records_and_counts_the_rest() {
    let (_time, clock) = TestClock::new(SIM_EPOCH_UNIX_S * 1000);
    let server = McpServer::new(McpServerConfig::default(), clock.clone());
    server.limit_log(2);
    let router = server.router();
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    assert!(!server.log_full());
    for _ in 0..3 {
        send(&router, mcp_post(ping.clone(), None, None)).await;
    }
    assert!(server.log_full());
    let log = server.requests();
    assert_eq!((log.records.len(), log.dropped), (2, 1));

    let tokens = tokens(clock);
    tokens.limit_log(1);
    let router = tokens.router();
    send(&router, grant("grant_type=client_credentials", None)).await;
    assert!(tokens.log_full());
    send(&router, grant("grant_type=client_credentials", None)).await;
    assert_eq!(tokens.requests().dropped, 1);
}
