//! A fake OAuth 2.0 token endpoint for the client-credentials grant (RFC 6749 §4.4, §5), with
//! its RFC 8414 authorization-server metadata so that clients can discover it.
//!
//! Behaviours of real endpoints are settings, off by default: accepting only HTTP Basic or
//! only the form body, requiring `scope`, `resource` (RFC 8707) or `audience`, and tokens that
//! live otherwise than their stated `expires_in` (or state none).
//!
//! A client registered with a client-authentication method (`auth_method`, RFC 7591's
//! `token_endpoint_auth_method`) must use that method: another one is refused as
//! `invalid_client`, unless the endpoint is stated to be lenient (`lenient_client_auth`).
//!
//! Invariants: every answer is decided by the request, the configuration, the injected clock and
//! the request's ordinal, never by wall-clock time or chance. State (counters and the list of
//! issued tokens) lives in the [`TokenServer`] value, so a router rebuilt after a host restart
//! continues where the old one stopped. No response body ever echoes a secret or a token other
//! than the one being issued.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::access_token::{self, Claims};
use crate::log::{
    lock, run_ms, ClientAuthSeen, Log, Peer, Recording, TokenOutcome, TokenRef, TokenRequestRecord,
};
use crate::{rule_hits, sleep_ms, Clock};

/// Token lifetime when the configuration omits `expires_in`: the response then says nothing
/// about expiry, and a day is long enough that no scenario sees it lapse by accident.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
const BODY_LIMIT_BYTES: usize = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenServerConfig {
    pub path: String,
    /// The `iss` of every token. A URL also names where the metadata says the endpoint is;
    /// otherwise the metadata uses the `Host` the client addressed.
    pub issuer: String,
    pub signing_key: String,
    pub clients: Vec<ClientRegistration>,
    /// The `expires_in` a token response states; none states nothing.
    pub expires_in_s: Option<u64>,
    /// How long tokens really live, when that differs from what `expires_in_s` states (or
    /// when nothing is stated): a day when neither is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifetime_s: Option<u64>,
    pub latency_ms: u64,
    pub failures: Vec<TokenFailureRule>,
    /// Which client authentication the endpoint accepts.
    #[serde(skip_serializing_if = "is_any")]
    pub client_auth: AcceptedClientAuth,
    /// A request must ask for this scope (among others), or gets `invalid_scope`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_scope: Option<String>,
    /// A request must name this `resource` (RFC 8707), or gets `invalid_target`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_resource: Option<String>,
    /// A request must name this `audience`, or gets `invalid_request`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_audience: Option<String>,
    /// Serve a registered client that authenticates another way than its registration's
    /// `auth_method`, as lenient real endpoints do; by default it is refused as
    /// `invalid_client`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lenient_client_auth: bool,
}

impl Default for TokenServerConfig {
    fn default() -> Self {
        TokenServerConfig {
            path: "/oauth/token".into(),
            issuer: "mcpsim-auth".into(),
            signing_key: "mcpsim-signing-key".into(),
            clients: Vec::new(),
            expires_in_s: Some(3600),
            lifetime_s: None,
            latency_ms: 0,
            failures: Vec::new(),
            client_auth: AcceptedClientAuth::Any,
            require_scope: None,
            require_resource: None,
            require_audience: None,
            lenient_client_auth: false,
        }
    }
}

/// Which client authentication a token endpoint accepts. RFC 6749 §2.3.1 requires Basic and
/// allows the form body; real endpoints differ.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AcceptedClientAuth {
    #[default]
    Any,
    /// HTTP Basic only (`client_secret_basic`).
    BasicOnly,
    /// The form body only (`client_secret_post`).
    FormOnly,
}

fn is_any(accepted: &AcceptedClientAuth) -> bool {
    *accepted == AcceptedClientAuth::Any
}

/// How a client authenticates itself to the token endpoint (RFC 6749 §2.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic (`client_secret_basic`).
    Basic,
    /// `client_id` and `client_secret` in the form body (`client_secret_post`).
    Form,
}

/// A pre-registered confidential client. Empty `scopes` means any scope may be requested.
/// A stated `auth_method` is the only client authentication this client may use; without one
/// it may use any the endpoint accepts.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRegistration {
    pub client_id: String,
    pub client_secret: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<AuthMethod>,
}

