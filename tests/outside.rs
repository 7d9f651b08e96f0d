//! Every checker but the one that says it needs the gateway's own events
//! reaches the same verdict, with the same findings, when those events are
//! left out of the trace: on every catalogue scenario, every defect story
//! with its defect on, and 2,000 generated cases.

use std::path::PathBuf;

use mcpsim_gateway::{Defect, Defects, Reference};
use mcpsim_harness::explore::plan_tree;
use mcpsim_harness::generate::Target;
use mcpsim_harness::{Check, Scenario, Sut};
use proptest::strategy::ValueTree;

/// The checkers that say they need the system under test's events.
const NEEDS_EVENTS: [&str; 1] = ["cancellation_hygiene"];

fn compare(sut: &Sut, scenario: &Scenario, what: &str) {
    let both =
        mcpsim_harness::run_judged_both(sut, scenario).unwrap_or_else(|e| panic!("{what}: {e}"));
    let everything: &[Check] = &both.report.checks;
    assert_eq!(everything.len(), both.outside_only.len(), "{what}");
    for (inside, outside) in everything.iter().zip(&both.outside_only) {
        assert_eq!(inside.name, outside.name);
        if NEEDS_EVENTS.contains(&inside.name) {
            assert!(outside.not_applicable.is_some(), "{what}: {}", inside.name);
            assert!(inside.not_applicable.is_none(), "{what}: {}", inside.name);
            continue;
        }
        assert_eq!(
            inside, outside,
            "{what}: {} differs without events",
            inside.name
        );
    }
}

fn scenarios(dir: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn catalogue_scenarios_and_defect_stories_get_the_same_verdicts_without_events() {
    let reference = Reference::new().sut();
    for file in scenarios("scenarios") {
        let scenario = Scenario::load(&file).unwrap();
        compare(&reference, &scenario, &file.display().to_string());
    }
    for defect in Defect::ALL {
        let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("scenarios/defects/{}.json", defect.name()));
        let scenario = Scenario::load(&file).unwrap();
        let defective = Reference::with_defects(Defects::none().with(defect)).sut();
        compare(&defective, &scenario, defect.name());
    }
}

#[test]
fn two_thousand_generated_cases_get_the_same_verdicts_without_events() {
    let target = Target::new(Reference::new().sut()).unwrap();
    let cases: Vec<usize> = (0..2_000).collect();
    // Two workers, as `cargo test` has two cores.
    std::thread::scope(|scope| {
        for half in cases.chunks(1_000) {
            let target = &target;
            scope.spawn(move || {
                for &index in half {
                    let plan = plan_tree(1, index).current().for_target(target.caps);
                    let scenario = plan.to_scenario(target).unwrap();
                    compare(
                        &target.sut,
                        &scenario,
                        &format!("generated case {index} of seed 1"),
                    );
                }
            });
        }
    });
}
