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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mcpsim_gateway::{Defects, Reference};
use mcpsim_harness::explore::plan_tree;
use mcpsim_harness::generate::Target;
use mcpsim_harness::live::{
    run_live, Launch, LiveGateway, LiveOptions, LiveVerdict, ProcessTarget,
};
use mcpsim_harness::{Report, RunError, Scenario};
use mcpsim_sut::{Declared, Dialect, HostSetup, LiteLlm, SetupError, SystemUnderTest};
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
    /// Also write each scenario's verdict and findings here, with what
    /// changes from run to run (times, ids, ports) left out, for review.
    pub findings: Option<PathBuf>,
}

/// The reference gateway as a process of its own (`mcpsim gateway`),
/// started with the config file and settings written for the run: the
/// control for the process path of live mode, as `reference` is for the
/// in-process one. It reports no events to the run.
pub struct ReferenceProcess;

impl ProcessTarget for ReferenceProcess {
    fn name(&self) -> String {
        "reference-process".to_string()
    }

    fn dialect(&self) -> &dyn Dialect {
        &LiteLlm
    }

    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }

    fn fits(&self, _scenario: &Scenario) -> Result<(), String> {
        Ok(())
    }

    fn resolves_names(&self) -> bool {
        true
    }

    fn declare(&self, host: &HostSetup, _scenario: &Declared) -> Result<Declared, SetupError> {
        let declared = Reference::new().declare(host)?;
        Ok(Declared {
            emits_events: false,
            ..declared
        })
    }

    fn launch(
        &self,
        host: &HostSetup,
        _scenario: &Declared,
        port: u16,
        dir: &Path,
        urls: &BTreeMap<String, String>,
    ) -> Result<Launch, String> {
        let program =
            std::env::current_exe().map_err(|e| format!("cannot find the mcpsim program: {e}"))?;
        let settings = match &host.settings {
            serde_json::Value::Null => "{}".to_string(),
            other => other.to_string(),
        };
        let mut args = vec![
            "gateway".to_string(),
            "--port".to_string(),
            port.to_string(),
            "--settings".to_string(),
            settings,
        ];
        let mut files = Vec::new();
        if let Some(config) = &host.config_file {
            files.push(("config.json".to_string(), config.clone()));
            args.push("--config".to_string());
            args.push(dir.join("config.json").display().to_string());
        }
        // The scenario's names, each at this host's relay to that fake.
        for (name, url) in urls {
            args.push("--resolve".to_string());
            args.push(format!("{name}={}", url.trim_start_matches("http://")));
        }
        if let Some(store) = &host.store {
            args.push("--store".to_string());
            args.push(format!("http://{store}"));
        }
        Ok(Launch {
            program,
            args,
            env: host.env.clone(),
            files,
            ready_path: "/v1/mcp/server".to_string(),
            ready_timeout: std::time::Duration::from_secs(30),
            api_key: None,
        })
    }
}

