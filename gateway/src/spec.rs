//! One normalisation for every registration path.
//!
//! A server registered from the config file, created or updated through REST,
//! or (later) synced from the store becomes the same [`ServerSpec`]. The rule
//! that LiteLLM breaks lives here once: a server uses OAuth2 client
//! credentials when `oauth2_flow` says so, or when the flow is absent and
//! `token_url`, `client_id` and `client_secret` are all present.
//!
//! Invariant: no error message built here quotes a field's value, only its
//! name, so a secret in a malformed body never reaches a response or a log.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::defects::{Defect, Defects};

/// A secret string: its `Debug` never shows the value and it has no `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

/// What a response shows in place of a secret.
pub const REDACTED: &str = "[REDACTED]";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    Http,
    Sse,
    Stdio,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Sse => "sse",
            Transport::Stdio => "stdio",
        }
    }

    fn parse(value: &str) -> Result<Self, SpecError> {
        match value {
            "http" => Ok(Transport::Http),
            "sse" => Ok(Transport::Sse),
            "stdio" => Ok(Transport::Stdio),
            _ => Err(SpecError::invalid(
                "transport",
                "unknown transport; expected one of http, sse, stdio",
            )),
        }
    }
}

pub use mcpsim_sut::Source;

/// How the gateway authenticates to the upstream MCP server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    None,
    /// A static header: `Authorization: Bearer …`, `X-API-Key: …`, and so on.
    Header {
        name: String,
        value: Secret,
    },
    /// Machine-to-machine OAuth2: a token from `token_url`, then `Bearer`.
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: Secret,
        scopes: Vec<String>,
        /// Sent as the grant's `audience`, for providers that require one.
        audience: Option<String>,
        /// Sent as the grant's RFC 8707 `resource`.
        resource: Option<String>,
    },
    /// Per-user OAuth (authorization code): the gateway holds no credential of
    /// its own, so it cannot list tools without a user.
    UserOAuth,
}

/// A normalised server definition, the same whatever path registered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSpec {
    pub id: String,
    pub name: String,
    /// Prefix of tool names (`<alias>-<tool>`); the name when not given.
    pub alias: String,
    pub description: Option<String>,
    pub transport: Transport,
    pub url: Option<String>,
    /// `auth_type` as registered, kept for display and for config ids.
    pub auth_type: Option<String>,
    pub auth: Auth,
    pub token_url: Option<String>,
    pub authorization_url: Option<String>,
    pub static_headers: BTreeMap<String, Secret>,
    pub extra_headers: Vec<String>,
    pub command: Option<String>,
    pub source: Source,
}

impl ServerSpec {
    /// The effective OAuth2 flow after normalisation, for display.
    pub fn oauth2_flow(&self) -> Option<&'static str> {
        match self.auth {
            Auth::ClientCredentials { .. } => Some("client_credentials"),
            Auth::UserOAuth => Some("authorization_code"),
            _ => None,
        }
    }

    /// Every secret this definition holds, for redaction checks.
    pub fn secrets(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.static_headers.values().map(Secret::expose).collect();
        match &self.auth {
            Auth::Header { value, .. } => out.push(value.expose()),
            Auth::ClientCredentials { client_secret, .. } => out.push(client_secret.expose()),
            Auth::None | Auth::UserOAuth => {}
        }
        out
    }
}

/// A registration refused before it touched the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    /// The field at fault, as the caller spelled it (`credentials.client_id`).
    pub field: String,
    pub reason: String,
}

impl SpecError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SpecError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.field, self.reason)
        }
    }
}

impl std::error::Error for SpecError {}

/// `credentials` of a REST body.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RestCredentials {
    pub auth_value: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub audience: Option<String>,
    pub resource: Option<String>,
}

/// The body of `POST /v1/mcp/server` and `PUT /v1/mcp/server`, in LiteLLM's
/// shape. Unknown fields are ignored, as LiteLLM does.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RestServerBody {
    pub server_id: Option<String>,
    pub server_name: Option<String>,
    pub alias: Option<String>,
    pub description: Option<String>,
    pub transport: Option<String>,
    pub url: Option<String>,
    pub auth_type: Option<String>,
    pub credentials: Option<RestCredentials>,
    pub token_url: Option<String>,
    pub authorization_url: Option<String>,
    pub oauth2_flow: Option<String>,
    pub static_headers: Option<BTreeMap<String, String>>,
    pub extra_headers: Option<Vec<String>>,
    pub command: Option<String>,
}