// The secret is left out so that logging a configuration cannot leak it into a report.
impl fmt::Debug for ClientRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRegistration")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scopes", &self.scopes)
            .field("auth_method", &self.auth_method)
            .finish()
    }
}

/// Lets `after` requests through normally, then fails `count` of them (`None` = all later ones).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFailureRule {
    pub kind: TokenFailure,
    #[serde(default)]
    pub after: u32,
    #[serde(default)]
    pub count: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenFailure {
    /// 401 `{"error":"invalid_client"}`, as if the registration had been revoked.
    InvalidClient,
    /// 500 `{"error":"server_error"}`.
    ServerError,
    /// 200 `application/json` whose body is not JSON.
    MalformedBody,
    /// Never answers.
    Hang,
    /// 429 with `Retry-After: 1`.
    RateLimited,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TokenStats {
    /// POSTs that reached the token path.
    pub requests: u64,
    pub issued: u64,
    /// Requests refused by normal handling (4xx).
    pub rejected: u64,
    /// Requests answered (or left hanging) by a failure rule.
    pub failed_injected: u64,
}

/// The fake token server; cheap to clone, all clones share state.
#[derive(Clone)]
pub struct TokenServer {
    inner: Arc<Inner>,
}

struct Inner {
    config: TokenServerConfig,
    clock: Clock,
    state: Mutex<TokenState>,
    log: Mutex<Log<TokenRequestRecord>>,
}

#[derive(Default)]
struct TokenState {
    stats: TokenStats,
    issued_tokens: Vec<String>,
}

impl TokenServer {
    pub fn new(config: TokenServerConfig, clock: Clock) -> Self {
        let state = Mutex::new(TokenState::default());
        TokenServer {
            inner: Arc::new(Inner {
                config,
                clock,
                state,
                log: Mutex::default(),
            }),
        }
    }

    /// A router serving the token endpoint; call again after a host restart.
    pub fn router(&self) -> Router {
        // A fallback instead of `route` keeps any configured path literal (axum would read
        // `{x}` as a parameter) and cannot panic on a path axum dislikes.
        Router::new()
            .fallback(handle)
            .with_state(self.inner.clone())
    }

    pub fn stats(&self) -> TokenStats {
        self.inner.lock().stats.clone()
    }

    /// Every access token issued so far, oldest first.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.inner.lock().issued_tokens.clone()
    }

    /// Every request to the token path so far, in the order they arrived.
    pub fn requests(&self) -> Log<TokenRequestRecord> {
        lock(&self.inner.log).clone()
    }

    /// Keeps at most `capacity` request records from now on (the default is
    /// [`crate::LOG_CAPACITY`]): a harness sets a smaller one per run, so
    /// that a request storm ends quickly as a finding.
    pub fn limit_log(&self, capacity: usize) {
        lock(&self.inner.log).limit(capacity);
    }

    /// Whether the request log is full: later requests are only counted.
    pub fn log_full(&self) -> bool {
        lock(&self.inner.log).is_full()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, TokenState> {
        // A poisoned lock only means another handler panicked; the counters are still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An RFC 6749 §5.2 error; a 401 carries the `WWW-Authenticate` challenge (RFC 7235 requires
/// one on every 401, RFC 6749 names Basic's).
struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: &'static str,
}

impl OAuthError {
    fn bad_request(code: &'static str, description: &'static str) -> Self {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            code,
            description,
        }
    }

    fn invalid_client(description: &'static str) -> Self {
        OAuthError {
            status: StatusCode::UNAUTHORIZED,
            code: "invalid_client",
            description,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.code, "error_description": self.description});
        let mut response = json_response(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"mcpsim\""),
            );
        }
        response
    }
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // RFC 6749 §5.1: token responses must not be cached.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

