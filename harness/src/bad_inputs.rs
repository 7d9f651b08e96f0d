//! Generated bad inputs: writes a gateway must refuse with a 4xx that says
//! why, changing nothing. Each is an otherwise good body with one flaw:
//! malformed bytes, a body that is no JSON object, a field of the wrong
//! JSON type, a value no field takes (empty, huge, non-ASCII where only
//! ASCII is allowed, unknown words), or fields that contradict or leave out
//! what another one requires. Two flaws put a secret where an object
//! belongs (a client secret pasted as `credentials`, a header line as
//! `static_headers`), as operators do: the refusal must say what is wrong
//! without quoting it (`no_secrets` counts whatever stands in those fields
//! as a secret). Some also carry an unknown field, which a
//! gateway of LiteLLM's dialect ignores, so that it is never the reason for
//! a refusal.
//!
//! The bodies are in LiteLLM's REST shape, so the generator makes them only
//! for a target whose dialect is LiteLLM's
//! ([`crate::generate::Capabilities`]); the base body is what that dialect
//! writes for a server in mcpsim's words.
//!
//! Invariant: every flaw makes the body invalid whatever the gateway
//! merges it with. An update's flaw is one of a type or a value, never a
//! missing or contradicting field, which an update merged into a stored
//! server may well fill in; or a field set to `null` beside one that needs
//! it, which LiteLLM's PUT takes as clearing the field, so that nothing
//! stored can fill it in.

use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// What is wrong with a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flaw {
    /// JSON cut off half-way.
    TruncatedJson,
    /// A form body instead of JSON.
    NotJson,
    /// No body at all.
    EmptyBody,
    /// A JSON array, a string, `null`: no object.
    JsonArray,
    JsonString,
    JsonNull,
    /// Known fields with the wrong JSON type.
    NameNumber,
    UrlArray,
    TransportBool,
    AuthTypeNumber,
    /// A client secret pasted where the credentials object belongs: the
    /// refusal must not quote it.
    CredentialsString,
    TokenUrlNumber,
    FlowObject,
    HeadersArray,
    /// A header line (`name: value`, the value an API key) where the map
    /// of headers belongs: the refusal must not quote it.
    HeadersString,
    ExtraHeadersString,
    AliasNumber,
    ServerIdNumber,
    DescriptionArray,
    /// Values no field takes.
    EmptyName,
    DashedName,
    SpacedName,
    /// 20,000 non-ASCII characters with a `-`, which no name may carry.
    HugeNonAsciiName,
    DashedAlias,
    NotAUrl,
    FtpUrl,
    /// A 70,000-character host.
    HugeUrl,
    /// A non-ASCII host name.
    NonAsciiUrl,
    UnknownTransport,
    UnknownAuthType,
    UnknownFlow,
    BadHeaderName,
    /// A header value with a line break.
    BadHeaderValue,
    /// An id with a `/`, which cannot name it in a path.
    SlashedId,
    /// `credentials: null` beside an `auth_type` that needs them
    /// (`bearer_token`): the credentials cleared while the auth type still
    /// asks for them, as an update that takes a server's credentials away.
    CredentialsNull,
    /// Fields left out, or contradicting each other (creates only).
    MissingName,
    MissingUrl,
    BearerWithoutValue,
    FlowWithoutTokenUrl,
    StdioWithoutCommand,
    NoAuthWithFlow,
}