/// One entry of the config file's `mcp_servers:` block: LiteLLM's flat keys.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ConfigServer {
    pub url: Option<String>,
    pub transport: Option<String>,
    pub auth_type: Option<String>,
    pub oauth2_flow: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub token_url: Option<String>,
    pub authorization_url: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub audience: Option<String>,
    pub resource: Option<String>,
    pub authentication_token: Option<String>,
    pub auth_value: Option<String>,
    pub static_headers: Option<BTreeMap<String, String>>,
    pub extra_headers: Option<Vec<String>>,
    pub alias: Option<String>,
    pub description: Option<String>,
    pub command: Option<String>,
}

/// The config file: only the block the gateway reads.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub mcp_servers: BTreeMap<String, ConfigServer>,
}

/// The fields both paths share, after each path has put its own keys in place.
struct Fields {
    name: Option<String>,
    alias: Option<String>,
    description: Option<String>,
    transport: Transport,
    url: Option<String>,
    auth_type: Option<String>,
    oauth2_flow: Option<String>,
    auth_value: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scopes: Vec<String>,
    audience: Option<String>,
    resource: Option<String>,
    token_url: Option<String>,
    authorization_url: Option<String>,
    static_headers: BTreeMap<String, String>,
    extra_headers: Vec<String>,
    command: Option<String>,
    /// Prefix for field names in errors: `credentials.` for REST.
    credential_prefix: &'static str,
    /// Only an explicit `oauth2_flow` enables client credentials (the
    /// `rest-drops-oauth2-flow` defect; never set by the reference).
    explicit_flow_only: bool,
    /// An auth type given no credentials at all means no authentication
    /// (the `missing-credentials-fail-open` defect; never set by the
    /// reference).
    fail_open: bool,
}

/// Parses a REST body: JSON errors name the path and the kind of mistake.
pub fn parse_rest_body(bytes: &[u8]) -> Result<RestServerBody, SpecError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        SpecError::invalid(field, describe_serde_error(e.inner()))
    })
}

/// serde's messages quote the offending value (`invalid type: string "…"`),
/// which may be a secret; keep only what was expected and where.
pub fn describe_serde_error(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let message = error.to_string();
    let at = format!("line {} column {}", error.line(), error.column());
    match error.classify() {
        Category::Syntax | Category::Eof => format!("malformed JSON at {at}"),
        Category::Io => "could not read the body".to_string(),
        Category::Data => match message.find(", expected ") {
            Some(i) => {
                let expected = message[i + 2..].split(" at line ").next().unwrap_or("");
                format!("wrong type or value, {expected}")
            }
            None => {
                // Messages such as "missing field `x`" quote no value.
                message.split(" at line ").next().unwrap_or("").to_string()
            }
        },
    }
}

/// Normalises a REST create. `generate_id` supplies an id when none is given.
pub fn from_rest(
    body: &RestServerBody,
    generate_id: impl FnOnce() -> String,
) -> Result<ServerSpec, SpecError> {
    from_rest_with(body, generate_id, Defects::none())
}

/// [`from_rest`], with the defects of the REST/database path switched on.
pub(crate) fn from_rest_with(
    body: &RestServerBody,
    generate_id: impl FnOnce() -> String,
    defects: Defects,
) -> Result<ServerSpec, SpecError> {
    // Defect rest-drops-oauth2-flow: LiteLLM's database has no column for
    // `oauth2_flow`, so the REST path loses it, and only an explicit flow
    // turns on client credentials (issue 27635).
    let drops_flow = defects.has(Defect::RestDropsOauth2Flow);
    let credentials = body.credentials.clone().unwrap_or_default();
    let transport = match &body.transport {
        Some(t) => Transport::parse(t)?,
        // LiteLLM's REST default.
        None => Transport::Sse,
    };
    let fields = Fields {
        name: body.server_name.clone(),
        alias: body.alias.clone(),
        description: body.description.clone(),
        transport,
        url: body.url.clone(),
        auth_type: body.auth_type.clone(),
        oauth2_flow: if drops_flow {
            None
        } else {
            body.oauth2_flow.clone()
        },
        auth_value: credentials.auth_value,
        client_id: credentials.client_id,
        client_secret: credentials.client_secret,
        scopes: credentials.scopes.unwrap_or_default(),
        audience: credentials.audience,
        resource: credentials.resource,
        token_url: body.token_url.clone(),
        authorization_url: body.authorization_url.clone(),
        static_headers: body.static_headers.clone().unwrap_or_default(),
        extra_headers: body.extra_headers.clone().unwrap_or_default(),
        command: body.command.clone(),
        credential_prefix: "credentials.",
        explicit_flow_only: drops_flow,
        fail_open: defects.has(Defect::MissingCredentialsFailOpen),
    };
    let id = match &body.server_id {
        Some(id) => {
            check_id(id)?;
            id.clone()
        }
        None => generate_id(),
    };
    normalise(fields, id, Source::Rest)
}

