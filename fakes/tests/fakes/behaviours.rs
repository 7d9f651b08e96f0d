//! The fake MCP server's behaviours beyond the plain protocol: the Origin check, SSE framing
//! styles, paging quirks, tool behaviours and argument checks, the GET stream, sessions that
//! expire, a strict version header, and hostile answers.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use mcpsim_fakes::{
    GetStream, McpFailure, McpServer, McpServerConfig, Paging, ReplyMode, SseStyle, ToolBehaviour,
    ToolChange, ToolSpec, SIM_EPOCH_UNIX_S,
};
use serde_json::{json, Value};
use tower::ServiceExt as _;

use crate::mcp_server::{
    call_msg, error_code, initialize_msg, list_msg, open, plain, post, post_with, rule, server,
    LATEST,
};
use crate::{send, TestClock};

fn with_origin(mut request: Request<Body>, origin: &str) -> Request<Body> {
    request
        .headers_mut()
        .insert("origin", origin.parse().unwrap());
    request
}

#[tokio::test]
async fn a_foreign_origin_is_refused_with_403_and_a_local_one_is_served() {
    let (fake, router, _time) = server(McpServerConfig::default());
    let evil = with_origin(
        post(initialize_msg("2025-11-25"), None, None),
        "http://evil.example.com",
    );
    assert_eq!(send(&router, evil).await.status, StatusCode::FORBIDDEN);
    for origin in [
        "http://localhost:3000",
        "http://127.0.0.1:8123",
        "http://[::1]:9",
    ] {
        let local = with_origin(post(initialize_msg("2025-11-25"), None, None), origin);
        assert_eq!(
            send(&router, local).await.status,
            StatusCode::OK,
            "{origin}"
        );
    }
    assert_eq!(fake.stats().origins_refused, 1);
}

#[tokio::test]
async fn sse_framing_follows_its_style() {
    let config = McpServerConfig {
        reply: ReplyMode::Sse,
        tool_count: Some(1),
        sse: SseStyle {
            priming: true,
            retry_ms: None,
            keep_alives: 2,
            notifications: 1,
            crlf: true,
        },
        ..McpServerConfig::default()
    };
    let (_server, router, _time) = server(config);
    let session = open(&router).await;
    let reply = send(
        &router,
        post(list_msg(1, None), Some(&session), Some(LATEST)),
    )
    .await;
    let body = &reply.body;
    assert!(
        body.starts_with("id: s-000001/3\r\ndata:\r\n\r\n: keep-alive\r\n\r\n: keep-alive\r\n\r\n"),
        "{body}"
    );
    assert!(body.contains("notifications/message"), "{body}");
    assert!(!body.replace("\r\n", "").contains('\n'), "{body}");
    assert!(body.contains("\"id\":1"), "{body}");
}

#[tokio::test]
async fn paging_quirks_give_an_empty_first_page_or_a_stuck_cursor() {
    for (paging, first_len) in [(Paging::EmptyFirstPage, 0), (Paging::StuckCursor, 2)] {
        let config = McpServerConfig {
            tool_count: Some(3),
            page_size: Some(2),
            paging,
            ..McpServerConfig::default()
        };
        let (_server, router, _time) = server(config);
        let session = open(&router).await;
        let first = send(
            &router,
            post(list_msg(1, None), Some(&session), Some(LATEST)),
        )
        .await
        .json();
        assert_eq!(
            first["result"]["tools"].as_array().unwrap().len(),
            first_len
        );
        let cursor = first["result"]["nextCursor"].as_str().unwrap().to_string();
        let next = send(
            &router,
            post(list_msg(2, Some(&cursor)), Some(&session), Some(LATEST)),
        )
        .await
        .json();
        let again = next["result"]["nextCursor"].as_str();
        assert_eq!(
            again == Some(cursor.as_str()),
            paging == Paging::StuckCursor
        );
    }
}

