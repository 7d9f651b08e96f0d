//! The one exchange loop with an upstream that discovery and tool calls
//! share: resolve the server's credentials, fetch a token within its
//! budget, run the operation within its budget, and after a 401 with a
//! fetched token drop the token and try once more with a fresh one.
//!
//! Invariants: the token's budget is separate from the operation's (unless
//! the `shared-timeout-budget` defect joins them, for discovery); a 401 is
//! retried at most once per exchange; every error says its stage.

use std::time::Duration;

use http::{HeaderName, HeaderValue};
use serde_json::Value;

use super::Registry;
use crate::defects::Defect;
use crate::http_client::{BoxFuture, HttpClient};
use crate::mcp_client::{
    self, ClientQuirks, Closing, ListRequest, McpError, Stage, StageCell, Tool,
};
use crate::spec::{self, Auth, ServerSpec, Source, Transport};
use crate::token::{TokenError, TokenRequest};
use crate::GatewayEvent;

/// What an exchange does once it has credentials, in a fresh session.
pub(super) trait Operation: Sync {
    type Output;
    fn run<'a>(
        &'a self,
        http: &'a dyn HttpClient,
        request: &'a ListRequest<'a>,
        stage: &'a StageCell,
    ) -> BoxFuture<'a, (Result<Self::Output, McpError>, Closing)>;
}

/// Lists every tool.
pub(super) struct List;

impl Operation for List {
    type Output = Vec<Tool>;
    fn run<'a>(
        &'a self,
        http: &'a dyn HttpClient,
        request: &'a ListRequest<'a>,
        stage: &'a StageCell,
    ) -> BoxFuture<'a, (Result<Vec<Tool>, McpError>, Closing)> {
        Box::pin(mcp_client::list_tools(http, request, stage))
    }
}

/// Calls one tool with these arguments.
pub(super) struct Call<'a> {
    pub tool: &'a str,
    pub arguments: &'a Value,
}

impl Operation for Call<'_> {
    type Output = Value;
    fn run<'a>(
        &'a self,
        http: &'a dyn HttpClient,
        request: &'a ListRequest<'a>,
        stage: &'a StageCell,
    ) -> BoxFuture<'a, (Result<Value, McpError>, Closing)> {
        Box::pin(mcp_client::call_tool(
            http,
            request,
            stage,
            self.tool,
            self.arguments,
        ))
    }
}

/// On whose behalf an exchange runs.
pub(super) struct Exchange<'a> {
    /// The discovery attempt it belongs to; a tool call has none.
    pub attempt: Option<u64>,
    /// The caller's own `Authorization` (a tool call), which the reference
    /// never forwards.
    pub caller_authorization: Option<&'a HeaderValue>,
    /// The caller's own `MCP-Protocol-Version` (a tool call): the revision
    /// it speaks with the gateway, not the one the gateway's session with
    /// the upstream agrees on, so the reference never forwards it either.
    pub caller_protocol_version: Option<&'a HeaderValue>,
    /// Where a successful exchange leaves its session instead of closing
    /// it, when its server declared `tools.listChanged` (a discovery
    /// attempt that will listen); `None` closes every session.
    pub keep: Option<&'a mut Option<Closing>>,
}

/// Why an exchange ended without a result. Every message is secret-free.
pub(super) enum UpstreamError {
    /// The server cannot be reached by this gateway at all (its message
    /// names the stage).
    Unusable(String),
    Token(TokenFailure),
    Mcp(McpError),
    TimedOut {
        stage: Stage,
        budget: Duration,
    },
    /// An upstream error turned into a cancellation and swallowed (the
    /// `error-becomes-cancellation` defect).
    Swallowed,
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Unusable(message) => f.write_str(message),
            UpstreamError::Token(error) => write!(f, "token: {error}"),
            UpstreamError::Mcp(error) => write!(f, "{error}"),
            UpstreamError::TimedOut { stage, budget } => write!(
                f,
                "{}: timed out after {} ms",
                stage.as_str(),
                budget.as_millis()
            ),
            UpstreamError::Swallowed => f.write_str("the upstream error became a cancellation"),
        }
    }
}

/// Token failures, including the gateway's own timeout.
pub(super) enum TokenFailure {
    Failed(TokenError),
    TimedOut(Duration),
}

