//! The `mcpsim` command: run catalogue scenarios and print what happened.
//!
//! Exit codes: 0 when every check holds, 1 when one fails, 2 for bad input
//! or usage.

mod bench;
mod explore;
mod gateway;
mod live;
mod serve;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mcpsim_gateway::{Defect, Defects, Reference};
use mcpsim_harness::{Evidence, Report, RunError, Scenario, Sut};
use mcpsim_simple_gateway::SimpleGateway;

/// mimalloc instead of the system allocator: a generated case allocates and
/// frees many small buffers (HTTP messages, trace events, JSON), and glibc's
/// malloc was a tenth of `explore`'s profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Deterministic simulation tests for MCP gateways.
#[derive(Parser)]
#[command(name = "mcpsim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario file, or every catalogue scenario with --all.
    Run {
        /// The scenario file (JSON).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        file: Option<PathBuf>,
        /// Run every scenario in the catalogue, one row each.
        #[arg(long)]
        all: bool,
        /// Override the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Print the trace as a readable timeline.
        #[arg(long)]
        timeline: bool,
        /// Print the whole report, trace included, as JSON.
        #[arg(long)]
        json: bool,
        /// Also write the run as a Mermaid sequence diagram to this file.
        #[arg(long, value_name = "FILE.md")]
        mermaid: Option<PathBuf>,
        /// Where the catalogue lives (for --all).
        #[arg(long, default_value = "scenarios")]
        dir: PathBuf,
        /// Switch a known defect on in every gateway (see `mcpsim defects`).
        #[arg(long = "defect", value_name = "NAME", value_parser = parse_defect)]
        defects: Vec<Defect>,
        /// Judge from the outside alone: the gateway's own events are left
        /// out of the trace, as for a gateway that reports none.
        #[arg(long)]
        outside_only: bool,
        /// The system under test: `reference` (the reference gateway) or
        /// `simple` (the deliberately simple example gateway).
        #[arg(long, default_value = "reference", value_parser = ["reference", "simple"])]
        sut: String,
    },
    /// Run generated scenarios in parallel; shrink and write the first failure.
    Explore {
        /// How many generated cases to run.
        #[arg(long, default_value_t = 2_000)]
        cases: usize,
        /// Seed of the whole exploration; case i depends only on (seed, i).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Worker threads (default: all cores); each world stays on one.
        #[arg(long)]
        jobs: Option<usize>,
        /// Run only the K-th of N deterministic slices, e.g. 2/4.
        #[arg(long, value_parser = parse_shard, default_value = "1/1")]
        shard: (usize, usize),
        /// Where a shrunk failing scenario is written.
        #[arg(long, default_value = "explore-out")]
        out: PathBuf,
        /// Switch a known defect on in every gateway (see `mcpsim defects`).
        #[arg(long = "defect", value_name = "NAME", value_parser = parse_defect)]
        defects: Vec<Defect>,
        /// Judge from the outside alone: the gateway's own events are left
        /// out of the trace, as for a gateway that reports none.
        #[arg(long)]
        outside_only: bool,
        /// The system under test: `reference` (the reference gateway) or
        /// `simple` (the deliberately simple example gateway).
        #[arg(long, default_value = "reference", value_parser = ["reference", "simple"])]
        sut: String,
    },
    /// List the gateway's switchable known defects.
    Defects,
    /// Measure throughput (release builds): runs/s of a catalogue scenario
    /// on one thread, generated cases/s on 1 and on all cores; with
    /// --defects, the table of how fast each known defect is caught.
    Bench {
        #[arg(long, default_value = "scenarios/reporter-rest-oauth2.json")]
        scenario: PathBuf,
        #[arg(long, default_value_t = 3_000)]
        runs: usize,
        #[arg(long, default_value_t = 2_000)]
        cases: usize,
        /// Worker threads for the parallel figures (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Hunt every known defect instead, over seeds 1..=--seeds.
        #[arg(long)]
        defects: bool,
        #[arg(long, default_value_t = 5)]
        seeds: u64,
        /// Cases allowed per defect hunt.
        #[arg(long, default_value_t = 1_000)]
        budget: usize,
        /// With --defects: judge from the outside alone.
        #[arg(long)]
        outside_only: bool,
    },
    /// Serve a scenario's token servers, MCP servers and stores on
    /// 127.0.0.1, on real time, with a log line per request, until
    /// interrupted.
    Serve {
        /// The scenario file (JSON).
        file: PathBuf,
        /// The first port (the fakes take consecutive ports); the system
        /// chooses when absent.
        #[arg(long)]
        port: Option<u16>,
        /// Stop after this many milliseconds.
        #[arg(long, value_name = "MS")]
        for_ms: Option<u64>,
    },
    /// Run scenarios live: the scenario's fakes and a real gateway on
    /// 127.0.0.1, on real time, judged by the same checkers.
    Live {
        /// A scenario file (JSON).
        #[arg(conflicts_with_all = ["all", "cases"])]
        file: Option<PathBuf>,
        /// Every catalogue scenario, one row each.
        #[arg(long)]
        all: bool,
        /// Where the catalogue lives (for --all).
        #[arg(long, default_value = "scenarios")]
        dir: PathBuf,
        /// Run this many generated cases instead.
        #[arg(long)]
        cases: Option<usize>,
        /// Seed of the generated cases.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The gateway: `reference` (in this process), `litellm` or
        /// `contextforge` (started from their installation).
        #[arg(long, default_value = "reference")]
        target: String,
        /// Attach to a gateway already listening at this loopback URL
        /// instead of starting one.
        #[arg(long, value_name = "URL")]
        attach: Option<String>,
        /// The operator's key for an attached gateway.
        #[arg(long)]
        api_key: Option<String>,
        /// Start the gateway with this command line instead of the
        /// installed one; `{port}`, `{config}` and `{dir}` are filled in.
        #[arg(long)]
        command: Option<String>,
        /// Where `scripts/install-gateways` installed the real gateways.
        #[arg(long, env = "MCPSIM_GATEWAYS", default_value = ".gateways")]
        gateways: PathBuf,
        /// Where each run gets a folder (config files, gateway output).
        #[arg(long, default_value = "live-out")]
        work: PathBuf,
        /// Slack for one message on loopback, in ms (the simulation uses
        /// the network's latency).
        #[arg(long, default_value_t = 25)]
        hop_ms: u64,
        /// Print the trace as a readable timeline (one scenario).
        #[arg(long)]
        timeline: bool,
        /// Print the whole report as JSON.
        #[arg(long)]
        json: bool,
        /// Also write the run as a Mermaid sequence diagram to this file.
        #[arg(long, value_name = "FILE.md")]
        mermaid: Option<PathBuf>,
        /// Also run each scenario in the simulation and say where the
        /// verdicts differ (exit 2 if any do).
        #[arg(long)]
        compare: bool,
        /// Switch a known defect on in the reference gateway (target
        /// `reference` only).
        #[arg(long = "defect", value_name = "NAME", value_parser = parse_defect)]
        defects: Vec<Defect>,
        /// Also write each scenario's verdict and findings to this file,
        /// with times, ids and ports left out, for review.
        #[arg(long, value_name = "FILE")]
        findings: Option<PathBuf>,
    },
    /// Run the reference gateway on real sockets (127.0.0.1) until
    /// interrupted: for live runs as a process of its own, and for trying
    /// it by hand against `mcpsim serve`.
    Gateway {
        #[arg(long, default_value_t = 4000)]
        port: u16,
        /// The reference's settings as JSON (budgets, intervals, role).
        #[arg(long, default_value = "{}")]
        settings: String,
        /// A config file in LiteLLM's format (JSON).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The store host's base URL (REST registrations persist there).
        #[arg(long)]
        store: Option<String>,
        /// Dial host NAME at ADDRESS, whatever DNS says (repeatable).
        #[arg(long, value_name = "NAME=ADDRESS")]
        resolve: Vec<String>,
    },
    /// List the catalogue's scenarios with their one-line descriptions.
    List {
        #[arg(long, default_value = "scenarios")]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            file: Some(file),
            seed,
            timeline,
            json,
            mermaid,
            defects,
            outside_only,
            sut,
            ..
        } => Chosen::new(&sut, defects, outside_only)
            .and_then(|chosen| run_one(&file, seed, timeline, json, mermaid.as_deref(), &chosen)),
        Command::Run {
            all: true,
            seed,
            dir,
            defects,
            outside_only,
            sut,
            ..
        } => {
            Chosen::new(&sut, defects, outside_only).and_then(|chosen| run_all(&dir, seed, &chosen))
        }
        Command::Bench {
            scenario,
            runs,
            cases,
            jobs,
            defects,
            seeds,
            budget,
            outside_only,
        } => bench::bench(&bench::BenchOptions {
            scenario: &scenario,
            runs,
            cases,
            jobs: jobs.unwrap_or_else(cores),
            defects,
            seeds,
            budget,
            evidence: evidence(outside_only),
        })
        .map_err(Failure::Usage),
        Command::Defects => {
            for d in Defect::ALL {
                println!("{:<30} {}", d.name(), d.description());
                println!("{:<30} seen in: {}", "", d.seen_in());
            }
            Ok(())
        }
        Command::Run { .. } => Err(Failure::Usage("give a scenario file or --all".into())),
        Command::List { dir } => list(&dir),
        Command::Gateway {
            port,
            settings,
            config,
            store,
            resolve,
        } => gateway::run(&gateway::Options {
            port,
            settings,
            config,
            store,
            resolve,
        })
        .map_err(Failure::Usage),
        Command::Live {
            file,
            all,
            dir,
            cases,
            seed,
            target,
            attach,
            api_key,
            command,
            gateways,
            work,
            hop_ms,
            timeline,
            json,
            mermaid,
            compare,
            defects,
            findings,
        } => {
            let files = match (file, all) {
                (Some(file), _) => Ok(vec![file]),
                (None, true) => catalogue(&dir),
                (None, false) if cases.is_some() => Ok(Vec::new()),
                (None, false) => Err(Failure::Usage(
                    "give a scenario file, --all or --cases N".into(),
                )),
            };
            files.and_then(|files| {
                live::live(&live::Options {
                    target,
                    files,
                    generated: cases.map(|n| (n, seed)),
                    attach,
                    api_key,
                    command,
                    gateways_dir: gateways,
                    work_dir: work,
                    hop_ms,
                    timeline,
                    json,
                    mermaid,
                    compare,
                    defects: defects.into_iter().collect(),
                    findings,
                })
            })
        }
        Command::Serve { file, port, for_ms } => serve::run(&serve::Options {
            file: &file,
            port,
            for_ms,
        })
        .map_err(Failure::Usage),
        Command::Explore {
            cases,
            seed,
            jobs,
            shard,
            out,
            defects,
            outside_only,
            sut,
        } => Chosen::new(&sut, defects, outside_only).and_then(|chosen| {
            let target = mcpsim_harness::generate::Target::new(chosen.sut.clone())
                .map_err(Failure::Usage)?;
            let options = explore::Options {
                cases,
                seed,
                jobs: jobs.unwrap_or_else(cores),
                shard,
                out,
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
                target,
                evidence: chosen.evidence,
            };
            match explore::explore(&options, &chosen.label, &chosen.flags) {
                Ok(true) => Ok(()),
                Ok(false) => Err(Failure::Checks),
                Err(message) => Err(Failure::Usage(message)),
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Checks) => ExitCode::from(1),
        Err(Failure::Usage(message)) => {
            eprintln!("mcpsim: {message}");
            ExitCode::from(2)
        }
    }
}

