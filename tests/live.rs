//! Live mode: the same gateway and fakes on real sockets, 127.0.0.1 only,
//! with reqwest as the gateway's client. The test starts and stops its own
//! servers and sends nothing anywhere else.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mcpsim_fakes::{McpServer, McpServerConfig, TokenServer, TokenServerConfig};
use mcpsim_gateway::{
    ConfigFile, Deps, Gateway, GatewaySettings, MemorySink, ReqwestClient, SystemClock,
};
use serde_json::json;

async fn serve(router: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{address}"), task)
}

async fn get_json(client: &reqwest::Client, url: &str) -> serde_json::Value {
    let text = client.get(url).send().await.unwrap().text().await.unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn the_reporters_registration_works_on_real_sockets() {
    let clock: mcpsim_fakes::Clock = Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
    });
    let tokens: TokenServerConfig = serde_json::from_value(json!({
        "clients": [{"client_id": "live-client", "client_secret": "live-secret-123"}]
    }))
    .unwrap();
    let mcp: McpServerConfig = serde_json::from_value(json!({
        "tool_count": 3, "page_size": 2, "reply": "sse",
        "auth": {"type": "oauth", "issuer": "mcpsim-auth", "signing_key": "mcpsim-signing-key"}
    }))
    .unwrap();
    let (auth_url, auth_task) = serve(TokenServer::new(tokens, clock.clone()).router()).await;
    let (mcp_url, mcp_task) = serve(McpServer::new(mcp, clock).router()).await;

    let deps = Deps {
        http: Arc::new(ReqwestClient::new()),
        clock: Arc::new(SystemClock),
        events: Arc::new(MemorySink::default()),
        store: None,
    };
    let gateway = Gateway::new(
        GatewaySettings::default(),
        deps,
        &ConfigFile::default(),
        &BTreeMap::new(),
    )
    .unwrap();
    gateway.start();
    let (gateway_url, gateway_task) = serve(gateway.router()).await;

    let client = reqwest::Client::new();
    let created = client
        .post(format!("{gateway_url}/v1/mcp/server"))
        .header("content-type", "application/json")
        .body(
            json!({"server_name": "live", "transport": "http", "url": format!("{mcp_url}/mcp"),
                "auth_type": "oauth2", "token_url": format!("{auth_url}/oauth/token"),
                "credentials": {"client_id": "live-client", "client_secret": "live-secret-123"}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let row: serde_json::Value = serde_json::from_str(&created.text().await.unwrap()).unwrap();
    let id = row["server_id"].as_str().unwrap().to_string();

    // Bounded wait: 200 polls of 25 ms.
    let mut status = String::new();
    for _ in 0..200 {
        let row = get_json(&client, &format!("{gateway_url}/v1/mcp/server/{id}")).await;
        status = row["status"].as_str().unwrap_or_default().to_string();
        if status != "unknown" {
            assert_eq!(status, "healthy", "{row}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(status, "healthy");
    let tools = get_json(
        &client,
        &format!("{gateway_url}/v1/mcp/tools?server_id={id}"),
    )
    .await;
    assert_eq!(tools["tools"].as_array().unwrap().len(), 3);
    assert!(!tools.to_string().contains("live-secret-123"));

    gateway.shutdown();
    for task in [auth_task, mcp_task, gateway_task] {
        task.abort();
    }
}

/// Every catalogue scenario (and every defect story) whose faults apply
/// live gives the same verdicts against the reference gateway on real
/// sockets as in the simulation: the control that shows live mode itself
/// is sound.
#[test]
fn every_catalogue_scenario_gives_the_same_verdicts_live_as_simulated() {
    use mcpsim_gateway::Reference;
    use mcpsim_harness::live::{run_live, LiveGateway, LiveOptions, LiveVerdict};
    use mcpsim_harness::Scenario;

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["scenarios", "scenarios/defects"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|x| x == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    let sut = Reference::new().sut();
    let options = LiveOptions {
        settings_of: sut.clone(),
        work_dir: std::env::temp_dir().join("mcpsim-live-tests"),
        hop_ms: 25,
    };
    let gateway = LiveGateway::InProcess(sut.clone());
    let mut differ = Vec::new();
    for file in &files {
        let scenario = Scenario::load(file).unwrap();
        let simulated = mcpsim_harness::run(&sut, &scenario).unwrap();
        let verdicts = |r: &mcpsim_harness::Report| -> Vec<(&'static str, bool)> {
            r.checks.iter().map(|c| (c.name, c.passed)).collect()
        };
        match run_live(&gateway, &scenario, &options).unwrap() {
            LiveVerdict::Ran(live) => {
                assert!(live.live.is_some(), "a live report says it was live");
                if verdicts(&live) != verdicts(&simulated) {
                    differ.push(format!(
                        "{}: live {:?}\n{}",
                        file.display(),
                        live.failed_checks()
                            .map(|c| (c.name, c.findings.clone()))
                            .collect::<Vec<_>>(),
                        live.timeline()
                    ));
                }
            }
            LiveVerdict::NotApplicable(why) | LiveVerdict::PathNotOffered(why) => {
                panic!("{}: not applicable: {why}", file.display())
            }
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n\n"));
}

/// The process path of live mode, with the reference gateway as a process
/// of its own (`mcpsim gateway`, started and stopped by `mcpsim live`): its
/// config file written for the run, the scenario's names dialed at its
/// relays, restarts by restarting the process. Every catalogue scenario
/// gives the simulation's verdicts (the reference reports no events then,
/// so `cancellation_hygiene` is not applicable on either side of the
/// comparison's verdicts: it passes).
#[test]
fn the_reference_started_as_a_process_gives_the_simulations_verdicts() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = std::env::temp_dir().join(format!("mcpsim-live-process-{}", std::process::id()));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mcpsim"))
        .current_dir(root)
        .args([
            "live",
            "--all",
            "--target",
            "reference-process",
            "--compare",
        ])
        .arg("--work")
        .arg(&work)
        .output()
        .expect("mcpsim runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        output.status.code()
    );
    assert!(
        stdout.contains("0 with verdicts that differ from the simulation"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&work);
}

/// The gateways folder is found where the user meant it: a relative
/// `--gateways` (the default is `.gateways`) names a folder under the
/// directory mcpsim was started in, though the gateway runs in a working
/// folder of its own. A stand-in `litellm` that leaves a mark and exits
/// shows that it was started.
#[cfg(unix)]
#[test]
fn a_relative_gateways_folder_is_found_from_where_mcpsim_runs() {
    use std::os::unix::fs::PermissionsExt;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let relative = format!("target/mcpsim-relative-gateways-{}", std::process::id());
    let bin = root.join(&relative).join("litellm/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let mark = root.join(&relative).join("started");
    let program = bin.join("litellm");
    std::fs::write(
        &program,
        format!("#!/bin/sh\necho started > '{}'\nexit 1\n", mark.display()),
    )
    .unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let work = std::env::temp_dir().join(format!("mcpsim-live-relative-{}", std::process::id()));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mcpsim"))
        .current_dir(root)
        .args(["live", "--target", "litellm", "--gateways", &relative])
        .arg("--work")
        .arg(&work)
        .arg("scenarios/config-no-auth.json")
        .output()
        .expect("mcpsim runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        mark.exists(),
        "the stand-in gateway was never started: {stderr}"
    );
    assert!(!stderr.contains("No such file"), "{stderr}");
    let _ = std::fs::remove_dir_all(root.join(&relative));
    let _ = std::fs::remove_dir_all(&work);
}