#[tokio::test]
async fn tool_calls_check_arguments_and_answer_as_configured() {
    let strict = json!({"type": "object", "required": ["city"],
        "properties": {"city": {"type": "string"}}});
    let config = McpServerConfig {
        tools: vec![
            ToolSpec {
                input_schema: strict,
                ..ToolSpec::named("weather")
            },
            ToolSpec::named("broken").behaviour(ToolBehaviour::Error {
                text: "the backend is down".into(),
            }),
            ToolSpec::named("structured").behaviour(ToolBehaviour::Structured {
                value: json!({"temperature": 21}),
            }),
            ToolSpec::named("chatty").behaviour(ToolBehaviour::Logging { count: 3 }),
        ],
        ..McpServerConfig::default()
    };
    let (_server, router, _time) = server(config);
    let session = open(&router).await;
    let s = Some(session.as_str());
    let call = |id: u64, name: &str, arguments: Value| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments}})
    };
    let ok = send(
        &router,
        post(call(1, "weather", json!({"city": "Oslo"})), s, Some(LATEST)),
    )
    .await;
    assert_eq!(ok.json()["result"]["isError"], false);
    let missing = send(
        &router,
        post(call(2, "weather", json!({})), s, Some(LATEST)),
    )
    .await
    .json();
    assert_eq!(missing["result"]["isError"], true);
    assert!(missing["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("\"city\""));
    let broken = send(&router, post(call(3, "broken", json!({})), s, Some(LATEST)))
        .await
        .json();
    assert_eq!(broken["result"]["isError"], true);
    let structured = send(
        &router,
        post(call(4, "structured", json!({})), s, Some(LATEST)),
    )
    .await
    .json();
    assert_eq!(
        structured["result"]["structuredContent"],
        json!({"temperature": 21})
    );
    // Notifications before the result need an event stream even in JSON mode.
    let chatty = send(&router, post(call(5, "chatty", json!({})), s, Some(LATEST))).await;
    assert_eq!(chatty.header("content-type"), Some("text/event-stream"));
    assert_eq!(chatty.body.matches("notifications/message").count(), 3);
    let unknown = send(&router, post(call_msg(6, "nope"), s, Some(LATEST))).await;
    assert_eq!(error_code(&unknown), -32602);
}

