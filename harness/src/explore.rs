//! Exploration: many generated cases, in parallel, each checked; the first
//! failure shrunk to a small plan.
//!
//! Case `i` of seed `S` is generated from an RNG seeded by `(S, i)` alone, so
//! a case is the same whatever the number of workers or the shard; workers
//! only change who runs it. Each world stays on its worker's one thread.
//!
//! A case must end. The world bounds what it can see (requests, trace
//! events, simulated time), but a host task that never returns from one
//! poll cannot be stopped from outside: turmoil advances a host only by
//! polling it until its paused clock reaches the tick, and tokio moves a
//! paused clock only when the runtime is idle and nothing woke it, so a
//! busy loop and a `yield_now` loop alike keep one step of the simulation
//! from ever returning (a loop that sleeps lets time move, and becomes a
//! storm the world ends). So every case runs under a wall-clock watchdog
//! ([`case_wall_limit`]): a case over it is reported as a finding, "no
//! progress: ...", its worker's thread is abandoned to its loop, and the
//! exploration goes on without it. Every case below a running one has been
//! handed out already, so the first failure is still the lowest failing
//! index.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::generate::{plan_strategy, Plan, Target};
use crate::{Evidence, Report};
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
    /// The system under test, with what it supports.
    pub target: Target,
    /// What the checkers may see.
    pub evidence: Evidence,
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
    /// The case did not end within the wall-clock limit: it cannot be run
    /// again to shrink it, for it would not end again.
    pub hung: bool,
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

/// The plan of case `index` of `seed`, whatever the system under test.
pub fn plan_tree(seed: u64, index: usize) -> impl ValueTree<Value = Plan> {
    let mut runner = runner_for(seed, index);
    plan_strategy()
        .new_tree(&mut runner)
        .expect("the plan strategy has no filters that could reject")
}

/// One run of a plan against the target.
fn run_plan(plan: &Plan, target: &Target, evidence: Evidence) -> Result<Report, String> {
    let scenario = plan.to_scenario(target).map_err(|e| e.to_string())?;
    crate::run_judged(&target.sut, &scenario, evidence).map_err(|e| e.to_string())
}

