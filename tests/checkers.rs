//! Checkers fail when they should, on a system under test written to break
//! them: a gateway that echoes what it was sent (a secret included) and
//! lists nothing it acknowledged.

use axum::routing::{get, post};
use axum::{Json, Router};
use mcpsim_harness::builder::*;
use mcpsim_harness::{ServerAuth, ServerDef, Sut};
use mcpsim_sut::{
    Declared, Dialect, HostSetup, Injected, Instance, LiteLlm, Profile, SetupError,
    SystemUnderTest, TokenReuse,
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
    assert_eq!(failed, ["liveness", "no_secrets"], "{:?}", report.checks);
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
