//! Checkers fail when they should, on systems under test written to break
//! them: a gateway that echoes what it was sent (a secret included) and
//! lists nothing it acknowledged; and a small gateway with one flaw at a
//! time (`checkers/flawed.rs`), each run beside the same gateway without
//! the flaw and the reference gateway, which pass.

#[path = "checkers/flawed.rs"]
mod flawed;

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

use flawed::{Flaw, Flawed};
use mcpsim_gateway::Reference;
use mcpsim_harness::{Report, Status};

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
fn an_error_that_names_the_wrong_stage_fails_the_health_record() {
    let auth = TokenServerConfig {
        clients: vec![ClientRegistration {
            client_id: "docs-client".into(),
            client_secret: "the-right-s3cret".into(),
            scopes: Vec::new(),
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