async fn handle(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    let path = request.uri().path();
    if path.starts_with("/.well-known/oauth-authorization-server")
        || path.starts_with("/.well-known/openid-configuration")
    {
        return metadata(&inner, request.headers());
    }
    if path == AUTHORIZE_PATH {
        return OAuthError::bad_request(
            "unsupported_response_type",
            "this server issues tokens for the client-credentials grant only",
        )
        .into_response();
    }
    if path != inner.config.path {
        return StatusCode::NOT_FOUND.into_response();
    }
    if request.method() != Method::POST {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "POST")]).into_response();
    }
    let ordinal = {
        let mut state = inner.lock();
        state.stats.requests += 1;
        state.stats.requests - 1
    };
    let peer = request.extensions().get::<Peer>().map(|p| p.0.clone());
    let received_ms = run_ms(&inner.clock);
    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, BODY_LIMIT_BYTES).await {
        Ok(body) => body,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let mut entry = Recording::open(&inner.log, seen(&parts.headers, &body, received_ms, peer));
    let clock = inner.clock.clone();
    let mut finish = move |outcome: TokenOutcome| {
        let answered_ms = run_ms(&clock);
        entry.finish(|r| {
            r.answered_ms = Some(answered_ms);
            r.outcome = outcome;
        });
    };
    sleep_ms(inner.config.latency_ms).await;

    let rule = inner
        .config
        .failures
        .iter()
        .find(|rule| rule_hits(rule.after, rule.count, ordinal));
    if let Some(rule) = rule {
        inner.lock().stats.failed_injected += 1;
        let response = injected(rule.kind).await;
        finish(TokenOutcome::Injected {
            status: Some(response.status().as_u16()),
        });
        return response;
    }

    match issue(&inner, &parts.headers, &body) {
        Ok(Issue {
            response,
            token,
            expires_in_s,
            registration,
        }) => {
            finish(TokenOutcome::Issued {
                token,
                expires_in_s,
                registration,
            });
            response
        }
        Err(error) => {
            inner.lock().stats.rejected += 1;
            finish(TokenOutcome::Refused {
                status: error.status.as_u16(),
                error: error.code.to_string(),
            });
            error.into_response()
        }
    }
}

/// What the record of a request says before it is answered: who asked,
/// how it authenticated, and the grant's parameters, never the secret.
fn seen(
    headers: &HeaderMap,
    body: &[u8],
    received_ms: u64,
    peer: Option<String>,
) -> TokenRequestRecord {
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let param = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let basic = basic_credentials(headers);
    let body_secret = param("client_secret").is_some();
    let client_auth = match (basic.is_some(), body_secret) {
        (true, true) => ClientAuthSeen::Both,
        (true, false) => ClientAuthSeen::Basic,
        (false, true) if param("client_id").is_some() => ClientAuthSeen::Form,
        _ => ClientAuthSeen::None,
    };
    let client_id = match basic {
        Some(Ok((id, _))) => Some(id),
        _ => param("client_id"),
    };
    TokenRequestRecord {
        received_ms,
        answered_ms: None,
        peer,
        client_id,
        client_auth,
        grant_type: param("grant_type"),
        scope: param("scope"),
        resource: param("resource"),
        audience: param("audience"),
        outcome: TokenOutcome::Pending,
    }
}

/// The authorization endpoint the metadata names; it refuses everything.
const AUTHORIZE_PATH: &str = "/authorize";

/// RFC 8414 authorization-server metadata. Clients that discover (the MCP SDKs' own
/// client-credentials providers) need `issuer`, `token_endpoint` and, though the grant never
/// uses them, `authorization_endpoint` and `response_types_supported`.
fn metadata(inner: &Inner, headers: &HeaderMap) -> Response {
    let config = &inner.config;
    let issuer_is_url =
        config.issuer.starts_with("http://") || config.issuer.starts_with("https://");
    let base = if issuer_is_url {
        config.issuer.trim_end_matches('/').to_string()
    } else {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
            })
            .unwrap_or("localhost");
        format!("http://{host}")
    };
    let methods: &[&str] = match config.client_auth {
        AcceptedClientAuth::Any => &["client_secret_basic", "client_secret_post"],
        AcceptedClientAuth::BasicOnly => &["client_secret_basic"],
        AcceptedClientAuth::FormOnly => &["client_secret_post"],
    };
    let mut scopes: Vec<&str> = config
        .clients
        .iter()
        .flat_map(|c| c.scopes.iter().map(String::as_str))
        .chain(config.require_scope.as_deref())
        .collect();
    scopes.sort_unstable();
    scopes.dedup();
    let issuer = if issuer_is_url {
        config.issuer.clone()
    } else {
        base.clone()
    };
    let mut body = serde_json::json!({
        "issuer": issuer,
        "token_endpoint": format!("{base}{}", config.path),
        "authorization_endpoint": format!("{base}{AUTHORIZE_PATH}"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": methods,
    });
    if !scopes.is_empty() {
        body["scopes_supported"] = scopes.into();
    }
    let mut response = json_response(StatusCode::OK, &body);
    // Metadata may be cached; only token responses must not be.
    response.headers_mut().remove(header::PRAGMA);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=60"),
    );
    response
}

