//! What mcpsim finds in the simple gateway, one shortcut at a time, from
//! the outside alone: the gateway reports no events, so every verdict here
//! rests on its API and on what its upstreams saw.

use mcpsim_harness::builder::*;
use mcpsim_harness::{Report, ServerAuth, ServerDef, Status};
use mcpsim_simple_gateway::SimpleGateway;

fn run(scenario: Scenario) -> Report {
    mcpsim_harness::run(&SimpleGateway.sut(), &scenario).expect("the world runs")
}

fn findings(report: &Report, check: &str) -> Vec<String> {
    report
        .checks
        .iter()
        .find(|c| c.name == check)
        .map(|c| c.findings.clone())
        .unwrap_or_default()
}

fn oauth_world(builder: ScenarioBuilder) -> ScenarioBuilder {
    let tokens = TokenServerConfig {
        clients: vec![ClientRegistration {
            client_id: "gw".into(),
            client_secret: "gw-secret-value".into(),
            scopes: Vec::new(),
            auth_method: None,
        }],
        ..TokenServerConfig::default()
    };
    let mcp = McpServerConfig {
        tool_count: Some(2),
        auth: McpAuth::Oauth {
            issuer: "mcpsim-auth".into(),
            signing_key: tokens.signing_key.clone(),
            required_scope: None,
            revoke_at_ms: None,
            authorization_server: None,
        },
        ..McpServerConfig::default()
    };
    builder
        .token_server(TokenHost::new("auth").config(tokens))
        .mcp_server(McpHost::new("mcp").config(mcp))
}

fn oauth_server() -> ServerDef {
    ServerDef::http("docs", "http://mcp/mcp").auth(ServerAuth::ClientCredentials {
        token_url: "http://auth/oauth/token".into(),
        client_id: "gw".into(),
        client_secret: "gw-secret-value".into(),
        scopes: Vec::new(),
        audience: None,
        resource: None,
        explicit_flow: true,
    })
}

#[test]
fn a_token_per_exchange_breaks_token_discipline() {
    let scenario = oauth_world(Scenario::builder("discovery, then a tool call"))
        .gateway(GatewayHost::new("gateway").server(oauth_server()))
        .call_tools()
        .expect("docs", Expectation::status(Status::Healthy).tool_count(2))
        .build()
        .unwrap();
    let report = run(scenario);
    let found = findings(&report, "token_discipline");
    assert!(
        found.iter().any(|f| f.contains("fetched a second token")),
        "{found:?}\n{}",
        report.timeline()
    );
    // The inside view is not applicable to a gateway without events.
    let hygiene = report
        .checks
        .iter()
        .find(|c| c.name == "cancellation_hygiene")
        .unwrap();
    assert!(hygiene.passed && hygiene.not_applicable.is_some());
}

#[test]
fn a_client_that_gives_up_leaves_the_server_unknown_for_good() {
    let mcp = McpServerConfig {
        tool_count: Some(1),
        latency_ms: [("tools/list".to_string(), 300)].into(),
        ..McpServerConfig::default()
    };
    let scenario = Scenario::builder("the operator gives up on a slow create")
        .deadline_ms(5_000)
        .gateway(GatewayHost::new("gateway").settings(serde_json::json!({"timeout_ms": 1000})))
        .mcp_server(McpHost::new("mcp").config(mcp))
        .step(Step::create(ServerDef::http("docs", "http://mcp/mcp")).give_up_after_ms(100))
        .build()
        .unwrap();
    let report = run(scenario);
    let found = findings(&report, "liveness");
    assert!(
        found.iter().any(|f| f.contains("still unknown")),
        "{found:?}\n{}",
        report.timeline()
    );
}