impl Flaw {
    pub const ALL: [Flaw; 41] = [
        Flaw::TruncatedJson,
        Flaw::NotJson,
        Flaw::EmptyBody,
        Flaw::JsonArray,
        Flaw::JsonString,
        Flaw::JsonNull,
        Flaw::NameNumber,
        Flaw::UrlArray,
        Flaw::TransportBool,
        Flaw::AuthTypeNumber,
        Flaw::CredentialsString,
        Flaw::TokenUrlNumber,
        Flaw::FlowObject,
        Flaw::HeadersArray,
        Flaw::HeadersString,
        Flaw::ExtraHeadersString,
        Flaw::AliasNumber,
        Flaw::ServerIdNumber,
        Flaw::DescriptionArray,
        Flaw::EmptyName,
        Flaw::DashedName,
        Flaw::SpacedName,
        Flaw::HugeNonAsciiName,
        Flaw::DashedAlias,
        Flaw::NotAUrl,
        Flaw::FtpUrl,
        Flaw::HugeUrl,
        Flaw::NonAsciiUrl,
        Flaw::UnknownTransport,
        Flaw::UnknownAuthType,
        Flaw::UnknownFlow,
        Flaw::BadHeaderName,
        Flaw::BadHeaderValue,
        Flaw::SlashedId,
        Flaw::CredentialsNull,
        Flaw::MissingName,
        Flaw::MissingUrl,
        Flaw::BearerWithoutValue,
        Flaw::FlowWithoutTokenUrl,
        Flaw::StdioWithoutCommand,
        Flaw::NoAuthWithFlow,
    ];

    /// Whether the flaw stays a flaw in an update merged into a stored
    /// server (a missing field may be stored).
    pub fn fits_update(self) -> bool {
        !matches!(
            self,
            Flaw::MissingName
                | Flaw::MissingUrl
                | Flaw::BearerWithoutValue
                | Flaw::FlowWithoutTokenUrl
                | Flaw::StdioWithoutCommand
                | Flaw::NoAuthWithFlow
        )
    }
}

/// One bad write: its flaw, whether it updates the plan's server (else it
/// creates one of its own), and whether it also carries an unknown field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadInput {
    pub flaw: Flaw,
    pub update: bool,
    pub unknown_field: bool,
}