async fn injected(kind: TokenFailure) -> Response {
    match kind {
        TokenFailure::InvalidClient => {
            OAuthError::invalid_client("client authentication failed").into_response()
        }
        TokenFailure::ServerError => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &serde_json::json!({"error": "server_error"}),
        ),
        TokenFailure::MalformedBody => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "<html>upstream proxy error</html>",
        )
            .into_response(),
        TokenFailure::Hang => std::future::pending().await,
        TokenFailure::RateLimited => {
            let mut response = json_response(
                StatusCode::TOO_MANY_REQUESTS,
                &serde_json::json!({"error": "rate_limited"}),
            );
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

/// Normal handling of one token request: authenticate, check the grant,
/// mint.
fn issue(inner: &Inner, headers: &HeaderMap, body: &[u8]) -> Result<Issue, OAuthError> {
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| OAuthError::bad_request("invalid_request", "body is not a form"))?;
    let mut names: Vec<&str> = form.iter().map(|(name, _)| name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|pair| pair[0] == pair[1]) {
        // RFC 6749 §3.2: request parameters must not be included more than once.
        return Err(OAuthError::bad_request(
            "invalid_request",
            "repeated parameter",
        ));
    }
    let param = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };

    let basic = basic_credentials(headers);
    let (client_id, client_secret) = match (&basic, param("client_id"), param("client_secret")) {
        (Some(_), _, Some(_)) => {
            // RFC 6749 §2.3: a client must not use more than one authentication method.
            return Err(OAuthError::bad_request(
                "invalid_request",
                "more than one client authentication method",
            ));
        }
        (Some(Ok((id, _))), Some(body_id), None) if body_id != id => {
            return Err(OAuthError::bad_request(
                "invalid_request",
                "client_id disagrees with the Authorization header",
            ));
        }
        (Some(Ok((id, secret))), _, None) => (id.clone(), secret.clone()),
        (Some(Err(())), _, None) => {
            return Err(OAuthError::invalid_client(
                "the Authorization header is not valid Basic",
            ))
        }
        (None, Some(id), Some(secret)) => (id.to_string(), secret.to_string()),
        (None, _, _) => {
            return Err(OAuthError::invalid_client(
                "no client authentication (HTTP Basic, or client_id and client_secret)",
            ))
        }
    };
    match (inner.config.client_auth, basic.is_some()) {
        (AcceptedClientAuth::BasicOnly, false) => {
            return Err(OAuthError::invalid_client(
                "this endpoint accepts HTTP Basic client authentication only",
            ))
        }
        (AcceptedClientAuth::FormOnly, true) => {
            return Err(OAuthError::invalid_client(
                "this endpoint accepts client credentials in the form body only",
            ))
        }
        _ => {}
    }
    let registration = inner
        .config
        .clients
        .iter()
        .position(|c| c.client_id == client_id && c.client_secret == client_secret)
        .ok_or_else(|| OAuthError::invalid_client("client authentication failed"))?;
    let client = &inner.config.clients[registration];
    let used = if basic.is_some() {
        AuthMethod::Basic
    } else {
        AuthMethod::Form
    };
    match client.auth_method {
        Some(AuthMethod::Basic)
            if used != AuthMethod::Basic && !inner.config.lenient_client_auth =>
        {
            return Err(OAuthError::invalid_client(
                "this client is registered for HTTP Basic client authentication",
            ))
        }
        Some(AuthMethod::Form) if used != AuthMethod::Form && !inner.config.lenient_client_auth => {
            return Err(OAuthError::invalid_client(
                "this client is registered for client credentials in the form body",
            ))
        }
        _ => {}
    }

    match param("grant_type") {
        None => {
            return Err(OAuthError::bad_request(
                "invalid_request",
                "grant_type is missing",
            ))
        }
        Some("client_credentials") => {}
        Some(_) => {
            return Err(OAuthError::bad_request(
                "unsupported_grant_type",
                "only client_credentials is supported",
            ))
        }
    }

    let requested: Vec<&str> = param("scope")
        .map(|s| s.split_whitespace().collect())
        .unwrap_or_default();
    if let Some(scope) = &inner.config.require_scope {
        if !requested.contains(&scope.as_str()) {
            return Err(OAuthError::bad_request(
                "invalid_scope",
                "this endpoint requires a scope the request does not ask for",
            ));
        }
    }
    if let Some(resource) = &inner.config.require_resource {
        if param("resource") != Some(resource.as_str()) {
            return Err(OAuthError::bad_request(
                "invalid_target",
                "the request must name this server's resource (RFC 8707)",
            ));
        }
    }
    if let Some(audience) = &inner.config.require_audience {
        if param("audience") != Some(audience.as_str()) {
            return Err(OAuthError::bad_request(
                "invalid_request",
                "the request must name the audience this endpoint requires",
            ));
        }
    }
    let allowed =
        |scope: &&str| client.scopes.is_empty() || client.scopes.iter().any(|s| s == scope);
    if !requested.iter().all(allowed) {
        return Err(OAuthError::bad_request(
            "invalid_scope",
            "requested scope is not allowed for this client",
        ));
    }
    // Without a requested scope the client gets everything it is registered for (RFC 6749 §3.3).
    let scope = if requested.is_empty() {
        client.scopes.join(" ")
    } else {
        requested.join(" ")
    };

    let lifetime = inner
        .config
        .lifetime_s
        .or(inner.config.expires_in_s)
        .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
    let now_ms = u64::try_from((inner.clock)().as_millis()).unwrap_or(u64::MAX);
    let exp_ms = now_ms.saturating_add(u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX));

    let mut state = inner.lock();
    state.stats.issued += 1;
    let claims = Claims {
        iss: inner.config.issuer.clone(),
        sub: client.client_id.clone(),
        scope: scope.clone(),
        exp_ms,
        iat_ms: Some(now_ms),
        jti: state.stats.issued,
    };
    let token = access_token::mint(&inner.config.signing_key, &claims);
    state.issued_tokens.push(token.clone());
    drop(state);
    let token_ref = TokenRef {
        issuer: claims.iss.clone(),
        client_id: claims.sub.clone(),
        serial: claims.jti,
        issued_ms: now_ms.saturating_sub(crate::SIM_EPOCH_UNIX_S * 1_000),
    };

    let mut body = serde_json::json!({"access_token": token, "token_type": "Bearer"});
    if let Some(expires_in) = inner.config.expires_in_s {
        body["expires_in"] = expires_in.into();
    }
    if !scope.is_empty() {
        body["scope"] = scope.into();
    }
    Ok(Issue {
        response: json_response(StatusCode::OK, &body),
        token: token_ref,
        expires_in_s: inner.config.expires_in_s,
        registration,
    })
}

/// A token issued: the response, the token's public name, its `expires_in`
/// and the registration that authenticated.
struct Issue {
    response: Response,
    token: TokenRef,
    expires_in_s: Option<u64>,
    registration: usize,
}

/// The client id and secret from an `Authorization: Basic` header, `None` when the header is
/// absent or uses another scheme, and `Err` when it is Basic but does not decode.
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decode = || {
        let raw = STANDARD.decode(encoded.trim()).map_err(|_| ())?;
        let raw = String::from_utf8(raw).map_err(|_| ())?;
        let (id, secret) = raw.split_once(':').ok_or(())?;
        // RFC 6749 §2.3.1: both halves are form-urlencoded before base64.
        Ok((form_decode(id)?, form_decode(secret)?))
    };
    Some(decode())
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XX` a byte.
fn form_decode(text: &str) -> Result<String, ()> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(())?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(());
                }
                let hex = std::str::from_utf8(hex).map_err(|_| ())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ())
}
