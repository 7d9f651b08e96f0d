//! Every known defect is caught by the default generators and checkers
//! (not by a generator written for it) within a stated case budget with a
//! fixed seed; the reference gateway passes the same cases; and each
//! defect's catalogue scenario passes without it and fails with it, its
//! timeline with the defect on kept as a snapshot.

use std::path::PathBuf;

use mcpsim_gateway::{Defect, Defects, Reference};
use mcpsim_harness::explore::{run_cases, Options};
use mcpsim_harness::generate::Target;
use mcpsim_harness::{Evidence, Scenario};

/// Cases each defect may take before it is caught (seed 1). The README's
/// table gives the medians over several seeds from `mcpsim bench --defects`.
const BUDGET: usize = 1_000;
const SEED: u64 = 1;

fn options(cases: usize, defects: Defects) -> Options {
    Options {
        cases,
        seed: SEED,
        jobs: 2,
        shard: (1, 1),
        out: std::env::temp_dir().join("mcpsim-defects-test"),
        progress: false,
        target: Target::new(Reference::with_defects(defects).sut()).unwrap(),
        evidence: Evidence::Everything,
    }
}

#[test]
fn every_defect_is_caught_within_the_budget_and_the_reference_passes_the_same_cases() {
    let mut longest = 0;
    let mut missed = Vec::new();
    for defect in Defect::ALL {
        let (results, _) = run_cases(&options(BUDGET, Defects::none().with(defect)));
        match results.iter().find(|r| !r.failed.is_empty()) {
            Some(first) => longest = longest.max(first.index + 1),
            None => missed.push(defect.name()),
        }
    }
    assert!(
        missed.is_empty(),
        "not caught within {BUDGET} cases: {missed:?}"
    );
    // The reference gateway passes every case any defect needed.
    let (results, _) = run_cases(&options(longest, Defects::none()));
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.failed.is_empty())
        .map(|r| format!("case {}: {:?}", r.index, r.failed))
        .collect();
    assert_eq!(results.len(), longest);
    assert!(
        failed.is_empty(),
        "the reference gateway failed: {failed:?}"
    );
}

fn story(defect: Defect) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/defects")
        .join(format!("{}.json", defect.name()))
}

#[test]
fn every_defect_has_a_story_that_passes_without_it_and_fails_with_it() {
    for defect in Defect::ALL {
        let file = story(defect);
        let scenario = Scenario::load(&file).unwrap_or_else(|e| panic!("{e}"));
        let clean = mcpsim_harness::run(&Reference::new().sut(), &scenario).unwrap();
        let failed: Vec<&str> = clean.failed_checks().map(|c| c.name).collect();
        assert!(
            failed.is_empty(),
            "{}: fails without the defect: {failed:?}\n{}",
            file.display(),
            clean.timeline()
        );
        let defective = Reference::with_defects(Defects::none().with(defect)).sut();
        let broken = mcpsim_harness::run(&defective, &scenario).unwrap();
        assert!(
            !broken.passed(),
            "{}: passes with {} on",
            file.display(),
            defect.name()
        );
        let findings: Vec<String> = broken
            .failed_checks()
            .map(|c| format!("{}: {}", c.name, c.findings.join("; ")))
            .collect();
        let text = format!(
            "{}\ndefect on: {}\n\nfailed checks:\n{}\n\ntimeline:\n{}",
            scenario.description,
            defect.name(),
            findings.join("\n"),
            broken.timeline()
        );
        insta::assert_snapshot!(format!("defect-{}", defect.name()), text);
    }
}
