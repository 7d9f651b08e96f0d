//! Defects of the token client: what the grant carries, how the client
//! authenticates, and when a token is fetched again.

use std::sync::atomic::Ordering;

use mcpsim_gateway::{ClientAuthMethod, Defect, GatewaySettings};
use serde_json::{json, Value};

use crate::rig::*;

/// A config server with client credentials and these extra keys.
fn config_oauth(extra: Value) -> Value {
    let mut server = json!({"url": "http://db/mcp", "auth_type": "oauth2",
        "oauth2_flow": "client_credentials", "token_url": "http://auth/token",
        "client_id": "gateway", "client_secret": SECRET});
    for (k, v) in extra.as_object().unwrap() {
        server[k] = v.clone();
    }
    json!({"db": server})
}

fn db_world() -> std::sync::Arc<World> {
    World::with(&[(
        "db",
        Mcp {
            accept: tokens(5),
            ..Mcp::default()
        },
    )])
}

/// The status of `db` from the config file, a second after start.
async fn config_status(rig: &Rig) -> Value {
    pass(1_000).await;
    let (_, rows) = rig.call("GET", "/v1/mcp/server", Value::Null).await;
    rows[0].clone()
}

#[tokio::test(start_paused = true)]
async fn nested_credentials_ignored() {
    for on in [false, true] {
        let world = db_world();
        let defects = switched(on, Defect::NestedCredentialsIgnored);
        let rig = rig(settings(&defects), &world, json!({}), None);
        let (status, _) = rig
            .call("POST", "/v1/mcp/server", oauth_body("db1", "db"))
            .await;
        assert_eq!(status, 201);
        pass(1_000).await;
        let row = rig.row("db1").await;
        // The row still shows the client: only the token request lost it.
        assert_eq!(row["credentials"]["client_id"], "gateway", "{row}");
        let first = &world.token_bodies()[0];
        if on {
            assert!(first.contains("client_id=&"), "{first}");
            assert!(!first.contains(SECRET), "{first}");
        } else {
            assert!(first.contains("client_id=gateway"), "{first}");
            assert_eq!(row["status"], "healthy", "{row}");
        }
    }
    // The config path keeps its flat keys and is not affected.
    let world = db_world();
    let rig = rig(
        settings(&[Defect::NestedCredentialsIgnored]),
        &world,
        config_oauth(json!({})),
        None,
    );
    assert_eq!(config_status(&rig).await["status"], "healthy");
}

