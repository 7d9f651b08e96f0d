//! `POST /mcp-rest/tools/call` and the forwarded-header defect.

use mcpsim_gateway::{Defect, GatewaySettings, Role};
use serde_json::{json, Value};

use crate::rig::*;

const CALLER: &str = "Bearer c4ller-own-t0ken";

fn call_body(name: &str) -> Value {
    json!({"name": name, "arguments": {"city": "Paris"}})
}

#[tokio::test(start_paused = true)]
async fn a_call_uses_the_servers_own_credentials() {
    let world = World::with(&[
        (
            "db",
            Mcp {
                accept: tokens(1),
                ..Mcp::default()
            },
        ),
        (
            "static",
            Mcp {
                accept: Some([format!("Bearer {STATIC_TOKEN}")].into()),
                ..Mcp::default()
            },
        ),
    ]);
    let rig = rig(settings(&[]), &world, json!({}), None);
    rig.call("POST", "/v1/mcp/server", oauth_body("db1", "db"))
        .await;
    rig.call("POST", "/v1/mcp/server", bearer_body("st1", "static"))
        .await;
    pass(1_000).await;
    for (name, host) in [("db1-tool0", "db"), ("st1-tool2", "static")] {
        // The caller's own header is never forwarded.
        let (status, text) = rig
            .call_text(
                "POST",
                "/mcp-rest/tools/call",
                call_body(name),
                Some(CALLER),
            )
            .await;
        assert_eq!(status, 200, "{text}");
        let result: Value = serde_json::from_str(&text).unwrap();
        let tool = name.split_once('-').unwrap().1;
        assert_eq!(
            result["content"][0]["text"],
            format!("{tool} on {host}: {{\"city\":\"Paris\"}}")
        );
        assert!(!text.contains(SECRET) && !text.contains(STATIC_TOKEN) && !text.contains("tok0"));
        assert!(!world
            .auth_seen(host)
            .iter()
            .any(|a| a.as_deref() == Some(CALLER)));
    }
    // The call reused the cached token.
    assert_eq!(
        world.token_calls.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_refreshes_a_revoked_token_once() {
    let world = World::with(&[(
        "db",
        Mcp {
            accept: tokens(1),
            ..Mcp::default()
        },
    )]);
    let rig = rig(settings(&[]), &world, json!({}), None);
    rig.call("POST", "/v1/mcp/server", oauth_body("db1", "db"))
        .await;
    pass(1_000).await;
    world.set("db", |m| {
        m.accept = Some(["Bearer tok1".to_string()].into())
    });
    let (status, answer) = rig
        .call("POST", "/mcp-rest/tools/call", call_body("db1-tool0"))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        world.token_calls.load(std::sync::atomic::Ordering::SeqCst),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn bad_calls_are_refused_without_secrets() {
    let world = World::with(&[
        (
            "broken",
            Mcp {
                status: Some(500),
                ..Mcp::default()
            },
        ),
        ("static", Mcp::default()),
    ]);
    let rig = rig(settings(&[]), &world, json!({}), None);
    rig.call("POST", "/v1/mcp/server", bearer_body("b1", "broken"))
        .await;
    rig.call("POST", "/v1/mcp/server", bearer_body("st1", "static"))
        .await;
    rig.call("POST", "/v1/mcp/server", bearer_body("r1", "down"))
        .await;
    rig.call("POST", "/v1/mcp/server", oauth_body("o1", "static"))
        .await;
    let cases: Vec<(Value, u16, &str)> = vec![
        (call_body("nobody-tool0"), 404, "no tool named"),
        (call_body("notool"), 404, "no tool named"),
        (call_body("b1-tool0"), 502, "HTTP 500"),
        (call_body("r1-tool0"), 502, "connect"),
        (json!("{not json"), 422, "malformed JSON"),
        (json!({"arguments": {}}), 422, "name"),
        (json!({"name": 7}), 422, "name"),
        (
            json!({"name": "st1-tool0", "arguments": [1]}),
            422,
            "arguments",
        ),
    ];
    for (body, expected, says) in cases {
        let (status, text) = rig
            .call_text("POST", "/mcp-rest/tools/call", body.clone(), Some(CALLER))
            .await;
        assert_eq!(status, expected, "{body} -> {text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(says), "{body}: {error}");
        assert_eq!(answer["detail"]["error"], error);
        for secret in [SECRET, STATIC_TOKEN, CALLER] {
            assert!(!text.contains(secret), "{text}");
        }
    }
    // A token endpoint that does not answer in time is a 502 too.
    world
        .token_delay_ms
        .store(60_000, std::sync::atomic::Ordering::SeqCst);
    let (status, answer) = rig
        .call("POST", "/mcp-rest/tools/call", call_body("o1-tool0"))
        .await;
    assert_eq!(status, 502);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("token: timed out"),
        "{answer}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_control_plane_serves_no_calls() {
    let world = World::with(&[("static", Mcp::default())]);
    let settings = GatewaySettings {
        role: Role::Control,
        ..settings(&[])
    };
    let rig = rig(settings, &world, json!({}), None);
    rig.call("POST", "/v1/mcp/server", bearer_body("st1", "static"))
        .await;
    let (status, _) = rig
        .call("POST", "/mcp-rest/tools/call", call_body("st1-tool0"))
        .await;
    assert_eq!(status, 404);
    assert!(world.auth_seen("static").iter().all(|a| a.is_some()));
}

#[tokio::test(start_paused = true)]
async fn forwards_caller_authorization() {
    for on in [false, true] {
        let world = World::with(&[(
            "db",
            Mcp {
                accept: tokens(5),
                ..Mcp::default()
            },
        )]);
        let defects = switched(on, Defect::ForwardsCallerAuthorization);
        let rig = rig(settings(&defects), &world, json!({}), None);
        rig.call("POST", "/v1/mcp/server", oauth_body("db1", "db"))
            .await;
        pass(1_000).await;
        let (status, text) = rig
            .call_text(
                "POST",
                "/mcp-rest/tools/call",
                call_body("db1-tool0"),
                Some(CALLER),
            )
            .await;
        let forwarded = world
            .auth_seen("db")
            .iter()
            .any(|a| a.as_deref() == Some(CALLER));
        assert!(!text.contains(CALLER) && !text.contains(SECRET), "{text}");
        if on {
            // The caller's header overrides the server's token: 401, 502.
            assert!(forwarded);
            assert_eq!(status, 502, "{text}");
            assert!(text.contains("401"), "{text}");
        } else {
            assert!(!forwarded);
            assert_eq!(status, 200, "{text}");
        }
        // Without a header of its own, the caller gets the server's token.
        let (status, _) = rig
            .call("POST", "/mcp-rest/tools/call", call_body("db1-tool0"))
            .await;
        assert_eq!(status, 200);
    }
}

#[tokio::test(start_paused = true)]
async fn client_credentials_as_per_user() {
    for on in [false, true] {
        let world = World::with(&[
            (
                "db",
                Mcp {
                    accept: tokens(5),
                    ..Mcp::default()
                },
            ),
            (
                "static",
                Mcp {
                    accept: Some([format!("Bearer {STATIC_TOKEN}")].into()),
                    ..Mcp::default()
                },
            ),
        ]);
        let defects = switched(on, Defect::ClientCredentialsAsPerUser);
        let rig = rig(settings(&defects), &world, json!({}), None);
        rig.call("POST", "/v1/mcp/server", oauth_body("db1", "db"))
            .await;
        rig.call("POST", "/v1/mcp/server", bearer_body("st1", "static"))
            .await;
        pass(1_000).await;
        // Discovery uses the server's own token either way.
        assert_eq!(rig.row("db1").await["status"], "healthy");
        let listed = world.auth_seen("db").len();
        let (status, text) = rig
            .call_text("POST", "/mcp-rest/tools/call", call_body("db1-tool0"), None)
            .await;
        assert!(!text.contains(SECRET), "{text}");
        if on {
            assert_eq!(status, 401, "{text}");
            assert!(text.contains("OAuth2"), "{text}");
            assert_eq!(
                world.auth_seen("db").len(),
                listed,
                "the upstream was contacted"
            );
        } else {
            assert_eq!(status, 200, "{text}");
        }
        // A server with a static token is called either way.
        let (status, _) = rig
            .call("POST", "/mcp-rest/tools/call", call_body("st1-tool0"))
            .await;
        assert_eq!(status, 200);
    }
}

#[tokio::test(start_paused = true)]
async fn forwards_client_protocol_version() {
    for on in [false, true] {
        let world = World::with(&[("db", Mcp::default())]);
        let defects = switched(on, Defect::ForwardsClientProtocolVersion);
        let rig = rig(settings(&defects), &world, json!({}), None);
        rig.call("POST", "/v1/mcp/server", open_body("d1", "db"))
            .await;
        pass(1_000).await;
        // The caller speaks an older revision than the session agreed on
        // (the mock answers 2025-06-18).
        let (status, text) = rig
            .call_with(
                "POST",
                "/mcp-rest/tools/call",
                call_body("d1-tool0"),
                &[("mcp-protocol-version", "2025-03-26")],
            )
            .await;
        assert_eq!(status, 200, "{text}");
        let versions = world.versions.lock().unwrap().clone();
        let call = versions
            .iter()
            .find(|(_, method, _)| method == "tools/call")
            .unwrap();
        let read = if on { "2025-03-26" } else { "2025-06-18" };
        assert_eq!(call.2.as_deref(), Some(read), "{versions:?}");
        // Discovery has no caller: its session's version, either way.
        assert!(versions
            .iter()
            .filter(|(_, method, _)| method == "tools/list")
            .all(|(_, _, v)| v.as_deref() == Some("2025-06-18")));
    }
}

#[tokio::test(start_paused = true)]
async fn dash_split_ambiguous() {
    for on in [false, true] {
        let names = ["get-data", "search"].map(String::from).to_vec();
        let world = World::with(&[(
            "db",
            Mcp {
                names,
                ..Mcp::default()
            },
        )]);
        let defects = switched(on, Defect::DashSplitAmbiguous);
        let rig = rig(settings(&defects), &world, json!({}), None);
        rig.call("POST", "/v1/mcp/server", open_body("d1", "db"))
            .await;
        pass(1_000).await;
        assert_eq!(
            rig.tool_names(Some("d1")).await,
            ["d1-get-data", "d1-search"]
        );
        let (status, text) = rig
            .call_text(
                "POST",
                "/mcp-rest/tools/call",
                call_body("d1-get-data"),
                None,
            )
            .await;
        if on {
            // Split at the last '-': the alias `d1-get`, which no server has.
            assert_eq!(status, 404, "{text}");
        } else {
            assert_eq!(status, 200, "{text}");
            assert!(text.contains("get-data on db"), "{text}");
        }
        // A name with no '-' of its own is routed right either way.
        let (status, _) = rig
            .call("POST", "/mcp-rest/tools/call", call_body("d1-search"))
            .await;
        assert_eq!(status, 200);
    }
}

#[tokio::test(start_paused = true)]
async fn prefix_only_with_two_upstreams() {
    for on in [false, true] {
        let world = World::with(&[
            (
                "db",
                Mcp {
                    tools: 2,
                    ..Mcp::default()
                },
            ),
            (
                "wiki",
                Mcp {
                    tools: 1,
                    ..Mcp::default()
                },
            ),
        ]);
        let defects = switched(on, Defect::PrefixOnlyWithTwoUpstreams);
        let rig = rig(settings(&defects), &world, json!({}), None);
        rig.call("POST", "/v1/mcp/server", open_body("d1", "db"))
            .await;
        pass(1_000).await;
        let alone = rig.tool_names(Some("d1")).await;
        let name = if on {
            assert_eq!(alone, ["tool0", "tool1"]);
            "tool0"
        } else {
            assert_eq!(alone, ["d1-tool0", "d1-tool1"]);
            "d1-tool0"
        };
        let (status, text) = rig
            .call_text("POST", "/mcp-rest/tools/call", call_body(name), None)
            .await;
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("tool0 on db"), "{text}");
        // A second server: every name carries its prefix now, so the
        // name a client kept no longer calls anything.
        rig.call("POST", "/v1/mcp/server", open_body("w1", "wiki"))
            .await;
        pass(1_000).await;
        assert_eq!(
            rig.tool_names(None).await,
            ["d1-tool0", "d1-tool1", "w1-tool0"]
        );
        let (status, _) = rig
            .call("POST", "/mcp-rest/tools/call", call_body(name))
            .await;
        assert_eq!(status, if on { 404 } else { 200 });
    }
}

#[tokio::test(start_paused = true)]
async fn sanitized_names_collide() {
    for on in [false, true] {
        let names = ["pat.batch", "pat_batch", "get-data"]
            .map(String::from)
            .to_vec();
        let world = World::with(&[(
            "db",
            Mcp {
                names,
                ..Mcp::default()
            },
        )]);
        let defects = switched(on, Defect::SanitizedNamesCollide);
        let rig = rig(settings(&defects), &world, json!({}), None);
        rig.call("POST", "/v1/mcp/server", open_body("d1", "db"))
            .await;
        pass(1_000).await;
        let listed = rig.tool_names(Some("d1")).await;
        if on {
            // `pat.batch` became `pat_batch`, and the real `pat_batch`
            // was dropped as a duplicate.
            assert_eq!(listed, ["d1-get-data", "d1-pat_batch"]);
        } else {
            assert_eq!(listed, ["d1-get-data", "d1-pat.batch", "d1-pat_batch"]);
        }
        // The row still counts what the upstream listed.
        assert_eq!(rig.row("d1").await["tool_count"], 3);
    }
}

/// A gateway with a healthy server `d1` (two tools at `db`) and a second
/// server `w1` whose checks fail as `second` makes them; the tools of
/// every server at once, as answered.
async fn aggregate_beside(on: bool, defect: Defect, second: Value) -> (u16, Value) {
    let world = World::with(&[
        (
            "db",
            Mcp {
                tools: 2,
                ..Mcp::default()
            },
        ),
        (
            "wiki",
            Mcp {
                tools: 1,
                accept: tokens(0),
                ..Mcp::default()
            },
        ),
    ]);
    let rig = rig(settings(&switched(on, defect)), &world, json!({}), None);
    for body in [open_body("d1", "db"), second] {
        let (status, row) = rig.call("POST", "/v1/mcp/server", body).await;
        assert_eq!(status, 201, "{row}");
    }
    pass(1_000).await;
    assert_eq!(rig.row("d1").await["status"], "healthy");
    assert_eq!(rig.row("w1").await["status"], "unhealthy");
    assert_eq!(rig.tool_names(Some("d1")).await, ["d1-tool0", "d1-tool1"]);
    rig.call("GET", "/v1/mcp/tools", Value::Null).await
}

#[tokio::test(start_paused = true)]
async fn one_upstream_aborts_aggregate() {
    for on in [false, true] {
        // Nothing listens at `down`: w1's last error is at connect.
        let second = open_body("w1", "down");
        let (status, tools) =
            aggregate_beside(on, Defect::OneUpstreamAbortsAggregate, second).await;
        if on {
            assert_eq!(status, 502, "{tools}");
        } else {
            assert_eq!(status, 200, "{tools}");
            assert_eq!(tools["tools"].as_array().unwrap().len(), 2, "{tools}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn one_401_empties_aggregate() {
    for on in [false, true] {
        // `wiki` takes no token at all: w1's last error is a 401.
        let second = bearer_body("w1", "wiki");
        let (status, tools) = aggregate_beside(on, Defect::One401EmptiesAggregate, second).await;
        assert_eq!(status, 200, "{tools}");
        let listed = tools["tools"].as_array().unwrap().len();
        assert_eq!(listed, if on { 0 } else { 2 }, "{tools}");
    }
}
