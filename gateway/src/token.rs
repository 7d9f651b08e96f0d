//! OAuth2 client-credentials tokens, one cache entry per server.
//!
//! Tokens come from the `oauth2` crate driven over the gateway's own
//! [`HttpClient`], so the same code runs in the simulation and live. A
//! request carries the configured `scope`, `audience` and RFC 8707
//! `resource`; an endpoint that refuses the configured client
//! authentication (`invalid_client`) is asked once more the other way (HTTP
//! Basic or the form body), since real endpoints accept one or the other. An entry
//! lives `max(expires_in - skew, floor)` seconds (LiteLLM's rule), or the
//! default TTL when the token server states no `expires_in`; a 401 from the
//! MCP server invalidates it. An entry also remembers which credentials it
//! was fetched with, so an update of the server never reuses an old token.
//! Fetches of one server's token go one at a time: a caller that finds no
//! live entry while another fetch for that server is on its way waits for it
//! and takes its token, instead of asking the token server a second time.
//!
//! Known defects of token handling live here too, as [`TokenQuirks`] in the
//! policy (this module cannot see the gateway's defects; the registry
//! builds the quirks from them). With the default quirks, none of those
//! branches is taken.
//!
//! Invariant: no error message carries the token, the secret or the body of
//! the token server's answer (it may echo either).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{AuthType, ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::http_client::{HttpClient, HttpError};
use crate::spec::Secret;

/// How the gateway authenticates itself to token servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// `client_id` and `client_secret` in the form body, as LiteLLM does.
    RequestBody,
    /// HTTP Basic, as RFC 6749 prefers.
    Basic,
}

/// TTL rules for cached tokens, and how the token client departs from the
/// reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenPolicy {
    pub expiry_skew: Duration,
    pub ttl_floor: Duration,
    pub default_ttl: Duration,
    pub client_auth: ClientAuthMethod,
    /// Known defects of the cache; all off in the reference.
    pub quirks: TokenQuirks,
}

/// Known defects of the token client ([`crate::Defect`]), one field each;
/// all off by default ([`TokenQuirks::default`] is the reference), set by
/// the registry from [`crate::Defects`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenQuirks {
    /// `token-cache-survives-update`: an entry is found by server alone,
    /// whatever credentials it was fetched with.
    pub keyed_by_server_only: bool,
    /// `audience-not-sent`.
    pub drops_audience: bool,
    /// `resource-not-sent`.
    pub drops_resource: bool,
    /// `scopes-not-sent`.
    pub drops_scopes: bool,
    /// `client-auth-method-fixed`: no second try the other way.
    pub fixed_client_auth: bool,
    /// `no-refresh-on-expiry`: an entry never expires and a 401 does not
    /// forget it.
    pub never_refreshes: bool,
    /// `unstated-expiry-kept-an-hour`: a token without `expires_in` is kept
    /// an hour, whatever [`TokenPolicy::default_ttl`] says.
    pub unstated_kept_an_hour: bool,
    /// `expiry-kept-relative`: a cached token's expiry is counted from its
    /// last use.
    pub expiry_from_last_use: bool,
}

/// What LiteLLM keeps a token without `expires_in` for.
const AN_HOUR: Duration = Duration::from_secs(3_600);

impl TokenPolicy {
    /// How long a token with this `expires_in` is served from the cache.
    pub fn ttl(&self, expires_in: Option<Duration>) -> Duration {
        match expires_in {
            Some(e) => e.saturating_sub(self.expiry_skew).max(self.ttl_floor),
            // Defect unstated-expiry-kept-an-hour: an answer without
            // `expires_in` is cached for LiteLLM's hour, the configured
            // default ignored (LiteLLM PR 32259).
            None if self.quirks.unstated_kept_an_hour => AN_HOUR,
            None => self.default_ttl,
        }
    }
}

/// The credentials a token request needs.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    pub server_id: String,
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scopes: Vec<String>,
    pub audience: Option<String>,
    pub resource: Option<String>,
}

impl TokenRequest {
    /// Identifies the credential set without holding the secret itself.
    fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        for part in [
            &self.token_url,
            &self.client_id,
            self.client_secret.expose(),
        ] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        for scope in &self.scopes {
            hasher.update(scope.as_bytes());
            hasher.update([0]);
        }
        for extra in [&self.audience, &self.resource] {
            hasher.update(extra.as_deref().unwrap_or("\u{1}").as_bytes());
            hasher.update([0]);
        }
        hex::encode(hasher.finalize())
    }
}