/// Normalises one config entry. `env` resolves `os.environ/NAME` values.
pub fn from_config(
    name: &str,
    entry: &ConfigServer,
    env: &BTreeMap<String, String>,
) -> Result<ServerSpec, SpecError> {
    let resolve = |field: &str, value: &Option<String>| -> Result<Option<String>, SpecError> {
        match value {
            Some(v) => match v.strip_prefix("os.environ/") {
                Some(var) => match env.get(var) {
                    Some(resolved) => Ok(Some(resolved.clone())),
                    None => Err(SpecError::invalid(
                        field,
                        format!("environment variable {var} is not set"),
                    )),
                },
                None => Ok(Some(v.clone())),
            },
            None => Ok(None),
        }
    };
    let transport = match &entry.transport {
        Some(t) => Transport::parse(t)?,
        // LiteLLM's config default.
        None => Transport::Http,
    };
    let auth_value = match &entry.auth_value {
        Some(_) => resolve("auth_value", &entry.auth_value)?,
        None => resolve("authentication_token", &entry.authentication_token)?,
    };
    let fields = Fields {
        name: Some(name.to_string()),
        alias: entry.alias.clone(),
        description: entry.description.clone(),
        transport,
        url: resolve("url", &entry.url)?,
        auth_type: entry.auth_type.clone(),
        oauth2_flow: entry.oauth2_flow.clone(),
        auth_value,
        client_id: resolve("client_id", &entry.client_id)?,
        client_secret: resolve("client_secret", &entry.client_secret)?,
        scopes: entry.scopes.clone().unwrap_or_default(),
        audience: resolve("audience", &entry.audience)?,
        resource: resolve("resource", &entry.resource)?,
        token_url: resolve("token_url", &entry.token_url)?,
        authorization_url: entry.authorization_url.clone(),
        static_headers: entry.static_headers.clone().unwrap_or_default(),
        extra_headers: entry.extra_headers.clone().unwrap_or_default(),
        command: entry.command.clone(),
        credential_prefix: "",
        explicit_flow_only: false,
        fail_open: false,
    };
    let id = config_server_id(
        name,
        fields.url.as_deref(),
        transport,
        entry.auth_type.as_deref(),
        entry.alias.as_deref(),
    );
    normalise(fields, id, Source::Config)
}

/// LiteLLM's stable id for config servers: the first 32 hex characters of
/// sha256 of `name|url|transport|auth_type|alias` (Python's `None` for a
/// missing url, empty strings for the rest).
pub fn config_server_id(
    name: &str,
    url: Option<&str>,
    transport: Transport,
    auth_type: Option<&str>,
    alias: Option<&str>,
) -> String {
    let joined = format!(
        "{name}|{}|{}|{}|{}",
        url.unwrap_or("None"),
        transport.as_str(),
        auth_type.unwrap_or(""),
        alias.unwrap_or("")
    );
    let digest = hex::encode(Sha256::digest(joined.as_bytes()));
    digest[..32].to_string()
}

fn check_id(id: &str) -> Result<(), SpecError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(SpecError::invalid(
            "server_id",
            "must be 1 to 128 characters of letters, digits, '-' or '_'",
        ))
    }
}

fn check_name(field: &str, value: &str) -> Result<(), SpecError> {
    if value.is_empty() {
        return Err(SpecError::invalid(field, "must not be empty"));
    }
    if value.contains('-') {
        return Err(SpecError::invalid(
            field,
            "must not contain '-': it joins the alias and the tool name",
        ));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(SpecError::invalid(field, "must not contain white space"));
    }
    Ok(())
}

