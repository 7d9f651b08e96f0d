//! Generated scenarios against the reference gateway: every check holds.
//! A fixed proptest seed keeps CI reproducible; failures found here are
//! kept in `tests/generated.proptest-regressions` and replayed first.

use mcpsim_fakes::AuthMethod;
use mcpsim_gateway::{Defect, Defects, Reference};
use mcpsim_harness::explore::plan_tree;
use mcpsim_harness::generate::{
    plan_strategy, AuthPlan, Cut, Horizon, Link, Plan, Quirk, RegistrationPath, SessionLimit,
    StoreLag, Swarm, Target, UpdateChange, TICK_MS,
};
use mcpsim_harness::scenario::Action;
use mcpsim_harness::{Evidence, Scenario, Status};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, FileFailurePersistence, RngAlgorithm, TestRng, TestRunner};

#[test]
fn generated_scenarios_pass_every_check() {
    let config = Config {
        cases: 64,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/generated.proptest-regressions",
        ))),
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let target = Target::new(Reference::new().sut()).unwrap();
    let result = runner.run(&plan_strategy(), |plan| {
        // The checkers, and the path twin where the plan has one.
        let checked = mcpsim_harness::explore::check(&plan, &target, Evidence::Everything, false);
        if let Err((report, failed)) = checked {
            let scenario = plan.to_scenario(&target).unwrap();
            prop_assert!(
                false,
                "{failed:?}\n{}\n{}",
                serde_json::to_string_pretty(&scenario).unwrap(),
                report.map(|r| r.timeline()).unwrap_or_default()
            );
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The path-independence checker fails when the registration path changes
/// the ending: the same client-credentials server without `oauth2_flow`,
/// by config and by REST, with the REST path dropping the flow.
#[test]
fn path_independence_tells_config_from_a_rest_path_that_drops_the_flow() {
    let mut plan = plan_tree(1, 0).current();
    plan.path = RegistrationPath::Config;
    plan.auth = AuthPlan::ClientCredentials {
        with_flow: false,
        basic: false,
        expires_in_s: 3_600,
    };
    plan.swarm = Swarm::default();
    plan.restart = None;
    plan.list_latency_ms = 0;
    plan.latency_ms_max = 2;
    let twin = plan.path_twin().expect("a certain plan has a REST twin");
    assert_eq!(twin.path, RegistrationPath::Rest);
    for (defects, holds) in [
        (Defects::none(), true),
        (Defects::none().with(Defect::RestDropsOauth2Flow), false),
    ] {
        let target = Target::new(Reference::with_defects(defects).sut()).unwrap();
        let sut = &target.sut;
        let a = mcpsim_harness::run(sut, &plan.to_scenario(&target).unwrap()).unwrap();
        let b = mcpsim_harness::run(sut, &twin.to_scenario(&target).unwrap()).unwrap();
        let verdict =
            mcpsim_harness::check_path_independence(&a, "config", &b, "rest", "gateway", "srv");
        assert_eq!(verdict.passed, holds, "{:?}", verdict.findings);
    }
}

/// Bad inputs and fields beyond mcpsim's words are written in LiteLLM's REST
/// shape, so a target of another dialect gets none of them: its plans keep
/// to mcpsim's words.
#[test]
fn bodies_in_litellms_shape_go_only_to_a_target_of_its_dialect() {
    let mut plan = plan_tree(1, 0).current();
    plan.path = RegistrationPath::Rest;
    plan.swarm = Swarm {
        bad_input: true,
        ..Swarm::default()
    };
    plan.faults.both_bad_inputs = true;
    plan.faults.unknown_field = true;
    let mut target = Target::new(Reference::new().sut()).unwrap();
    let litellm = plan.for_target(target.caps).to_scenario(&target).unwrap();
    let bad = litellm
        .operator
        .steps
        .iter()
        .filter(|s| s.bad_input)
        .count();
    assert_eq!(bad, 2);
    assert!(litellm.operator.steps[0].extra_fields.is_some());
    target.caps.litellm_bodies = false;
    let other = plan.for_target(target.caps).to_scenario(&target).unwrap();
    assert!(other
        .operator
        .steps
        .iter()
        .all(|s| !s.bad_input && s.extra_fields.is_none() && s.raw_body.is_none()));
}

/// The reference, and a plan with every swarm kind off, no restart and
/// quick upstreams, on which the tests below switch on one thing at a time.
fn quiet_plan(path: RegistrationPath, auth: AuthPlan) -> (Target, Plan) {
    let target = Target::new(Reference::new().sut()).unwrap();
    let mut plan = plan_tree(1, 0).current();
    plan.path = path;
    plan.auth = auth;
    plan.swarm = Swarm::default();
    plan.restart = None;
    plan.list_latency_ms = 0;
    plan.latency_ms_max = 3;
    plan.page_size = Some(2);
    plan.tool_count = 3;
    (target, plan)
}

fn oauth(basic: bool) -> AuthPlan {
    AuthPlan::ClientCredentials {
        with_flow: true,
        basic,
        expires_in_s: 3_600,
    }
}

/// Runs a plan against the reference and says what failed.
fn run_plan(target: &Target, plan: &Plan) -> (Scenario, mcpsim_harness::Report) {
    let scenario = plan.to_scenario(target).unwrap();
    let report = mcpsim_harness::run(&target.sut, &scenario).unwrap();
    let failed: Vec<String> = report
        .failed_checks()
        .map(|c| format!("{}: {}", c.name, c.findings.join("; ")))
        .collect();
    assert!(
        failed.is_empty(),
        "{:?}: {failed:?}\n{}",
        plan,
        report.timeline()
    );
    (scenario, report)
}

/// A horizon case lives past several token lifetimes: with a coarser tick,
/// short tokens, sessions the server ends and a gateway asked to refresh a
/// second early, the gateway fetches new tokens within the run (no 401
/// needed), and every checker judges it without a false finding.
#[test]
fn a_horizon_case_crosses_token_expiry_and_the_gateway_refreshes() {
    for (expires_in_s, run_ms) in [(2, 4_000), (3, 7_000), (5, 7_000)] {
        let (target, mut plan) = quiet_plan(RegistrationPath::Rest, oauth(false));
        plan.swarm.horizon = true;
        plan.faults.horizon = Horizon {
            expires_in_s,
            run_ms,
            session_ttl_ms: 1_000,
        };
        let (scenario, report) = run_plan(&target, &plan);
        assert_eq!(scenario.network.tick_ms, TICK_MS);
        assert!(scenario.operator.poll_until_ms >= run_ms);
        assert_eq!(
            scenario.token_servers[0].config.expires_in_s,
            Some(expires_in_s)
        );
        assert_eq!(scenario.mcp_servers[0].config.session_ttl_ms, Some(1_000));
        assert_eq!(scenario.expect["srv"].status, Some(Status::Healthy));
        // Kept for a second less than stated: the refreshes the run holds.
        let kept_ms = (expires_in_s - 1) * 1_000;
        let issued = report.token_servers["auth"].issued;
        assert!(
            issued >= run_ms / (kept_ms + 1_000),
            "{expires_in_s} s tokens over {run_ms} ms: {issued} issued"
        );
        assert_eq!(report.mcp_servers["mcp"].unauthorized, 0);
    }
}

/// A create that gets one field wrong, then an update that mends it, for
/// every field an update can touch, each with an auth that has it: the
/// create's definition (in mcpsim's words and the fields beyond them)
/// differs from the update's, and the server ends healthy.
#[test]
fn a_create_then_update_mends_every_field() {
    let unstated_flow = AuthPlan::ClientCredentials {
        with_flow: false,
        basic: true,
        expires_in_s: 3_600,
    };
    for (field, auth) in [
        (UpdateChange::Url, AuthPlan::None),
        (UpdateChange::TokenUrl, oauth(true)),
        (UpdateChange::Credentials, oauth(true)),
        (UpdateChange::Credentials, AuthPlan::Bearer),
        (UpdateChange::ClientId, oauth(true)),
        (UpdateChange::Scopes, oauth(true)),
        (UpdateChange::AuthType, oauth(true)),
        (UpdateChange::AuthType, AuthPlan::Bearer),
        // `authorization_code` at first, and the flow left out at first.
        (UpdateChange::Flow, oauth(true)),
        (UpdateChange::Flow, unstated_flow),
        (UpdateChange::Headers, AuthPlan::Bearer),
        (UpdateChange::Alias, oauth(true)),
    ] {
        let (target, mut plan) = quiet_plan(RegistrationPath::RestThenUpdate, auth);
        plan.faults.update_change = field;
        let plan = plan.for_target(target.caps);
        assert_eq!(plan.update_change(), Some(field), "{field:?} {auth:?}");
        let (scenario, report) = run_plan(&target, &plan);
        let writes: Vec<_> = scenario
            .operator
            .steps
            .iter()
            .map(|s| match &s.action {
                Action::Create { spec, .. } | Action::Update { spec, .. } => {
                    (spec.clone().unwrap(), s.extra_fields.clone())
                }
                Action::Delete { .. } => panic!("no delete here"),
            })
            .collect();
        assert_eq!(writes.len(), 2, "{field:?}");
        assert_ne!(writes[0], writes[1], "{field:?}");
        assert_eq!(scenario.expect["srv"].status, Some(Status::Healthy));
        let text = format!("{field:?} {auth:?}: {:?}", report.steps);
        assert!(report.steps[1].ends_with("202"), "{text}");
        assert!(
            report.servers.iter().all(|s| s.status == Status::Healthy),
            "{text}"
        );
    }
}

/// A rewrite rotates one field between two working values on every path,
/// config servers (over REST, which the reference refuses) and both planes
/// of a split deployment included; the ending stays what the plan says.
#[test]
fn a_rewrite_rotates_a_field_on_every_path() {
    for path in RegistrationPath::ALL {
        for field in [
            UpdateChange::Url,
            UpdateChange::TokenUrl,
            UpdateChange::Credentials,
            UpdateChange::ClientId,
            UpdateChange::Scopes,
            UpdateChange::Flow,
        ] {
            let (target, mut plan) = quiet_plan(path, oauth(false));
            plan.swarm.rewrite = true;
            plan.faults.rewrite_change = field;
            let (scenario, report) = run_plan(&target, &plan);
            let last = scenario.operator.steps.last().unwrap();
            let case = format!("{path:?} {field:?}: {:?}", report.steps);
            assert!(
                matches!(&last.action, Action::Update { server, .. } if server == "srv"),
                "{case}"
            );
            let config_server = matches!(
                path,
                RegistrationPath::Config | RegistrationPath::ConfigOnData
            );
            let answered = report.steps.last().unwrap();
            if config_server {
                assert!(answered.contains("-> 400"), "{case}");
            } else {
                assert!(answered.ends_with("202"), "{case}");
            }
            assert_eq!(
                scenario.expect["srv"].status,
                Some(Status::Healthy),
                "{case}"
            );
        }
    }
}

/// A slow store's snapshots are in flight while writes land, and a gateway
/// cut from its store long enough to fail a sync must say so: the plan
/// states it, the reference does, and the same scenario without the cut
/// fails the stated expectation.
#[test]
fn a_slow_store_and_a_long_store_partition_are_stated_and_judged() {
    for path in [
        RegistrationPath::Rest,
        RegistrationPath::RestOnData,
        RegistrationPath::ConfigOnData,
        RegistrationPath::DeleteThenCreate,
    ] {
        let (target, mut plan) = quiet_plan(path, AuthPlan::None);
        plan.latency_ms_max = 2;
        plan.swarm.slow_store = true;
        plan.faults.store_lag = StoreLag {
            latency_ms: 50,
            snapshot_delay_ms: 250,
        };
        plan.swarm.partition = true;
        plan.faults.partition = Cut {
            link: Link::Store,
            at_ms: 100,
            for_ms: 800,
        };
        let (scenario, _) = run_plan(&target, &plan);
        assert_eq!(scenario.stores[0].config.latency_ms, 50);
        assert_eq!(scenario.stores[0].config.snapshot_delay_ms, 250);
        assert_eq!(scenario.expect_store_unreachable, [plan.asked_host()]);

        let mut uncut = scenario.clone();
        uncut.faults.clear();
        let report = mcpsim_harness::run(&target.sut, &uncut).unwrap();
        let failed: Vec<&str> = report.failed_checks().map(|c| c.name).collect();
        assert_eq!(failed, ["expectations"], "{path:?}");
    }
    // A data plane that learns the server from the store alone holds
    // nothing to report health for while it is cut: nothing is stated.
    let (target, mut plan) = quiet_plan(RegistrationPath::RestOnControl, AuthPlan::None);
    plan.swarm.partition = true;
    plan.faults.partition = Cut {
        link: Link::Store,
        at_ms: 100,
        for_ms: 800,
    };
    let scenario = plan.to_scenario(&target).unwrap();
    assert!(scenario.expect_store_unreachable.is_empty());
}

/// Every token server's registration states the client authentication the
/// gateway is told to use (or the one its endpoint insists on), so a strict
/// endpoint holds the gateway to it; the lenient quirk lets the other pass,
/// and the upstreams' other leniencies come with it.
#[test]
fn registrations_state_the_configured_client_authentication() {
    for (basic, quirk, method) in [
        (true, None, AuthMethod::Basic),
        (false, None, AuthMethod::Form),
        (false, Some(Quirk::BasicOnlyToken), AuthMethod::Basic),
        (true, Some(Quirk::FormOnlyToken), AuthMethod::Form),
        (true, Some(Quirk::Lenient), AuthMethod::Basic),
    ] {
        let (target, mut plan) = quiet_plan(RegistrationPath::Config, oauth(basic));
        if let Some(quirk) = quirk {
            plan.swarm.quirk = true;
            plan.faults.quirk = quirk;
        }
        let (scenario, report) = run_plan(&target, &plan);
        let tokens = &scenario.token_servers[0].config;
        assert!(tokens.clients.iter().all(|c| c.auth_method == Some(method)));
        let lenient = quirk == Some(Quirk::Lenient);
        assert_eq!(tokens.lenient_client_auth, lenient);
        let mcp = &scenario.mcp_servers[0].config;
        assert_eq!(mcp.lenient_version_header, lenient);
        assert_eq!(mcp.lenient_session, lenient);
        assert_eq!(mcp.lenient_accept, lenient);
        assert!(report.token_servers["auth"].issued >= 1);
    }
}

/// A stateless upstream opens no session, and the session-drop fault, which
/// needs one, is left out.
#[test]
fn a_stateless_upstream_has_no_session_to_drop() {
    let (target, mut plan) = quiet_plan(RegistrationPath::Rest, oauth(false));
    plan.swarm.quirk = true;
    plan.faults.quirk = Quirk::Stateless;
    plan.swarm.session_drop = true;
    let (scenario, report) = run_plan(&target, &plan);
    let mcp = &scenario.mcp_servers[0].config;
    assert!(!mcp.sessions);
    assert!(mcp.failures.is_empty());
    assert_eq!(report.mcp_servers["mcp"].sessions_opened, 0);
}

/// A quirk of the token endpoint is never spent on a case without a token
/// to fetch: such a case draws client credentials; other quirks keep every
/// auth.
#[test]
fn a_token_endpoint_quirk_draws_client_credentials() {
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[5; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let (mut token_quirks, mut other_without) = (0, 0);
    for _ in 0..2_000 {
        let plan = plan_strategy().new_tree(&mut runner).unwrap().current();
        let cc = matches!(plan.auth, AuthPlan::ClientCredentials { .. });
        if plan.swarm.quirk && plan.faults.quirk.of_token_endpoint() {
            token_quirks += 1;
            assert!(cc, "{plan:?}");
        } else if plan.swarm.quirk && !cc {
            other_without += 1;
        }
    }
    assert!(token_quirks > 20, "{token_quirks}");
    assert!(other_without > 20, "{other_without}");
}

/// Tokens that state no lifetime live 3 s while the gateway is told to keep
/// them 1 s: the operator polls past the first token's death, the gateway
/// fetches new ones a second apart, and no token is refused.
#[test]
fn short_unstated_tokens_are_kept_as_long_as_the_gateway_is_told() {
    let (target, mut plan) = quiet_plan(RegistrationPath::Rest, oauth(false));
    plan.swarm.quirk = true;
    plan.faults.quirk = Quirk::ShortUnstatedToken;
    let (scenario, report) = run_plan(&target, &plan);
    let tokens = &scenario.token_servers[0].config;
    assert_eq!((tokens.expires_in_s, tokens.lifetime_s), (None, Some(3)));
    assert_eq!(
        scenario.gateways[0].settings["token_default_ttl_s"],
        serde_json::json!(1)
    );
    assert!(scenario.operator.poll_until_ms >= 3_500);
    assert!(report.token_servers["auth"].issued >= 3);
    assert_eq!(report.mcp_servers["mcp"].unauthorized, 0);
}

/// Awkward tool names are the first tools of the upstream, and the
/// reference lists and calls each as it is.
#[test]
fn awkward_tool_names_are_listed_and_called_as_they_are() {
    let (target, mut plan) = quiet_plan(RegistrationPath::Config, AuthPlan::None);
    plan.swarm.quirk = true;
    plan.faults.quirk = Quirk::AwkwardNames;
    plan.tool_count = 4;
    let (scenario, report) = run_plan(&target, &plan);
    let names: Vec<&str> = scenario.mcp_servers[0]
        .config
        .tools
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(names, ["get-data", "pat.batch", "pat_batch", "tool_003"]);
    assert_eq!(report.mcp_servers["mcp"].by_method["tools/call"], 4);
}

/// A session limit of exactly one listing's requests: every listing
/// succeeds, and its closing `DELETE` meets a session the server already
/// ended (404), which a gateway must shrug off.
#[test]
fn a_session_limit_of_one_listing_lets_the_listing_through_and_ends_the_session() {
    let (target, mut plan) = quiet_plan(RegistrationPath::Rest, AuthPlan::None);
    plan.swarm.quirk = true;
    plan.faults.quirk = Quirk::SessionExpiry;
    plan.faults.session_limit = SessionLimit::Listing;
    let (scenario, report) = run_plan(&target, &plan);
    // Three tools on pages of two: initialized and two pages.
    assert_eq!(scenario.mcp_servers[0].config.session_max_requests, Some(3));
    assert_eq!(scenario.expect["srv"].status, Some(Status::Healthy));
    let log = &report.mcp_requests["mcp"].records;
    assert!(log
        .iter()
        .any(|r| r.http_method == "DELETE" && r.status == Some(404)));
}

/// `mcp-flaky`: the MCP server fails its first listings with an error
/// status, then recovers; the case polls until a re-check after the last
/// failure, and the server ends healthy.
#[test]
fn an_mcp_server_that_fails_then_recovers_ends_healthy() {
    for (status, failures) in [(500, 1), (503, 2), (403, 2)] {
        let (target, mut plan) = quiet_plan(RegistrationPath::Rest, AuthPlan::None);
        plan.swarm.mcp_flaky = true;
        plan.faults.mcp_flake_status = status;
        plan.faults.mcp_failures = failures;
        let (scenario, report) = run_plan(&target, &plan);
        let rule = &scenario.mcp_servers[0].config.failures[0];
        assert_eq!(rule.count, Some(failures));
        assert_eq!(scenario.expect["srv"].status, Some(Status::Healthy));
        let refused = report.mcp_requests["mcp"]
            .records
            .iter()
            .filter(|r| r.rpc_method.as_deref() == Some("tools/list") && r.status == Some(status))
            .count();
        assert_eq!(refused, failures as usize);
    }
}

/// Writes racing a sync: with a slow store whose reads hold their snapshot
/// a while, the writes after the first create (a delete, an update, a
/// rotation) reach the store while a read that took its snapshot before
/// them is still on its way back, on every path that has such a write; the
/// reference, which keeps tombstones and never lets an older snapshot
/// undo a newer write, passes every check.
#[test]
fn a_later_write_lands_while_a_store_snapshot_is_in_flight() {
    use mcpsim_harness::trace::What;
    for (path, rewrite) in [
        (RegistrationPath::DeleteThenCreate, false),
        (RegistrationPath::RestThenUpdate, false),
        (RegistrationPath::Rest, true),
        (RegistrationPath::RestOnControl, true),
    ] {
        let (target, mut plan) = quiet_plan(path, AuthPlan::None);
        plan.swarm.slow_store = true;
        plan.swarm.rewrite = rewrite;
        plan.faults.same_id = false;
        plan.faults.write_races_sync = true;
        plan.faults.store_lag = StoreLag {
            latency_ms: 50,
            snapshot_delay_ms: 250,
        };
        let (_, report) = run_plan(&target, &plan);
        // Each exchange with the store, as (host, method, start, end).
        let spans: Vec<(&str, &str, u64, u64)> = report
            .trace
            .iter()
            .filter_map(|e| match &e.what {
                What::Http {
                    to,
                    method,
                    took_ms,
                    ..
                } if to == "db" => {
                    Some((e.host.as_str(), method.as_str(), e.at_ms - took_ms, e.at_ms))
                }
                _ => None,
            })
            .collect();
        let later_writes: Vec<_> = spans
            .iter()
            .filter(|(_, m, start, _)| *m != "GET" && *start > 300)
            .collect();
        assert!(!later_writes.is_empty(), "{path:?}: {spans:?}");
        let raced = later_writes.iter().any(|(host, _, start, end)| {
            spans.iter().any(|(h, m, read_start, read_end)| {
                h == host && *m == "GET" && read_start < start && end < read_end
            })
        });
        assert!(raced, "{path:?}: no write within a read: {spans:?}");
    }
}
