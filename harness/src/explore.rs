//! Exploration: many generated cases, in parallel, each checked; the first
//! failure shrunk to a small plan.
//!
//! Case `i` of seed `S` is generated from an RNG seeded by `(S, i)` alone, so
//! a case is the same whatever the number of workers or the shard; workers
//! only change who runs it. Each world stays on its worker's one thread.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use mcpsim_gateway::Defects;

use crate::generate::{plan_strategy, Plan};
use crate::Report;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use sha2::{Digest, Sha256};

/// What `explore` was asked to do.
pub struct Options {
    pub cases: usize,
    pub seed: u64,
    pub jobs: usize,
    /// (k, n): run the cases whose index is k-1 modulo n.
    pub shard: (usize, usize),
    pub out: PathBuf,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Known defects switched on in every gateway.
    pub defects: Defects,
}

/// The outcome of one case.
pub struct CaseResult {
    pub index: usize,
    pub path: &'static str,
    /// Final status of the server on the gateway asked (or `failed-to-run`).
    pub outcome: String,
    /// Names of failed checks; empty when all held.
    pub failed: Vec<String>,
    pub checks: Vec<(String, bool)>,
}

/// Every case of a run gets its own runner, seeded by (seed, index).
pub fn runner_for(seed: u64, index: usize) -> TestRunner {
    let digest = Sha256::digest(format!("mcpsim-explore|{seed}|{index}").as_bytes());
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&digest);
    TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}

pub fn plan_tree(seed: u64, index: usize) -> impl ValueTree<Value = Plan> {
    let mut runner = runner_for(seed, index);
    plan_strategy()
        .new_tree(&mut runner)
        .expect("the plan strategy has no filters that could reject")
}

/// Runs one plan; `Err` names the failed checks. With `twice`, the plan
/// also fails when a second run gives another trace (so a determinism
/// failure shrinks as one).
pub fn check(
    plan: &Plan,
    defects: Defects,
    twice: bool,
) -> Result<Report, (Option<Box<Report>>, Vec<String>)> {
    let scenario = plan.to_scenario();
    match crate::run_with_defects(&scenario, defects) {
        Ok(report) if report.passed() && !twice => match path_twin(plan, &report, defects) {
            Some(finding) => Err((Some(Box::new(report)), vec![finding])),
            None => Ok(report),
        },
        Ok(report) if twice => match crate::run_with_defects(&scenario, defects) {
            Ok(again) if again.trace_hash == report.trace_hash => Ok(report),
            _ => {
                let detail = format!("determinism: {}", where_parted(&report, &scenario, defects));
                Err((Some(Box::new(report)), vec![detail]))
            }
        },
        Ok(report) if report.passed() => Ok(report),
        Ok(report) => {
            let failed = report
                .failed_checks()
                .map(|c| format!("{}: {}", c.name, c.findings.join("; ")))
                .collect();
            Err((Some(Box::new(report)), failed))
        }
        Err(e) => Err((None, vec![format!("run: {e}")])),
    }
}

/// Runs the plan's path twin, if it has one, and says how the two ended
/// differently.
fn path_twin(plan: &Plan, report: &Report, defects: Defects) -> Option<String> {
    let twin = plan.path_twin()?;
    let other = crate::run_with_defects(&twin.to_scenario(), defects).ok()?;
    let verdict = crate::check_path_independence(
        report,
        plan.path.name(),
        &other,
        twin.path.name(),
        plan.asked_host(),
        "srv",
    );
    (!verdict.passed).then(|| format!("path_independence: {}", verdict.findings.join("; ")))
}

/// Where a second run of `scenario` departs from `report`.
fn where_parted(report: &Report, scenario: &crate::Scenario, defects: Defects) -> String {
    let second = crate::run_with_defects(scenario, defects)
        .map(|r| r.trace)
        .unwrap_or_default();
    match report.trace.iter().zip(&second).position(|(a, b)| a != b) {
        Some(i) => format!(
            "runs differ at event {i}: {:?} vs {:?}",
            report.trace[i], second[i]
        ),
        None if report.trace.len() != second.len() => format!(
            "one run has {} events, the other {}",
            report.trace.len(),
            second.len()
        ),
        None => "the runs agreed this time".to_string(),
    }
}

