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