fn check_url(field: &str, value: &str) -> Result<(), SpecError> {
    let uri: http::Uri = value
        .parse()
        .map_err(|_| SpecError::invalid(field, "is not a valid URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") if uri.authority().is_some() => Ok(()),
        _ => Err(SpecError::invalid(
            field,
            "must be an absolute http:// or https:// URL",
        )),
    }
}

fn normalise(f: Fields, id: String, source: Source) -> Result<ServerSpec, SpecError> {
    let name = f
        .name
        .clone()
        .ok_or_else(|| SpecError::invalid("server_name", "is required"))?;
    check_name("server_name", &name)?;
    if let Some(alias) = &f.alias {
        check_name("alias", alias)?;
    }
    match f.transport {
        Transport::Http | Transport::Sse => match &f.url {
            Some(url) => check_url("url", url)?,
            None => {
                return Err(SpecError::invalid(
                    "url",
                    format!("is required for transport {}", f.transport.as_str()),
                ))
            }
        },
        Transport::Stdio => {
            if f.command.as_deref().unwrap_or("").is_empty() {
                return Err(SpecError::invalid(
                    "command",
                    "is required for transport stdio",
                ));
            }
        }
    }
    for header in f.static_headers.keys() {
        if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
            return Err(SpecError::invalid(
                format!("static_headers.{header}"),
                "is not a valid header name",
            ));
        }
    }
    for (header, value) in &f.static_headers {
        if http::HeaderValue::from_str(value).is_err() {
            return Err(SpecError::invalid(
                format!("static_headers.{header}"),
                "has a value that is not a valid header value",
            ));
        }
    }
    let auth = normalise_auth(&f)?;
    if let Some(token_url) = &f.token_url {
        check_url("token_url", token_url)?;
    }
    Ok(ServerSpec {
        id,
        alias: f.alias.clone().unwrap_or_else(|| name.clone()),
        name,
        description: f.description,
        transport: f.transport,
        url: f.url,
        auth_type: f.auth_type,
        auth,
        token_url: f.token_url,
        authorization_url: f.authorization_url,
        static_headers: f
            .static_headers
            .into_iter()
            .map(|(k, v)| (k, Secret::new(v)))
            .collect(),
        extra_headers: f.extra_headers,
        command: f.command,
        source,
    })
}