#[tokio::test]
async fn sessions_expire_by_age_or_by_use() {
    let config = McpServerConfig {
        tool_count: Some(1),
        session_max_requests: Some(2),
        ..McpServerConfig::default()
    };
    let (fake, router, _time) = server(config);
    let session = open(&router).await;
    for expected in [StatusCode::OK, StatusCode::OK, StatusCode::NOT_FOUND] {
        let reply = send(
            &router,
            post(list_msg(1, None), Some(&session), Some(LATEST)),
        )
        .await;
        assert_eq!(reply.status, expected);
    }
    assert_eq!(fake.stats().sessions_expired, 1);

    let config = McpServerConfig {
        tool_count: Some(1),
        session_ttl_ms: Some(500),
        ..McpServerConfig::default()
    };
    let (_server, router, time) = server(config);
    let session = open(&router).await;
    let reply = send(
        &router,
        post(list_msg(1, None), Some(&session), Some(LATEST)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    time.advance(Duration::from_millis(500));
    let reply = send(
        &router,
        post(list_msg(2, None), Some(&session), Some(LATEST)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

/// A request without the session id it was given is refused by default, as the spec says a
/// server should; a lenient server serves it outside any session, and still refuses an
/// unknown one.
#[tokio::test]
async fn a_server_wants_the_session_id_unless_lenient() {
    for lenient in [false, true] {
        let config = McpServerConfig {
            tool_count: Some(1),
            lenient_session: lenient,
            ..McpServerConfig::default()
        };
        let (_server, router, _time) = server(config);
        let _session = open(&router).await;
        let bare = send(&router, post(list_msg(1, None), None, Some(LATEST))).await;
        let expected = if lenient {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(bare.status, expected, "lenient {lenient}");
        let unknown = send(
            &router,
            post(list_msg(2, None), Some("s-999999"), Some(LATEST)),
        )
        .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND, "lenient {lenient}");
    }
}

/// Strict by default, as the spec's MUST says; a lenient server takes a missing header as
/// 2025-03-26 and serves another supported revision than the agreed one.
#[tokio::test]
async fn a_server_wants_the_agreed_version_in_every_request_unless_lenient() {
    for lenient in [false, true] {
        let config = McpServerConfig {
            tool_count: Some(1),
            lenient_version_header: lenient,
            ..McpServerConfig::default()
        };
        let (_server, router, _time) = server(config);
        let session = open(&router).await;
        let s = Some(session.as_str());
        let bare = send(&router, post(list_msg(1, None), s, None)).await;
        let other = send(&router, post(list_msg(2, None), s, Some("2025-06-18"))).await;
        let agreed = send(&router, post(list_msg(3, None), s, Some("2025-11-25"))).await;
        let unknown = send(&router, post(list_msg(4, None), s, Some("2024-01-01"))).await;
        let refused = |ok: bool| {
            if ok {
                StatusCode::OK
            } else {
                StatusCode::BAD_REQUEST
            }
        };
        assert_eq!(bare.status, refused(lenient), "lenient {lenient}");
        assert_eq!(other.status, refused(lenient), "lenient {lenient}");
        assert_eq!(agreed.status, StatusCode::OK);
        assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "lenient {lenient}");
    }
}

#[tokio::test]
async fn a_strict_server_of_an_old_revision_speaks_its_own() {
    let config = McpServerConfig {
        tool_count: Some(1),
        protocol_versions: vec!["2025-03-26".into()],
        ..McpServerConfig::default()
    };
    let (_server, router, _time) = server(config);
    let reply = send(&router, post(initialize_msg("2025-11-25"), None, None)).await;
    assert_eq!(reply.json()["result"]["protocolVersion"], "2025-03-26");
    let session = reply.header("mcp-session-id").unwrap().to_string();
    // 2025-03-26 has no version header: none is right, and so is its own.
    let bare = send(&router, post(list_msg(1, None), Some(&session), None)).await;
    assert_eq!(bare.status, StatusCode::OK);
    let newer = send(
        &router,
        post(list_msg(2, None), Some(&session), Some("2025-11-25")),
    )
    .await;
    assert_eq!(newer.status, StatusCode::BAD_REQUEST);
    let right = send(
        &router,
        post(list_msg(3, None), Some(&session), Some("2025-03-26")),
    )
    .await;
    assert_eq!(right.status, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn an_open_get_stream_says_when_the_tool_set_changes() {
    let config = McpServerConfig {
        tool_count: Some(1),
        get_stream: GetStream::Open,
        // Instants of the run count from the simulation's epoch.
        tool_changes: vec![ToolChange {
            at_ms: 500,
            tools: Vec::new(),
            tool_count: Some(3),
        }],
        ..McpServerConfig::default()
    };
    let (time, clock) = TestClock::new(SIM_EPOCH_UNIX_S * 1000);
    let fake = McpServer::new(config, clock);
    let router = fake.router();
    let session = open(&router).await;
    assert_eq!(fake.tool_names().len(), 1);
    let response = router
        .clone()
        .oneshot(plain("/mcp", "GET", Some(&session)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let priming = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(String::from_utf8_lossy(&priming).contains("data:"));
    time.advance(Duration::from_millis(500));
    let notice = tokio::time::timeout(Duration::from_secs(1), body.frame())
        .await
        .expect("the notice comes once the change is due")
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert!(String::from_utf8_lossy(&notice).contains("notifications/tools/list_changed"));
    assert_eq!(fake.tool_names().len(), 3);
}

/// What a hostile answer must look like: its status, content type and body.
type Looks = Box<dyn Fn(StatusCode, &str, &[u8])>;

#[tokio::test]
async fn hostile_answers_are_what_they_say() {
    let cases: Vec<(McpFailure, Looks)> = vec![
        (
            McpFailure::WrongId,
            Box::new(|s, _, b| {
                assert_eq!(s, StatusCode::OK);
                assert!(String::from_utf8_lossy(b).contains("\"id\":1001"));
            }),
        ),
        (
            McpFailure::WrongContentType,
            Box::new(|_, t, _| assert_eq!(t, "text/plain")),
        ),
        (
            McpFailure::HtmlPage,
            Box::new(|_, t, b| {
                assert!(t.starts_with("text/html"));
                assert!(String::from_utf8_lossy(b).contains("<html>"));
            }),
        ),
        (
            McpFailure::InvalidUtf8,
            Box::new(|_, _, b| assert!(std::str::from_utf8(b).is_err())),
        ),
        (
            McpFailure::Redirect,
            Box::new(|s, _, _| assert_eq!(s, StatusCode::TEMPORARY_REDIRECT)),
        ),
        (
            McpFailure::Huge { megabytes: 3 },
            Box::new(|_, _, b| assert!(b.len() > 3 * 1024 * 1024)),
        ),
    ];
    for (kind, check) in cases {
        let config = McpServerConfig {
            tool_count: Some(1),
            failures: vec![rule("tools/list", kind, 0, Some(1))],
            ..McpServerConfig::default()
        };
        let (_server, router, _time) = server(config);
        let session = open(&router).await;
        let response = router
            .clone()
            .oneshot(post(list_msg(1, None), Some(&session), Some(LATEST)))
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        check(status, &content_type, &body);
    }
    // An endless body starts and never ends.
    let config = McpServerConfig {
        tool_count: Some(1),
        failures: vec![rule("tools/list", McpFailure::EndlessBody, 0, Some(1))],
        ..McpServerConfig::default()
    };
    let (_server, router, _time) = server(config);
    let session = open(&router).await;
    let response = router
        .clone()
        .oneshot(post_with(
            list_msg(1, None).to_string(),
            Some(&session),
            Some(LATEST),
            None,
        ))
        .await
        .unwrap();
    let mut body = response.into_body();
    assert!(body.frame().await.is_some());
    assert!(
        tokio::time::timeout(Duration::from_millis(50), body.frame())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn accept_is_strict_unless_the_server_is_told_to_be_lenient() {
    for (lenient, expected) in [(false, StatusCode::NOT_ACCEPTABLE), (true, StatusCode::OK)] {
        let config = McpServerConfig {
            lenient_accept: lenient,
            ..McpServerConfig::default()
        };
        let (_server, router, _time) = server(config);
        let mut request = post(initialize_msg("2025-11-25"), None, None);
        request
            .headers_mut()
            .insert("accept", "application/json".parse().unwrap());
        assert_eq!(send(&router, request).await.status, expected);
    }
}