/// The live gateway a target names.
fn gateway(options: &Options) -> Result<LiveGateway, Failure> {
    let process: Option<Arc<dyn ProcessTarget>> = match options.target.as_str() {
        "reference" => None,
        "reference-process" => Some(Arc::new(ReferenceProcess)),
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
            "--attach needs a target that runs as a process of its own (reference-process, litellm, contextforge)"
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
    let mut findings = String::new();
    // Once a target has said it does not take the operator's writes, a
    // later scenario that writes is not started only to hear it again.
    let mut writes_refused: Option<String> = None;
    for case in &cases {
        let verdict = match &writes_refused {
            Some(why) if !case.scenario.operator.steps.is_empty() => {
                LiveVerdict::NotApplicable(format!("{why} (its answer to an earlier scenario)"))
            }
            _ => run_live(&gateway, &case.scenario, &live_options).map_err(|e| match e {
                RunError::Invalid(_) | RunError::Failed(_) => {
                    Failure::Usage(format!("{}: {e}", case.label))
                }
            })?,
        };
        let verdict = match verdict {
            LiveVerdict::PathNotOffered(why) => {
                writes_refused = Some(why.clone());
                LiveVerdict::NotApplicable(why)
            }
            other => other,
        };
        let report = match verdict {
            LiveVerdict::PathNotOffered(why) | LiveVerdict::NotApplicable(why) => {
                skipped += 1;
                let why = why.trim_end_matches(" (its answer to an earlier scenario)");
                findings.push_str(&format!(
                    "{}: not applicable: {}\n",
                    short(&case.label),
                    steady(why)
                ));
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
        findings.push_str(&format!(
            "{}: {}\n",
            short(&case.label),
            if report.passed() { "ok" } else { "FAIL" }
        ));
        // By name: a live gateway's ids may change from run to run.
        let mut servers: Vec<_> = report.servers.iter().collect();
        servers.sort_by(|a, b| (&a.gateway, &a.name).cmp(&(&b.gateway, &b.name)));
        for server in servers {
            findings.push_str(&format!(
                "  {} on {}: {}, {} tools{}\n",
                server.name,
                server.gateway,
                if server.deleted {
                    "deleted"
                } else {
                    server.status.as_str()
                },
                server.tools.len(),
                server
                    .error
                    .as_deref()
                    .map(|e| format!(", error {:?}", steady(e)))
                    .unwrap_or_default()
            ));
        }
        for check in report.failed_checks() {
            for finding in &check.findings {
                findings.push_str(&format!("  {}: {}\n", check.name, steady(finding)));
            }
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
            let servers = crate::server_statuses(&report);
            let result = if report.passed() { "ok" } else { "FAIL" };
            println!(
                "{:<44} {:<6} {:>9}  {}",
                short(&case.label),
                result,
                report.end_ms,
                servers
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
    if let Some(path) = &options.findings {
        let version = match &gateway {
            LiveGateway::InProcess(_) => env!("CARGO_PKG_VERSION").to_string(),
            LiveGateway::Process(t) | LiveGateway::Attached { target: t, .. } => t.version(),
        };
        let text = format!(
            "# mcpsim live --target {} ({} {version}): each scenario's verdict, every server's end and\n\
             # every finding. Live runs are not deterministic: times, ids and ports are left out.\n\n{findings}",
            options.target, options.target
        );
        std::fs::write(path, text)
            .map_err(|e| Failure::Usage(format!("{}: cannot write: {e}", path.display())))?;
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

/// A finding with what changes from one live run to the next taken out:
/// numbers of milliseconds, hexadecimal ids, and loopback ports.
fn steady(text: &str) -> String {
    let mut out = String::new();
    // One line per finding, whatever the gateway's message holds.
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut rest = text.as_str();
    while let Some(c) = rest.chars().next() {
        if c.is_ascii_alphanumeric() {
            let end = rest
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(rest.len());
            let word = &rest[..end];
            let after = &rest[end..];
            let hex_id = word.len() >= 8
                && word.chars().all(|c| c.is_ascii_hexdigit())
                && word.chars().any(|c| c.is_ascii_digit());
            if word.chars().all(|c| c.is_ascii_digit()) && after.starts_with(" ms") {
                out.push('N');
            } else if hex_id {
                out.push_str("<id>");
            } else if word.chars().all(|c| c.is_ascii_digit())
                && (out.ends_with("127.0.0.1:") || out.ends_with("localhost:"))
            {
                out.push_str("PORT");
            } else {
                out.push_str(word);
            }
            rest = after;
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The file name of a scenario path, or the label itself.
fn short(label: &str) -> String {
    Path::new(label)
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| label.to_string())
}

#[cfg(test)]
mod tests {
    use super::steady;

    #[test]
    fn what_changes_between_live_runs_is_left_out() {
        assert_eq!(
            steady("gateway/68e85020115a2ba433c14951c561c00d was seen unknown for 5235 ms (from 67 ms)"),
            "gateway/<id> was seen unknown for N ms (from N ms)"
        );
        assert_eq!(
            steady("Failed at http://localhost:4306/mcp: 401 after 3 attempts"),
            "Failed at http://localhost:PORT/mcp: 401 after 3 attempts"
        );
        assert_eq!(steady("expected 4 tools, got 0"), "expected 4 tools, got 0");
        assert_eq!(
            steady("401 Unauthorized\nFor more"),
            "401 Unauthorized For more"
        );
    }
}
