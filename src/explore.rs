//! `mcpsim explore`: many generated scenarios, in parallel, checked, and the
//! first failure shrunk to a small scenario file with its replay command.
//!
//! Case `i` of seed `S` is generated from an RNG seeded by `(S, i)` alone, so
//! a case is the same whatever `--jobs` or `--shard` say; workers only
//! change who runs it. Each world stays on its worker's one thread.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use mcpsim_harness::generate::{plan_strategy, Plan};
use mcpsim_harness::Report;
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
}

/// The outcome of one case.
struct CaseResult {
    index: usize,
    path: &'static str,
    /// Final status of the server on the gateway asked (or `failed-to-run`).
    outcome: String,
    /// Names of failed checks; empty when all held.
    failed: Vec<String>,
    checks: Vec<(String, bool)>,
}

/// Every case of a run gets its own runner, seeded by (seed, index).
fn runner_for(seed: u64, index: usize) -> TestRunner {
    let digest = Sha256::digest(format!("mcpsim-explore|{seed}|{index}").as_bytes());
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&digest);
    TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}

fn plan_tree(seed: u64, index: usize) -> impl ValueTree<Value = Plan> {
    let mut runner = runner_for(seed, index);
    plan_strategy()
        .new_tree(&mut runner)
        .expect("the plan strategy has no filters that could reject")
}

/// Runs one plan; `Err` names the failed checks.
fn check(plan: &Plan) -> Result<Report, (Option<Box<Report>>, Vec<String>)> {
    let scenario = plan.to_scenario();
    match mcpsim_harness::run(&scenario) {
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

fn run_case(seed: u64, index: usize, sample_determinism: bool) -> CaseResult {
    let plan = plan_tree(seed, index).current();
    let path = plan.path.name();
    let scenario = plan.to_scenario();
    match mcpsim_harness::run(&scenario) {
        Ok(report) => {
            let mut checks: Vec<(String, bool)> = report
                .checks
                .iter()
                .map(|c| (c.name.to_string(), c.passed))
                .collect();
            let mut failed: Vec<String> =
                report.failed_checks().map(|c| c.name.to_string()).collect();
            if sample_determinism {
                // The same case again must give the same trace.
                let again = mcpsim_harness::run(&scenario).ok();
                let same = again
                    .as_ref()
                    .is_some_and(|r| r.trace_hash == report.trace_hash);
                checks.push(("determinism".to_string(), same));
                if !same {
                    // Say where the two runs parted, not only that they did.
                    let second = again.map(|r| r.trace).unwrap_or_default();
                    let at = report.trace.iter().zip(&second).position(|(a, b)| a != b);
                    let detail = match at {
                        Some(i) => format!(
                            "determinism: runs differ at event {i}: {:?} vs {:?}",
                            report.trace[i], second[i]
                        ),
                        None => format!(
                            "determinism: one run has {} events, the other {}",
                            report.trace.len(),
                            second.len()
                        ),
                    };
                    failed.push(detail);
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
fn shrink(seed: u64, index: usize) -> (Plan, Vec<String>, Option<Box<Report>>, usize) {
    let mut tree = plan_tree(seed, index);
    let (mut report, mut failed) = match check(&tree.current()) {
        Err(failure) => failure,
        Ok(_) => (None, vec!["flaky: passed when run again".to_string()]),
    };
    let mut best = tree.current();
    let mut steps = 0;
    if tree.simplify() {
        loop {
            steps += 1;
            match check(&tree.current()) {
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

pub fn explore(options: &Options) -> Result<bool, String> {
    let (k, n) = options.shard;
    let indexes: Vec<usize> = (0..options.cases).filter(|i| i % n == k - 1).collect();
    let total = indexes.len();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<CaseResult>> = Mutex::new(Vec::with_capacity(total));
    let progress = std::io::stderr().is_terminal();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.max(1) {
            scope.spawn(|| loop {
                let at = next.fetch_add(1, Ordering::SeqCst);
                let Some(&index) = indexes.get(at) else {
                    break;
                };
                // Every 50th case runs twice: the determinism sample.
                let result = run_case(options.seed, index, index % 50 == 0);
                let mut all = results.lock().unwrap_or_else(|e| e.into_inner());
                all.push(result);
                if progress && (all.len() % 25 == 0 || all.len() == total) {
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

    // Registration path × outcome.
    let mut table: BTreeMap<&str, BTreeMap<String, usize>> = BTreeMap::new();
    let mut outcomes: Vec<String> = Vec::new();
    let mut checks: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for r in &results {
        *table
            .entry(r.path)
            .or_default()
            .entry(r.outcome.clone())
            .or_default() += 1;
        if !outcomes.contains(&r.outcome) {
            outcomes.push(r.outcome.clone());
        }
        for (name, passed) in &r.checks {
            let entry = checks.entry(name.clone()).or_default();
            if *passed {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
    }
    outcomes.sort();
    print!("{:<20}", "path");
    for o in &outcomes {
        print!(" {o:>10}");
    }
    println!();
    for (path, counts) in &table {
        print!("{path:<20}");
        for o in &outcomes {
            print!(" {:>10}", counts.get(o).copied().unwrap_or(0));
        }
        println!();
    }
    println!();
    println!("{:<20} {:>8} {:>8}", "check", "passed", "failed");
    for (name, (passed, failed)) in &checks {
        println!("{name:<20} {passed:>8} {failed:>8}");
    }
    println!();
    println!(
        "{} cases in {:.2} s, {:.0} cases/s on {} worker threads (seed {}, shard {}/{})",
        total,
        seconds,
        total as f64 / seconds.max(1e-9),
        options.jobs.max(1),
        options.seed,
        k,
        n
    );

    let Some(first) = results.iter().find(|r| !r.failed.is_empty()) else {
        return Ok(true);
    };
    println!("\ncase {} failed: {}", first.index, first.failed.join(", "));
    for other in results.iter() {
        for f in other.failed.iter().filter(|f| f.starts_with("determinism")) {
            println!("case {}: {f}", other.index);
        }
    }
    let (plan, failed, report, steps) = shrink(options.seed, first.index);
    let scenario = plan.to_scenario();
    std::fs::create_dir_all(&options.out)
        .map_err(|e| format!("{}: cannot create: {e}", options.out.display()))?;
    let file = options.out.join(format!(
        "failure-seed{}-case{}.json",
        options.seed, first.index
    ));
    let text = serde_json::to_string_pretty(&scenario).map_err(|e| e.to_string())?;
    std::fs::write(&file, text + "\n")
        .map_err(|e| format!("{}: cannot write: {e}", file.display()))?;
    println!("shrunk in {steps} steps to: {plan:?}");
    for finding in &failed {
        println!("  {finding}");
    }
    if let Some(report) = report {
        println!("\ntimeline:\n{}", report.timeline());
    }
    println!("replay: mcpsim run {}", display(&file));
    Ok(false)
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
