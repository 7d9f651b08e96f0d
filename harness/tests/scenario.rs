//! Scenario files: malformed parts are refused with the JSON path and the
//! reason; a scenario file can never switch a known defect on.

use mcpsim_harness::Scenario;

fn refused(text: &str) -> String {
    match Scenario::from_json("case.json", text) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e.to_string(),
    }
}

const GATEWAY: &str = r#""gateways": [{"host": "gateway"}]"#;

#[test]
fn bad_operator_steps_and_ticks_name_their_path() {
    let first_with_previous = format!(
        r#"{{"description": "x", {GATEWAY}, "operator": {{"steps": [
            {{"op": "delete", "server": "a", "with_previous": true}}]}}}}"#
    );
    let e = refused(&first_with_previous);
    assert!(e.contains("operator.steps[0].with_previous"), "{e}");

    let no_patience = format!(
        r#"{{"description": "x", {GATEWAY}, "operator": {{"steps": [
            {{"op": "delete", "server": "a", "give_up_after_ms": 0}}]}}}}"#
    );
    let e = refused(&no_patience);
    assert!(e.contains("operator.steps[0].give_up_after_ms"), "{e}");

    let no_tick = format!(r#"{{"description": "x", {GATEWAY}, "network": {{"tick_ms": 0}}}}"#);
    let e = refused(&no_tick);
    assert!(e.contains("network.tick_ms"), "{e}");
}

#[test]
fn a_scenario_cannot_switch_a_defect_on() {
    let text = r#"{"description": "x", "gateways": [{"host": "gateway",
        "settings": {"defects": ["first-page-only"]}}]}"#;
    let e = refused(text);
    assert!(e.contains("gateways[0].settings"), "{e}");
    assert!(e.contains("defects"), "{e}");
}

#[test]
fn new_fields_round_trip() {
    let text = format!(
        r#"{{"description": "x", {GATEWAY},
            "network": {{"tick_ms": 2}},
            "mcp_servers": [{{"host": "mcp", "listen_after_ms": 300}}],
            "operator": {{"api_key": "sk-op", "call_tools": true, "steps": [
                {{"op": "create", "body": {{}}, "give_up_after_ms": 40}},
                {{"op": "create", "body": {{}}, "with_previous": true}}]}}}}"#
    );
    let scenario = Scenario::from_json("case.json", &text).unwrap();
    let again =
        Scenario::from_json("again.json", &serde_json::to_string(&scenario).unwrap()).unwrap();
    assert_eq!(scenario, again);
    assert_eq!(again.network.tick_ms, 2);
    assert_eq!(again.mcp_servers[0].listen_after_ms, Some(300));
    assert!(again.operator.steps[1].with_previous);
}
