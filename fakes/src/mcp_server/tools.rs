//! The fake MCP server's tools: which tools it has at an instant of the run,
//! `tools/list` with opaque cursors (and its paging quirks), and `tools/call`
//! with its arguments checked against the tool's input schema.
//!
//! Invariant: a call's answer depends only on the tool, its arguments and the
//! request's progress token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::config::{empty_object_schema, Paging, ToolBehaviour, ToolChange, ToolSpec};

pub(super) const INVALID_PARAMS: i64 = -32602;

/// A 1×1 transparent PNG.
const PNG_1X1: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";
/// A WAV header with no samples.
const WAV_EMPTY: &str = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA=";

/// `tool_000`, `tool_001`, ... as `tool_count` asks.
pub(super) fn generated(count: usize) -> Vec<ToolSpec> {
    (0..count)
        .map(|i| ToolSpec {
            name: format!("tool_{i:03}"),
            description: Some(format!("Generated tool number {i}.")),
            input_schema: empty_object_schema(),
            output_schema: None,
            behaviour: ToolBehaviour::Text,
        })
        .collect()
}

/// The tool sets of a server over the run: the first from `at_ms` 0, each change from its
/// instant on, in time order.
pub(super) fn timeline(base: Vec<ToolSpec>, changes: &[ToolChange]) -> Vec<(u64, Vec<ToolSpec>)> {
    let mut sets = vec![(0, base)];
    let mut changes: Vec<&ToolChange> = changes.iter().collect();
    changes.sort_by_key(|c| c.at_ms);
    for change in changes {
        let tools = match change.tool_count {
            Some(n) if change.tools.is_empty() => generated(n),
            _ => change.tools.clone(),
        };
        sets.push((change.at_ms, tools));
    }
    sets
}

/// The tools at `now_ms` of the run.
pub(super) fn at(sets: &[(u64, Vec<ToolSpec>)], now_ms: u64) -> &[ToolSpec] {
    sets.iter()
        .rev()
        .find(|(from, _)| *from <= now_ms)
        .map_or(&[][..], |(_, tools)| tools.as_slice())
}

fn encode_cursor(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    std::str::from_utf8(&raw)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()
}

/// The cursor of the empty first page of [`Paging::EmptyFirstPage`].
const EMPTY_PAGE_CURSOR: &str = "empty-first-page";

fn describe(tool: &ToolSpec) -> Value {
    let mut value = json!({"name": tool.name, "inputSchema": tool.input_schema});
    if let Some(description) = &tool.description {
        value["description"] = description.clone().into();
    }
    if let Some(schema) = &tool.output_schema {
        value["outputSchema"] = schema.clone();
    }
    value
}

pub(super) fn list(
    tools: &[ToolSpec],
    page_size: Option<usize>,
    paging: Paging,
    params: Option<&Value>,
) -> Result<Value, (i64, &'static str)> {
    let total = tools.len();
    let cursor = match params.and_then(|p| p.get("cursor")) {
        None | Some(Value::Null) => None,
        Some(Value::String(cursor)) => Some(cursor.as_str()),
        Some(_) => return Err((INVALID_PARAMS, "Invalid cursor")),
    };
    if paging == Paging::EmptyFirstPage && cursor.is_none() {
        return Ok(json!({"tools": [], "nextCursor": EMPTY_PAGE_CURSOR}));
    }
    let start = match cursor {
        None => 0,
        Some(EMPTY_PAGE_CURSOR) if paging == Paging::EmptyFirstPage => 0,
        // Every cursor leads back to the first page, which hands out the same cursor.
        Some(_) if paging == Paging::StuckCursor => 0,
        Some(cursor) => decode_cursor(cursor)
            .filter(|&offset| offset <= total)
            .ok_or((INVALID_PARAMS, "Invalid cursor"))?,
    };
    let page_size = page_size.filter(|&n| n > 0).unwrap_or(total);
    let end = start.saturating_add(page_size).min(total);
    let page: Vec<Value> = tools[start..end].iter().map(describe).collect();
    let mut result = json!({ "tools": page });
    if paging == Paging::StuckCursor {
        result["nextCursor"] = encode_cursor(page_size.min(total)).into();
    } else if end < total {
        result["nextCursor"] = encode_cursor(end).into();
    }
    Ok(result)
}

/// A tool call's answer: the notifications to send before the result, and the result.
pub(super) struct Called {
    pub notifications: Vec<Value>,
    pub result: Value,
}

fn text(text: impl Into<String>) -> Value {
    json!({"type": "text", "text": text.into()})
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(value: &Value, wanted: &str) -> bool {
    let got = type_name(value);
    got == wanted || (wanted == "number" && got == "integer")
}

/// Checks arguments against the top level of an object schema: required properties,
/// declared types, and `additionalProperties: false`. Says what is wrong, or nothing.
pub(super) fn invalid_arguments(schema: &Value, arguments: &Value) -> Option<String> {
    let Some(arguments) = arguments.as_object() else {
        return Some("arguments must be an object".into());
    };
    let properties = schema.get("properties").and_then(Value::as_object);
    for name in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !arguments.contains_key(name) {
            return Some(format!("missing required argument {name:?}"));
        }
    }
    for (name, value) in arguments {
        let declared = properties.and_then(|p| p.get(name));
        match declared {
            None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                return Some(format!("unknown argument {name:?}"));
            }
            Some(property) => {
                let wanted: Vec<&str> = match property.get("type") {
                    Some(Value::String(t)) => vec![t.as_str()],
                    Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                if !wanted.is_empty() && !wanted.iter().any(|t| has_type(value, t)) {
                    return Some(format!(
                        "argument {name:?} must be {}, got {}",
                        wanted.join(" or "),
                        type_name(value)
                    ));
                }
            }
            None => {}
        }
    }
    None
}

