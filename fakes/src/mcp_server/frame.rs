//! How the fake MCP server frames what it sends: JSON replies, SSE streams
//! in a configurable style, transport refusals, and the bodies of injected
//! failures (cut streams, endless bodies, hostile answers).
//!
//! Invariant: every SSE event id of a session is unique across all of its
//! streams (`<session>/<n>`), as the transport spec requires.

use std::io;

use axum::body::Body;
use axum::http::{header, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::{self, StreamExt as _};
use serde_json::{json, Value};

use super::config::{McpFailure, ReplyMode, SseStyle};

pub(super) const SERVER_ERROR: i64 = -32000;
pub(super) const INTERNAL_ERROR: i64 = -32603;

pub(super) const SSE_HEADERS: [(HeaderName, &str); 2] = [
    (header::CONTENT_TYPE, "text/event-stream"),
    (header::CACHE_CONTROL, "no-cache"),
];

/// Event ids reserved for one stream: `<prefix><next>`, `<prefix><next + 1>`, ...
pub(super) struct EventIds {
    pub prefix: String,
    pub next: u64,
}

impl EventIds {
    fn take(&mut self) -> String {
        let id = format!("{}{}", self.prefix, self.next);
        self.next += 1;
        id
    }
}

pub(super) fn rpc_error_body(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// A transport-level refusal: an HTTP error status with a JSON-RPC error body and no id.
pub(super) fn refuse(status: StatusCode, message: &str) -> Response {
    rpc_error(status, Value::Null, SERVER_ERROR, message)
}

pub(super) fn rpc_error(status: StatusCode, id: Value, code: i64, message: &str) -> Response {
    let body = rpc_error_body(id, code, message).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// How many event ids a stream of `messages` in this style takes.
pub(super) fn ids_needed(style: &SseStyle, messages: usize) -> u64 {
    u64::from(style.priming) + u64::from(style.notifications) + messages as u64
}

/// An SSE stream in `style`: the priming event, keep-alive comments, log notifications,
/// then every message as a `message` event.
pub(super) fn sse_text(style: &SseStyle, ids: &mut EventIds, messages: &[Value]) -> String {
    let mut out = String::new();
    if style.priming {
        out.push_str(&format!("id: {}\n", ids.take()));
        if let Some(retry) = style.retry_ms {
            out.push_str(&format!("retry: {retry}\n"));
        }
        out.push_str("data:\n\n");
    }
    for _ in 0..style.keep_alives {
        out.push_str(": keep-alive\n\n");
    }
    for i in 0..style.notifications {
        let note = json!({"jsonrpc": "2.0", "method": "notifications/message",
            "params": {"level": "info", "logger": "mcpsim-fake", "data": format!("note {i}")}});
        out.push_str(&format!(
            "event: message\nid: {}\ndata: {note}\n\n",
            ids.take()
        ));
    }
    for message in messages {
        out.push_str(&format!(
            "event: message\nid: {}\ndata: {message}\n\n",
            ids.take()
        ));
    }
    if style.crlf {
        out = out.replace('\n', "\r\n");
    }
    out
}

/// Frames the messages of one reply: JSON for a lone message in `json` mode, an event
/// stream otherwise (notifications before a result need one whatever the mode).
pub(super) fn reply(
    mode: ReplyMode,
    style: &SseStyle,
    ids: &mut EventIds,
    messages: &[Value],
) -> Response {
    match (mode, messages) {
        (ReplyMode::Json, [message]) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            message.to_string(),
        )
            .into_response(),
        _ => (StatusCode::OK, SSE_HEADERS, sse_text(style, ids, messages)).into_response(),
    }
}

/// A 200 whose body stops with an error after a first part, so that hyper aborts the connection
/// (an HTTP/1.1 chunked body without its last chunk) and the client sees a truncated answer.
pub(super) fn cut_stream(
    mode: ReplyMode,
    style: &SseStyle,
    ids: &mut EventIds,
    id: Value,
) -> Response {
    let sent = match mode {
        ReplyMode::Json => {
            let full = json!({"jsonrpc": "2.0", "id": id, "result": {}}).to_string();
            let full = Bytes::from(full);
            full.slice(..full.len() / 2)
        }
        // The priming event alone: the stream breaks before the message event.
        ReplyMode::Sse => Bytes::from(sse_text(
            &SseStyle {
                priming: true,
                keep_alives: 0,
                notifications: 0,
                ..style.clone()
            },
            ids,
            &[],
        )),
    };
    let cut = async {
        // Pending once before the error lets hyper flush the first part to the socket; an
        // error right behind it would drop the part with the connection.
        tokio::task::yield_now().await;
        Err::<Bytes, _>(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "injected cut_stream",
        ))
    };
    let body = Body::from_stream(stream::once(async { Ok(sent) }).chain(stream::once(cut)));
    with_type(mode, body)
}

fn with_type(mode: ReplyMode, body: Body) -> Response {
    match mode {
        ReplyMode::Json => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        ReplyMode::Sse => (StatusCode::OK, SSE_HEADERS, body).into_response(),
    }
}

/// The answer of a hostile upstream, for the request `id` whose honest result would be
/// `result` (for the kinds that need one).
pub(super) fn hostile(
    kind: McpFailure,
    mode: ReplyMode,
    style: &SseStyle,
    ids: &mut EventIds,
    id: Value,
    result: Value,
) -> Option<Response> {
    let ok = |id: Value, result: Value| json!({"jsonrpc": "2.0", "id": id, "result": result});
    Some(match kind {
        McpFailure::EndlessBody => {
            let start = Bytes::from_static(b"{\"jsonrpc\":\"2.0\",\"result\":{\"tools\":[");
            let body = Body::from_stream(
                stream::once(async { Ok::<_, io::Error>(start) })
                    .chain(stream::pending()),
            );
            with_type(mode, body)
        }
        McpFailure::Huge { megabytes } => {
            let size = megabytes.max(1) as usize * 1024 * 1024;
            // One tool per 64 KiB of description, as many as it takes.
            let chunk = "x".repeat(64 * 1024);
            let tools: Vec<Value> = (0..size / chunk.len() + 1)
                .map(|i| {
                    json!({"name": format!("bulk_{i:05}"), "description": chunk,
                        "inputSchema": {"type": "object"}})
                })
                .collect();
            let mut padded = result;
            if padded.get("tools").is_some() {
                padded["tools"] = Value::Array(tools);
            } else {
                padded["padding"] = json!(chunk.repeat(size / chunk.len() + 1));
            }
            reply(mode, style, ids, &[ok(id, padded)])
        }
        McpFailure::InvalidUtf8 => {
            let mut body = b"{\"jsonrpc\":\"2.0\",\"id\":".to_vec();
            body.extend_from_slice(id.to_string().as_bytes());
            body.extend_from_slice(b",\"result\":{\"text\":\"\xff\xfe\xc3\x28\"}}");
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        }
        McpFailure::WrongContentType => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain")],
            ok(id, result).to_string(),
        )
            .into_response(),
        McpFailure::WrongId => {
            let wrong = match id.as_i64() {
                Some(n) => json!(n + 1_000),
                None => json!("not-your-request"),
            };
            reply(mode, style, ids, &[ok(wrong, result)])
        }
        McpFailure::HtmlPage => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>",
        )
            .into_response(),
        McpFailure::Redirect => (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, "http://elsewhere/mcp")],
        )
            .into_response(),
        _ => return None,
    })
}