/// Why no token was had. Displays as the detail after `token: `.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// The token endpoint could not be reached or the connection broke.
    Transport(HttpError),
    /// The token endpoint answered an OAuth2 error (`invalid_client`, …).
    Refused { status: Option<u16>, error: String },
    /// The answer was not a token response.
    Malformed { status: Option<u16>, why: String },
    /// The server's `token_url` is not a URL the client accepts.
    BadUrl,
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = |s: &Option<u16>| match s {
            Some(code) => format!("HTTP {code}"),
            None => "no HTTP status".to_string(),
        };
        match self {
            TokenError::Transport(e) => write!(f, "token endpoint unreachable: {e}"),
            TokenError::Refused { status: s, error } => {
                write!(f, "token endpoint answered {} {error}", status(s))
            }
            TokenError::Malformed { status: s, why } => {
                write!(
                    f,
                    "token endpoint answered {}, not a token response: {why}",
                    status(s)
                )
            }
            TokenError::BadUrl => write!(f, "token_url is not a valid URL"),
        }
    }
}

impl std::error::Error for TokenError {}

/// A token taken from the cache or freshly fetched.
#[derive(Clone, Debug)]
pub struct Token {
    pub access_token: Secret,
    /// True when this call asked the token server.
    pub fetched: bool,
}

#[derive(Clone, Debug)]
struct Cached {
    fingerprint: String,
    access_token: Secret,
    expires_at: Duration,
    /// How long it is kept, counted from when it was had.
    ttl: Duration,
}

