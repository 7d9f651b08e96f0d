//! Every catalogue scenario passes its checks, and its report and timeline
//! match the reviewed snapshot.

use std::path::PathBuf;

use mcpsim_gateway::Reference;
use mcpsim_harness::Scenario;

fn catalogue() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the catalogue folder exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_catalogue_has_the_scenarios_the_walking_skeleton_promises() {
    let names: Vec<String> = catalogue()
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().to_string())
        .collect();
    for required in [
        "reporter-rest-oauth2",
        "config-oauth2",
        "rest-bearer-token",
        "config-no-auth",
        "token-server-down",
        "mcp-rejects-token",
        "sse-three-pages",
        "update-during-discovery",
        "mcp-401-once-then-recovers",
        "token-server-hangs",
        "listing-hangs",
        "gateway-restart-config",
        "rest-survives-gateway-restart",
        "split-reporter",
        "split-data-plane-restart",
        "split-store-partition",
        "split-undecodable-row",
        "split-delete-everywhere",
        "split-rest-on-data-plane",
        "split-control-restart",
        "split-store-restart",
        "split-config-on-data-plane",
        "sse-chatty-crlf",
        "paging-empty-first-page",
        "paging-stuck-cursor",
        "tools-list-changed",
        "token-without-expires-in",
        "token-basic-only",
        "token-form-only",
        "token-requires-audience-resource-scope",
        "session-expires-after-requests",
        "session-expires-too-soon",
        "strict-version-header",
        "old-revision-only",
        "delete-hangs",
        "hostile-upstreams",
        "config-update-over-rest",
        "split-update-races-snapshot",
        "delete-answer-lost-in-restart",
    ] {
        assert!(names.iter().any(|n| n == required), "missing {required}");
    }
}

#[test]
fn every_catalogue_scenario_passes_and_matches_its_snapshot() {
    for file in catalogue() {
        let scenario = Scenario::load(&file).unwrap_or_else(|e| panic!("{e}"));
        let report = mcpsim_harness::run(&Reference::new().sut(), &scenario)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let failed: Vec<String> = report
            .failed_checks()
            .map(|c| format!("{}: {}", c.name, c.findings.join("; ")))
            .collect();
        assert!(
            failed.is_empty(),
            "{}: {failed:?}\n{}",
            file.display(),
            report.timeline()
        );

        let mut summary = serde_json::to_value(&report).unwrap();
        // The trace is shown as the timeline below; the fakes' request logs
        // say the same from the upstreams' side, and are read by checkers.
        for verbose in ["trace", "token_requests", "mcp_requests"] {
            summary.as_object_mut().unwrap().remove(verbose);
        }
        let stem = file.file_stem().unwrap().to_string_lossy().to_string();
        let text = format!(
            "{}\n\ntimeline:\n{}",
            serde_json::to_string_pretty(&summary).unwrap(),
            report.timeline()
        );
        insta::assert_snapshot!(stem, text);
    }
}