pub fn run_case(seed: u64, index: usize, sample_determinism: bool, defects: Defects) -> CaseResult {
    let plan = plan_tree(seed, index).current();
    let path = plan.path.name();
    let scenario = plan.to_scenario();
    match crate::run_with_defects(&scenario, defects) {
        Ok(report) => {
            let mut checks: Vec<(String, bool)> = report
                .checks
                .iter()
                .map(|c| (c.name.to_string(), c.passed))
                .collect();
            let mut failed: Vec<String> =
                report.failed_checks().map(|c| c.name.to_string()).collect();
            // Every 10th case is also registered by another path.
            if index % 10 == 5 && plan.path_twin().is_some() {
                let finding = path_twin(&plan, &report, defects);
                checks.push(("path_independence".to_string(), finding.is_none()));
                failed.extend(finding);
            }
            if sample_determinism {
                // The same case again must give the same trace.
                let again = crate::run_with_defects(&scenario, defects).ok();
                let same = again
                    .as_ref()
                    .is_some_and(|r| r.trace_hash == report.trace_hash);
                checks.push(("determinism".to_string(), same));
                if !same {
                    // Say where the two runs parted, not only that they did.
                    failed.push(format!(
                        "determinism: {}",
                        where_parted(&report, &scenario, defects)
                    ));
                }
            }
            let outcome = report
                .servers
                .iter()
                .rfind(|s| !s.deleted)
                .map(|s| s.status.clone())
                .unwrap_or_else(|| "none".to_string());
            CaseResult {
                index,
                path,
                outcome,
                failed,
                checks,
            }
        }
        Err(_) => CaseResult {
            index,
            path,
            outcome: "failed-to-run".to_string(),
            failed: vec!["run".to_string()],
            checks: Vec::new(),
        },
    }
}

/// Shrinks a failing case with proptest's value tree: simplify while it
/// still fails, complicate back when a step made it pass.
pub fn shrink(
    seed: u64,
    index: usize,
    defects: Defects,
    determinism: bool,
) -> (Plan, Vec<String>, Option<Box<Report>>, usize) {
    let mut tree = plan_tree(seed, index);
    let (mut report, mut failed) = match check(&tree.current(), defects, determinism) {
        Err(failure) => failure,
        Ok(_) => (None, vec!["flaky: passed when run again".to_string()]),
    };
    let mut best = tree.current();
    let mut steps = 0;
    if tree.simplify() {
        loop {
            steps += 1;
            match check(&tree.current(), defects, determinism) {
                Err((r, f)) => {
                    best = tree.current();
                    report = r;
                    failed = f;
                    if !tree.simplify() {
                        break;
                    }
                }
                Ok(_) => {
                    if !tree.complicate() {
                        break;
                    }
                }
            }
            if steps >= 2_000 {
                break;
            }
        }
    }
    (best, failed, report, steps)
}

/// Runs the cases of `options` until the first failure (the lowest failing
/// index); gives the results up to it, in index order, and the seconds taken.
pub fn run_cases(options: &Options) -> (Vec<CaseResult>, f64) {
    let (k, n) = options.shard;
    let indexes: Vec<usize> = (0..options.cases).filter(|i| i % n == k - 1).collect();
    let total = indexes.len();
    let next = AtomicUsize::new(0);
    // The lowest failing index so far: cases above it are not started, so
    // the run stops soon after its first failure, and which failure is
    // first does not depend on the threads.
    let first_failure = AtomicUsize::new(usize::MAX);
    let results: Mutex<Vec<CaseResult>> = Mutex::new(Vec::with_capacity(total));
    let progress = options.progress;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.max(1) {
            scope.spawn(|| loop {
                let at = next.fetch_add(1, Ordering::SeqCst);
                let Some(&index) = indexes.get(at) else {
                    break;
                };
                if index > first_failure.load(Ordering::SeqCst) {
                    break;
                }
                // Every 50th case runs twice: the determinism sample.
                let result = run_case(options.seed, index, index % 50 == 0, options.defects);
                if !result.failed.is_empty() {
                    first_failure.fetch_min(index, Ordering::SeqCst);
                }
                let mut all = results.lock().unwrap_or_else(|e| e.into_inner());
                all.push(result);
                if progress && (all.len().is_multiple_of(25) || all.len() == total) {
                    let width = 40;
                    let done = all.len() * width / total.max(1);
                    eprint!(
                        "\r[{}{}] {}/{} cases",
                        "#".repeat(done),
                        ".".repeat(width - done),
                        all.len(),
                        total
                    );
                    let _ = std::io::stderr().flush();
                }
            });
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    if progress {
        eprintln!();
    }
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|r| r.index);
    // Cases above the first failure that finished anyway are left out.
    let cutoff = first_failure.load(Ordering::SeqCst);
    results.retain(|r| r.index <= cutoff);

    (results, seconds)
}