/// Per-server token cache.
pub struct TokenCache {
    http: Arc<dyn HttpClient>,
    clock: Arc<dyn Clock>,
    policy: TokenPolicy,
    entries: Mutex<BTreeMap<String, Cached>>,
    /// One turn per server that a fetch holds while it is on its way.
    /// tokio's mutex queues its waiters in order, so which caller goes
    /// next never depends on the thread.
    turns: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl TokenCache {
    pub fn new(http: Arc<dyn HttpClient>, clock: Arc<dyn Clock>, policy: TokenPolicy) -> Self {
        TokenCache {
            http,
            clock,
            policy,
            entries: Mutex::new(BTreeMap::new()),
            turns: Mutex::new(BTreeMap::new()),
        }
    }

    /// A valid token for this server: from the cache while it lives, else
    /// from the token server, once for all the callers that need it at the
    /// same time.
    pub async fn get(&self, request: &TokenRequest) -> Result<Token, TokenError> {
        let fingerprint = request.fingerprint();
        if let Some(token) = self.cached(&request.server_id, &fingerprint) {
            return Ok(token);
        }
        let turn = self.turn(&request.server_id);
        // Dropped when this call ends or is dropped (an aborted attempt),
        // whichever comes first: the next caller then fetches itself.
        let _turn = turn.lock().await;
        // The fetch this call waited for may have left a token.
        if let Some(token) = self.cached(&request.server_id, &fingerprint) {
            return Ok(token);
        }
        let (access_token, expires_in) = self.fetch(request).await?;
        let ttl = self.policy.ttl(expires_in);
        let expires_at = self.clock.now_unix() + ttl;
        self.lock().insert(
            request.server_id.clone(),
            Cached {
                fingerprint,
                access_token: access_token.clone(),
                expires_at,
                ttl,
            },
        );
        Ok(Token {
            access_token,
            fetched: true,
        })
    }

    /// The cached token of this server, if it was fetched with these
    /// credentials and still lives.
    fn cached(&self, server_id: &str, fingerprint: &str) -> Option<Token> {
        let now = self.clock.now_unix();
        let quirks = self.policy.quirks;
        let mut entries = self.lock();
        let cached = entries.get_mut(server_id)?;
        // Defect token-cache-survives-update: LiteLLM keys its token
        // cache by server id alone, so new credentials, scopes or an
        // audience still get the old token (PR 32259).
        let same = cached.fingerprint == fingerprint || quirks.keyed_by_server_only;
        // Defect no-refresh-on-expiry: the token fetched when the
        // server was set up is kept for good, expired or not
        // (ContextForge issue 1023, MetaMCP issue 142).
        let live = now < cached.expires_at || quirks.never_refreshes;
        if !(same && live) {
            return None;
        }
        // Defect expiry-kept-relative: the expiry is kept as a
        // lifetime counted from the last use, so a token in steady
        // use never expires here (mcp2cli PR 51, mcp-mux PR 33).
        if quirks.expiry_from_last_use {
            cached.expires_at = now + cached.ttl;
        }
        Some(Token {
            access_token: cached.access_token.clone(),
            fetched: false,
        })
    }

    /// The turn that this server's fetches take one after the other.
    fn turn(&self, server_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
        turns.entry(server_id.to_string()).or_default().clone()
    }

    /// Forgets this server's token (after an update or a delete).
    pub fn invalidate(&self, server_id: &str) {
        self.lock().remove(server_id);
        // A turn nobody holds or waits for goes too, so that servers that
        // come and go leave nothing behind.
        let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
        if turns
            .get(server_id)
            .is_some_and(|t| Arc::strong_count(t) == 1)
        {
            turns.remove(server_id);
        }
    }

    /// Forgets this server's token after an upstream refused it with 401,
    /// and says whether it did (so a fresh one is worth asking for).
    pub fn forget_refused(&self, server_id: &str) -> bool {
        // Defect no-refresh-on-expiry: as above, a refused token is kept
        // too; the server stays offline until it is registered again.
        if self.policy.quirks.never_refreshes {
            return false;
        }
        self.invalidate(server_id);
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Cached>> {
        // A poisoned lock only means another task panicked mid-insert; the
        // map itself is still whole.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the token server, with the configured client authentication and,
    /// if the endpoint refuses it as `invalid_client`, once more the other way.
    async fn fetch(
        &self,
        request: &TokenRequest,
    ) -> Result<(Secret, Option<Duration>), TokenError> {
        let (first, other) = match self.policy.client_auth {
            ClientAuthMethod::RequestBody => (AuthType::RequestBody, AuthType::BasicAuth),
            ClientAuthMethod::Basic => (AuthType::BasicAuth, AuthType::RequestBody),
        };
        match self.fetch_with(request, first).await {
            // Defect client-auth-method-fixed: one method, whatever the
            // endpoint takes (LiteLLM PR 31635, rmcp PR 648).
            Err(TokenError::Refused { error, .. })
                if error == "invalid_client" && !self.policy.quirks.fixed_client_auth =>
            {
                self.fetch_with(request, other).await
            }
            result => result,
        }
    }

    async fn fetch_with(
        &self,
        request: &TokenRequest,
        auth_type: AuthType,
    ) -> Result<(Secret, Option<Duration>), TokenError> {
        let token_url = TokenUrl::new(request.token_url.clone()).map_err(|_| TokenError::BadUrl)?;
        let client = BasicClient::new(ClientId::new(request.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                request.client_secret.expose().to_string(),
            ))
            .set_token_uri(token_url)
            .set_auth_type(auth_type);
        // oauth2 drops the HTTP status of answers it cannot parse; keep it.
        let status: Arc<Mutex<Option<u16>>> = Arc::new(Mutex::new(None));
        let http = self.http.clone();
        let seen = status.clone();
        let send = move |req: oauth2::HttpRequest| {
            let http = http.clone();
            let seen = seen.clone();
            async move {
                let response = http.send(req).await?;
                *seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(response.status().as_u16());
                Ok::<_, HttpError>(response)
            }
        };
        let quirks = self.policy.quirks;
        // Defect scopes-not-sent: the provider builds the grant without the
        // configured scopes (MCP python-sdk 1.29).
        let scopes = request
            .scopes
            .iter()
            .filter(|_| !quirks.drops_scopes)
            .map(|s| Scope::new(s.clone()));
        // Boxing as `Send` here pins the borrow lifetimes, which rustc cannot
        // otherwise prove `Send` for every lifetime inside a spawned task.
        let mut grant = client.exchange_client_credentials().add_scopes(scopes);
        // Defect audience-not-sent: the configured audience is stored but
        // never added to the grant (LiteLLM PR 32259).
        if let Some(audience) = request.audience.as_ref().filter(|_| !quirks.drops_audience) {
            grant = grant.add_extra_param("audience", audience.clone());
        }
        // Defect resource-not-sent: no RFC 8707 resource parameter (LiteLLM
        // PR 34265, ContextForge 1.0.7).
        if let Some(resource) = request.resource.as_ref().filter(|_| !quirks.drops_resource) {
            grant = grant.add_extra_param("resource", resource.clone());
        }
        let exchange: crate::http_client::BoxFuture<'_, _> = Box::pin(grant.request_async(&send));
        let result = exchange.await;
        let status = *status.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(response) => Ok((
                Secret::new(response.access_token().secret().clone()),
                response.expires_in(),
            )),
            Err(oauth2::RequestTokenError::Request(e)) => Err(TokenError::Transport(e)),
            Err(oauth2::RequestTokenError::ServerResponse(e)) => Err(TokenError::Refused {
                status,
                error: e.error().to_string(),
            }),
            Err(oauth2::RequestTokenError::Parse(e, _body)) => Err(TokenError::Malformed {
                status,
                why: crate::spec::describe_serde_error(e.inner()),
            }),
            Err(oauth2::RequestTokenError::Other(why)) => Err(TokenError::Malformed {
                status,
                // These messages describe the response's shape, not its body.
                why,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_client::BoxFuture;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A token endpoint in a closure: answers from a script, counts calls.
    struct Scripted {
        calls: AtomicU64,
        answer: Box<dyn Fn(u64) -> (u16, String) + Send + Sync>,
        bodies: Mutex<Vec<String>>,
    }

    impl HttpClient for Scripted {
        fn send(
            &self,
            request: http::Request<Vec<u8>>,
        ) -> BoxFuture<'_, Result<http::Response<Vec<u8>>, HttpError>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            self.bodies
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(request.body()).to_string());
            let (status, body) = (self.answer)(n);
            Box::pin(async move {
                Ok(http::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(body.into_bytes())
                    .unwrap())
            })
        }
    }

    struct FixedClock(Mutex<Duration>);
    impl Clock for FixedClock {
        fn now_unix(&self) -> Duration {
            *self.0.lock().unwrap()
        }
    }

    fn policy() -> TokenPolicy {
        TokenPolicy {
            expiry_skew: Duration::from_secs(60),
            ttl_floor: Duration::from_secs(10),
            default_ttl: Duration::from_secs(3600),
            client_auth: ClientAuthMethod::RequestBody,
            quirks: TokenQuirks::default(),
        }
    }

    fn setup(expires_in: u64) -> (Arc<Scripted>, Arc<FixedClock>, TokenCache) {
        let http = Arc::new(Scripted {
            calls: AtomicU64::new(0),
            answer: Box::new(move |n| {
                (
                    200,
                    format!(
                        r#"{{"access_token":"tok{n}","token_type":"Bearer","expires_in":{expires_in}}}"#
                    ),
                )
            }),
            bodies: Mutex::new(Vec::new()),
        });
        let clock = Arc::new(FixedClock(Mutex::new(Duration::from_secs(1_000))));
        let cache = TokenCache::new(http.clone(), clock.clone(), policy());
        (http, clock, cache)
    }

    fn request(secret: &Secret) -> TokenRequest {
        TokenRequest {
            server_id: "s1".to_string(),
            token_url: "http://auth/token".to_string(),
            client_id: "id".to_string(),
            client_secret: secret.clone(),
            scopes: Vec::new(),
            audience: None,
            resource: None,
        }
    }

    #[test]
    fn ttl_is_expires_in_minus_skew_with_a_floor() {
        let p = policy();
        assert_eq!(
            p.ttl(Some(Duration::from_secs(3600))),
            Duration::from_secs(3540)
        );
        assert_eq!(
            p.ttl(Some(Duration::from_secs(30))),
            Duration::from_secs(10)
        );
        assert_eq!(p.ttl(None), Duration::from_secs(3600));
    }

    #[tokio::test]
    async fn a_token_is_reused_until_its_ttl_ends_then_refetched() {
        let (http, clock, cache) = setup(120);
        let secret = Secret::new("s3cret");
        let first = cache.get(&request(&secret)).await.unwrap();
        assert!(first.fetched);
        let again = cache.get(&request(&secret)).await.unwrap();
        assert!(!again.fetched);
        assert_eq!(again.access_token.expose(), "tok0");
        // 120 s - 60 s skew = 60 s of life.
        *clock.0.lock().unwrap() += Duration::from_secs(59);
        assert!(!cache.get(&request(&secret)).await.unwrap().fetched);
        *clock.0.lock().unwrap() += Duration::from_secs(1);
        let renewed = cache.get(&request(&secret)).await.unwrap();
        assert!(renewed.fetched);
        assert_eq!(renewed.access_token.expose(), "tok1");
        assert_eq!(http.calls.load(Ordering::SeqCst), 2);
        assert!(http.bodies.lock().unwrap()[0].contains("grant_type=client_credentials"));
    }

    /// Answers as its [`Scripted`] does, 10 ms later: callers overlap.
    struct Slow(Arc<Scripted>);

    impl HttpClient for Slow {
        fn send(
            &self,
            request: http::Request<Vec<u8>>,
        ) -> BoxFuture<'_, Result<http::Response<Vec<u8>>, HttpError>> {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                self.0.send(request).await
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn callers_at_the_same_time_share_one_fetch() {
        let (http, clock, _) = setup(3600);
        let cache = TokenCache::new(Arc::new(Slow(http.clone())), clock, policy());
        let secret = Secret::new("s3cret");
        let asked = request(&secret);
        let (a, b, c) = tokio::join!(cache.get(&asked), cache.get(&asked), cache.get(&asked));
        let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
        assert_eq!(http.calls.load(Ordering::SeqCst), 1);
        assert_eq!([a.fetched, b.fetched, c.fetched], [true, false, false]);
        assert!([&b, &c]
            .iter()
            .all(|t| t.access_token.expose() == a.access_token.expose()));
        // Other credentials wait their turn, then fetch their own.
        let rotated = request(&Secret::new("rotated"));
        let (old, new) = tokio::join!(cache.get(&asked), cache.get(&rotated));
        assert!(!old.unwrap().fetched);
        assert!(new.unwrap().fetched);
        assert_eq!(http.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fetch_given_up_midway_lets_the_next_caller_fetch() {
        let (http, clock, _) = setup(3600);
        let cache = TokenCache::new(Arc::new(Slow(http.clone())), clock, policy());
        let secret = Secret::new("s3cret");
        let asked = request(&secret);
        let given_up = tokio::time::timeout(Duration::from_millis(5), cache.get(&asked)).await;
        assert!(given_up.is_err());
        let token = cache.get(&request(&secret)).await.unwrap();
        assert!(token.fetched);
        cache.invalidate("s1");
        assert!(cache.turns.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn invalidation_after_a_401_and_new_credentials_both_refetch() {
        let (http, _clock, cache) = setup(3600);
        let secret = Secret::new("s3cret");
        cache.get(&request(&secret)).await.unwrap();
        cache.invalidate("s1");
        assert!(cache.get(&request(&secret)).await.unwrap().fetched);
        let rotated = Secret::new("rotated");
        assert!(cache.get(&request(&rotated)).await.unwrap().fetched);
        assert_eq!(http.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn refusals_and_garbage_keep_the_status_and_never_the_body() {
        let http = Arc::new(Scripted {
            calls: AtomicU64::new(0),
            // Refused both ways (the body, then Basic), then garbage.
            answer: Box::new(|n| match n {
                0 | 1 => (401, r#"{"error":"invalid_client"}"#.to_string()),
                _ => (500, "oops s3cret".to_string()),
            }),
            bodies: Mutex::new(Vec::new()),
        });
        let clock = Arc::new(FixedClock(Mutex::new(Duration::ZERO)));
        let cache = TokenCache::new(http, clock, policy());
        let secret = Secret::new("s3cret");
        let refused = cache.get(&request(&secret)).await.unwrap_err();
        assert_eq!(
            refused.to_string(),
            "token endpoint answered HTTP 401 invalid_client"
        );
        let garbage = cache.get(&request(&secret)).await.unwrap_err();
        assert!(
            garbage
                .to_string()
                .starts_with("token endpoint answered HTTP 500"),
            "{garbage}"
        );
        assert!(!garbage.to_string().contains("s3cret"));
    }

    #[tokio::test]
    async fn an_endpoint_that_refuses_the_body_is_asked_with_basic_and_extras_are_sent() {
        let http = Arc::new(Scripted {
            calls: AtomicU64::new(0),
            answer: Box::new(|n| match n {
                0 => (401, r#"{"error":"invalid_client"}"#.to_string()),
                _ => (
                    200,
                    r#"{"access_token":"t","token_type":"Bearer","expires_in":60}"#.to_string(),
                ),
            }),
            bodies: Mutex::new(Vec::new()),
        });
        let clock = Arc::new(FixedClock(Mutex::new(Duration::ZERO)));
        let cache = TokenCache::new(http.clone(), clock, policy());
        let secret = Secret::new("s3cret");
        let mut wanted = request(&secret);
        wanted.audience = Some("api".into());
        wanted.resource = Some("http://mcp/mcp".into());
        assert!(cache.get(&wanted).await.unwrap().fetched);
        let bodies = http.bodies.lock().unwrap().clone();
        assert_eq!(bodies.len(), 2);
        assert!(bodies[0].contains("client_secret="), "{}", bodies[0]);
        assert!(!bodies[1].contains("client_secret="), "{}", bodies[1]);
        for body in &bodies {
            assert!(body.contains("audience=api"), "{body}");
            assert!(body.contains("resource=http%3A%2F%2Fmcp%2Fmcp"), "{body}");
        }
    }
}