impl std::fmt::Display for TokenFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenFailure::Failed(e) => write!(f, "{e}"),
            TokenFailure::TimedOut(budget) => {
                write!(f, "timed out after {} ms", budget.as_millis())
            }
        }
    }
}

impl Registry {
    /// Runs one exchange with the server's upstream.
    pub(super) async fn exchange<O: Operation>(
        &self,
        spec: &ServerSpec,
        exchange: Exchange<'_>,
        operation: &O,
    ) -> Result<O::Output, UpstreamError> {
        let mut keep = exchange.keep;
        let (url, mut headers, token_request) =
            self.upstream(spec).map_err(UpstreamError::Unusable)?;
        // Defect client-broken-after-error: FastMCP keeps one client per
        // upstream, and a 401 or a 5xx ends its session task for good;
        // every later request fails at once with the stored error (issue
        // 4825).
        let broken = self.lock().broken.get(&spec.id).cloned();
        if let Some(error) = broken.filter(|_| self.has(Defect::ClientBrokenAfterError)) {
            return Err(UpstreamError::Unusable(format!(
                "{error} (earlier; the upstream client is broken)"
            )));
        }
        // Defect short-health-timeout: the health check's own timeout is a
        // fraction of the listing timeout, while tool calls keep all of it
        // (ContextForge issue 4785, PR 4862).
        let budget = if exchange.attempt.is_some() && self.has(Defect::ShortHealthTimeout) {
            Duration::from_millis(self.settings.list_timeout_ms / 4)
        } else {
            Duration::from_millis(self.settings.list_timeout_ms)
        };
        // Defect shared-timeout-budget: one `wait_for` around the token fetch
        // and the listing together (LiteLLM issue 20715): a slow token
        // server eats the listing's time.
        let shared_deadline = (exchange.attempt.is_some() && self.has(Defect::SharedTimeoutBudget))
            .then(|| tokio::time::Instant::now() + budget);
        let mut retried = false;
        loop {
            if let Some(request) = &token_request {
                let (token_budget, deadline) = match shared_deadline {
                    Some(deadline) => (budget, deadline),
                    None => {
                        let token_budget = Duration::from_millis(self.settings.token_timeout_ms);
                        (token_budget, tokio::time::Instant::now() + token_budget)
                    }
                };
                let token = self
                    .token(request, exchange.attempt, token_budget, deadline)
                    .await
                    .map_err(UpstreamError::Token)?;
                set_secret_header(
                    &mut headers,
                    http::header::AUTHORIZATION,
                    &format!("Bearer {}", token.expose()),
                );
            }
            // Defect forwards-caller-authorization: the caller's own header
            // is passed through and overrides the server's credentials
            // (LiteLLM issue 23652, fixed by PR 26871).
            if let Some(value) = exchange
                .caller_authorization
                .filter(|_| self.has(Defect::ForwardsCallerAuthorization))
            {
                let mut value = value.clone();
                value.set_sensitive(true);
                headers.retain(|(n, _)| n != http::header::AUTHORIZATION);
                headers.push((http::header::AUTHORIZATION, value));
            }
            // Defect forwards-client-protocol-version: the caller's
            // `MCP-Protocol-Version` is passed through with the other
            // headers, ahead of the one the session negotiated, so an
            // upstream reads the caller's revision (agentgateway issue 2980).
            if let Some(value) = exchange
                .caller_protocol_version
                .filter(|_| self.has(Defect::ForwardsClientProtocolVersion))
            {
                let name = HeaderName::from_static("mcp-protocol-version");
                headers.retain(|(n, _)| n != name);
                headers.push((name, value.clone()));
            }
            let request = ListRequest {
                url: &url,
                headers: &headers,
                quirks: self.quirks(),
            };
            let stage = StageCell::new(Stage::Connect);
            let deadline = shared_deadline.unwrap_or_else(|| tokio::time::Instant::now() + budget);
            let result = tokio::time::timeout_at(
                deadline,
                operation.run(self.deps.http.as_ref(), &request, &stage),
            )
            .await
            .map(|(result, closing)| {
                match keep.as_deref_mut() {
                    Some(slot) if result.is_ok() && closing.list_changed() => *slot = Some(closing),
                    _ => self.close_later(closing, budget),
                }
                result
            });
            match result {
                Ok(Ok(output)) => return Ok(output),
                // Defect error-becomes-cancellation: MCP SDK 1.26 raises the
                // HTTP error inside a task group, the waiting task sees only
                // CancelledError, and `_fetch_tools_with_timeout` swallows it
                // into `[]` (issue 27635). The status is lost before any
                // retry could look at it.
                Ok(Err(error))
                    if exchange.attempt.is_some()
                        && self.has(Defect::ErrorBecomesCancellation)
                        && surfaces_as_cancellation(&error) =>
                {
                    return Err(UpstreamError::Swallowed)
                }
                // Defect client-broken-after-error: as above, the first 401
                // or 5xx breaks the client, before any retry.
                Ok(Err(error))
                    if self.has(Defect::ClientBrokenAfterError)
                        && error
                            .status()
                            .is_some_and(|status| status == 401 || status >= 500) =>
                {
                    self.lock()
                        .broken
                        .insert(spec.id.clone(), error.to_string());
                    return Err(UpstreamError::Mcp(error));
                }
                Ok(Err(error))
                    if error.status() == Some(401)
                        && token_request.is_some()
                        && !retried
                        && self.invalidate_after_401(&spec.id, exchange.attempt) =>
                {
                    // The token may have been revoked: try once more.
                    retried = true;
                }
                Ok(Err(error)) => return Err(UpstreamError::Mcp(error)),
                Err(_) => {
                    return Err(UpstreamError::TimedOut {
                        stage: stage.get(),
                        budget,
                    })
                }
            }
        }
    }

