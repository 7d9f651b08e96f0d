//! `mcpsim live`: catalogue scenarios or generated cases against a gateway
//! on real sockets (127.0.0.1 only) and real time, judged by the same
//! checkers as the simulation.
//!
//! Targets: `reference` (the reference gateway, in this process), and the
//! real gateways `litellm` and `contextforge`, started as processes from
//! their installation (`scripts/install-gateways`), or attached to at a
//! URL. Output and exit codes are `run`'s; a scenario that cannot be run
//! against a target is reported as not applicable, with the reason, and is
//! a failure of neither side.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mcpsim_gateway::{Defects, Reference};
use mcpsim_harness::explore::plan_tree;
use mcpsim_harness::generate::Target;
use mcpsim_harness::live::{run_live, LiveGateway, LiveOptions, LiveVerdict, ProcessTarget};
use mcpsim_harness::{Report, RunError, Scenario};
use proptest::strategy::ValueTree;

use crate::Failure;

/// What `mcpsim live` was asked to do.
pub struct Options {
    pub target: String,
    /// Scenario files to run, in order; or generated cases.
    pub files: Vec<PathBuf>,
    pub generated: Option<(usize, u64)>,
    pub attach: Option<String>,
    pub api_key: Option<String>,
    pub command: Option<String>,
    pub gateways_dir: PathBuf,
    pub work_dir: PathBuf,
    pub hop_ms: u64,
    pub timeline: bool,
    pub json: bool,
    pub mermaid: Option<PathBuf>,
    /// Also run each scenario in the simulation and compare verdicts.
    pub compare: bool,
    /// Known defects switched on in the reference gateway.
    pub defects: Defects,
}

/// The live gateway a target names.
fn gateway(options: &Options) -> Result<LiveGateway, Failure> {
    let process: Option<Arc<dyn ProcessTarget>> = match options.target.as_str() {
        "reference" => None,
        other => Some(
            mcpsim_harness::live::targets::by_name(
                other,
                &options.gateways_dir,
                options.command.as_deref(),
            )
            .map_err(Failure::Usage)?,
        ),
    };
    if process.is_some() && !options.defects.is_empty() {
        return Err(Failure::Usage(
            "--defect switches a known defect on in the reference gateway only".into(),
        ));
    }
    match (process, &options.attach) {
        (None, Some(_)) => Err(Failure::Usage(
            "--attach needs a target that runs as a process of its own (litellm, contextforge)"
                .into(),
        )),
        (None, None) => Ok(LiveGateway::InProcess(
            Reference::with_defects(options.defects).sut(),
        )),
        (Some(target), None) => Ok(LiveGateway::Process(target)),
        (Some(target), Some(url)) => {
            let address = url
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .parse()
                .map_err(|_| {
                    Failure::Usage(format!(
                        "--attach {url}: give http://127.0.0.1:PORT (live runs stay on loopback)"
                    ))
                })?;
            let address: std::net::SocketAddr = address;
            if !address.ip().is_loopback() {
                return Err(Failure::Usage(format!(
                    "--attach {url}: not a loopback address (live runs stay on loopback)"
                )));
            }
            Ok(LiveGateway::Attached {
                address,
                target,
                api_key: options.api_key.clone(),
            })
        }
    }
}

/// One scenario to run: where it came from, and the scenario.
struct Case {
    label: String,
    scenario: Scenario,
}

fn cases(options: &Options) -> Result<Vec<Case>, Failure> {
    let mut out = Vec::new();
    for file in &options.files {
        let scenario = Scenario::load(file).map_err(|e| Failure::Usage(e.to_string()))?;
        out.push(Case {
            label: file.display().to_string(),
            scenario,
        });
    }
    if let Some((count, seed)) = options.generated {
        let target = Target::new(Reference::new().sut()).map_err(Failure::Usage)?;
        for index in 0..count {
            let plan = plan_tree(seed, index).current().for_target(target.caps);
            let scenario = plan
                .to_scenario(&target)
                .map_err(|e| Failure::Usage(e.to_string()))?;
            out.push(Case {
                label: format!("case {index} of seed {seed}"),
                scenario,
            });
        }
    }
    Ok(out)
}