#[test]
fn without_a_re_check_a_transient_failure_sticks() {
    let mcp = McpServerConfig {
        tool_count: Some(1),
        failures: vec![McpFailureRule {
            method: "tools/list".into(),
            kind: McpFailure::Http { status: 503 },
            after: 0,
            count: Some(1),
        }],
        ..McpServerConfig::default()
    };
    let scenario = Scenario::builder("one 503, then the upstream recovers")
        .gateway(GatewayHost::new("gateway").server(ServerDef::http("docs", "http://mcp/mcp")))
        .mcp_server(McpHost::new("mcp").config(mcp))
        .poll_until_ms(3_000)
        .expect("docs", Expectation::status(Status::Healthy))
        .build()
        .unwrap();
    let report = run(scenario);
    let found = findings(&report, "expectations");
    assert!(
        found
            .iter()
            .any(|f| f.contains("expected healthy, got unhealthy")),
        "{found:?}"
    );
}

#[test]
fn sessions_never_closed_break_session_hygiene() {
    let scenario = Scenario::builder("a config server, watched for 1.5 s")
        .gateway(
            GatewayHost::new("gateway")
                .settings(serde_json::json!({"timeout_ms": 500}))
                .server(ServerDef::http("docs", "http://mcp/mcp")),
        )
        .mcp_server(McpHost::new("mcp").tools(1))
        .poll_until_ms(1_500)
        .build()
        .unwrap();
    let report = run(scenario);
    let found = findings(&report, "session_hygiene");
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("gateway left 1 of the 1 sessions it used at mcp open")),
        "{found:?}\n{}",
        report.timeline()
    );
}

/// It reads the fields it needs from a create and takes the rest on trust:
/// a `transport` that is a boolean, which a gateway of LiteLLM's dialect
/// must refuse with a 4xx, is taken with a 201 (explore's first finding on
/// seed 1).
#[test]
fn a_bad_input_taken_breaks_the_api_contract() {
    let scenario = Scenario::builder("a create whose transport is a boolean")
        .gateway(GatewayHost::new("gateway"))
        .mcp_server(McpHost::new("mcp").tools(1))
        .step(
            Step::create_native(serde_json::json!({"server_name": "bad0",
                "url": "http://mcp/mcp", "transport": true}))
            .bad_input(),
        )
        .build()
        .unwrap();
    let report = run(scenario);
    let found = findings(&report, "api_contract");
    assert!(
        found
            .iter()
            .any(|f| f.contains("the bad input create bad0 at 0 ms was taken (201)")),
        "{found:?}\n{}",
        report.timeline()
    );
}

/// It authenticates to token endpoints as its settings say (a generated
/// profile's client authentication comes to it that way): a client
/// registered for HTTP Basic gets its token by Basic when the gateway is
/// told so, and a refusal when it is told to use the form body, as it does
/// not ask again the other way.
#[test]
fn it_uses_the_client_authentication_it_is_told_to() {
    for (client_auth, status) in [("basic", Status::Healthy), ("form", Status::Unhealthy)] {
        let tokens = TokenServerConfig {
            clients: vec![ClientRegistration {
                client_id: "gw".into(),
                client_secret: "gw-secret-value".into(),
                scopes: Vec::new(),
                auth_method: Some(AuthMethod::Basic),
            }],
            ..TokenServerConfig::default()
        };
        let mcp = McpServerConfig {
            tool_count: Some(2),
            auth: McpAuth::Oauth {
                issuer: "mcpsim-auth".into(),
                signing_key: tokens.signing_key.clone(),
                required_scope: None,
                revoke_at_ms: None,
                authorization_server: None,
            },
            ..McpServerConfig::default()
        };
        let gateway = GatewayHost::new("gateway")
            .settings(serde_json::json!({"client_auth": client_auth}))
            .server(oauth_server());
        let scenario = Scenario::builder("a client registered for HTTP Basic")
            .token_server(TokenHost::new("auth").config(tokens))
            .mcp_server(McpHost::new("mcp").config(mcp))
            .gateway(gateway)
            .expect("docs", Expectation::status(status))
            .build()
            .unwrap();
        let report = run(scenario);
        assert!(
            findings(&report, "expectations").is_empty(),
            "{client_auth}: {:?}\n{}",
            report.checks,
            report.timeline()
        );
    }
}
