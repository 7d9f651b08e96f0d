//! What belongs to the system under test in a scenario is checked by it
//! when a run begins: the reference refuses bad settings with their JSON
//! path, and no scenario can switch a known defect on. A scenario written
//! short (its defaults left out) reads back as the same scenario.

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

/// Every catalogue scenario and defect story written short reads back as
/// the same scenario; with the reference's default settings left out too,
/// generated scenarios still run byte for byte the same, and the short
/// text is shorter.
#[test]
fn a_scenario_written_short_reads_back_the_same() {
    use mcpsim_harness::generate::{plan_strategy, Target};
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .chain(std::fs::read_dir(root.join("defects")).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() > 40, "{files:?}");
    for file in &files {
        let scenario = Scenario::load(file).unwrap();
        let short = scenario.to_compact_json(&serde_json::Value::Null);
        let back = Scenario::from_json("short.json", &short)
            .unwrap_or_else(|e| panic!("{}: {e}\n{short}", file.display()));
        assert_eq!(back, scenario, "{}\n{short}", file.display());
    }

    let reference = Reference::new().sut();
    let defaults = reference.default_settings();
    assert!(defaults.get("list_timeout_ms").is_some(), "{defaults}");
    let target = Target::new(reference.clone()).unwrap();
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[3; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    for _ in 0..24 {
        let plan = plan_strategy().new_tree(&mut runner).unwrap().current();
        let scenario = plan.to_scenario(&target).unwrap();
        let short = scenario.to_compact_json(&defaults);
        let full = serde_json::to_string_pretty(&scenario).unwrap();
        assert!(
            short.len() < full.len(),
            "{} of {}: {short}",
            short.len(),
            full.len()
        );
        let back = Scenario::from_json("short.json", &short).unwrap();
        let a = mcpsim_harness::run(&reference, &scenario).unwrap();
        let b = mcpsim_harness::run(&reference, &back).unwrap();
        assert_eq!(a.trace_hash, b.trace_hash, "{short}");
    }
}
