//! `mcpsim bench`: throughput figures and the defect-hunting table, in
//! release builds. Figures are printed, never asserted: tests assert
//! behaviour, this measures speed.

use std::path::Path;
use std::time::Instant;

use mcpsim_gateway::{Defect, Defects, Reference};
use mcpsim_harness::explore::{self, Options};
use mcpsim_harness::generate::Target;
use mcpsim_harness::{Evidence, Scenario, Sut};

fn reference(defects: Defects) -> Sut {
    Reference::with_defects(defects).sut()
}

/// Runs of one catalogue scenario per second, on this thread.
fn scenario_runs(file: &Path, runs: usize) -> Result<(), String> {
    let scenario = Scenario::load(file).map_err(|e| e.to_string())?;
    let sut = reference(Defects::none());
    // One warm-up run, outside the clock.
    mcpsim_harness::run(&sut, &scenario).map_err(|e| e.to_string())?;
    let started = Instant::now();
    for _ in 0..runs {
        let report = mcpsim_harness::run(&sut, &scenario).map_err(|e| e.to_string())?;
        if !report.passed() {
            return Err(format!(
                "{}: a check failed while benchmarking",
                file.display()
            ));
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "catalogue {}: {runs} runs in {seconds:.2} s, {:.0} runs/s on 1 thread",
        file.display(),
        runs as f64 / seconds.max(1e-9)
    );
    Ok(())
}

fn options(
    cases: usize,
    seed: u64,
    jobs: usize,
    defects: Defects,
    evidence: Evidence,
) -> Result<Options, String> {
    Ok(Options {
        cases,
        seed,
        jobs,
        shard: (1, 1),
        out: std::env::temp_dir().join("mcpsim-bench"),
        progress: false,
        target: Target::new(reference(defects))?,
        evidence,
    })
}

/// Generated cases per second with 1 worker and with `jobs` workers.
fn generated(cases: usize, jobs: usize) -> Result<(), String> {
    let mut rates = Vec::new();
    for j in [1, jobs] {
        let options = options(cases, 1, j, Defects::none(), Evidence::Everything)?;
        let (results, seconds) = explore::run_cases(&options);
        if results.iter().any(|r| !r.failed.is_empty()) {
            return Err("a generated case failed while benchmarking".into());
        }
        let rate = results.len() as f64 / seconds.max(1e-9);
        println!(
            "generated: {} cases in {seconds:.2} s, {rate:.0} cases/s with {j} job(s)",
            results.len()
        );
        rates.push(rate);
    }
    println!(
        "generated: {jobs} jobs give {:.2}x one job",
        rates[1] / rates[0].max(1e-9)
    );
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// For each defect: cases until the first failure and wall time (medians
/// over `seeds`), the checker that caught it and the shrunk reproducer's
/// size, as a Markdown table.
fn defects(seeds: u64, budget: usize, jobs: usize, evidence: Evidence) -> Result<(), String> {
    println!(
        "| defect | caught by | cases to first failure (median) | wall time (median) | caught in | reproducer |"
    );
    println!("|---|---|---|---|---|---|");
    for defect in Defect::ALL {
        let set = Defects::none().with(defect);
        let (mut cases, mut times, mut caught) = (Vec::new(), Vec::new(), 0);
        let mut checker = String::new();
        let mut size = String::new();
        for seed in 1..=seeds {
            let started = Instant::now();
            let options = options(budget, seed, jobs, set, evidence)?;
            let (results, _) = explore::run_cases(&options);
            let Some(first) = results.iter().find(|r| !r.failed.is_empty()) else {
                continue;
            };
            // Time to a shrunk, replayable reproducer.
            let (plan, failed, _, _) =
                explore::shrink(&options.target, evidence, seed, first.index, false);
            times.push(started.elapsed().as_secs_f64());
            cases.push((first.index + 1) as f64);
            caught += 1;
            if seed == 1 || checker.is_empty() {
                checker = failed
                    .iter()
                    .map(|f| f.split(':').next().unwrap_or("").to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                let scenario = plan
                    .to_scenario(&options.target)
                    .map_err(|e| e.to_string())?;
                size = format!(
                    "{} gateway(s), {} MCP server(s), {} step(s), {} fault(s)",
                    scenario.gateways.len(),
                    scenario.mcp_servers.len(),
                    scenario.operator.steps.len(),
                    scenario.faults.len()
                );
            }
        }
        println!(
            "| {} | {} | {} | {} | {caught}/{seeds} seeds | {} |",
            defect.name(),
            if checker.is_empty() { "-" } else { &checker },
            if cases.is_empty() {
                "-".to_string()
            } else {
                format!("{:.0}", median(cases))
            },
            if times.is_empty() {
                "-".to_string()
            } else {
                format!("{:.2} s", median(times))
            },
            if size.is_empty() { "-" } else { &size },
        );
    }
    Ok(())
}

/// What `mcpsim bench` was asked to measure.
pub struct BenchOptions<'a> {
    pub scenario: &'a Path,
    pub runs: usize,
    pub cases: usize,
    pub jobs: usize,
    pub defects: bool,
    pub seeds: u64,
    pub budget: usize,
    pub evidence: Evidence,
}

pub fn bench(o: &BenchOptions<'_>) -> Result<(), String> {
    if cfg!(debug_assertions) {
        eprintln!("mcpsim bench: a debug build; figures mean little (use --release)");
    }
    if o.defects {
        return defects(o.seeds, o.budget, o.jobs, o.evidence);
    }
    scenario_runs(o.scenario, o.runs)?;
    generated(o.cases, o.jobs)
}
