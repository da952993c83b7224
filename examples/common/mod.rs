//! What the examples share: the demo authentication, problem responses, and a pool from `DATABASE_URL`.
#![allow(dead_code)] // Each example uses part of it.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::json;

pub(crate) mod openapi;

/// Demo auth: `Authorization: Bearer <user-id>`, the token is the user id (1 to 64 visible ASCII characters).
pub(crate) fn user_of(request: &HttpRequest) -> Option<String> {
    let token = request.headers().get("authorization")?.to_str().ok()?.strip_prefix("Bearer ")?;
    let valid = (1..=64).contains(&token.len()) && token.bytes().all(|byte| byte.is_ascii_graphic());
    valid.then(|| token.to_owned())
}

/// An RFC 9457 problem answered by the example itself (the library answers its own, under its own `type` base).
pub(crate) fn problem(status: StatusCode, slug: &str, detail: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/problem+json")
        .insert_header(("cache-control", "no-store"))
        .json(json!({
            "type": format!("https://examples.idempotent.rs/problems/{slug}"),
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": detail.into(),
        }))
}

pub(crate) fn unauthenticated() -> HttpResponse {
    problem(StatusCode::UNAUTHORIZED, "unauthenticated", "send `Authorization: Bearer <user-id>`")
}

/// JSON bodies up to 1 MiB; a body that is not JSON is a 400 problem.
pub(crate) fn json_config() -> web::JsonConfig {
    web::JsonConfig::default().limit(1024 * 1024).error_handler(|error, _| {
        let response =
            problem(StatusCode::BAD_REQUEST, "invalid-json", format!("the body is not a JSON document: {error}"));
        actix_web::error::InternalError::from_response(error, response).into()
    })
}

/// The connection settings in `DATABASE_URL`.
pub(crate) fn postgres_config(url: &str) -> Result<tokio_postgres::Config, String> {
    url.parse().map_err(|error| format!("DATABASE_URL is invalid: {error}"))
}

/// The connection the store listens on for `on_conflict = "wait"`: `DATABASE_LISTEN_URL` when set (behind a
/// transaction-mode pooler such as PgBouncer it must name PostgreSQL itself, which notifications need), else the
/// pool's own settings.
pub(crate) fn listen_config(pool_config: tokio_postgres::Config) -> Result<tokio_postgres::Config, String> {
    match std::env::var("DATABASE_LISTEN_URL") {
        Ok(url) => url.parse().map_err(|error| format!("DATABASE_LISTEN_URL is invalid: {error}")),
        Err(_) => Ok(pool_config),
    }
}

/// The application's pool, which the idempotency store shares.
pub(crate) fn postgres_pool(config: tokio_postgres::Config) -> Result<Pool, String> {
    let manager =
        Manager::from_config(config, tokio_postgres::NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager).max_size(16).build().map_err(|error| error.to_string())
}

/// Creates an example's tables under a lock, since several processes may start at once on one database.
pub(crate) async fn create_tables(pool: &Pool, schema: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut client = pool.get().await.map_err(|error| format!("cannot reach PostgreSQL at DATABASE_URL: {error}"))?;
    let transaction = client.transaction().await?;
    transaction.execute("SELECT pg_advisory_xact_lock(hashtext('idempotent examples schema'))", &[]).await?;
    transaction.batch_execute(schema).await?;
    transaction.commit().await?;
    Ok(())
}

/// An integer field of a JSON body. JSON has one number type, so `1000.0` is the integer 1000 (as JSON Schema
/// says, and clients that only have floating point send it so); `1000.5` is not an integer.
pub(crate) fn integer(value: &serde_json::Value) -> Option<i64> {
    // Beyond 2^53 a float is no longer every integer: refuse rather than round.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    value.as_i64().or_else(|| {
        let float = value.as_f64()?;
        // Checked to be whole and in range, so the cast is exact.
        #[allow(clippy::cast_possible_truncation)]
        (float.fract() == 0.0 && float.abs() <= EXACT).then_some(float as i64)
    })
}

/// A delay from an optional `delay_ms` field: 0..=60000.
pub(crate) fn delay_of(body: &serde_json::Value) -> Result<std::time::Duration, &'static str> {
    match body.get("delay_ms") {
        None | Some(serde_json::Value::Null) => Ok(std::time::Duration::ZERO),
        Some(delay) => integer(delay)
            .and_then(|delay| u64::try_from(delay).ok())
            .filter(|delay| *delay <= 60_000)
            .map(std::time::Duration::from_millis)
            .ok_or("`delay_ms` must be an integer in 0..=60000"),
    }
}

/// The secret of server-issued keys: `IDEMPOTENCY_KEY_SECRET` (at least 32 bytes, shared by every process of the
/// app), or a random one for this process (its keys are then refused after a restart).
pub(crate) fn key_issuer() -> Result<idempotent_runtime::KeyIssuer, String> {
    let secret = match std::env::var("IDEMPOTENCY_KEY_SECRET") {
        Ok(secret) => secret.into_bytes(),
        // Two UUID v4s: 244 bits from the operating system's random source.
        Err(_) => format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()).into_bytes(),
    };
    idempotent_runtime::KeyIssuer::new(secret).map_err(|error| format!("IDEMPOTENCY_KEY_SECRET: {error}"))
}
