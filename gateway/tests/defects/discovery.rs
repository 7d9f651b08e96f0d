//! Defects of discovery: normalisation, error handling, health, tokens,
//! timeouts, sessions, paging and supersession.

use mcpsim_gateway::{Defect, GatewayEvent, GatewaySettings};
use serde_json::{json, Value};

use crate::rig::*;

fn finished(e: &GatewayEvent) -> bool {
    matches!(e, GatewayEvent::DiscoveryFinished { .. })
}

fn cancelled(e: &GatewayEvent) -> bool {
    matches!(e, GatewayEvent::DiscoveryCancelled { .. })
}

#[tokio::test(start_paused = true)]
async fn rest_drops_oauth2_flow() {
    for on in [false, true] {
        let world = World::with(&[(
            "db",
            Mcp {
                accept: tokens(1),
                ..Mcp::default()
            },
        )]);
        let defects = switched(on, Defect::RestDropsOauth2Flow);
        let rig = rig(settings(&defects), &world, json!({}), None);
        let (status, row) = rig
            .call("POST", "/v1/mcp/server", oauth_body("db1", "db"))
            .await;
        assert_eq!(status, 201, "{row}");
        pass(1_000).await;
        let row = rig.row("db1").await;
        if on {
            // No token, no header, a 401.
            assert_eq!(row["oauth2_flow"], Value::Null);
            assert_eq!(row["status"], "unhealthy");
            assert!(
                row["health_check_error"].as_str().unwrap().contains("401"),
                "{row}"
            );
            assert_eq!(
                world.token_calls.load(std::sync::atomic::Ordering::SeqCst),
                0
            );
            assert_eq!(world.auth_seen("db"), vec![None]);
        } else {
            assert_eq!(row["oauth2_flow"], "client_credentials");
            assert_eq!(row["status"], "healthy", "{row}");
            assert_eq!(rig.tool_count("db1").await, 3);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn rest_drops_oauth2_flow_leaves_the_config_path_alone() {
    let world = World::with(&[(
        "db",
        Mcp {
            accept: tokens(1),
            ..Mcp::default()
        },
    )]);
    let config = json!({"db": {"url": "http://db/mcp", "auth_type": "oauth2", "oauth2_flow": "client_credentials",
        "token_url": "http://auth/token", "client_id": "gateway", "client_secret": SECRET}});
    let rig = rig(
        settings(&[Defect::RestDropsOauth2Flow]),
        &world,
        config,
        None,
    );
    pass(1_000).await;
    let (_, rows) = rig.call("GET", "/v1/mcp/server", Value::Null).await;
    assert_eq!(rows[0]["status"], "healthy", "{rows}");
}

#[tokio::test(start_paused = true)]
async fn error_becomes_cancellation() {
    for on in [false, true] {
        let world = World::with(&[(
            "broken",
            Mcp {
                status: Some(500),
                ..Mcp::default()
            },
        )]);
        let defects = switched(on, Defect::ErrorBecomesCancellation);
        let rig = rig(settings(&defects), &world, json!({}), None);
        rig.call("POST", "/v1/mcp/server", bearer_body("b1", "broken"))
            .await;
        rig.call("POST", "/v1/mcp/server", bearer_body("r1", "down"))
            .await;
        pass(1_000).await;
        for id in ["b1", "r1"] {
            let row = rig.row(id).await;
            assert!(row["last_health_check"].is_string(), "{row}");
            assert_eq!(rig.tool_count(id).await, 0);
            if on {
                // LiteLLM's triple: unknown, no error, a fresh timestamp.
                assert_eq!(row["status"], "unknown", "{row}");
                assert_eq!(row["health_check_error"], Value::Null, "{row}");
            } else {
                assert_eq!(row["status"], "unhealthy", "{row}");
                let error = row["health_check_error"].as_str().unwrap();
                assert!(
                    error.contains("HTTP 500") || error.contains("connect"),
                    "{error}"
                );
            }
        }
        // The swallowing is the bug; the attempt still ends on record.
        assert_eq!(rig.count(finished), 2);
    }
}

#[tokio::test(start_paused = true)]
async fn health_skips_runtime_token() {
    for on in [false, true] {
        let world = World::with(&[("db", Mcp::default()), ("static", Mcp::default())]);
        let defects = switched(on, Defect::HealthSkipsRuntimeToken);
        let rig = rig(settings(&defects), &world, json!({}), None);
        rig.call("POST", "/v1/mcp/server", oauth_body("db1", "db"))
            .await;
        rig.call("POST", "/v1/mcp/server", bearer_body("st1", "static"))
            .await;
        pass(1_000).await;
        let row = rig.row("db1").await;
        // The listing works either way; only the health says otherwise.
        assert_eq!(rig.tool_count("db1").await, 3);
        assert!(row["last_health_check"].is_string());
        assert_eq!(row["health_check_error"], Value::Null);
        assert_eq!(
            row["status"],
            if on { "unknown" } else { "healthy" },
            "{row}"
        );
        // A server with a static token is checked.
        assert_eq!(rig.row("st1").await["status"], "healthy");
    }
}

#[tokio::test(start_paused = true)]
async fn no_invalidate_on_401() {
    for on in [false, true] {
        let world = World::with(&[(
            "db",
            Mcp {
                accept: tokens(1),
                ..Mcp::default()
            },
        )]);
        let defects = switched(on, Defect::NoInvalidateOn401);
        let settings = GatewaySettings {
            check_interval_ms: 10_000,
            ..settings(&defects)
        };
        let rig = rig(settings, &world, json!({}), None);
        rig.call("POST", "/v1/mcp/server", oauth_body("db1", "db"))
            .await;
        pass(1_000).await;
        assert_eq!(rig.row("db1").await["status"], "healthy");
        // The upstream revokes tok0 and will take tok1.
        world.set("db", |m| {
            m.accept = Some(["Bearer tok1".to_string()].into())
        });
        pass(10_000).await;
        let row = rig.row("db1").await;
        let fetched = world.token_calls.load(std::sync::atomic::Ordering::SeqCst);
        if on {
            assert_eq!(row["status"], "unhealthy", "{row}");
            assert!(row["health_check_error"].as_str().unwrap().contains("401"));
            assert_eq!(fetched, 1);
            assert_eq!(
                rig.count(|e| matches!(e, GatewayEvent::TokenInvalidated { .. })),
                0
            );
        } else {
            assert_eq!(row["status"], "healthy", "{row}");
            assert_eq!(fetched, 2);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn discovery_tied_to_request() {
    for on in [false, true] {
        let world = World::with(&[(
            "slow",
            Mcp {
                delay_ms: 2_000,
                ..Mcp::default()
            },
        )]);
        let defects = switched(on, Defect::DiscoveryTiedToRequest);
        let rig = rig(settings(&defects), &world, json!({}), None);
        // The operator gives up after one second: the request is dropped.
        let gave_up = tokio::time::timeout(
            std::time::Duration::from_millis(1_000),
            rig.call("POST", "/v1/mcp/server", bearer_body("s1", "slow")),
        )
        .await;
        assert_eq!(gave_up.is_err(), on, "the reference answers at once");
        pass(120_000).await;
        let started = rig.count(|e| matches!(e, GatewayEvent::DiscoveryStarted { .. }));
        assert!(started >= 1);
        let row = rig.row("s1").await;
        if on {
            // Registered, but the attempt died with the request: no end on
            // record, no status, and no task left to try again.
            assert_eq!(started, 1);
            assert_eq!(rig.count(finished) + rig.count(cancelled), 0);
            assert_eq!(row["status"], "unknown");
            assert_eq!(row["last_health_check"], Value::Null);
        } else {
            assert!(rig.count(finished) >= 1);
            assert_eq!(row["status"], "healthy");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn discovery_tied_to_request_answers_after_the_listing() {
    let world = World::with(&[(
        "slow",
        Mcp {
            delay_ms: 2_000,
            ..Mcp::default()
        },
    )]);
    let rig = rig(
        settings(&[Defect::DiscoveryTiedToRequest]),
        &world,
        json!({}),
        None,
    );
    let (status, row) = rig
        .call("POST", "/v1/mcp/server", bearer_body("s1", "slow"))
        .await;
    assert_eq!(status, 201);
    assert_eq!(row["status"], "healthy", "{row}");
    // The registry's task takes over for the interval checks.
    pass(70_000).await;
    assert!(rig.count(finished) >= 2);
}

#[tokio::test(start_paused = true)]
async fn shared_timeout_budget() {
    for on in [false, true] {
        // 7 s for the token, 3 requests of 1.5 s for the listing (the
        // closing DELETE is outside the budget), 10 s each.
        let world = World::with(&[(
            "db",
            Mcp {
                delay_ms: 1_500,
                ..Mcp::default()
            },
        )]);
        world
            .token_delay_ms
            .store(7_000, std::sync::atomic::Ordering::SeqCst);
        let defects = switched(on, Defect::SharedTimeoutBudget);
        let settings = GatewaySettings {
            token_timeout_ms: 10_000,
            list_timeout_ms: 10_000,
            ..settings(&defects)
        };
        let rig = rig(settings, &world, json!({}), None);
        rig.call("POST", "/v1/mcp/server", oauth_body("db1", "db"))
            .await;
        pass(30_000).await;
        let row = rig.row("db1").await;
        if on {
            assert_eq!(row["status"], "unhealthy", "{row}");
            assert!(row["health_check_error"]
                .as_str()
                .unwrap()
                .contains("timed out"));
        } else {
            assert_eq!(row["status"], "healthy", "{row}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn no_reinitialize_on_404() {
    for on in [false, true] {
        let world = World::with(&[(
            "forgetful",
            Mcp {
                forget_once: true,
                ..Mcp::default()
            },
        )]);
        let defects = switched(on, Defect::NoReinitializeOn404);
        let rig = rig(settings(&defects), &world, json!({}), None);
        rig.call("POST", "/v1/mcp/server", bearer_body("f1", "forgetful"))
            .await;
        pass(1_000).await;
        let row = rig.row("f1").await;
        if on {
            assert_eq!(row["status"], "unhealthy");
            assert_eq!(row["health_check_error"], "list: HTTP 404 Not Found");
        } else {
            assert_eq!(row["status"], "healthy", "{row}");
            assert_eq!(rig.tool_count("f1").await, 3);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn first_page_only() {
    for on in [false, true] {
        let world = World::with(&[(
            "paged",
            Mcp {
                tools: 5,
                page_size: 2,
                ..Mcp::default()
            },
        )]);
        let defects = switched(on, Defect::FirstPageOnly);
        let rig = rig(settings(&defects), &world, json!({}), None);
        rig.call("POST", "/v1/mcp/server", bearer_body("p1", "paged"))
            .await;
        pass(1_000).await;
        assert_eq!(rig.row("p1").await["status"], "healthy");
        assert_eq!(rig.tool_count("p1").await, if on { 2 } else { 5 });
    }
}

#[tokio::test(start_paused = true)]
async fn superseded_result_wins() {
    for on in [false, true] {
        // The old definition is slow and has 2 tools, the new one fast with 5.
        let world = World::with(&[
            (
                "old",
                Mcp {
                    tools: 2,
                    delay_ms: 5_000,
                    ..Mcp::default()
                },
            ),
            (
                "new",
                Mcp {
                    tools: 5,
                    ..Mcp::default()
                },
            ),
        ]);
        let defects = switched(on, Defect::SupersededResultWins);
        let rig = rig(settings(&defects), &world, json!({}), None);
        rig.call("POST", "/v1/mcp/server", bearer_body("s1", "old"))
            .await;
        pass(1_000).await;
        let (status, _) = rig
            .call(
                "PUT",
                "/v1/mcp/server",
                json!({"server_id": "s1", "url": "http://new/mcp"}),
            )
            .await;
        assert_eq!(status, 202);
        pass(1_000).await;
        assert_eq!(rig.tool_count("s1").await, 5);
        pass(30_000).await;
        let row = rig.row("s1").await;
        assert_eq!(row["url"], "http://new/mcp");
        if on {
            // The old listing finished last and wrote over the new one.
            assert_eq!(rig.tool_count("s1").await, 2);
            assert_eq!(rig.count(cancelled), 0);
        } else {
            assert_eq!(rig.tool_count("s1").await, 5);
            assert_eq!(rig.count(cancelled), 1);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn superseded_result_wins_cannot_resurrect_a_deleted_server() {
    let world = World::with(&[(
        "old",
        Mcp {
            delay_ms: 5_000,
            ..Mcp::default()
        },
    )]);
    let rig = rig(
        settings(&[Defect::SupersededResultWins]),
        &world,
        json!({}),
        None,
    );
    rig.call("POST", "/v1/mcp/server", bearer_body("s1", "old"))
        .await;
    pass(1_000).await;
    assert_eq!(
        rig.call("DELETE", "/v1/mcp/server/s1", Value::Null).await.0,
        202
    );
    pass(60_000).await;
    // The attempt ran on, uncancelled, but has nowhere to write.
    assert_eq!(rig.count(cancelled), 0);
    assert_eq!(rig.count(finished), 0);
    assert_eq!(
        rig.call("GET", "/v1/mcp/server/s1", Value::Null).await.0,
        404
    );
    assert!(!world.auth_seen("old").is_empty());
    rig.gateway.shutdown();
}

#[tokio::test(start_paused = true)]
async fn client_broken_after_error() {
    for on in [false, true] {
        let world = World::with(&[(
            "flaky",
            Mcp {
                status: Some(500),
                ..Mcp::default()
            },
        )]);
        let defects = switched(on, Defect::ClientBrokenAfterError);
        let settings = GatewaySettings {
            check_interval_ms: 1_000,
            ..settings(&defects)
        };
        let rig = rig(settings, &world, json!({}), None);
        rig.call("POST", "/v1/mcp/server", bearer_body("f1", "flaky"))
            .await;
        pass(500).await;
        assert_eq!(rig.row("f1").await["status"], "unhealthy");
        // The upstream recovers before the next check.
        world.set("flaky", |m| m.status = None);
        let before = world.auth_seen("flaky").len();
        pass(2_000).await;
        let row = rig.row("f1").await;
        let reached = world.auth_seen("flaky").len() - before;
        if on {
            assert_eq!(row["status"], "unhealthy", "{row}");
            let error = row["health_check_error"].as_str().unwrap();
            assert!(
                error.contains("HTTP 500") && error.contains("broken"),
                "{error}"
            );
            assert_eq!(reached, 0, "the upstream was contacted");
            // An update mends the client.
            let (status, _) = rig
                .call(
                    "PUT",
                    "/v1/mcp/server",
                    json!({"server_id": "f1", "description": "again"}),
                )
                .await;
            assert_eq!(status, 202);
            pass(500).await;
            assert_eq!(rig.row("f1").await["status"], "healthy");
        } else {
            assert_eq!(row["status"], "healthy", "{row}");
            assert!(reached > 0);
        }
    }
}

/// A gateway with one unauthenticated server `d1` at host `db`, created
/// over REST and re-checked every half second.
async fn checked(on: bool, defect: Defect, mcp: Mcp) -> (std::sync::Arc<World>, Rig) {
    checked_every(500, on, defect, mcp).await
}

/// As [`checked`], re-checked every `check_interval_ms`.
async fn checked_every(
    check_interval_ms: u64,
    on: bool,
    defect: Defect,
    mcp: Mcp,
) -> (std::sync::Arc<World>, Rig) {
    let world = World::with(&[("db", mcp)]);
    let settings = GatewaySettings {
        list_timeout_ms: 2_000,
        check_interval_ms,
        ..settings(&switched(on, defect))
    };
    let rig = rig(settings, &world, json!({}), None);
    let body = json!({"server_id": "d1", "server_name": "d1", "transport": "http",
        "url": "http://db/mcp"});
    let (status, row) = rig.call("POST", "/v1/mcp/server", body).await;
    assert_eq!(status, 201, "{row}");
    (world, rig)
}

#[tokio::test(start_paused = true)]
async fn error_listed_as_healthy() {
    for on in [false, true] {
        let mcp = Mcp {
            status: Some(500),
            ..Mcp::default()
        };
        let (_, rig) = checked(on, Defect::ErrorListedAsHealthy, mcp).await;
        pass(300).await;
        let row = rig.row("d1").await;
        assert_eq!(rig.tool_count("d1").await, 0);
        if on {
            assert_eq!(row["status"], "healthy", "{row}");
            assert_eq!(row["health_check_error"], Value::Null);
        } else {
            assert_eq!(row["status"], "unhealthy", "{row}");
            assert!(row["health_check_error"]
                .as_str()
                .unwrap()
                .contains("HTTP 500"));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn short_health_timeout() {
    for on in [false, true] {
        // Three requests of 300 ms: within 2 s, not within a quarter of it.
        let mcp = Mcp {
            delay_ms: 300,
            ..Mcp::default()
        };
        let (_, rig) = checked(on, Defect::ShortHealthTimeout, mcp).await;
        pass(1_200).await;
        let row = rig.row("d1").await;
        if on {
            assert_eq!(row["status"], "unhealthy", "{row}");
            assert!(row["health_check_error"]
                .as_str()
                .unwrap()
                .contains("timed out after 500 ms"));
        } else {
            assert_eq!(row["status"], "healthy", "{row}");
        }
        // A tool call keeps the whole budget: the tool works while its
        // server is reported unhealthy.
        let (status, text) = rig
            .call_text(
                "POST",
                "/mcp-rest/tools/call",
                json!({"name": "d1-tool0", "arguments": {}}),
                None,
            )
            .await;
        assert_eq!(status, 200, "{text}");
    }
}

#[tokio::test(start_paused = true)]
async fn never_restored_after_recovery() {
    for on in [false, true] {
        let mcp = Mcp {
            list_errors: vec![503],
            ..Mcp::default()
        };
        let (world, rig) = checked(on, Defect::NeverRestoredAfterRecovery, mcp).await;
        pass(300).await;
        assert_eq!(rig.row("d1").await["status"], "unhealthy");
        pass(2_000).await;
        let row = rig.row("d1").await;
        if on {
            assert_eq!(row["status"], "unhealthy", "{row}");
            assert_eq!(world.count("db", "tools/list"), 1);
        } else {
            assert_eq!(row["status"], "healthy", "{row}");
            assert_eq!(rig.tool_count("d1").await, 3);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn stale_tools_kept() {
    for on in [false, true] {
        let (world, rig) = checked(on, Defect::StaleToolsKept, Mcp::default()).await;
        pass(300).await;
        assert_eq!(rig.tool_count("d1").await, 3);
        world.set("db", |m| m.status = Some(503));
        pass(1_000).await;
        let row = rig.row("d1").await;
        assert_eq!(row["status"], "unhealthy", "{row}");
        assert_eq!(rig.tool_count("d1").await, if on { 3 } else { 0 });
    }
}

#[tokio::test(start_paused = true)]
async fn stateless_upstream_refused() {
    for on in [false, true] {
        let mcp = Mcp {
            stateless: true,
            ..Mcp::default()
        };
        let (_, rig) = checked(on, Defect::StatelessUpstreamRefused, mcp).await;
        pass(300).await;
        let row = rig.row("d1").await;
        if on {
            assert_eq!(row["status"], "unhealthy", "{row}");
            assert!(row["health_check_error"]
                .as_str()
                .unwrap()
                .contains("no Mcp-Session-Id"));
        } else {
            assert_eq!(row["status"], "healthy", "{row}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn delete_404_fails_session() {
    for on in [false, true] {
        let mcp = Mcp {
            delete_status: 404,
            ..Mcp::default()
        };
        let (world, rig) = checked(on, Defect::Delete404FailsSession, mcp).await;
        pass(300).await;
        let row = rig.row("d1").await;
        // The DELETE goes out either way; only the defect fails on it.
        assert_eq!(world.count("db", "DELETE"), 1);
        if on {
            assert_eq!(row["status"], "unhealthy", "{row}");
            assert!(row["health_check_error"]
                .as_str()
                .unwrap()
                .contains("HTTP 404"));
        } else {
            assert_eq!(row["status"], "healthy", "{row}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn initialize_twice_per_exchange() {
    for on in [false, true] {
        let (world, rig) = checked(on, Defect::InitializeTwicePerExchange, Mcp::default()).await;
        pass(300).await;
        assert_eq!(rig.row("d1").await["status"], "healthy");
        assert_eq!(world.count("db", "tools/list"), 1);
        assert_eq!(world.count("db", "initialize"), if on { 2 } else { 1 });
        // The session thrown away is never ended.
        assert_eq!(world.count("db", "DELETE"), 1);
    }
}

/// The row of `d1` after its first check against an SSE upstream.
async fn sse_row(on: bool, defect: Defect, mcp: Mcp) -> Value {
    let (_, rig) = checked(on, defect, Mcp { sse: true, ..mcp }).await;
    pass(300).await;
    rig.row("d1").await
}

#[tokio::test(start_paused = true)]
async fn empty_sse_data_parsed() {
    for on in [false, true] {
        let row = sse_row(on, Defect::EmptySseDataParsed, Mcp::default()).await;
        if on {
            assert_eq!(row["status"], "unhealthy", "{row}");
            let error = row["health_check_error"].as_str().unwrap();
            assert!(error.contains("EOF while parsing"), "{error}");
        } else {
            assert_eq!(row["status"], "healthy", "{row}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn first_sse_event_only() {
    for on in [false, true] {
        let mcp = Mcp {
            sse_notice: true,
            ..Mcp::default()
        };
        let row = sse_row(on, Defect::FirstSseEventOnly, mcp.clone()).await;
        if on {
            assert_eq!(row["status"], "unhealthy", "{row}");
            let error = row["health_check_error"].as_str().unwrap();
            assert!(error.contains("first SSE event"), "{error}");
        } else {
            assert_eq!(row["status"], "healthy", "{row}");
        }
        // Without an event before the response, the defect does not show.
        let row = sse_row(on, Defect::FirstSseEventOnly, Mcp::default()).await;
        assert_eq!(row["status"], "healthy", "{row}");
    }
}

#[tokio::test(start_paused = true)]
async fn crlf_sse_not_split() {
    for on in [false, true] {
        let mcp = Mcp {
            sse_notice: true,
            crlf: true,
            ..Mcp::default()
        };
        let row = sse_row(on, Defect::CrlfSseNotSplit, mcp).await;
        if on {
            assert_eq!(row["status"], "unhealthy", "{row}");
            let error = row["health_check_error"].as_str().unwrap();
            assert!(error.contains("ended without the response"), "{error}");
        } else {
            assert_eq!(row["status"], "healthy", "{row}");
        }
        // LF framing is read either way.
        let mcp = Mcp {
            sse_notice: true,
            ..Mcp::default()
        };
        let row = sse_row(on, Defect::CrlfSseNotSplit, mcp).await;
        assert_eq!(row["status"], "healthy", "{row}");
    }
}

#[tokio::test(start_paused = true)]
async fn cut_stream_hangs() {
    for on in [false, true] {
        let mcp = Mcp {
            cut_lists: 1,
            ..Mcp::default()
        };
        let (_, rig) = checked(on, Defect::CutStreamHangs, mcp).await;
        pass(300).await;
        let row = rig.row("d1").await;
        if on {
            // Still waiting on the broken stream.
            assert_eq!(row["status"], "unknown", "{row}");
            pass(2_000).await;
            let row = rig.row("d1").await;
            let error = row["health_check_error"].as_str().unwrap();
            assert!(error.contains("list: timed out after 2000 ms"), "{error}");
        } else {
            assert_eq!(row["status"], "unhealthy", "{row}");
            let error = row["health_check_error"].as_str().unwrap();
            assert!(error.contains("connection broke"), "{error}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn http_error_after_initialize_hangs() {
    for on in [false, true] {
        let mcp = Mcp {
            list_errors: vec![503],
            ..Mcp::default()
        };
        let (_, rig) = checked(on, Defect::HttpErrorAfterInitializeHangs, mcp).await;
        pass(300).await;
        let row = rig.row("d1").await;
        if on {
            assert_eq!(row["status"], "unknown", "{row}");
            pass(2_000).await;
            let row = rig.row("d1").await;
            let error = row["health_check_error"].as_str().unwrap();
            assert!(error.contains("list: timed out after 2000 ms"), "{error}");
        } else {
            assert_eq!(row["status"], "unhealthy", "{row}");
            let error = row["health_check_error"].as_str().unwrap();
            assert!(error.contains("HTTP 503"), "{error}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn protocol_version_hard_coded() {
    for on in [false, true] {
        let mcp = Mcp {
            only_version: Some("2025-03-26"),
            ..Mcp::default()
        };
        let (_, rig) = checked(on, Defect::ProtocolVersionHardCoded, mcp).await;
        pass(300).await;
        let row = rig.row("d1").await;
        if on {
            assert_eq!(row["status"], "unhealthy", "{row}");
            let error = row["health_check_error"].as_str().unwrap();
            assert!(error.contains("HTTP 400"), "{error}");
        } else {
            assert_eq!(row["status"], "healthy", "{row}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn no_stuck_cursor_guard() {
    for on in [false, true] {
        let mcp = Mcp {
            page_size: 2,
            stuck_cursor: true,
            delay_ms: 10,
            ..Mcp::default()
        };
        let (world, rig) = checked(on, Defect::NoStuckCursorGuard, mcp).await;
        pass(2_300).await;
        let row = rig.row("d1").await;
        assert_eq!(row["status"], "unhealthy", "{row}");
        let error = row["health_check_error"].as_str().unwrap();
        let lists = world.count("db", "tools/list");
        if on {
            assert!(error.contains("list: timed out"), "{error}");
            assert!(lists > 100, "{lists}");
        } else {
            assert!(error.contains("cursor it had handed out before"), "{error}");
            assert!(lists < 20, "{lists}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn no_periodic_rediscovery() {
    for on in [false, true] {
        let (world, rig) = checked(on, Defect::NoPeriodicRediscovery, Mcp::default()).await;
        pass(300).await;
        assert_eq!(rig.tool_count("d1").await, 3);
        world.set("db", |m| m.tools = 5);
        pass(1_000).await;
        assert_eq!(rig.row("d1").await["status"], "healthy");
        assert_eq!(rig.tool_count("d1").await, if on { 3 } else { 5 });
    }
}

#[tokio::test(start_paused = true)]
async fn missing_credentials_fail_open() {
    for on in [false, true] {
        let world = World::with(&[(
            "static",
            Mcp {
                accept: Some([format!("Bearer {STATIC_TOKEN}")].into()),
                ..Mcp::default()
            },
        )]);
        let defects = switched(on, Defect::MissingCredentialsFailOpen);
        let rig = rig(settings(&defects), &world, json!({}), None);
        rig.call("POST", "/v1/mcp/server", bearer_body("st1", "static"))
            .await;
        pass(1_000).await;
        assert_eq!(rig.row("st1").await["status"], "healthy");
        // The credentials cleared, the auth type left as it was.
        let (status, answer) = rig
            .call(
                "PUT",
                "/v1/mcp/server",
                json!({"server_id": "st1", "credentials": null}),
            )
            .await;
        pass(1_000).await;
        let row = rig.row("st1").await;
        let sent = world.auth_seen("static");
        if on {
            // Taken as no authentication: the upstream is asked without.
            assert_eq!(status, 202, "{answer}");
            assert_eq!(sent.last().unwrap(), &None);
            assert_eq!(row["status"], "unhealthy");
        } else {
            assert_eq!(status, 422, "{answer}");
            let error = answer["detail"]["error"].as_str().unwrap();
            assert!(error.contains("credentials.auth_value"), "{error}");
            assert!(sent.iter().all(Option::is_some), "{sent:?}");
            assert_eq!(row["status"], "healthy");
        }
        // A body that gives an auth type no credentials at all is refused
        // the same way, or taken.
        let mut bare = bearer_body("st2", "static");
        bare.as_object_mut().unwrap().remove("credentials");
        let (status, _) = rig.call("POST", "/v1/mcp/server", bare).await;
        assert_eq!(status, if on { 201 } else { 422 });
    }
}

/// Settings that re-check every `check_ms` and keep tokens as given.
fn token_settings(
    defects: &[Defect],
    check_ms: u64,
    skew_s: u64,
    default_s: u64,
) -> GatewaySettings {
    GatewaySettings {
        check_interval_ms: check_ms,
        token_expiry_skew_s: skew_s,
        token_ttl_floor_s: 1,
        token_default_ttl_s: default_s,
        ..settings(defects)
    }
}

#[tokio::test(start_paused = true)]
async fn unstated_expiry_kept_an_hour() {
    for on in [false, true] {
        let world = World::with(&[("db", Mcp::default())]);
        *world.expiry.lock().unwrap() = Expiry::Unstated;
        let defects = switched(on, Defect::UnstatedExpiryKeptAnHour);
        // Tokens without a stated lifetime are to be kept 1 s.
        let rig = rig(
            token_settings(&defects, 500, 60, 1),
            &world,
            json!({}),
            None,
        );
        rig.call("POST", "/v1/mcp/server", oauth_body("db1", "db"))
            .await;
        pass(3_200).await;
        let fetched = world.token_calls.load(std::sync::atomic::Ordering::SeqCst);
        if on {
            assert_eq!(fetched, 1, "kept an hour");
        } else {
            // One at the start and one a second after each.
            assert!(fetched >= 3, "{fetched}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn expiry_kept_relative() {
    for on in [false, true] {
        let world = World::with(&[("db", Mcp::default())]);
        *world.expiry.lock().unwrap() = Expiry::Stated(2);
        let defects = switched(on, Defect::ExpiryKeptRelative);
        // A token of 2 s is kept 1 s, refreshed a second before it ends;
        // the server is re-checked every 300 ms.
        let rig = rig(
            token_settings(&defects, 300, 1, 3600),
            &world,
            json!({}),
            None,
        );
        rig.call("POST", "/v1/mcp/server", oauth_body("db1", "db"))
            .await;
        pass(3_200).await;
        let fetched = world.token_calls.load(std::sync::atomic::Ordering::SeqCst);
        if on {
            // Each use pushes the expiry a second on: never refreshed.
            assert_eq!(fetched, 1);
        } else {
            assert!(fetched >= 3, "{fetched}");
        }
    }
}

/// A gateway with one server `d1` at host `db` that declares
/// `tools.listChanged`, re-checked only every minute.
async fn listening(on: bool, defect: Defect, mcp: Mcp) -> (std::sync::Arc<World>, Rig) {
    let mcp = Mcp {
        list_changed: true,
        ..mcp
    };
    checked_every(60_000, on, defect, mcp).await
}

#[tokio::test(start_paused = true)]
async fn list_changed_ignored() {
    for on in [false, true] {
        let mcp = Mcp {
            stream: true,
            ..Mcp::default()
        };
        let (world, rig) = listening(on, Defect::ListChangedIgnored, mcp).await;
        pass(300).await;
        assert_eq!(rig.tool_count("d1").await, 3);
        assert_eq!(world.count("db", "GET"), 1);
        world.set("db", |m| m.tools = 5);
        world.announce("db");
        pass(300).await;
        assert_eq!(rig.tool_count("d1").await, if on { 3 } else { 5 });
        if !on {
            // The old session is closed, and the new one listens.
            assert_eq!(world.count("db", "DELETE"), 1);
            assert_eq!(world.count("db", "GET"), 2);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn get_405_retry_loop() {
    for on in [false, true] {
        let (world, rig) = listening(on, Defect::Get405RetryLoop, Mcp::default()).await;
        pass(1_000).await;
        assert_eq!(rig.row("d1").await["status"], "healthy");
        let gets = world.count("db", "GET");
        if on {
            assert!(gets > 100, "{gets}");
        } else {
            // One GET, answered 405, and the session closed at once.
            assert_eq!(gets, 1);
            assert_eq!(world.count("db", "DELETE"), 1);
        }
    }
}
