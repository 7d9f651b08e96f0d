//! The token server, as a client-credentials client sees it.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use mcpsim_fakes::access_token;
use mcpsim_fakes::{
    AcceptedClientAuth, AuthMethod, ClientRegistration, TokenFailure, TokenFailureRule,
    TokenServer, TokenServerConfig, TokenStats,
};

use crate::{assert_hangs, send, Reply, TestClock};

const SECRET: &str = "s3cr+t &:x";

fn config() -> TokenServerConfig {
    TokenServerConfig {
        clients: vec![
            ClientRegistration {
                client_id: "gw client".into(),
                client_secret: SECRET.into(),
                scopes: vec![],
                auth_method: None,
            },
            ClientRegistration {
                client_id: "narrow".into(),
                client_secret: "n".into(),
                scopes: vec!["mcp".into(), "read".into()],
                auth_method: None,
            },
        ],
        ..TokenServerConfig::default()
    }
}

fn form_encode(text: &str) -> String {
    serde_urlencoded::to_string([("x", text)]).unwrap()[2..].to_string()
}

fn basic(id: &str, secret: &str) -> String {
    let pair = format!("{}:{}", form_encode(id), form_encode(secret));
    format!("Basic {}", STANDARD.encode(pair))
}

fn post(authorization: Option<&str>, form: &[(&str, &str)]) -> Request<Body> {
    let mut request =
        Request::post("/oauth/token").header("content-type", "application/x-www-form-urlencoded");
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let body = serde_urlencoded::to_string(form).unwrap();
    request.body(Body::from(body)).unwrap()
}

fn grant() -> Request<Body> {
    post(
        Some(&basic("gw client", SECRET)),
        &[("grant_type", "client_credentials")],
    )
}

fn assert_error(reply: &Reply, status: StatusCode, error: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.json()["error"], error);
    assert!(
        !reply.body.contains(SECRET),
        "secret echoed: {}",
        reply.body
    );
}

#[tokio::test]
async fn basic_and_form_auth_both_succeed() {
    let (_time, clock) = TestClock::new(1_000_000);
    let server = TokenServer::new(config(), clock);
    let router = server.router();

    let by_basic = send(&router, grant()).await;
    assert_eq!(by_basic.status, StatusCode::OK, "{}", by_basic.body);
    assert_eq!(by_basic.header("cache-control"), Some("no-store"));
    assert_eq!(by_basic.header("pragma"), Some("no-cache"));
    let body = by_basic.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert!(body.get("scope").is_none());

    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "gw client"),
        ("client_secret", SECRET),
        ("scope", "mcp tools"),
        ("resource", "http://mcp/mcp"),
    ];
    let by_form = send(&router, post(None, &form)).await;
    assert_eq!(by_form.status, StatusCode::OK, "{}", by_form.body);
    assert_eq!(by_form.json()["scope"], "mcp tools");

    let token = by_form.json()["access_token"].as_str().unwrap().to_string();
    let claims =
        access_token::verify("mcpsim-signing-key", &token, Duration::from_secs(1_000)).unwrap();
    assert_eq!(claims.iss, "mcpsim-auth");
    assert_eq!(claims.sub, "gw client");
    assert_eq!(claims.scope, "mcp tools");
    assert_eq!(claims.exp_ms, 1_000_000 + 3_600_000);
    assert_eq!(claims.jti, 2);
    assert_eq!(server.issued_tokens().len(), 2);
    assert_eq!(server.issued_tokens()[1], token);
}

#[tokio::test]
async fn both_methods_at_once_are_refused() {
    let (_time, clock) = TestClock::new(0);
    let router = TokenServer::new(config(), clock).router();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "gw client"),
        ("client_secret", SECRET),
    ];
    let reply = send(&router, post(Some(&basic("gw client", SECRET)), &form)).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");

    // A client_id alongside Basic is harmless when it names the same client.
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "gw client"),
    ];
    let reply = send(&router, post(Some(&basic("gw client", SECRET)), &form)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn bad_secret_is_401_with_a_challenge() {
    let (_time, clock) = TestClock::new(0);
    let server = TokenServer::new(config(), clock);
    let router = server.router();
    let grant_type = [("grant_type", "client_credentials")];

    let reply = send(
        &router,
        post(Some(&basic("gw client", "wrong")), &grant_type),
    )
    .await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Basic realm=\"mcpsim\"")
    );

    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "gw client"),
        ("client_secret", "wrong"),
    ];
    let reply = send(&router, post(None, &form)).await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
    // Every 401 carries a challenge (RFC 7235), form-body credentials too.
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Basic realm=\"mcpsim\"")
    );

    let reply = send(&router, post(None, &grant_type)).await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");

    let reply = send(&router, post(Some("Basic %%%"), &grant_type)).await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(server.stats().rejected, 4);
    assert_eq!(server.stats().issued, 0);
}

