//! The command line's contract: output and exit codes 0, 1 and 2.

use std::path::PathBuf;
use std::process::{Command, Output};

fn mcpsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcpsim"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("the mcpsim binary runs")
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcpsim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_reporters_scenario_ends_healthy_with_the_fakes_tools() {
    let out = mcpsim(&["run", "scenarios/reporter-rest-oauth2.json", "--timeline"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("DatabricksSQL-execute_sql"), "{stdout}");
    assert!(stdout.contains("healthy"), "{stdout}");
    assert!(stdout.contains("POST /oidc/v1/token = 200"), "{stdout}");
}

#[test]
fn run_all_runs_every_catalogue_file_and_exits_0() {
    let out = mcpsim(&["run", "--all"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("0 failed"), "{stdout}");
    let list = mcpsim(&["list"]);
    assert_eq!(list.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&list.stdout).contains("reporter-rest-oauth2.json"));
}

#[test]
fn a_malformed_scenario_names_the_file_the_path_and_the_reason_and_exits_2() {
    let path = temp_file(
        "bad.json",
        r#"{"description": "x", "gateways": [{"host": "gateway", "settings": {"list_timeout_ms": "soon"}}]}"#,
    );
    let out = mcpsim(&["run", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.json"), "{stderr}");
    assert!(
        stderr.contains("gateways[0].settings.list_timeout_ms"),
        "{stderr}"
    );
    assert!(stderr.contains("invalid type"), "{stderr}");

    let missing = mcpsim(&["run", "no/such/file.json"]);
    assert_eq!(missing.status.code(), Some(2));
    let usage = mcpsim(&["run"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn a_failed_check_says_which_and_why_and_exits_1() {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/token-server-down.json"),
    )
    .unwrap()
    .replace(r#""status": "unhealthy""#, r#""status": "healthy""#);
    let path = temp_file("wrong-expectation.json", &text);
    let out = mcpsim(&["run", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL expectations"), "{stdout}");
    assert!(
        stdout.contains("expected healthy, got unhealthy"),
        "{stdout}"
    );
    assert!(stderr.contains("replay: mcpsim run"), "{stderr}");
}

#[test]
fn a_data_plane_that_learns_late_fails_the_convergence_check() {
    // A data plane that never reads the store learns nothing from it.
    let out = mcpsim(&[
        "run",
        "scenarios/split-reporter.json",
        "--defect",
        "data-plane-never-syncs",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL converges"), "{stdout}");

    // A store that takes 2 s per answer delays every plane's reads by as
    // much: that is the store's time, which the bound allows, not the data
    // plane's lateness.
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/split-reporter.json"),
    )
    .unwrap()
    .replace(
        r#""stores": [{"host": "db"}]"#,
        r#""stores": [{"host": "db", "config": {"latency_ms": 2000}}]"#,
    );
    assert!(text.contains("latency_ms\": 2000"));
    let path = temp_file("slow-store.json", &text);
    let out = mcpsim(&["run", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("ok   converges"), "{stdout}");
}

#[test]
fn mermaid_writes_a_sequence_diagram_of_the_run() {
    let path = std::env::temp_dir().join(format!("mcpsim-mermaid-{}.md", std::process::id()));
    let out = mcpsim(&[
        "run",
        "scenarios/mcp-rejects-token.json",
        "--mermaid",
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let diagram = std::fs::read_to_string(&path).unwrap();
    assert!(
        diagram.contains("```mermaid\nsequenceDiagram\n"),
        "{diagram}"
    );
    assert!(diagram.contains("participant operator"), "{diagram}");
    assert!(diagram.contains("gateway->>ws:"), "{diagram}");
    assert!(diagram.contains("initialize = 401"), "{diagram}");
    assert!(diagram.contains("invalidated after 401"), "{diagram}");
    assert!(!diagram.contains("dbx-secret"), "{diagram}");
}

#[test]
fn explore_runs_generated_cases_and_prints_its_tables() {
    let out_dir = std::env::temp_dir().join(format!("mcpsim-explore-{}", std::process::id()));
    let out = mcpsim(&[
        "explore",
        "--cases",
        "40",
        "--seed",
        "3",
        "--jobs",
        "1",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("path"), "{stdout}");
    assert!(stdout.contains("liveness"), "{stdout}");
    assert!(stdout.contains("determinism"), "{stdout}");
    assert!(stdout.contains("40 cases in"), "{stdout}");

    // The same cases split over two shards add up to the whole.
    let first = mcpsim(&[
        "explore", "--cases", "40", "--seed", "3", "--jobs", "1", "--shard", "1/2",
    ]);
    assert!(String::from_utf8_lossy(&first.stdout).contains("20 cases in"));
    let bad = mcpsim(&["explore", "--shard", "3/2"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn defects_are_listed_and_a_defect_hunt_exits_1_with_a_replayable_reproducer() {
    let list = mcpsim(&["defects"]);
    let stdout = String::from_utf8_lossy(&list.stdout);
    assert_eq!(list.status.code(), Some(0));
    assert_eq!(
        stdout.matches("seen in:").count(),
        mcpsim_gateway::Defect::ALL.len(),
        "{stdout}"
    );
    assert!(stdout.contains("rest-drops-oauth2-flow"), "{stdout}");

    let out_dir = std::env::temp_dir().join(format!("mcpsim-cli-hunt-{}", std::process::id()));
    let out = mcpsim(&[
        "explore",
        "--cases",
        "200",
        "--seed",
        "1",
        "--defect",
        "first-page-only",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("system under test: reference with defects: first-page-only"),
        "{stdout}"
    );
    let replay = stdout
        .lines()
        .find_map(|l| l.strip_prefix("replay: mcpsim run "))
        .expect("a replay line");
    let mut args: Vec<&str> = vec!["run"];
    args.extend(replay.split(' '));
    assert!(replay.ends_with("--defect first-page-only"), "{replay}");
    // The reproducer fails with the defect and passes without it.
    assert_eq!(mcpsim(&args).status.code(), Some(1));
    assert_eq!(mcpsim(&args[..2]).status.code(), Some(0));

    let bad = mcpsim(&["explore", "--defect", "no-such-defect"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("known: rest-drops-oauth2-flow"));
}

#[test]
fn explore_pointed_at_the_simple_gateway_fails_with_a_replayable_reproducer() {
    let out_dir = std::env::temp_dir().join(format!("mcpsim-cli-simple-{}", std::process::id()));
    let out = mcpsim(&[
        "explore",
        "--sut",
        "simple",
        "--cases",
        "50",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("system under test: simple"), "{stdout}");
    let replay = stdout
        .lines()
        .find_map(|l| l.strip_prefix("replay: mcpsim run "))
        .expect("a replay line");
    assert!(replay.ends_with("--sut simple"), "{replay}");
    let mut args: Vec<&str> = vec!["run"];
    args.extend(replay.split(' '));
    let replayed = mcpsim(&args);
    assert_eq!(replayed.status.code(), Some(1));
    // The replay fails the checkers the shrunk reproducer failed, each one
    // the first failure failed too (shrinking keeps to those).
    let named: Vec<&str> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("first failure at case "))
        .and_then(|l| l.split("): ").nth(1))
        .expect("the first failure names its checkers")
        .split(", ")
        .collect();
    let shrunk: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("shrunk in "))
        .skip(1)
        .take_while(|l| !l.starts_with("timeline:"))
        .filter_map(|l| l.strip_prefix("  ")?.split_once(": ").map(|(c, _)| c))
        .collect();
    assert!(!shrunk.is_empty(), "{stdout}");
    let replayed = String::from_utf8_lossy(&replayed.stdout);
    for checker in shrunk {
        assert!(named.contains(&checker), "{checker} not in {named:?}");
        assert!(
            replayed.contains(&format!("FAIL {checker}")),
            "{checker}: {replayed}"
        );
    }
    // Its settings are the simple gateway's own: the reference refuses them.
    let other = mcpsim(&args[..2]);
    assert_eq!(other.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&other.stderr).contains("at gateways[0].settings"));

    let mixed = mcpsim(&[
        "run",
        "--all",
        "--sut",
        "simple",
        "--defect",
        "first-page-only",
    ]);
    assert_eq!(mixed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&mixed.stderr).contains("reference gateway only"));
}

#[test]
fn serve_puts_the_fakes_on_loopback_and_logs_each_request() {
    use std::io::{BufRead, BufReader, Read, Write};

    let mut child = Command::new(env!("CARGO_BIN_EXE_mcpsim"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "serve",
            "scenarios/reporter-rest-oauth2.json",
            "--for-ms",
            "20000",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the mcpsim binary runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut urls = std::collections::BTreeMap::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("serving ") {
            let mut words = rest.split_whitespace();
            let host = words.next().unwrap().to_string();
            let url = words.nth(1).unwrap().to_string();
            urls.insert(host, url);
        }
        if line.starts_with("instants of the scenario") {
            break;
        }
    }
    assert_eq!(urls.len(), 2, "{urls:?}");
    let address = urls["auth"].trim_start_matches("http://").to_string();
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /.well-known/oauth-authorization-server HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains(&format!(
            "\"token_endpoint\":\"http://{address}/oidc/v1/token\""
        )),
        "{answer}"
    );
    let logged = lines.next().unwrap().unwrap();
    assert!(
        logged.contains("-> auth GET /.well-known/oauth-authorization-server = 200"),
        "{logged}"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    let empty = temp_file(
        "no-fakes.json",
        r#"{"description": "x", "gateways": [{"host": "g"}]}"#,
    );
    let out = mcpsim(&["serve", empty.to_str().unwrap(), "--for-ms", "10"]);
    assert_eq!(out.status.code(), Some(2));
}