pub(super) fn call(
    tools: &[ToolSpec],
    params: Option<&Value>,
) -> Result<Called, (i64, &'static str)> {
    let name = params
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .ok_or((INVALID_PARAMS, "Tool name is required"))?;
    let tool = tools
        .iter()
        .find(|tool| tool.name == name)
        .ok_or((INVALID_PARAMS, "Unknown tool"))?;
    let arguments = params
        .and_then(|p| p.get("arguments"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    // Input validation errors are tool execution errors (2025-11-25), so a model can retry.
    if let Some(wrong) = invalid_arguments(&tool.input_schema, &arguments) {
        return Ok(Called {
            notifications: Vec::new(),
            result: json!({"content": [text(format!("Invalid arguments for {}: {wrong}", tool.name))],
                "isError": true}),
        });
    }
    let done = text(format!("{} called with {arguments}", tool.name));
    let progress_token = params
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get("progressToken"))
        .cloned();
    let mut notifications = Vec::new();
    let result = match &tool.behaviour {
        ToolBehaviour::Text => json!({"content": [done], "isError": false}),
        ToolBehaviour::Error { text: message } => {
            json!({"content": [text(message.clone())], "isError": true})
        }
        ToolBehaviour::Image => json!({"content": [
            {"type": "image", "data": PNG_1X1, "mimeType": "image/png"}], "isError": false}),
        ToolBehaviour::Audio => json!({"content": [
            {"type": "audio", "data": WAV_EMPTY, "mimeType": "audio/wav"}], "isError": false}),
        ToolBehaviour::Resource => json!({"content": [{"type": "resource", "resource": {
            "uri": format!("mcpsim://{}/result", tool.name), "mimeType": "text/plain",
            "text": format!("{} result", tool.name)}}], "isError": false}),
        ToolBehaviour::Mixed => json!({"content": [done,
            {"type": "image", "data": PNG_1X1, "mimeType": "image/png"},
            {"type": "resource", "resource": {"uri": format!("mcpsim://{}/result", tool.name),
                "mimeType": "text/plain", "text": "result"}}], "isError": false}),
        ToolBehaviour::Structured { value } => json!({
            "content": [text(value.to_string())], "structuredContent": value, "isError": false}),
        ToolBehaviour::Logging { count } => {
            for i in 0..*count {
                notifications.push(json!({"jsonrpc": "2.0", "method": "notifications/message",
                    "params": {"level": "info", "logger": tool.name, "data": format!("step {i}")}}));
            }
            json!({"content": [done], "isError": false})
        }
        ToolBehaviour::Progress { count } => {
            if let Some(token) = &progress_token {
                for i in 0..*count {
                    notifications
                        .push(json!({"jsonrpc": "2.0", "method": "notifications/progress",
                        "params": {"progressToken": token, "progress": i + 1, "total": count}}));
                }
            }
            json!({"content": [done], "isError": false})
        }
    };
    Ok(Called {
        notifications,
        result,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_checked_against_the_schema() {
        let schema = json!({"type": "object", "required": ["city"], "additionalProperties": false,
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}});
        assert_eq!(
            invalid_arguments(&schema, &json!({"city": "Oslo", "days": 3})),
            None
        );
        assert!(invalid_arguments(&schema, &json!({}))
            .unwrap()
            .contains("\"city\""));
        assert!(invalid_arguments(&schema, &json!({"city": 1}))
            .unwrap()
            .contains("must be string, got integer"));
        assert!(invalid_arguments(&schema, &json!({"city": "a", "x": 1}))
            .unwrap()
            .contains("unknown argument"));
        assert!(invalid_arguments(&schema, &json!([1])).is_some());
    }

    #[test]
    fn quirky_paging_hands_out_an_empty_page_or_a_cursor_that_never_advances() {
        let tools = generated(3);
        let first = list(&tools, Some(2), Paging::EmptyFirstPage, None).unwrap();
        assert_eq!(first["tools"], json!([]));
        let cursor = first["nextCursor"].clone();
        let second = list(
            &tools,
            Some(2),
            Paging::EmptyFirstPage,
            Some(&json!({"cursor": cursor})),
        )
        .unwrap();
        assert_eq!(second["tools"].as_array().unwrap().len(), 2);
        let stuck = list(&tools, Some(2), Paging::StuckCursor, None).unwrap();
        let again = list(
            &tools,
            Some(2),
            Paging::StuckCursor,
            Some(&json!({"cursor": stuck["nextCursor"]})),
        )
        .unwrap();
        assert_eq!(stuck, again);
    }

    #[test]
    fn the_tool_set_follows_its_changes() {
        let sets = timeline(
            generated(2),
            &[ToolChange {
                at_ms: 500,
                tools: Vec::new(),
                tool_count: Some(3),
            }],
        );
        assert_eq!(at(&sets, 499).len(), 2);
        assert_eq!(at(&sets, 500).len(), 3);
    }
}
