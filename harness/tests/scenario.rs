//! Scenario files and scenarios built in code: malformed parts are refused
//! with the JSON path and the reason, the same way for both.

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
fn new_fields_round_trip() {
    let text = format!(
        r#"{{"description": "x", {GATEWAY},
            "network": {{"tick_ms": 2}},
            "mcp_servers": [{{"host": "mcp", "listen_after_ms": 300}}],
            "operator": {{"api_key": "sk-op", "call_tools": true, "steps": [
                {{"op": "create", "body": {{}}, "give_up_after_ms": 40}},
                {{"op": "create", "spec": {{"name": "a", "url": "http://mcp/mcp"}},
                  "with_previous": true}}]}}}}"#
    );
    let scenario = Scenario::from_json("case.json", &text).unwrap();
    let again =
        Scenario::from_json("again.json", &serde_json::to_string(&scenario).unwrap()).unwrap();
    assert_eq!(scenario, again);
    assert_eq!(again.network.tick_ms, 2);
    assert_eq!(again.mcp_servers[0].listen_after_ms, Some(300));
    assert!(again.operator.steps[1].with_previous);
}

#[test]
fn a_scenario_built_in_code_is_checked_as_a_file_is() {
    use mcpsim_harness::builder::*;

    let e = Scenario::builder("nothing").build().unwrap_err();
    assert_eq!(e.path, "gateways");
    let e = Scenario::builder("twice")
        .gateway(GatewayHost::new("gateway"))
        .mcp_server(McpHost::new("gateway"))
        .build()
        .unwrap_err();
    assert!(e.reason.contains("declared twice"), "{e}");
    let e = Scenario::builder("no store")
        .gateway(GatewayHost::new("gateway").store("db"))
        .build()
        .unwrap_err();
    assert_eq!(e.path, "gateways[0].store");
    let e = Scenario::builder("bad step")
        .gateway(GatewayHost::new("gateway"))
        .step(Step::delete("x").with_previous())
        .build()
        .unwrap_err();
    assert_eq!(e.path, "operator.steps[0].with_previous");

    // A struct built by hand is refused by `validate`, not by a panic.
    let mut scenario = Scenario::builder("fine")
        .gateway(GatewayHost::new("gateway"))
        .build()
        .unwrap();
    scenario.gateways.clear();
    assert!(scenario.validate().is_err());
}

#[test]
fn a_step_needs_one_of_a_body_a_spec_and_a_raw_body() {
    let neither = format!(
        r#"{{"description": "x", {GATEWAY}, "operator": {{"steps": [{{"op": "create"}}]}}}}"#
    );
    assert!(refused(&neither).contains("operator.steps[0]"));
    let both = format!(
        r#"{{"description": "x", {GATEWAY}, "operator": {{"steps": [{{"op": "create",
            "body": {{}}, "spec": {{"name": "a", "url": "http://a/mcp"}}}}]}}}}"#
    );
    assert!(refused(&both).contains("one of body, spec and raw_body"));
    let raw_and_spec = format!(
        r#"{{"description": "x", {GATEWAY}, "operator": {{"steps": [{{"op": "create",
            "raw_body": "{{", "spec": {{"name": "a", "url": "http://a/mcp"}}}}]}}}}"#
    );
    assert!(refused(&raw_and_spec).contains("one of body, spec and raw_body"));
    let raw_delete = format!(
        r#"{{"description": "x", {GATEWAY}, "operator": {{"steps": [{{"op": "delete",
            "server": "a", "raw_body": "{{"}}]}}}}"#
    );
    assert!(refused(&raw_delete).contains("no body"));
    let fields_on_body = format!(
        r#"{{"description": "x", {GATEWAY}, "operator": {{"steps": [{{"op": "create",
            "body": {{}}, "extra_fields": {{"alias": "a"}}}}]}}}}"#
    );
    assert!(refused(&fields_on_body).contains("extra_fields"));
    let raw = format!(
        r#"{{"description": "x", {GATEWAY}, "operator": {{"steps": [{{"op": "create",
            "raw_body": "{{\"server_name\":", "bad_input": true}}]}}}}"#
    );
    let scenario = Scenario::from_json("case.json", &raw).unwrap();
    assert!(scenario.operator.steps[0].bad_input);
    let spec = format!(
        r#"{{"description": "x", {GATEWAY}, "operator": {{"steps": [{{"op": "create",
            "spec": {{"name": "a", "url": "http://a/mcp", "auth": {{"type": "client_credentials",
            "token_url": "http://auth/t", "client_id": "c", "client_secret": "s"}}}}}}]}}}}"#
    );
    let scenario = Scenario::from_json("case.json", &spec).unwrap();
    // A scenario printed for debugging shows no secret.
    assert!(!format!("{scenario:?}").contains("\"s\""));
}