#[tokio::test]
async fn grant_type_and_scope_are_checked() {
    let (_time, clock) = TestClock::new(0);
    let router = TokenServer::new(config(), clock).router();
    let auth = basic("narrow", "n");

    let reply = send(&router, post(Some(&auth), &[])).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    let reply = send(&router, post(Some(&auth), &[("grant_type", "password")])).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "unsupported_grant_type");
    let form = [("grant_type", "client_credentials"), ("scope", "mcp admin")];
    let reply = send(&router, post(Some(&auth), &form)).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_scope");
    let form = [
        ("grant_type", "client_credentials"),
        ("grant_type", "client_credentials"),
    ];
    let reply = send(&router, post(Some(&auth), &form)).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");

    // Without a requested scope the client gets all it is registered for.
    let reply = send(
        &router,
        post(Some(&auth), &[("grant_type", "client_credentials")]),
    )
    .await;
    assert_eq!(reply.json()["scope"], "mcp read");
}

#[tokio::test]
async fn wrong_method_and_path() {
    let (_time, clock) = TestClock::new(0);
    let router = TokenServer::new(config(), clock).router();
    let get = Request::get("/oauth/token").body(Body::empty()).unwrap();
    assert_eq!(
        send(&router, get).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let other = Request::post("/token").body(Body::empty()).unwrap();
    assert_eq!(send(&router, other).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn omitted_expiry_means_a_day() {
    let (_time, clock) = TestClock::new(5_000);
    let config = TokenServerConfig {
        expires_in_s: None,
        ..config()
    };
    let router = TokenServer::new(config, clock).router();
    let body = send(&router, grant()).await.json();
    assert!(body.get("expires_in").is_none());
    let token = body["access_token"].as_str().unwrap();
    let claims = access_token::verify("mcpsim-signing-key", token, Duration::ZERO).unwrap();
    assert_eq!(claims.exp_ms, 5_000 + 86_400_000);
    assert_eq!(claims.iat_ms, Some(5_000));
}

#[tokio::test]
async fn failure_rules_fail_then_recover() {
    let (_time, clock) = TestClock::new(0);
    let config = TokenServerConfig {
        failures: vec![
            TokenFailureRule {
                kind: TokenFailure::ServerError,
                after: 1,
                count: Some(2),
            },
            TokenFailureRule {
                kind: TokenFailure::RateLimited,
                after: 3,
                count: Some(1),
            },
        ],
        ..config()
    };
    let server = TokenServer::new(config, clock);
    let router = server.router();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(send(&router, grant()).await.status.as_u16());
    }
    assert_eq!(statuses, [200, 500, 500, 429, 200, 200]);
    assert_eq!(
        server.stats(),
        TokenStats {
            requests: 6,
            issued: 3,
            rejected: 0,
            failed_injected: 3,
        }
    );
}

#[tokio::test]
async fn token_server_fails_the_first_two_requests_then_issues() {
    // `after` defaults to 0, so this is "down for two requests, then recovered".
    let mut config: TokenServerConfig = serde_json::from_value(serde_json::json!({
        "failures": [{"kind": "server_error", "count": 2}],
    }))
    .unwrap();
    config.clients = self::config().clients;
    let (_time, clock) = TestClock::new(0);
    let server = TokenServer::new(config, clock);
    let router = server.router();
    for _ in 0..2 {
        assert_error(
            &send(&router, grant()).await,
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
        );
    }
    assert!(server.issued_tokens().is_empty());
    for _ in 0..3 {
        let reply = send(&router, grant()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let token = reply.json()["access_token"].as_str().unwrap().to_string();
        assert!(access_token::verify("mcpsim-signing-key", &token, Duration::ZERO).is_ok());
    }
    let stats = server.stats();
    assert_eq!((stats.failed_injected, stats.issued), (2, 3));
}

#[tokio::test]
async fn injected_malformed_body_invalid_client_and_hang() {
    let (_time, clock) = TestClock::new(0);
    let config = TokenServerConfig {
        failures: vec![
            TokenFailureRule {
                kind: TokenFailure::MalformedBody,
                after: 0,
                count: Some(1),
            },
            TokenFailureRule {
                kind: TokenFailure::InvalidClient,
                after: 1,
                count: Some(1),
            },
            TokenFailureRule {
                kind: TokenFailure::Hang,
                after: 2,
                count: None,
            },
        ],
        ..config()
    };
    let server = TokenServer::new(config, clock);
    let router = server.router();

    let reply = send(&router, grant()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(serde_json::from_str::<serde_json::Value>(&reply.body).is_err());

    let reply = send(&router, grant()).await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
    assert!(reply.header("www-authenticate").is_some());

    assert_hangs(&router, grant()).await;
    assert_eq!(server.stats().failed_injected, 3);
    assert!(server.issued_tokens().is_empty());
}

#[tokio::test]
async fn state_survives_a_new_router() {
    let (_time, clock) = TestClock::new(0);
    let server = TokenServer::new(config(), clock);
    send(&server.router(), grant()).await;
    let body = send(&server.router(), grant()).await.json();
    let token = body["access_token"].as_str().unwrap();
    let claims = access_token::verify("mcpsim-signing-key", token, Duration::ZERO).unwrap();
    assert_eq!(claims.jti, 2);
    assert_eq!(server.stats().requests, 2);
}

#[test]
fn config_reads_from_json() {
    let config: TokenServerConfig = serde_json::from_value(serde_json::json!({
        "clients": [{"client_id": "gw", "client_secret": "s", "scopes": ["mcp"]}],
        "expires_in_s": null,
        "latency_ms": 20,
        "failures": [{"kind": "server_error", "after": 1, "count": 2}, {"kind": "hang"}],
    }))
    .unwrap();
    assert_eq!(config.path, "/oauth/token");
    assert_eq!(config.expires_in_s, None);
    assert_eq!(config.failures[1].count, None);
    assert!(!format!("{config:?}").contains("\"s\""));
    let typo = serde_json::json!({"pathh": "/x"});
    assert!(serde_json::from_value::<TokenServerConfig>(typo).is_err());
}

#[tokio::test]
async fn metadata_names_the_token_endpoint_and_the_accepted_methods() {
    let (_time, clock) = TestClock::new(0);
    let server = TokenServer::new(
        TokenServerConfig {
            issuer: "http://127.0.0.1:4100".into(),
            client_auth: AcceptedClientAuth::BasicOnly,
            require_scope: Some("mcp".into()),
            ..config()
        },
        clock,
    );
    let router = server.router();
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let reply = send(&router, request).await;
        assert_eq!(reply.status, StatusCode::OK);
        let body = reply.json();
        assert_eq!(body["issuer"], "http://127.0.0.1:4100");
        assert_eq!(body["token_endpoint"], "http://127.0.0.1:4100/oauth/token");
        assert_eq!(
            body["grant_types_supported"],
            serde_json::json!(["client_credentials"])
        );
        assert_eq!(
            body["token_endpoint_auth_methods_supported"],
            serde_json::json!(["client_secret_basic"])
        );
        assert!(body["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&"mcp".into()));
        assert!(body["authorization_endpoint"].is_string());
    }
    // Without a URL issuer the metadata follows the Host the client used.
    let plain = TokenServer::new(config(), TestClock::new(0).1).router();
    let request = Request::get("/.well-known/oauth-authorization-server")
        .header("host", "auth.sim:81")
        .body(Body::empty())
        .unwrap();
    let body = send(&plain, request).await.json();
    assert_eq!(body["issuer"], "http://auth.sim:81");
    assert_eq!(body["token_endpoint"], "http://auth.sim:81/oauth/token");
}

#[tokio::test]
async fn an_endpoint_may_accept_one_client_authentication_only() {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "gw client"),
        ("client_secret", SECRET),
    ];
    for (accepted, basic_ok, form_ok) in [
        (AcceptedClientAuth::Any, true, true),
        (AcceptedClientAuth::BasicOnly, true, false),
        (AcceptedClientAuth::FormOnly, false, true),
    ] {
        let server = TokenServer::new(
            TokenServerConfig {
                client_auth: accepted,
                ..config()
            },
            TestClock::new(0).1,
        );
        let router = server.router();
        let by_basic = send(&router, grant()).await;
        let by_form = send(&router, post(None, &form)).await;
        assert_eq!(by_basic.status == StatusCode::OK, basic_ok, "{accepted:?}");
        assert_eq!(by_form.status == StatusCode::OK, form_ok, "{accepted:?}");
        for refused in [&by_basic, &by_form]
            .into_iter()
            .filter(|r| r.status != StatusCode::OK)
        {
            assert_error(refused, StatusCode::UNAUTHORIZED, "invalid_client");
        }
    }
}

/// A client registered with one client authentication must use it; a lenient endpoint serves
/// it either way; a registration that states none takes both.
#[tokio::test]
async fn a_registered_client_must_use_its_registered_client_authentication() {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "gw client"),
        ("client_secret", SECRET),
    ];
    for (registered, lenient, basic_ok, form_ok) in [
        (None, false, true, true),
        (Some(AuthMethod::Basic), false, true, false),
        (Some(AuthMethod::Form), false, false, true),
        (Some(AuthMethod::Basic), true, true, true),
        (Some(AuthMethod::Form), true, true, true),
    ] {
        let mut config = config();
        config.clients[0].auth_method = registered;
        config.lenient_client_auth = lenient;
        let server = TokenServer::new(config, TestClock::new(0).1);
        let router = server.router();
        let by_basic = send(&router, grant()).await;
        let by_form = send(&router, post(None, &form)).await;
        let case = format!("{registered:?}, lenient {lenient}");
        assert_eq!(by_basic.status == StatusCode::OK, basic_ok, "{case}");
        assert_eq!(by_form.status == StatusCode::OK, form_ok, "{case}");
        for refused in [&by_basic, &by_form]
            .into_iter()
            .filter(|r| r.status != StatusCode::OK)
        {
            assert_error(refused, StatusCode::UNAUTHORIZED, "invalid_client");
        }
        // A wrong secret is refused whatever the method.
        let wrong = send(&router, post(Some(&basic("gw client", "nope")), &form[..1])).await;
        assert_error(&wrong, StatusCode::UNAUTHORIZED, "invalid_client");
    }
}

#[tokio::test]
async fn required_scope_resource_and_audience_are_checked() {
    let server = TokenServer::new(
        TokenServerConfig {
            require_scope: Some("mcp".into()),
            require_resource: Some("http://mcp/mcp".into()),
            require_audience: Some("api".into()),
            ..config()
        },
        TestClock::new(0).1,
    );
    let router = server.router();
    let full = [
        ("grant_type", "client_credentials"),
        ("scope", "read mcp"),
        ("resource", "http://mcp/mcp"),
        ("audience", "api"),
    ];
    let auth = basic("gw client", SECRET);
    assert_eq!(
        send(&router, post(Some(&auth), &full)).await.status,
        StatusCode::OK
    );
    for (drop, code) in [
        ("scope", "invalid_scope"),
        ("resource", "invalid_target"),
        ("audience", "invalid_request"),
    ] {
        let partial: Vec<(&str, &str)> = full.iter().copied().filter(|(k, _)| *k != drop).collect();
        let reply = send(&router, post(Some(&auth), &partial)).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, code);
    }
}

#[tokio::test]
async fn a_token_may_live_otherwise_than_it_says() {
    let (_time, clock) = TestClock::new(1_000);
    let server = TokenServer::new(
        TokenServerConfig {
            expires_in_s: None,
            lifetime_s: Some(60),
            signing_key: "k".into(),
            ..config()
        },
        clock,
    );
    let reply = send(&server.router(), grant()).await;
    let body = reply.json();
    assert!(body.get("expires_in").is_none(), "{body}");
    let token = body["access_token"].as_str().unwrap();
    let claims = access_token::verify("k", token, Duration::from_millis(1_000)).unwrap();
    assert_eq!(claims.exp_ms, 61_000);
}
