//! Generated scenarios against the reference gateway: every check holds.
//! A fixed proptest seed keeps CI reproducible; failures found here are
//! kept in `tests/generated.proptest-regressions` and replayed first.

use mcpsim_harness::generate::plan_strategy;
use proptest::prelude::*;
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
    let result = runner.run(&plan_strategy(), |plan| {
        let scenario = plan.to_scenario();
        let report =
            mcpsim_harness::run(&scenario).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let failed: Vec<String> = report
            .failed_checks()
            .map(|c| format!("{}: {}", c.name, c.findings.join("; ")))
            .collect();
        prop_assert!(
            failed.is_empty(),
            "{failed:?}\n{}\n{}",
            serde_json::to_string_pretty(&scenario).unwrap(),
            report.timeline()
        );
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