pub fn bad_input_strategy() -> impl Strategy<Value = BadInput> {
    (
        proptest::sample::select(Flaw::ALL.to_vec()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(flaw, update, unknown_field)| BadInput {
            flaw,
            update: update && flaw.fits_update(),
            unknown_field,
        })
}

/// A field LiteLLM does not know, which it ignores.
pub fn unknown_field() -> (String, Value) {
    (
        "x_mcpsim_unknown".to_string(),
        json!({"nested": ["ünïcödé", 1, null]}),
    )
}

/// What a bad write sends: a JSON value (sent as JSON), or raw bytes.
#[derive(Clone, Debug, PartialEq)]
pub enum BadBody {
    Json(Value),
    Raw(String),
}

/// The body of bad write `k`. `base` is a good create body in LiteLLM's
/// shape for a server of its own (named `bad<k>`); an update starts from a
/// partial body that moves the server to a URL of its own, so that an
/// update applied half-way shows.
pub fn body(input: BadInput, k: usize, base: &Value) -> BadBody {
    let mut object: Map<String, Value> = if input.update {
        let mut partial = Map::new();
        partial.insert("url".into(), json!(format!("http://bad{k}/mcp")));
        partial
    } else {
        base.as_object().cloned().unwrap_or_default()
    };
    if input.unknown_field {
        let (name, value) = unknown_field();
        object.insert(name, value);
    }
    let mut set = |key: &str, value: Value| {
        object.insert(key.to_string(), value);
    };
    match input.flaw {
        Flaw::TruncatedJson => {
            let text = Value::Object(object).to_string();
            let cut: String = text.chars().take(text.chars().count() / 2).collect();
            return BadBody::Raw(cut);
        }
        Flaw::NotJson => return BadBody::Raw(format!("server_name=bad{k}&url=http://mcp/mcp")),
        Flaw::EmptyBody => return BadBody::Raw(String::new()),
        Flaw::JsonArray => return BadBody::Json(json!([Value::Object(object)])),
        Flaw::JsonString => return BadBody::Json(json!(format!("bad{k}"))),
        Flaw::JsonNull => return BadBody::Json(Value::Null),
        Flaw::NameNumber => set("server_name", json!(42)),
        Flaw::UrlArray => set("url", json!(["http://mcp/mcp"])),
        Flaw::TransportBool => set("transport", json!(true)),
        Flaw::AuthTypeNumber => set("auth_type", json!(7)),
        Flaw::CredentialsString => set("credentials", json!(format!("pasted-s3cret-{k}-q8Zr"))),
        Flaw::TokenUrlNumber => set("token_url", json!(5)),
        Flaw::FlowObject => set("oauth2_flow", json!({})),
        Flaw::HeadersArray => set("static_headers", json!(["x-mcpsim"])),
        Flaw::HeadersString => set(
            "static_headers",
            json!(format!("X-Api-Key: hdr-k3y-{k}-Wq7")),
        ),
        Flaw::ExtraHeadersString => set("extra_headers", json!("x-mcpsim")),
        Flaw::AliasNumber => set("alias", json!(3)),
        Flaw::ServerIdNumber => set("server_id", json!(12)),
        Flaw::DescriptionArray => set("description", json!([1])),
        Flaw::EmptyName => set("server_name", json!("")),
        Flaw::DashedName => set("server_name", json!(format!("bad-{k}"))),
        Flaw::SpacedName => set("server_name", json!(format!("bad {k}"))),
        Flaw::HugeNonAsciiName => set("server_name", json!(format!("{}-x", "é".repeat(20_000)))),
        Flaw::DashedAlias => set("alias", json!(format!("al-{k}"))),
        Flaw::NotAUrl => set("url", json!("not a url")),
        Flaw::FtpUrl => set("url", json!("ftp://mcp/mcp")),
        Flaw::HugeUrl => set("url", json!(format!("http://{}/mcp", "h".repeat(70_000)))),
        Flaw::NonAsciiUrl => set("url", json!("http://exämple-ünïcödé/mcp")),
        Flaw::UnknownTransport => set("transport", json!("carrier-pigeon")),
        Flaw::UnknownAuthType => set("auth_type", json!("magic")),
        Flaw::UnknownFlow => set("oauth2_flow", json!("sideways")),
        Flaw::BadHeaderName => set("static_headers", json!({"bad header": "v"})),
        Flaw::BadHeaderValue => set("static_headers", json!({"x-mcpsim": "line\nbreak"})),
        Flaw::SlashedId => set("server_id", json!(format!("bad/{k}"))),
        Flaw::CredentialsNull => {
            set("auth_type", json!("bearer_token"));
            set("credentials", Value::Null);
        }
        Flaw::MissingName => {
            object.remove("server_name");
        }
        Flaw::MissingUrl => {
            object.remove("url");
        }
        Flaw::BearerWithoutValue => set("auth_type", json!("bearer_token")),
        Flaw::FlowWithoutTokenUrl => {
            set("auth_type", json!("oauth2"));
            set("oauth2_flow", json!("client_credentials"));
        }
        Flaw::StdioWithoutCommand => set("transport", json!("stdio")),
        Flaw::NoAuthWithFlow => {
            set("auth_type", json!("none"));
            set("oauth2_flow", json!("client_credentials"));
        }
    }
    BadBody::Json(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flaw_changes_the_body_and_updates_move_the_url() {
        let base = json!({"server_name": "bad0", "transport": "http", "url": "http://mcp/mcp"});
        for flaw in Flaw::ALL {
            for update in [false, true] {
                let input = BadInput {
                    flaw,
                    update: update && flaw.fits_update(),
                    unknown_field: false,
                };
                let body = body(input, 0, &base);
                assert_ne!(body, BadBody::Json(base.clone()), "{flaw:?}");
                if let (true, BadBody::Json(Value::Object(map))) = (input.update, &body) {
                    assert_eq!(map.get("url").is_some(), !matches!(flaw, Flaw::MissingUrl));
                }
            }
        }
        let huge = body(
            BadInput {
                flaw: Flaw::HugeUrl,
                update: false,
                unknown_field: true,
            },
            1,
            &base,
        );
        let BadBody::Json(huge) = huge else {
            panic!("a huge url is JSON")
        };
        assert!(huge["url"].as_str().unwrap().len() > 70_000);
        assert!(huge.get("x_mcpsim_unknown").is_some());
    }
}
