//! The fake MCP server as an OAuth resource server, and its other gates:
//! the `Origin` check against DNS rebinding, bearer-token checks with their
//! challenges, which credential a request carried (for the request log), and
//! the RFC 9728 protected-resource metadata.
//!
//! Invariant: no refusal echoes the credential it refused.

use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::config::McpAuth;
use super::frame::refuse;
use super::Inner;
use crate::access_token;
use crate::log::{CredentialSeen, TokenRef};
use crate::SIM_EPOCH_UNIX_S;

pub(super) const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

pub(super) fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A 403 when the request names an `Origin` this server does not allow. Origins compare by
/// scheme and host, whatever the port.
pub(super) fn origin_refusal(inner: &Inner, headers: &HeaderMap) -> Option<Response> {
    let origin = headers.get(header::ORIGIN)?;
    let without_port = |o: &str| -> String {
        let o = o.trim().trim_end_matches('/').to_ascii_lowercase();
        match o.rsplit_once(':') {
            // `http://host:port`, but not the `http:` of `http://host` or an IPv6 literal.
            Some((base, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                base.to_string()
            }
            _ => o,
        }
    };
    let allowed = origin.to_str().is_ok_and(|o| {
        let o = without_port(o);
        inner
            .config
            .allowed_origins
            .iter()
            .any(|a| without_port(a) == o)
    });
    (!allowed).then(|| refuse(StatusCode::FORBIDDEN, "Forbidden: Origin not allowed"))
}

/// The token of an `Authorization: Bearer` header, `None` when absent or of another scheme.
pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = header_str(headers, &header::AUTHORIZATION)?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Which credential a request carries, as far as this server can tell.
pub(super) fn credential(inner: &Inner, headers: &HeaderMap) -> CredentialSeen {
    let Some(presented) = bearer(headers) else {
        return CredentialSeen::None;
    };
    match &inner.config.auth {
        McpAuth::Bearer { token } if presented == token => CredentialSeen::Static,
        McpAuth::Oauth {
            issuer,
            signing_key,
            ..
        } => match access_token::verify_signature(signing_key, presented) {
            Ok(claims) if &claims.iss == issuer => CredentialSeen::Issued {
                token: TokenRef {
                    issuer: claims.iss,
                    client_id: claims.sub,
                    serial: claims.jti,
                    issued_ms: claims
                        .iat_ms
                        .unwrap_or(0)
                        .saturating_sub(SIM_EPOCH_UNIX_S * 1_000),
                },
            },
            _ => CredentialSeen::Other,
        },
        _ => CredentialSeen::Other,
    }
}

/// Checks the bearer token when auth is configured; a refusal carries the challenge.
pub(super) fn auth_refusal(inner: &Inner, headers: &HeaderMap) -> Option<Response> {
    let presented = bearer(headers);
    let challenge = |status: StatusCode, params: String| {
        let value = HeaderValue::from_str(&format!("Bearer {params}"))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        let message = if status == StatusCode::FORBIDDEN {
            "Forbidden: insufficient scope"
        } else {
            "Unauthorized"
        };
        let mut response = refuse(status, message);
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
        response
    };
    match &inner.config.auth {
        McpAuth::None => None,
        McpAuth::Bearer { token } => match presented {
            Some(p) if p == token => None,
            Some(_) => Some(challenge(
                StatusCode::UNAUTHORIZED,
                "error=\"invalid_token\"".into(),
            )),
            None => Some(challenge(
                StatusCode::UNAUTHORIZED,
                "realm=\"mcpsim\"".into(),
            )),
        },
        McpAuth::Oauth {
            issuer,
            signing_key,
            required_scope,
            revoke_at_ms,
            ..
        } => {
            let mut params = format!(
                "resource_metadata=\"http://{}{WELL_KNOWN}{}\"",
                host(headers),
                inner.config.path
            );
            if let Some(scope) = required_scope {
                params.push_str(&format!(", scope=\"{scope}\""));
            }
            // RFC 6750 §3.1: a request without credentials gets the challenge but no error code.
            let Some(token) = presented else {
                return Some(challenge(StatusCode::UNAUTHORIZED, params));
            };
            let now = (inner.clock)();
            let claims = access_token::verify(signing_key, token, now)
                .ok()
                .filter(|claims| &claims.iss == issuer);
            let Some(claims) = claims else {
                params.push_str(", error=\"invalid_token\"");
                return Some(challenge(StatusCode::UNAUTHORIZED, params));
            };
            if revoke_at_ms.is_some_and(|at_ms| revoked(&claims, at_ms, now)) {
                inner.lock().stats.revoked_refused += 1;
                params.push_str(", error=\"invalid_token\"");
                return Some(challenge(StatusCode::UNAUTHORIZED, params));
            }
            match required_scope {
                Some(scope) if !claims.has_scope(scope) => {
                    params.push_str(", error=\"insufficient_scope\"");
                    Some(challenge(StatusCode::FORBIDDEN, params))
                }
                _ => None,
            }
        }
    }
}

/// Whether a revocation at `revoke_at_ms` after the simulation epoch has taken effect by `now`
/// and covers this token. A token without an issue time counts as issued at the unix epoch.
fn revoked(claims: &access_token::Claims, revoke_at_ms: u64, now: Duration) -> bool {
    let revoke_unix_ms = (SIM_EPOCH_UNIX_S * 1000).saturating_add(revoke_at_ms);
    now.as_millis() >= u128::from(revoke_unix_ms) && claims.iat_ms.unwrap_or(0) < revoke_unix_ms
}

/// RFC 9728 protected-resource metadata, served without auth so clients can discover the
/// authorization server. Only an OAuth-protected server has any.
pub(super) fn protected_resource(inner: &Inner, method: &Method, headers: &HeaderMap) -> Response {
    let McpAuth::Oauth {
        issuer,
        required_scope,
        authorization_server,
        ..
    } = &inner.config.auth
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if method != Method::GET {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET")]).into_response();
    }
    let mut body = json!({
        "resource": format!("http://{}{}", host(headers), inner.config.path),
        "authorization_servers": [authorization_server.as_ref().unwrap_or(issuer)],
        "bearer_methods_supported": ["header"],
    });
    if let Some(scope) = required_scope {
        body["scopes_supported"] = json!([scope]);
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The `Host` the client addressed, or `localhost` when it is absent or could break a header.
pub(super) fn host(headers: &HeaderMap) -> &str {
    header_str(headers, &header::HOST)
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        })
        .unwrap_or("localhost")
}