fn normalise_auth(f: &Fields) -> Result<Auth, SpecError> {
    let p = f.credential_prefix;
    let flow = match f.oauth2_flow.as_deref() {
        None => None,
        Some("client_credentials") => Some(true),
        Some("authorization_code") => Some(false),
        Some(_) => {
            return Err(SpecError::invalid(
                "oauth2_flow",
                "unknown flow; expected client_credentials or authorization_code",
            ))
        }
    };
    // Defect rest-drops-oauth2-flow: without a flow nothing is inferred. An
    // OAuth2 server becomes what LiteLLM calls per-user OAuth and still
    // lists tools, with no token and no Authorization header; `Auth::None`
    // is that here (the reference refuses to list `Auth::UserOAuth`).
    if f.explicit_flow_only
        && flow.is_none()
        && matches!(f.auth_type.as_deref(), None | Some("none") | Some("oauth2"))
    {
        return Ok(Auth::None);
    }
    // Defect missing-credentials-fail-open: an auth type that needs
    // credentials, given none at all (an update that set `credentials` to
    // null), is taken as no authentication instead of refused, and the
    // upstream is called with no Authorization (LiteLLM PR 41364 made it
    // fail closed).
    let no_credentials =
        f.auth_value.is_none() && f.client_id.is_none() && f.client_secret.is_none();
    let needs_credentials = match f.auth_type.as_deref() {
        Some("bearer_token" | "token" | "basic" | "authorization" | "api_key") => true,
        Some("oauth2") => flow == Some(true) || (flow.is_none() && f.token_url.is_some()),
        _ => false,
    };
    if f.fail_open && no_credentials && needs_credentials {
        return Ok(Auth::None);
    }
    let cc_fields = [
        ("token_url", f.token_url.is_some()),
        ("client_id", f.client_id.is_some()),
        ("client_secret", f.client_secret.is_some()),
    ];
    let missing: Vec<String> = cc_fields
        .iter()
        .filter(|(_, present)| !present)
        .map(|(name, _)| {
            if *name == "token_url" {
                name.to_string()
            } else {
                format!("{p}{name}")
            }
        })
        .collect();
    let client_credentials = || -> Auth {
        Auth::ClientCredentials {
            token_url: f.token_url.clone().unwrap_or_default(),
            client_id: f.client_id.clone().unwrap_or_default(),
            client_secret: Secret::new(f.client_secret.clone().unwrap_or_default()),
            scopes: f.scopes.clone(),
            audience: f.audience.clone(),
            resource: f.resource.clone(),
        }
    };
    let header = |name: &str, prefix: &str| -> Result<Auth, SpecError> {
        match &f.auth_value {
            Some(v) if !v.is_empty() => {
                let value = format!("{prefix}{v}");
                if http::HeaderValue::from_str(&value).is_err() {
                    return Err(SpecError::invalid(
                        format!("{p}auth_value"),
                        "is not a valid header value",
                    ));
                }
                Ok(Auth::Header {
                    name: name.to_string(),
                    value: Secret::new(value),
                })
            }
            _ => Err(SpecError::invalid(
                format!("{p}auth_value"),
                format!(
                    "is required for auth_type {}",
                    f.auth_type.as_deref().unwrap_or("")
                ),
            )),
        }
    };
    match f.auth_type.as_deref() {
        None | Some("none") => {
            // A flow or a complete credential set says what the auth type
            // left unsaid.
            if flow == Some(true) || (flow.is_none() && missing.is_empty()) {
                if !missing.is_empty() {
                    return Err(SpecError::invalid(
                        missing[0].clone(),
                        "is required for oauth2_flow client_credentials",
                    ));
                }
                Ok(client_credentials())
            } else {
                Ok(Auth::None)
            }
        }
        Some("oauth2") => match flow {
            Some(true) => {
                if let Some(first) = missing.first() {
                    Err(SpecError::invalid(
                        first.clone(),
                        format!(
                            "is required for oauth2_flow client_credentials (missing: {})",
                            missing.join(", ")
                        ),
                    ))
                } else {
                    Ok(client_credentials())
                }
            }
            Some(false) => Ok(Auth::UserOAuth),
            None if missing.is_empty() => Ok(client_credentials()),
            // Nothing of client credentials given: per-user OAuth, as LiteLLM.
            None if missing.len() == cc_fields.len() => Ok(Auth::UserOAuth),
            None => Err(SpecError::invalid(
                missing[0].clone(),
                format!(
                    "auth_type oauth2 without oauth2_flow needs token_url, {p}client_id and \
                     {p}client_secret for client credentials (missing: {}), or oauth2_flow \
                     authorization_code",
                    missing.join(", ")
                ),
            )),
        },
        Some("bearer_token") => header("authorization", "Bearer "),
        Some("token") => header("authorization", "token "),
        Some("basic") => header("authorization", "Basic "),
        Some("authorization") => header("authorization", ""),
        Some("api_key") => header("x-api-key", ""),
        Some(_) => Err(SpecError::invalid(
            "auth_type",
            "unknown auth_type; expected one of none, api_key, bearer_token, basic, \
             authorization, token, oauth2",
        )),
    }
}

