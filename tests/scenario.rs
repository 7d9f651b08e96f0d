//! What belongs to the system under test in a scenario is checked by it
//! when a run begins: the reference refuses bad settings with their JSON
//! path, and no scenario can switch a known defect on.

use mcpsim_gateway::Reference;
use mcpsim_harness::{RunError, Scenario};

fn refused(text: &str) -> String {
    let scenario = Scenario::from_json("case.json", text).expect("well formed for the harness");
    match mcpsim_harness::run(&Reference::new().sut(), &scenario) {
        Err(e @ RunError::Invalid(_)) => e.to_string(),
        Err(e) => panic!("not an input error: {e}"),
        Ok(_) => panic!("accepted: {text}"),
    }
}

#[test]
fn a_scenario_cannot_switch_a_defect_on() {
    let e = refused(
        r#"{"description": "x", "gateways": [{"host": "gateway",
        "settings": {"defects": ["first-page-only"]}}]}"#,
    );
    assert!(e.contains("gateways[0].settings"), "{e}");
    assert!(e.contains("defects"), "{e}");
}

#[test]
fn bad_settings_and_configs_name_their_path() {
    let e = refused(
        r#"{"description": "x", "gateways": [{"host": "gateway",
        "settings": {"list_timeout_ms": "soon"}}]}"#,
    );
    assert!(e.contains("at gateways[0].settings.list_timeout_ms"), "{e}");
    let e = refused(
        r#"{"description": "x", "gateways": [{"host": "gateway",
        "config": {"mcp_servers": {"x": {"transport": "pigeon"}}}}]}"#,
    );
    assert!(e.contains("at gateways[0].config"), "{e}");
    assert!(e.contains("mcp_servers.x"), "{e}");
    let e = refused(
        r#"{"description": "x", "gateways": [{"host": "gateway",
        "config": {"mcp_servers": {"x": {"url": "http://x/mcp"}}},
        "servers": [{"name": "x", "url": "http://y/mcp"}]}]}"#,
    );
    assert!(e.contains("defined twice"), "{e}");
}
