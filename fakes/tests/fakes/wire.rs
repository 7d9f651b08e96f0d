//! What a cut answer looks like on a real HTTP/1.1 connection, served as the harness serves
//! the fakes (hyper's http1 connection builder). The in-process tests see only a body error;
//! this checks that hyper turns it into a truncated chunked body and a closed connection.

use axum::Router;
use hyper_util::rt::TokioIo;
use mcpsim_fakes::{McpFailure, McpFailureRule, McpServer, McpServerConfig, ReplyMode};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt as _;

use crate::TestClock;

/// Serves `router` on a loopback port for one connection, sends `request` raw and returns
/// every byte that arrived until the server closed the connection.
async fn exchange(router: Router, request: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let service = hyper::service::service_fn(move |request| router.clone().oneshot(request));
        hyper::server::conn::http1::Builder::new()
            .auto_date_header(false)
            .serve_connection(TokioIo::new(stream), service)
            .await
    });
    let mut client = TcpStream::connect(address).await.unwrap();
    client.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    // A reset is as good an end as a close; whatever arrived before it is kept.
    let _ = client.read_to_end(&mut received).await;
    let served = server.await.unwrap();
    assert!(served.is_err(), "hyper ended the connection cleanly");
    String::from_utf8(received).unwrap()
}

fn raw_post(body: &str, session: Option<&str>) -> String {
    let session = session.map_or(String::new(), |s| format!("mcp-session-id: {s}\r\n"));
    format!(
        "POST /mcp HTTP/1.1\r\nhost: mcp.sim\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\n{session}content-length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn cut_stream_leaves_a_chunked_body_without_its_last_chunk() {
    for reply in [ReplyMode::Sse, ReplyMode::Json] {
        let config = McpServerConfig {
            reply,
            sessions: false,
            tool_count: Some(1),
            failures: vec![McpFailureRule {
                method: "tools/list".into(),
                kind: McpFailure::CutStream,
                after: 0,
                count: None,
            }],
            ..McpServerConfig::default()
        };
        let (_time, clock) = TestClock::new(0);
        let router = McpServer::new(config, clock).router();
        let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        let wire = exchange(router, raw_post(list, None)).await;
        assert!(wire.starts_with("HTTP/1.1 200 OK\r\n"), "{wire}");
        assert!(wire.contains("transfer-encoding: chunked\r\n"), "{wire}");
        // The last chunk of a chunked body is `0` and an empty line; a cut never sends it.
        assert!(!wire.ends_with("0\r\n\r\n"), "{wire}");
        let (_head, body) = wire.split_once("\r\n\r\n").unwrap();
        match reply {
            ReplyMode::Sse => assert!(body.contains("retry: 3000\ndata:\n\n"), "{wire}"),
            ReplyMode::Json => assert!(body.contains(r#"{"id":1,"#), "{wire}"),
        }
        assert!(!body.contains("event: message"), "{wire}");
    }
}