/// Merges a REST update into the stored REST body: top-level keys replace,
/// `credentials` merges key by key so that an update need not repeat a secret.
pub fn merge_rest_bodies(
    stored: &serde_json::Value,
    update: &serde_json::Value,
) -> serde_json::Value {
    let mut merged = stored.clone();
    if let (Some(target), Some(changes)) = (merged.as_object_mut(), update.as_object()) {
        for (key, value) in changes {
            match (key.as_str(), target.get_mut(key)) {
                ("credentials", Some(serde_json::Value::Object(old))) if value.is_object() => {
                    for (k, v) in value.as_object().into_iter().flatten() {
                        old.insert(k.clone(), v.clone());
                    }
                }
                _ => {
                    target.insert(key.clone(), value.clone());
                }
            }
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rest(json: &str) -> Result<ServerSpec, SpecError> {
        let body = parse_rest_body(json.as_bytes())?;
        from_rest(&body, || "generated".to_string())
    }

    #[test]
    fn the_reporters_body_is_client_credentials_without_a_flow() {
        let spec = rest(
            r#"{"server_name": "DatabricksSQL", "transport": "http", "url": "https://ws/api/2.0/mcp/sql",
                "auth_type": "oauth2", "token_url": "https://ws/oidc/v1/token",
                "credentials": {"client_id": "id", "client_secret": "s3cret"}}"#,
        )
        .unwrap();
        assert!(matches!(spec.auth, Auth::ClientCredentials { .. }));
        assert_eq!(spec.oauth2_flow(), Some("client_credentials"));
        assert_eq!(spec.id, "generated");
        assert_eq!(spec.alias, "DatabricksSQL");
    }

    #[test]
    fn config_and_rest_give_the_same_auth() {
        let from_rest = rest(
            r#"{"server_name": "db", "transport": "http", "url": "http://mcp/mcp", "auth_type": "oauth2",
                "token_url": "http://auth/token", "credentials": {"client_id": "id", "client_secret": "x"}}"#,
        )
        .unwrap();
        let file: ConfigFile = serde_json::from_str(
            r#"{"mcp_servers": {"db": {"url": "http://mcp/mcp", "auth_type": "oauth2", "oauth2_flow": "client_credentials",
                "token_url": "http://auth/token", "client_id": "id", "client_secret": "os.environ/SECRET"}}}"#,
        )
        .unwrap();
        let env = BTreeMap::from([("SECRET".to_string(), "x".to_string())]);
        let from_config = from_config("db", &file.mcp_servers["db"], &env).unwrap();
        assert_eq!(from_rest.auth, from_config.auth);
        assert_eq!(from_config.source, Source::Config);
        assert_eq!(from_config.id.len(), 32);
    }

    #[test]
    fn malformed_bodies_name_the_field_and_never_quote_values() {
        let cases = [
            (
                r#"{"server_name": "a-b", "transport": "http", "url": "http://x/"}"#,
                "server_name",
            ),
            (r#"{"server_name": "a", "transport": "http"}"#, "url"),
            (
                r#"{"server_name": "a", "transport": "carrier_pigeon", "url": "http://x/"}"#,
                "transport",
            ),
            (
                r#"{"server_name": "a", "transport": "http", "url": "http://x/", "auth_type": "magic"}"#,
                "auth_type",
            ),
            (
                r#"{"server_name": "a", "transport": "http", "url": "http://x/", "auth_type": "oauth2",
                    "oauth2_flow": "client_credentials", "credentials": {"client_id": "i"}}"#,
                "token_url",
            ),
            (
                r#"{"server_name": "a", "transport": "http", "url": "http://x/", "auth_type": "oauth2",
                    "token_url": "http://t/", "credentials": {"client_id": "i"}}"#,
                "credentials.client_secret",
            ),
            (
                r#"{"server_name": "a", "url": "http://x/", "credentials": "hunter2"}"#,
                "credentials",
            ),
            (
                r#"{"server_name": "a", "transport": "http", "url": "http://x/", "auth_type": "bearer_token"}"#,
                "credentials.auth_value",
            ),
        ];
        for (body, field) in cases {
            let error = rest(body).unwrap_err();
            assert_eq!(error.field, field, "{body}: {error}");
            assert!(!error.to_string().contains("hunter2"), "{error}");
        }
        let error = rest("{not json").unwrap_err();
        assert!(error.reason.starts_with("malformed JSON"), "{error}");
    }

    #[test]
    fn config_ids_follow_litellm() {
        // sha256("db|http://mcp/mcp|http||")[..32], computed independently.
        let id = config_server_id("db", Some("http://mcp/mcp"), Transport::Http, None, None);
        let expected = hex::encode(Sha256::digest(b"db|http://mcp/mcp|http||"));
        assert_eq!(id, expected[..32]);
    }

    #[test]
    fn updates_merge_credentials_key_by_key() {
        let stored = serde_json::json!({"url": "http://a/", "credentials": {"client_id": "i", "client_secret": "s"}});
        let update = serde_json::json!({"url": "http://b/", "credentials": {"client_id": "j"}});
        let merged = merge_rest_bodies(&stored, &update);
        assert_eq!(
            merged,
            serde_json::json!({"url": "http://b/", "credentials": {"client_id": "j", "client_secret": "s"}})
        );
    }
}