    /// Sends a session's closing `DELETE` on its own, within its own budget,
    /// after the exchange's result: a clean-up that hangs must not lose a
    /// finished listing.
    pub(super) fn close_later(&self, closing: Closing, budget: Duration) {
        if let Some(request) = closing.request() {
            let http = self.deps.http.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(budget, http.send(request)).await;
            });
        }
    }

    /// Where a server is and the headers of its own credentials, except the
    /// token, which is fetched per exchange.
    #[allow(clippy::type_complexity)]
    pub(super) fn upstream(
        &self,
        spec: &ServerSpec,
    ) -> Result<(String, Vec<(HeaderName, HeaderValue)>, Option<TokenRequest>), String> {
        let url = match (spec.transport, &spec.url) {
            (Transport::Http, Some(url)) => url.clone(),
            (Transport::Sse, _) => {
                return Err(
                    "connect: the legacy HTTP+SSE transport is not supported by the reference \
                     gateway; register the server with transport http"
                        .to_string(),
                )
            }
            _ => {
                return Err(
                    "connect: stdio servers are not started by the reference gateway".to_string(),
                )
            }
        };
        let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
        for (name, value) in &spec.static_headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value.expose()),
            ) {
                headers.push((n, v));
            }
        }
        let token_request = match &spec.auth {
            Auth::None => None,
            Auth::Header { name, value } => {
                if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
                    set_secret_header(&mut headers, n, value.expose());
                }
                None
            }
            Auth::UserOAuth => {
                return Err(
                    "token: per-user OAuth (authorization_code) needs a user's token; the \
                     gateway cannot list tools on its own"
                        .to_string(),
                )
            }
            Auth::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scopes,
                audience,
                resource,
            } => {
                // Defect nested-credentials-ignored: LiteLLM's runtime token
                // request reads `client_id` and `client_secret` from the
                // server's top-level keys, which a REST registration keeps
                // under `credentials` (issue 37222): the endpoint sees
                // empty ones.
                let ignored =
                    spec.source == Source::Rest && self.has(Defect::NestedCredentialsIgnored);
                let (client_id, client_secret) = if ignored {
                    (String::new(), spec::Secret::new(""))
                } else {
                    (client_id.clone(), client_secret.clone())
                };
                Some(TokenRequest {
                    server_id: spec.id.clone(),
                    token_url: token_url.clone(),
                    client_id,
                    client_secret,
                    scopes: scopes.clone(),
                    audience: audience.clone(),
                    resource: resource.clone(),
                })
            }
        };
        Ok((url, headers, token_request))
    }

    /// The client quirks the switched-on defects ask for.
    pub(super) fn quirks(&self) -> ClientQuirks {
        ClientQuirks {
            // Defect no-reinitialize-on-404: MCP SDK 1.26 fails the listing
            // on `404 Session terminated` instead of starting a new session.
            no_reinitialize_on_404: self.has(Defect::NoReinitializeOn404),
            // Defect first-page-only: `nextCursor` is ignored.
            first_page_only: self.has(Defect::FirstPageOnly),
            // Defect stateless-upstream-refused: see `Session::initialize`.
            session_id_required: self.has(Defect::StatelessUpstreamRefused),
            // Defect delete-404-fails-session: see `Session::finish`.
            delete_in_exchange: self.has(Defect::Delete404FailsSession),
            // Defect initialize-twice-per-exchange: see `Session::open`.
            throwaway_session: self.has(Defect::InitializeTwicePerExchange),
            // Defects empty-sse-data-parsed, first-sse-event-only and
            // crlf-sse-not-split: see `find_in_sse`.
            parse_empty_sse_data: self.has(Defect::EmptySseDataParsed),
            first_sse_event_only: self.has(Defect::FirstSseEventOnly),
            sse_lf_only: self.has(Defect::CrlfSseNotSplit),
            // Defects cut-stream-hangs and http-error-after-initialize-hangs:
            // see `Session::post`.
            hang_on_cut_stream: self.has(Defect::CutStreamHangs),
            hang_on_error_status: self.has(Defect::HttpErrorAfterInitializeHangs),
            // Defect protocol-version-hard-coded: see `Session::initialize`.
            hard_coded_version: self.has(Defect::ProtocolVersionHardCoded),
            // Defect no-stuck-cursor-guard: see `Session::list_all`.
            no_cursor_guard: self.has(Defect::NoStuckCursorGuard),
            // Defect get-405-retry-loop: see `mcp_client::listen`.
            get_again_after_405: self.has(Defect::Get405RetryLoop),
        }
    }

    /// After a 401 with a token: forgets the token and says whether to try
    /// once more with a fresh one.
    fn invalidate_after_401(&self, server_id: &str, attempt: Option<u64>) -> bool {
        // Defect no-invalidate-on-401: LiteLLM 1.83.7 keeps the cached token
        // until its TTL ends, so a revoked token is reused and every
        // exchange meanwhile ends in 401.
        if self.has(Defect::NoInvalidateOn401) || !self.tokens.forget_refused(server_id) {
            return false;
        }
        if let Some(attempt) = attempt {
            self.emit(GatewayEvent::TokenInvalidated {
                server_id: server_id.to_string(),
                attempt,
            });
        }
        true
    }

    pub(super) async fn token(
        &self,
        request: &TokenRequest,
        attempt: Option<u64>,
        budget: Duration,
        deadline: tokio::time::Instant,
    ) -> Result<spec::Secret, TokenFailure> {
        match tokio::time::timeout_at(deadline, self.tokens.get(request)).await {
            Ok(Ok(token)) => {
                if let (true, Some(attempt)) = (token.fetched, attempt) {
                    self.emit(GatewayEvent::TokenFetched {
                        server_id: request.server_id.clone(),
                        attempt,
                    });
                }
                Ok(token.access_token)
            }
            Ok(Err(error)) => Err(TokenFailure::Failed(error)),
            Err(_) => Err(TokenFailure::TimedOut(budget)),
        }
    }
}

/// Sets a header, replacing any of the same name, marked sensitive.
fn set_secret_header(headers: &mut Vec<(HeaderName, HeaderValue)>, name: HeaderName, value: &str) {
    headers.retain(|(n, _)| n != name);
    if let Ok(mut v) = HeaderValue::from_str(value) {
        v.set_sensitive(true);
        headers.push((name, v));
    }
}

/// Whether MCP SDK 1.26 turns this failure into a cancellation: an HTTP
/// error status (a 404 fails the session instead) or a refused connection.
fn surfaces_as_cancellation(error: &McpError) -> bool {
    match &error.failure {
        mcp_client::Failure::Status { status } => *status != 404,
        mcp_client::Failure::Transport(crate::HttpError::Connect(_)) => true,
        _ => false,
    }
}
