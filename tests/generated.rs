//! Generated scenarios against the reference gateway: every check holds.
//! A fixed proptest seed keeps CI reproducible; failures found here are
//! kept in `tests/generated.proptest-regressions` and replayed first.

use mcpsim_gateway::{Defect, Defects, Reference};
use mcpsim_harness::explore::plan_tree;
use mcpsim_harness::generate::{plan_strategy, AuthPlan, RegistrationPath, Swarm, Target};
use mcpsim_harness::Evidence;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, FileFailurePersistence, RngAlgorithm, TestRng, TestRunner};

#[test]
fn generated_scenarios_pass_every_check() {
    let config = Config {
        cases: 64,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/generated.proptest-regressions",
        ))),
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let target = Target::new(Reference::new().sut()).unwrap();
    let result = runner.run(&plan_strategy(), |plan| {
        // The checkers, and the path twin where the plan has one.
        let checked = mcpsim_harness::explore::check(&plan, &target, Evidence::Everything, false);
        if let Err((report, failed)) = checked {
            let scenario = plan.to_scenario(&target).unwrap();
            prop_assert!(
                false,
                "{failed:?}\n{}\n{}",
                serde_json::to_string_pretty(&scenario).unwrap(),
                report.map(|r| r.timeline()).unwrap_or_default()
            );
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The path-independence checker fails when the registration path changes
/// the ending: the same client-credentials server without `oauth2_flow`,
/// by config and by REST, with the REST path dropping the flow.
#[test]
fn path_independence_tells_config_from_a_rest_path_that_drops_the_flow() {
    let mut plan = plan_tree(1, 0).current();
    plan.path = RegistrationPath::Config;
    plan.auth = AuthPlan::ClientCredentials {
        with_flow: false,
        basic: false,
        expires_in_s: 3_600,
    };
    plan.swarm = Swarm::default();
    plan.restart = None;
    plan.list_latency_ms = 0;
    plan.latency_ms_max = 2;
    let twin = plan.path_twin().expect("a certain plan has a REST twin");
    assert_eq!(twin.path, RegistrationPath::Rest);
    for (defects, holds) in [
        (Defects::none(), true),
        (Defects::none().with(Defect::RestDropsOauth2Flow), false),
    ] {
        let target = Target::new(Reference::with_defects(defects).sut()).unwrap();
        let sut = &target.sut;
        let a = mcpsim_harness::run(sut, &plan.to_scenario(&target).unwrap()).unwrap();
        let b = mcpsim_harness::run(sut, &twin.to_scenario(&target).unwrap()).unwrap();
        let verdict =
            mcpsim_harness::check_path_independence(&a, "config", &b, "rest", "gateway", "srv");
        assert_eq!(verdict.passed, holds, "{:?}", verdict.findings);
    }
}

/// Bad inputs and fields beyond mcpsim's words are written in LiteLLM's REST
/// shape, so a target of another dialect gets none of them: its plans keep
/// to mcpsim's words.
#[test]
fn bodies_in_litellms_shape_go_only_to_a_target_of_its_dialect() {
    let mut plan = plan_tree(1, 0).current();
    plan.path = RegistrationPath::Rest;
    plan.swarm = Swarm {
        bad_input: true,
        ..Swarm::default()
    };
    plan.faults.both_bad_inputs = true;
    plan.faults.unknown_field = true;
    let mut target = Target::new(Reference::new().sut()).unwrap();
    let litellm = plan.for_target(target.caps).to_scenario(&target).unwrap();
    let bad = litellm
        .operator
        .steps
        .iter()
        .filter(|s| s.bad_input)
        .count();
    assert_eq!(bad, 2);
    assert!(litellm.operator.steps[0].extra_fields.is_some());
    target.caps.litellm_bodies = false;
    let other = plan.for_target(target.caps).to_scenario(&target).unwrap();
    assert!(other
        .operator
        .steps
        .iter()
        .all(|s| !s.bad_input && s.extra_fields.is_none() && s.raw_body.is_none()));
}