/// The system under test and the evidence a command was asked for, and
/// the flags that ask for them again in a replay line.
struct Chosen {
    sut: Sut,
    evidence: Evidence,
    flags: String,
    /// What the system under test is, in words.
    label: String,
}

impl Chosen {
    fn new(sut: &str, defects: Vec<Defect>, outside_only: bool) -> Result<Self, Failure> {
        let defects: Defects = defects.into_iter().collect();
        let names: Vec<&str> = defects.iter().map(|d| d.name()).collect();
        let (sut, mut flags, mut label) = match sut {
            "reference" if names.is_empty() => (
                Reference::new().sut(),
                String::new(),
                "reference".to_string(),
            ),
            "reference" => (
                Reference::with_defects(defects).sut(),
                defect_flags(defects),
                format!("reference with defects: {}", names.join(", ")),
            ),
            _ if !defects.is_empty() => {
                return Err(Failure::Usage(
                    "--defect switches a known defect on in the reference gateway only".into(),
                ))
            }
            _ => (
                SimpleGateway.sut(),
                " --sut simple".to_string(),
                "simple".to_string(),
            ),
        };
        if outside_only {
            flags.push_str(" --outside-only");
            label.push_str(", judged from the outside alone");
        }
        Ok(Chosen {
            sut,
            evidence: evidence(outside_only),
            flags,
            label,
        })
    }
}