/// Runs one plan (fitted to the target); `Err` names the failed checks.
/// With `twice`, the plan also fails when a second run gives another trace
/// (so a determinism failure shrinks as one).
pub fn check(
    plan: &Plan,
    target: &Target,
    evidence: Evidence,
    twice: bool,
) -> Result<Report, (Option<Box<Report>>, Vec<String>)> {
    let plan = plan.for_target(target.caps);
    match run_plan(&plan, target, evidence) {
        Ok(report) if report.passed() && !twice => {
            let twins = path_twin(&plan, &report, target, evidence)
                .into_iter()
                .chain(update_twin(&plan, &report, target, evidence))
                .collect::<Vec<_>>();
            if twins.is_empty() {
                Ok(report)
            } else {
                Err((Some(Box::new(report)), twins))
            }
        }
        Ok(report) if twice => match run_plan(&plan, target, evidence) {
            Ok(again) if again.trace_hash == report.trace_hash => Ok(report),
            _ => {
                let detail = format!(
                    "determinism: {}",
                    where_parted(&report, &plan, target, evidence)
                );
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
fn path_twin(plan: &Plan, report: &Report, target: &Target, evidence: Evidence) -> Option<String> {
    let twin = plan.path_twin()?;
    let other = run_plan(&twin, target, evidence).ok()?;
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

/// Runs the plan's update twin, if it has one, and says how the two ended
/// differently.
fn update_twin(
    plan: &Plan,
    report: &Report,
    target: &Target,
    evidence: Evidence,
) -> Option<String> {
    let twin = plan.update_twin()?;
    let other = run_plan(&twin, target, evidence).ok()?;
    let verdict = crate::check_update_merge(report, &other, plan.asked_host(), "srv");
    (!verdict.passed).then(|| format!("update_merge: {}", verdict.findings.join("; ")))
}

/// Where a second run of the plan departs from `report`.
fn where_parted(report: &Report, plan: &Plan, target: &Target, evidence: Evidence) -> String {
    let second = run_plan(plan, target, evidence)
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

pub fn run_case(
    target: &Target,
    evidence: Evidence,
    seed: u64,
    index: usize,
    sample_determinism: bool,
) -> CaseResult {
    let plan = plan_tree(seed, index).current().for_target(target.caps);
    let path = plan.path.name();
    match run_plan(&plan, target, evidence) {
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
                let finding = path_twin(&plan, &report, target, evidence);
                checks.push(("path_independence".to_string(), finding.is_none()));
                failed.extend(finding);
            }
            // Every 4th case that ends in an update is also created as the
            // update left it.
            if index % 4 == 3 && plan.update_twin().is_some() {
                let finding = update_twin(&plan, &report, target, evidence);
                checks.push(("update_merge".to_string(), finding.is_none()));
                failed.extend(finding);
            }
            if sample_determinism {
                // The same case again must give the same trace.
                let again = run_plan(&plan, target, evidence).ok();
                let same = again
                    .as_ref()
                    .is_some_and(|r| r.trace_hash == report.trace_hash);
                checks.push(("determinism".to_string(), same));
                if !same {
                    // Say where the two runs parted, not only that they did.
                    failed.push(format!(
                        "determinism: {}",
                        where_parted(&report, &plan, target, evidence)
                    ));
                }
            }
            let outcome = report
                .servers
                .iter()
                .rfind(|s| !s.deleted)
                .map(|s| s.status.to_string())
                .unwrap_or_else(|| "none".to_string());
            CaseResult {
                index,
                path,
                outcome,
                failed,
                checks,
                hung: false,
            }
        }
        Err(_) => CaseResult {
            index,
            path,
            outcome: "failed-to-run".to_string(),
            failed: vec!["run".to_string()],
            checks: Vec::new(),
            hung: false,
        },
    }
}

/// Shrinks a failing case with proptest's value tree: simplify while it
/// still fails a checker it failed at first, complicate back when a step
/// made it pass (or fail only something else).
/// The plan it gives is fitted to the target.
pub fn shrink(
    target: &Target,
    evidence: Evidence,
    seed: u64,
    index: usize,
    determinism: bool,
) -> (Plan, Vec<String>, Option<Box<Report>>, usize) {
    let mut tree = plan_tree(seed, index);
    let (mut report, mut failed) = match check(&tree.current(), target, evidence, determinism) {
        Err(failure) => failure,
        Ok(_) => (None, vec!["flaky: passed when run again".to_string()]),
    };
    // A simpler plan counts only if it fails a checker the original failed:
    // shrinking must not slip from one bug to another.
    let kinds = |failed: &[String]| -> Vec<String> {
        failed
            .iter()
            .map(|f| f.split(':').next().unwrap_or("").to_string())
            .collect()
    };
    let original = kinds(&failed);
    let mut best = tree.current();
    let mut steps = 0;
    if tree.simplify() {
        loop {
            steps += 1;
            let same_kind = |f: &[String]| kinds(f).iter().any(|k| original.contains(k));
            match check(&tree.current(), target, evidence, determinism) {
                Err((r, f)) if same_kind(&f) => {
                    best = tree.current();
                    report = r;
                    failed = f;
                    if !tree.simplify() {
                        break;
                    }
                }
                _ => {
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
    (best.for_target(target.caps), failed, report, steps)
}

/// The wall time one case may take before it is reported as making no
/// progress: 60 s, or `MCPSIM_CASE_WALL_S` seconds when that is set.
pub fn case_wall_limit() -> Duration {
    std::env::var("MCPSIM_CASE_WALL_S")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(Duration::from_secs(60), Duration::from_secs)
}

/// Runs the cases of `options` until the first failure (the lowest failing
/// index); gives the results up to it, in index order, and the seconds taken.
/// Each case runs under the wall-clock watchdog of [`case_wall_limit`].
pub fn run_cases(options: &Options) -> (Vec<CaseResult>, f64) {
    run_cases_within(options, case_wall_limit())
}

/// What a worker tells the watchdog.
enum Tell {
    Started { worker: usize, index: usize },
    Done { worker: usize, result: CaseResult },
    Exited { worker: usize },
}

/// [`run_cases`] with this wall-clock limit per case.
pub fn run_cases_within(options: &Options, wall_limit: Duration) -> (Vec<CaseResult>, f64) {
    let (k, n) = options.shard;
    let indexes: Arc<Vec<usize>> =
        Arc::new((0..options.cases).filter(|i| i % n == k - 1).collect());
    let total = indexes.len();
    let next = Arc::new(AtomicUsize::new(0));
    // The lowest failing index so far: cases above it are not started, so
    // the run stops soon after its first failure, and which failure is
    // first does not depend on the threads.
    let first_failure = Arc::new(AtomicUsize::new(usize::MAX));
    let (sender, receiver) = mpsc::channel::<Tell>();
    let jobs = options.jobs.max(1);
    let started = Instant::now();
    // Workers are not scoped: one stuck in a case that never ends is left
    // behind, and a scope would wait for it.
    for worker in 0..jobs {
        let (indexes, next, first_failure) = (indexes.clone(), next.clone(), first_failure.clone());
        let (sender, target) = (sender.clone(), options.target.clone());
        let (evidence, seed) = (options.evidence, options.seed);
        std::thread::Builder::new()
            .name(format!("mcpsim-explore-{worker}"))
            .spawn(move || {
                loop {
                    let at = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&index) = indexes.get(at) else {
                        break;
                    };
                    if index > first_failure.load(Ordering::SeqCst) {
                        break;
                    }
                    // A watchdog that stopped listening has given up on
                    // this worker: it stops too.
                    if sender.send(Tell::Started { worker, index }).is_err() {
                        return;
                    }
                    // Every 50th case runs twice: the determinism sample.
                    let result = run_case(&target, evidence, seed, index, index % 50 == 0);
                    if !result.failed.is_empty() {
                        first_failure.fetch_min(index, Ordering::SeqCst);
                    }
                    if sender.send(Tell::Done { worker, result }).is_err() {
                        return;
                    }
                }
                let _ = sender.send(Tell::Exited { worker });
            })
            .expect("the system can start a worker thread");
    }
    drop(sender);

    let mut running: BTreeMap<usize, (usize, Instant)> = BTreeMap::new();
    let mut abandoned: BTreeSet<usize> = BTreeSet::new();
    let mut alive = jobs;
    let mut results: Vec<CaseResult> = Vec::with_capacity(total);
    let tick = wall_limit.min(Duration::from_millis(100));
    while alive > 0 {
        match receiver.recv_timeout(tick) {
            Ok(Tell::Started { worker, index }) => {
                running.insert(worker, (index, Instant::now()));
            }
            Ok(Tell::Done { worker, result }) => {
                running.remove(&worker);
                if !abandoned.contains(&worker) {
                    results.push(result);
                    show_progress(options.progress, results.len(), total);
                }
            }
            Ok(Tell::Exited { worker }) => {
                if !abandoned.contains(&worker) {
                    alive -= 1;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        let stuck: Vec<(usize, usize)> = running
            .iter()
            .filter(|(w, (_, since))| !abandoned.contains(w) && now - *since > wall_limit)
            .map(|(w, (index, _))| (*w, *index))
            .collect();
        for (worker, index) in stuck {
            abandoned.insert(worker);
            running.remove(&worker);
            alive -= 1;
            first_failure.fetch_min(index, Ordering::SeqCst);
            results.push(hung(options, index, wall_limit));
            show_progress(options.progress, results.len(), total);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if options.progress {
        eprintln!();
    }
    results.sort_by_key(|r| r.index);
    // Cases above the first failure that finished anyway are left out.
    let cutoff = first_failure.load(Ordering::SeqCst);
    results.retain(|r| r.index <= cutoff);

    (results, seconds)
}

/// The result of a case that did not end in time.
fn hung(options: &Options, index: usize, wall_limit: Duration) -> CaseResult {
    let plan = plan_tree(options.seed, index)
        .current()
        .for_target(options.target.caps);
    CaseResult {
        index,
        path: plan.path.name(),
        outcome: "hung".to_string(),
        failed: vec![format!(
            "no progress: case {index} did not end within {} s of wall time (a host that never yields stops the simulation's step)",
            wall_limit.as_secs_f64()
        )],
        checks: vec![("no_progress".to_string(), false)],
        hung: true,
    }
}

fn show_progress(progress: bool, done: usize, total: usize) {
    if progress && (done.is_multiple_of(25) || done == total) {
        let width = 40;
        let filled = done * width / total.max(1);
        eprint!(
            "\r[{}{}] {}/{} cases",
            "#".repeat(filled),
            ".".repeat(width - filled.min(width)),
            done,
            total
        );
        let _ = std::io::stderr().flush();
    }
}
