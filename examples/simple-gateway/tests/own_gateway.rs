//! Testing a Rust gateway with mcpsim: scenarios built in code, and
//! generated cases that find a bug and shrink it. (The README's section
//! "Testing your own Rust gateway" is this file.)

use mcpsim_harness::builder::*;
use mcpsim_harness::explore::{run_cases, shrink, Options};
use mcpsim_harness::generate::Target;
use mcpsim_harness::{Evidence, ServerDef, Status};
use mcpsim_simple_gateway::SimpleGateway;

#[test]
fn a_server_from_the_config_file_ends_healthy() {
    let sut = SimpleGateway.sut();
    let scenario = Scenario::builder("a config server with three tools ends healthy")
        .gateway(GatewayHost::new("gateway").server(ServerDef::http("docs", "http://docs/mcp")))
        .mcp_server(McpHost::new("docs").tools(3))
        .expect("docs", Expectation::status(Status::Healthy).tool_count(3))
        .build()
        .expect("a valid scenario");
    let report = mcpsim_harness::run(&sut, &scenario).expect("the world runs");
    assert!(report.passed(), "{}", report.timeline());
}

#[test]
fn a_paged_tool_list_shows_that_only_the_first_page_is_kept() {
    let sut = SimpleGateway.sut();
    let docs = McpServerConfig {
        tool_count: Some(3),
        page_size: Some(2),
        ..McpServerConfig::default()
    };
    let scenario = Scenario::builder("three tools over two pages")
        .gateway(GatewayHost::new("gateway").server(ServerDef::http("docs", "http://docs/mcp")))
        .mcp_server(McpHost::new("docs").config(docs))
        .expect("docs", Expectation::status(Status::Healthy).tool_count(3))
        .build()
        .expect("a valid scenario");
    let report = mcpsim_harness::run(&sut, &scenario).expect("the world runs");
    let failed: Vec<&str> = report.failed_checks().map(|c| c.name).collect();
    assert_eq!(failed, ["consistency", "expectations", "health_record"]);
}

#[test]
fn generated_cases_find_a_bug_and_shrink_it_to_a_small_scenario() {
    let target = Target::new(SimpleGateway.sut()).expect("the gateway takes generated settings");
    let options = Options {
        cases: 50,
        seed: 1,
        jobs: 1,
        shard: (1, 1),
        out: std::env::temp_dir().join("mcpsim-own-gateway"),
        progress: false,
        target,
        evidence: Evidence::Everything,
    };
    let (results, _seconds) = run_cases(&options);
    let first = results
        .iter()
        .find(|r| !r.failed.is_empty())
        .expect("a quick gateway has bugs to find");
    let (plan, findings, _report, _steps) =
        shrink(&options.target, options.evidence, 1, first.index, false);
    let scenario = plan.to_scenario(&options.target).expect("a valid scenario");
    // The shrunk scenario names the checker (this gateway never closes the
    // sessions it opens upstream), and is one server, no fault.
    assert!(
        findings.iter().any(|f| f.starts_with("session_hygiene")),
        "{findings:?}"
    );
    assert!(scenario.faults.is_empty() && scenario.mcp_servers.len() == 1);
}
