//! A fake OAuth 2.0 token endpoint for the client-credentials grant (RFC 6749 §4.4, §5).
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
    pub issuer: String,
    pub signing_key: String,
    pub clients: Vec<ClientRegistration>,
    pub expires_in_s: Option<u64>,
    pub latency_ms: u64,
    pub failures: Vec<TokenFailureRule>,
}

impl Default for TokenServerConfig {
    fn default() -> Self {
        TokenServerConfig {
            path: "/oauth/token".into(),
            issuer: "mcpsim-auth".into(),
            signing_key: "mcpsim-signing-key".into(),
            clients: Vec::new(),
            expires_in_s: Some(3600),
            latency_ms: 0,
            failures: Vec::new(),
        }
    }
}

/// A pre-registered confidential client. Empty `scopes` means any scope may be requested.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRegistration {
    pub client_id: String,
    pub client_secret: String,
    #[serde(default)]
    pub scopes: Vec<String>,
}

// The secret is left out so that logging a configuration cannot leak it into a report.
impl fmt::Debug for ClientRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRegistration")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scopes", &self.scopes)
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
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, TokenState> {
        // A poisoned lock only means another handler panicked; the counters are still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An RFC 6749 §5.2 error, with the `WWW-Authenticate` challenge when the client used Basic.
struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: &'static str,
    basic_challenge: bool,
}

impl OAuthError {
    fn bad_request(code: &'static str, description: &'static str) -> Self {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            code,
            description,
            basic_challenge: false,
        }
    }

    fn invalid_client(basic_challenge: bool) -> Self {
        OAuthError {
            status: StatusCode::UNAUTHORIZED,
            code: "invalid_client",
            description: "client authentication failed",
            basic_challenge,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.code, "error_description": self.description});
        let mut response = json_response(self.status, &body);
        if self.basic_challenge {
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
    if request.uri().path() != inner.config.path {
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
        let response = injected(rule.kind, basic_credentials(&parts.headers).is_some()).await;
        finish(TokenOutcome::Injected {
            status: Some(response.status().as_u16()),
        });
        return response;
    }

    match issue(&inner, &parts.headers, &body) {
        Ok((response, token, expires_in_s)) => {
            finish(TokenOutcome::Issued {
                token,
                expires_in_s,
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

async fn injected(kind: TokenFailure, used_basic: bool) -> Response {
    match kind {
        TokenFailure::InvalidClient => OAuthError::invalid_client(used_basic).into_response(),
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
/// mint; gives the response, the token's public name and its `expires_in`.
fn issue(
    inner: &Inner,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Response, TokenRef, Option<u64>), OAuthError> {
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
        (Some(Err(())), _, None) => return Err(OAuthError::invalid_client(true)),
        (None, Some(id), Some(secret)) => (id.to_string(), secret.to_string()),
        (None, _, _) => return Err(OAuthError::invalid_client(false)),
    };
    let client = inner
        .config
        .clients
        .iter()
        .find(|c| c.client_id == client_id && c.client_secret == client_secret)
        .ok_or_else(|| OAuthError::invalid_client(basic.is_some()))?;

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
        .expires_in_s
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
    Ok((
        json_response(StatusCode::OK, &body),
        token_ref,
        inner.config.expires_in_s,
    ))
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