/// A token endpoint that requires `field`; a server that states it.
async fn required_param(defect: Defect, field: &str, extra: Value) {
    for on in [false, true] {
        let world = db_world();
        world.token_rules.lock().unwrap().required = vec![field.to_string()];
        let defects = switched(on, defect);
        let rig = rig(
            settings(&defects),
            &world,
            config_oauth(extra.clone()),
            None,
        );
        let row = config_status(&rig).await;
        let sent = world.token_bodies()[0].contains(field);
        if on {
            assert!(!sent, "{:?}", world.token_bodies());
            assert_eq!(row["status"], "unhealthy", "{row}");
            let error = row["health_check_error"].as_str().unwrap();
            assert!(error.starts_with("token:"), "{error}");
            assert_eq!(world.token_calls.load(Ordering::SeqCst), 0);
        } else {
            assert!(sent, "{:?}", world.token_bodies());
            assert_eq!(row["status"], "healthy", "{row}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn audience_not_sent() {
    required_param(
        Defect::AudienceNotSent,
        "audience=api",
        json!({"audience": "api", "resource": "http://db/mcp", "scopes": ["mcp"]}),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn resource_not_sent() {
    required_param(
        Defect::ResourceNotSent,
        "resource=http%3A%2F%2Fdb%2Fmcp",
        json!({"audience": "api", "resource": "http://db/mcp", "scopes": ["mcp"]}),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn scopes_not_sent() {
    required_param(
        Defect::ScopesNotSent,
        "scope=mcp",
        json!({"audience": "api", "resource": "http://db/mcp", "scopes": ["mcp"]}),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn client_auth_method_fixed() {
    for on in [false, true] {
        let world = db_world();
        world.token_rules.lock().unwrap().basic_only = true;
        let defects = switched(on, Defect::ClientAuthMethodFixed);
        let settings = GatewaySettings {
            token_client_auth: ClientAuthMethod::RequestBody,
            ..settings(&defects)
        };
        let rig = rig(settings, &world, config_oauth(json!({})), None);
        let row = config_status(&rig).await;
        let seen = world.token_seen.lock().unwrap().clone();
        // The form body first, either way.
        assert!(seen[0].authorization.is_none(), "{seen:?}");
        if on {
            assert_eq!(seen.len(), 1, "{seen:?}");
            assert_eq!(row["status"], "unhealthy", "{row}");
            assert!(row["health_check_error"]
                .as_str()
                .unwrap()
                .contains("invalid_client"));
        } else {
            assert_eq!(seen.len(), 2, "{seen:?}");
            assert!(seen[1]
                .authorization
                .as_deref()
                .unwrap()
                .starts_with("Basic "));
            assert_eq!(row["status"], "healthy", "{row}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn token_cache_survives_update() {
    for on in [false, true] {
        let world = db_world();
        let defects = switched(on, Defect::TokenCacheSurvivesUpdate);
        let rig = rig(settings(&defects), &world, json!({}), None);
        rig.call("POST", "/v1/mcp/server", oauth_body("db1", "db"))
            .await;
        pass(1_000).await;
        assert_eq!(world.token_calls.load(Ordering::SeqCst), 1);
        // The update asks for a scope; the upstream now takes only a token
        // asked for with it.
        world.set("db", |m| {
            m.accept = Some(["Bearer tok1".to_string()].into())
        });
        let update = json!({"server_id": "db1", "credentials": {"scopes": ["mcp"]}});
        let (status, _) = rig.call("PUT", "/v1/mcp/server", update).await;
        assert_eq!(status, 202);
        pass(1_000).await;
        let row = rig.row("db1").await;
        let bodies = world.token_bodies();
        if on {
            // The old token is sent, refused, and only then replaced.
            assert_eq!(world.auth_seen("db")[3].as_deref(), Some("Bearer tok0"));
        } else {
            assert_eq!(bodies.len(), 2, "{bodies:?}");
            assert!(bodies[1].contains("scope=mcp"), "{bodies:?}");
            assert_eq!(world.auth_seen("db")[3].as_deref(), Some("Bearer tok1"));
        }
        assert_eq!(row["status"], "healthy", "{row}");
    }
}

#[tokio::test(start_paused = true)]
async fn no_refresh_on_expiry() {
    for on in [false, true] {
        let world = db_world();
        // 120 s, less the default 60 s of skew: kept for a minute.
        world.token_rules.lock().unwrap().expires_in_s = Some(120);
        let defects = switched(on, Defect::NoRefreshOnExpiry);
        let settings = GatewaySettings {
            check_interval_ms: 30_000,
            ..settings(&defects)
        };
        let rig = rig(settings, &world, config_oauth(json!({})), None);
        assert_eq!(config_status(&rig).await["status"], "healthy");
        // tok0 has expired by the check at 90 s: only later ones are taken.
        pass(80_000).await;
        world.set("db", |m| {
            m.accept = Some((1..5).map(|i| format!("Bearer tok{i}")).collect())
        });
        pass(60_000).await;
        let (_, rows) = rig.call("GET", "/v1/mcp/server", Value::Null).await;
        let fetched = world.token_calls.load(Ordering::SeqCst);
        if on {
            // The first token, for good: not on expiry, not after the 401.
            assert_eq!(fetched, 1);
            assert_eq!(rows[0]["status"], "unhealthy", "{rows}");
        } else {
            assert!(fetched >= 2, "{fetched}");
            assert_eq!(rows[0]["status"], "healthy", "{rows}");
        }
    }
}