fn evidence(outside_only: bool) -> Evidence {
    if outside_only {
        Evidence::OutsideOnly
    } else {
        Evidence::Everything
    }
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// A defect by its name.
fn parse_defect(text: &str) -> Result<Defect, String> {
    Defect::from_name(text).ok_or_else(|| {
        let names: Vec<&str> = Defect::ALL.iter().map(|d| d.name()).collect();
        format!("no defect {text:?}; known: {}", names.join(", "))
    })
}

/// `K/N` with 1 <= K <= N.
fn parse_shard(text: &str) -> Result<(usize, usize), String> {
    let (k, n) = text.split_once('/').ok_or("expected K/N, e.g. 2/4")?;
    let k: usize = k.parse().map_err(|_| "K is not a number")?;
    let n: usize = n.parse().map_err(|_| "N is not a number")?;
    if n == 0 || k == 0 || k > n {
        return Err("expected 1 <= K <= N".to_string());
    }
    Ok((k, n))
}

enum Failure {
    /// A check failed; the report already said which and why.
    Checks,
    /// Bad input or usage.
    Usage(String),
}

fn catalogue(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Failure::Usage(format!("{}: cannot read: {e}", dir.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Ok(files)
}

fn load(file: &Path, seed: Option<u64>) -> Result<Scenario, Failure> {
    let mut scenario = Scenario::load(file).map_err(|e| Failure::Usage(e.to_string()))?;
    if let Some(seed) = seed {
        scenario.seed = seed;
    }
    Ok(scenario)
}

fn execute(file: &Path, scenario: &Scenario, chosen: &Chosen) -> Result<Report, Failure> {
    mcpsim_harness::run_judged(&chosen.sut, scenario, chosen.evidence).map_err(|e| match e {
        RunError::Invalid(_) | RunError::Failed(_) => {
            Failure::Usage(format!("{}: {e}", file.display()))
        }
    })
}

/// ` --defect NAME` for each defect, for replay lines.
fn defect_flags(defects: Defects) -> String {
    defects
        .iter()
        .map(|d| format!(" --defect {}", d.name()))
        .collect()
}

fn run_one(
    file: &Path,
    seed: Option<u64>,
    timeline: bool,
    json: bool,
    mermaid: Option<&Path>,
    chosen: &Chosen,
) -> Result<(), Failure> {
    let scenario = load(file, seed)?;
    let report = execute(file, &scenario, chosen)?;
    if let Some(path) = mermaid {
        std::fs::write(path, report.mermaid())
            .map_err(|e| Failure::Usage(format!("{}: cannot write: {e}", path.display())))?;
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print_report(file, &report);
        if timeline {
            println!("\ntimeline:\n{}", report.timeline());
        }
    }
    if report.passed() {
        Ok(())
    } else {
        if json {
            for check in report.failed_checks() {
                eprintln!("check {} failed: {}", check.name, check.findings.join("; "));
            }
        }
        eprintln!(
            "replay: mcpsim run {} --seed {} --timeline{}",
            file.display(),
            report.seed,
            chosen.flags
        );
        Err(Failure::Checks)
    }
}

fn print_report(file: &Path, report: &Report) {
    println!("{}: {}", file.display(), report.description);
    if let Some(live) = &report.live {
        println!(
            "live against {} {} ({}), time scale {}, ready after {} ms: {}",
            live.target, live.version, live.mode, live.time_scale, live.ready_ms, live.note
        );
    }
    let time = if report.live.is_some() {
        "real"
    } else {
        "simulated"
    };
    println!(
        "seed {}, ended at {} ms of {time} time{}",
        report.seed,
        report.end_ms,
        if report.deadline_hit {
            " (deadline reached)"
        } else {
            ""
        }
    );
    for step in &report.steps {
        println!("  step: {step}");
    }
    for call in &report.tool_calls {
        println!("  tool call: {call}");
    }
    println!();
    println!(
        "{:<10} {:<16} {:<7} {:<10} {:>5} {:>9}  error",
        "gateway", "server", "path", "status", "tools", "settled"
    );
    for s in &report.servers {
        let settled = s
            .settled_ms
            .map(|ms| format!("{ms} ms"))
            .unwrap_or_else(|| "-".into());
        let status = if s.deleted {
            "deleted"
        } else {
            s.status.as_str()
        };
        println!(
            "{:<10} {:<16} {:<7} {:<10} {:>5} {:>9}  {}",
            s.gateway,
            s.name,
            s.path,
            status,
            s.tools.len(),
            settled,
            s.error.as_deref().unwrap_or("-")
        );
        if !s.tools.is_empty() {
            println!("{:<10} tools: {}", "", s.tools.join(", "));
        }
    }
    println!();
    for check in &report.checks {
        let mark = if check.passed { "ok  " } else { "FAIL" };
        println!("{mark} {}", check.name);
        for finding in &check.findings {
            println!("     {finding}");
        }
    }
    println!("trace hash {}", report.trace_hash);
}

fn run_all(dir: &Path, seed: Option<u64>, chosen: &Chosen) -> Result<(), Failure> {
    let files = catalogue(dir)?;
    let mut failed = 0;
    println!(
        "{:<44} {:<6} {:>9} {:<18} servers",
        "scenario", "result", "sim ms", "trace hash"
    );
    for file in &files {
        let scenario = load(file, seed)?;
        let report = execute(file, &scenario, chosen)?;
        let servers = server_statuses(&report);
        let result = if report.passed() { "ok" } else { "FAIL" };
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        println!(
            "{:<44} {:<6} {:>9} {:<18} {}",
            name, result, report.end_ms, report.trace_hash, servers
        );
        if !report.passed() {
            failed += 1;
            for check in report.failed_checks() {
                println!("    {} failed: {}", check.name, check.findings.join("; "));
            }
            println!(
                "    replay: mcpsim run {} --seed {} --timeline{}",
                file.display(),
                report.seed,
                chosen.flags
            );
        }
    }
    println!(
        "{} scenarios, {} passed, {} failed",
        files.len(),
        files.len() - failed,
        failed
    );
    if failed == 0 {
        Ok(())
    } else {
        Err(Failure::Checks)
    }
}

/// Each server's name and status, for one row of a table.
fn server_statuses(report: &Report) -> String {
    report
        .servers
        .iter()
        .map(|s| format!("{}={}", s.name, s.status))
        .collect::<Vec<_>>()
        .join(" ")
}

fn list(dir: &Path) -> Result<(), Failure> {
    for file in catalogue(dir)? {
        let scenario = load(&file, None)?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        println!("{:<44} {}", name, scenario.description);
    }
    Ok(())
}
