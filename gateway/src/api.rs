//! The management API, in LiteLLM's shapes.
//!
//! Handlers only read and write the registry; none awaits discovery, so an
//! operator who gives up mid-request cancels nothing but the request (unless
//! the `discovery-tied-to-request` defect is switched on). The one handler
//! that reaches an upstream, `POST /mcp-rest/tools/call`, does so for its
//! caller and with the server's own credentials.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::registry::{ApiError, Registry};
use crate::Role;

type Shared = State<Arc<Registry>>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"detail": {"error": self.message}})),
        )
            .into_response()
    }
}

fn no_mcp_traffic() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: "the control plane serves no MCP traffic; ask a data plane".to_string(),
    }
}

pub(crate) fn router(registry: Arc<Registry>, role: Role) -> Router {
    let (tools_route, call_route) = match role {
        Role::Control => (
            get(|| async { no_mcp_traffic() }),
            post(|| async { CallError(no_mcp_traffic()) }),
        ),
        Role::AllInOne | Role::Data => (get(tools), post(call_tool)),
    };
    Router::new()
        .route("/v1/mcp/server", get(list).post(create).put(update))
        .route("/v1/mcp/server/health", get(health))
        .route("/v1/mcp/server/{id}", get(one).delete(remove))
        .route("/v1/mcp/tools", tools_route)
        .route("/mcp-rest/tools/call", call_route)
        .fallback(|| async {
            ApiError {
                status: StatusCode::NOT_FOUND,
                message: "no such endpoint".to_string(),
            }
        })
        .with_state(registry)
}

async fn list(State(registry): Shared) -> Json<Vec<Value>> {
    Json(registry.rows())
}

async fn create(
    State(registry): Shared,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    registry
        .create(&body)
        .await
        .map(|row| (StatusCode::CREATED, Json(row)))
}

async fn update(
    State(registry): Shared,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    registry
        .update(&body)
        .await
        .map(|row| (StatusCode::ACCEPTED, Json(row)))
}

async fn one(State(registry): Shared, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    registry.row(&id).map(Json).ok_or(ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!("no server with server_id {id}"),
    })
}

async fn remove(
    State(registry): Shared,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    registry.delete(&id).await.map(|()| {
        (
            StatusCode::ACCEPTED,
            Json(json!({"server_id": id, "deleted": true})),
        )
    })
}

async fn health(State(registry): Shared) -> Json<Vec<Value>> {
    Json(registry.health())
}

#[derive(Deserialize)]
struct ToolsQuery {
    server_id: Option<String>,
}

async fn tools(
    State(registry): Shared,
    Query(query): Query<ToolsQuery>,
) -> Result<Json<Value>, ApiError> {
    registry
        .tools(query.server_id.as_deref())
        .map(|tools| Json(json!({"tools": tools})))
}

/// An error of the tool-call route: `{"error": ...}` as the route's callers
/// read it, and LiteLLM's `{"detail": {"error": ...}}` beside it.
struct CallError(ApiError);

impl IntoResponse for CallError {
    fn into_response(self) -> Response {
        let message = self.0.message;
        (
            self.0.status,
            Json(json!({"error": message, "detail": {"error": message}})),
        )
            .into_response()
    }
}

async fn call_tool(
    State(registry): Shared,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, CallError> {
    registry
        .call_tool(&body, &headers)
        .await
        .map(Json)
        .map_err(CallError)
}
