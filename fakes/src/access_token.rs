//! Self-contained signed access tokens, minted by the token server and checked by the MCP server.
//!
//! The format is `mcpsim.<base64url-nopad(payload json)>.<hex hmac-sha256(key, payload_b64)>`,
//! in the spirit of RFC 9068 JWT access tokens: a resource server validates them with the shared
//! key alone, so the two fakes never share memory. The signature is checked (in constant time)
//! before the payload is parsed, and expiry is judged against a caller-supplied time.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const PREFIX: &str = "mcpsim.";

/// What a token asserts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer, compared by the resource server with the one it trusts.
    pub iss: String,
    /// The client id the token was issued to.
    pub sub: String,
    /// Space-separated granted scopes; may be empty.
    pub scope: String,
    /// Expiry as unix milliseconds; the token is rejected from this instant on.
    pub exp_ms: u64,
    /// Issue time as unix milliseconds, by the issuer's clock. Optional so that payloads from
    /// before this claim existed still verify; a resource server that revokes by issue time
    /// must treat a token without it as issued at the unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat_ms: Option<u64>,
    /// Serial number of the token at its issuer.
    pub jti: u64,
}

impl Claims {
    /// Whether `scope` is one of the granted scopes.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split_whitespace().any(|s| s == scope)
    }
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenRejection {
    /// Not in the `mcpsim.<payload>.<signature>` shape, or the payload does not decode.
    Malformed,
    /// The signature does not match the payload under this key.
    BadSignature,
    /// The token is past its `exp_ms`.
    Expired,
}

impl fmt::Display for TokenRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenRejection::Malformed => "malformed token",
            TokenRejection::BadSignature => "bad token signature",
            TokenRejection::Expired => "token expired",
        })
    }
}

impl std::error::Error for TokenRejection {}

fn mac(key: &str, payload_b64: &str) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("hmac takes any key");
    mac.update(payload_b64.as_bytes());
    mac
}

/// Signs `claims` with `key`.
pub fn mint(key: &str, claims: &Claims) -> String {
    // Serialising a struct of strings and integers cannot fail.
    let json = serde_json::to_vec(claims).expect("claims serialise");
    let payload = URL_SAFE_NO_PAD.encode(json);
    let signature = hex::encode(mac(key, &payload).finalize().into_bytes());
    format!("{PREFIX}{payload}.{signature}")
}

/// Checks the signature and expiry of `token` and returns its claims.
pub fn verify(key: &str, token: &str, now_unix: Duration) -> Result<Claims, TokenRejection> {
    let claims = verify_signature(key, token)?;
    if now_unix.as_millis() >= u128::from(claims.exp_ms) {
        return Err(TokenRejection::Expired);
    }
    Ok(claims)
}

/// Checks only the signature of `token` and returns its claims, expired or
/// not: for telling which issued token a request carried.
pub fn verify_signature(key: &str, token: &str) -> Result<Claims, TokenRejection> {
    let rest = token
        .strip_prefix(PREFIX)
        .ok_or(TokenRejection::Malformed)?;
    let (payload, signature) = rest.split_once('.').ok_or(TokenRejection::Malformed)?;
    let signature = hex::decode(signature).map_err(|_| TokenRejection::Malformed)?;
    mac(key, payload)
        .verify_slice(&signature)
        .map_err(|_| TokenRejection::BadSignature)?;
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenRejection::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| TokenRejection::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            iss: "mcpsim-auth".into(),
            sub: "gateway".into(),
            scope: "mcp read".into(),
            exp_ms: 10_000,
            iat_ms: Some(4_000),
            jti: 1,
        }
    }

    #[test]
    fn minted_token_verifies() {
        let token = mint("k", &claims());
        assert_eq!(
            verify("k", &token, Duration::from_millis(9_999)),
            Ok(claims())
        );
        assert!(claims().has_scope("read"));
        assert!(!claims().has_scope("write"));
    }

    #[test]
    fn tampered_token_is_rejected() {
        let token = mint("k", &claims());
        let mut other = claims();
        other.scope = "admin".into();
        let forged_payload = mint("k", &other).split('.').nth(1).unwrap().to_string();
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("mcpsim.{forged_payload}.{}", parts[2]);
        let now = Duration::ZERO;
        assert_eq!(verify("k", &forged, now), Err(TokenRejection::BadSignature));
        assert_eq!(
            verify("other", &token, now),
            Err(TokenRejection::BadSignature)
        );
        assert_eq!(verify("k", "Bearer x", now), Err(TokenRejection::Malformed));
        assert_eq!(
            verify("k", "mcpsim.abc.zz", now),
            Err(TokenRejection::Malformed)
        );
    }

    #[test]
    fn payload_without_issue_time_still_verifies() {
        let mut old = claims();
        old.iat_ms = None;
        let token = mint("k", &old);
        let payload = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap();
        assert!(!String::from_utf8(payload).unwrap().contains("iat_ms"));
        assert_eq!(verify("k", &token, Duration::ZERO), Ok(old));
    }

    #[test]
    fn expired_token_is_rejected() {
        let token = mint("k", &claims());
        let now = Duration::from_millis(10_000);
        assert_eq!(verify("k", &token, now), Err(TokenRejection::Expired));
    }
}