/// The verdict of every check, for comparing two runs.
fn verdicts(report: &Report) -> Vec<(&'static str, bool)> {
    report.checks.iter().map(|c| (c.name, c.passed)).collect()
}

pub fn live(options: &Options) -> Result<(), Failure> {
    let gateway = gateway(options)?;
    let cases = cases(options)?;
    let live_options = LiveOptions {
        settings_of: Reference::new().sut(),
        work_dir: options.work_dir.clone(),
        hop_ms: options.hop_ms,
    };
    let single = cases.len() == 1;
    let (mut passed, mut failed, mut skipped, mut disagreed) = (0, 0, 0, 0);
    if !single && !options.json {
        println!(
            "{:<44} {:<6} {:>9}  servers",
            "scenario", "result", "real ms"
        );
    }
    let mut reports = Vec::new();
    for case in &cases {
        let verdict = run_live(&gateway, &case.scenario, &live_options).map_err(|e| match e {
            RunError::Invalid(_) | RunError::Failed(_) => {
                Failure::Usage(format!("{}: {e}", case.label))
            }
        })?;
        let report = match verdict {
            LiveVerdict::NotApplicable(why) => {
                skipped += 1;
                if options.json {
                    reports.push(serde_json::json!({
                        "scenario": case.label, "not_applicable": why,
                    }));
                } else {
                    println!("{:<44} {:<6} {:>9}  {why}", short(&case.label), "n/a", "-");
                }
                continue;
            }
            LiveVerdict::Ran(report) => report,
        };
        if report.passed() {
            passed += 1;
        } else {
            failed += 1;
        }
        let mut agreement = None;
        if options.compare {
            let reference = Reference::with_defects(options.defects).sut();
            let simulated = mcpsim_harness::run(&reference, &case.scenario)
                .map_err(|e| Failure::Usage(format!("{}: {e}", case.label)))?;
            let same = verdicts(&simulated) == verdicts(&report);
            if !same {
                disagreed += 1;
            }
            agreement = Some((same, simulated));
        }
        if let Some(path) = &options.mermaid {
            std::fs::write(path, report.mermaid())
                .map_err(|e| Failure::Usage(format!("{}: cannot write: {e}", path.display())))?;
        }
        if options.json {
            reports.push(serde_json::to_value(&*report).unwrap_or_default());
            continue;
        }
        if single {
            crate::print_report(Path::new(&case.label), &report);
            if options.timeline {
                println!("\ntimeline:\n{}", report.timeline());
            }
        } else {
            let servers: Vec<String> = report
                .servers
                .iter()
                .map(|s| format!("{}={}", s.name, s.status))
                .collect();
            let result = if report.passed() { "ok" } else { "FAIL" };
            println!(
                "{:<44} {:<6} {:>9}  {}",
                short(&case.label),
                result,
                report.end_ms,
                servers.join(" ")
            );
            for check in report.failed_checks() {
                println!("    {} failed: {}", check.name, check.findings.join("; "));
            }
        }
        if let Some((same, simulated)) = &agreement {
            if !same {
                println!(
                    "    DIFFERS from the simulation: live {:?}, simulated {:?}",
                    verdicts(&report),
                    verdicts(simulated)
                );
            }
        }
    }
    if options.json {
        let out = if single && reports.len() == 1 {
            reports.remove(0)
        } else {
            serde_json::Value::Array(reports)
        };
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        let live = match &gateway {
            LiveGateway::InProcess(_) => "in this process".to_string(),
            _ => options.target.clone(),
        };
        println!(
            "{} scenarios live against {} ({live}): {passed} passed, {failed} failed, {skipped} not applicable{}",
            cases.len(),
            options.target,
            if options.compare {
                format!(", {disagreed} with verdicts that differ from the simulation")
            } else {
                String::new()
            }
        );
        println!("live: real sockets on 127.0.0.1 and real time; not deterministic");
    }
    if disagreed > 0 {
        return Err(Failure::Usage(format!(
            "{disagreed} scenarios gave different verdicts live than in the simulation"
        )));
    }
    if failed > 0 {
        Err(Failure::Checks)
    } else {
        Ok(())
    }
}

/// The file name of a scenario path, or the label itself.
fn short(label: &str) -> String {
    Path::new(label)
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| label.to_string())
}
