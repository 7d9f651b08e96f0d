//! `mcpsim explore`: the harness's exploration, with its tables, the shrunk
//! failure written as a scenario file, and the command that replays it.

use std::collections::BTreeMap;
use std::path::Path;

pub use mcpsim_harness::explore::Options;
use mcpsim_harness::explore::{plan_tree, run_cases, shrink};

/// Runs the exploration and prints its tables; `label` says what the system
/// under test is, `flags` are the command-line flags that choose it again,
/// for the replay line.
pub fn explore(options: &Options, label: &str, flags: &str) -> Result<bool, String> {
    let (k, n) = options.shard;
    let (results, seconds) = run_cases(options);
    let ran = results.len();
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
    println!("system under test: {label}");
    println!(
        "{} cases in {:.2} s, {:.0} cases/s on {} worker threads (seed {}, shard {}/{})",
        ran,
        seconds,
        ran as f64 / seconds.max(1e-9),
        options.jobs.max(1),
        options.seed,
        k,
        n
    );

    let Some(first) = results.iter().find(|r| !r.failed.is_empty()) else {
        return Ok(true);
    };
    println!(
        "\nfirst failure at case {} ({} cases run, {:.2} s): {}",
        first.index,
        ran,
        seconds,
        first.failed.join(", ")
    );
    // A determinism failure shrinks as one: every candidate runs twice. A
    // case that did not end cannot be run again: it is written as it was.
    let determinism = first.failed.iter().any(|f| f.starts_with("determinism"));
    let (plan, failed, report, steps) = if first.hung {
        let plan = proptest::strategy::ValueTree::current(&plan_tree(options.seed, first.index))
            .for_target(options.target.caps);
        (plan, first.failed.clone(), None, 0)
    } else {
        shrink(
            &options.target,
            options.evidence,
            options.seed,
            first.index,
            determinism,
        )
    };
    let scenario = plan
        .to_scenario(&options.target)
        .map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&options.out)
        .map_err(|e| format!("{}: cannot create: {e}", options.out.display()))?;
    let file = options.out.join(format!(
        "failure-seed{}-case{}.json",
        options.seed, first.index
    ));
    let text = scenario.to_compact_json(&options.target.sut.default_settings());
    std::fs::write(&file, text + "\n")
        .map_err(|e| format!("{}: cannot write: {e}", file.display()))?;
    println!(
        "shrunk in {steps} steps to {} operator steps, {} faults, swarm [{}]: {plan:?}",
        scenario.operator.steps.len(),
        scenario.faults.len(),
        plan.swarm.names().join(" ")
    );
    for finding in &failed {
        println!("  {finding}");
    }
    if let Some(report) = report {
        println!("\ntimeline:\n{}", report.timeline());
    }
    if first.hung {
        println!("(this case did not end: its replay will not end either)");
    }
    println!("replay: mcpsim run {}{flags}", display(&file));
    Ok(false)
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
