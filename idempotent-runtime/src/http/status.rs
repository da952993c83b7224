//! "What happened to my key?": a mountable lookup for callers that timed out (docs/contract.md, section 6).
//!
//! ```
//! use actix_web::App;
//! use idempotent_runtime::{Idempotency, MemoryStore, status_lookup};
//!
//! let idempotency = Idempotency::builder(MemoryStore::new()).user_resolver(|_| Some("alice".into())).build();
//! let app = App::new().app_data(idempotency.clone()).service(status_lookup("/idempotency/{key}"));
//! # drop(app);
//! ```
//!
//! `GET /idempotency/{key}` answers `{"state": "in_progress", ...}` or `{"state": "completed", "status": 201,
//! "completed_at": "...", ...}` (200), or `{"state": "unknown"}` (404). The key is looked up in the caller's
//! scope, resolved as the routes resolve it: another user's key is `unknown`, never a hint that it exists.
//! A key the server issued to this caller ([`crate::issue_keys`]) that no request has used yet is
//! `{"state": "issued", "expires_at": "..."}` (200) until it expires.

use std::time::SystemTime;

use actix_web::http::header::{CACHE_CONTROL, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::digest::Digest;
use crate::http::config::{Idempotency, Settings};
use crate::http::issued_key::Verdict;
use crate::http::key::IdempotencyKey;
use crate::http::problem::{Problem, ProblemKind, ProblemStyle, retry_after_seconds};
use crate::http::scope::{ScopeError, ScopeSpec};
use crate::record::KeyState;
use crate::record_id::key_digest;
use crate::store::StoreErrorKind;

/// The scope a status resource resolves callers with.
#[derive(Clone, Copy)]
struct StatusScope(ScopeSpec);

/// The status lookup at `path` (which must contain a `{key}` segment), scoped by user like routes by default.
///
/// The store must answer lookups: a `RedisStore` does only when built with `status_lookups(true)`; on a store that
/// does not, the lookup answers 500 `misconfigured` and logs why.
pub fn status_lookup(path: &str) -> actix_web::Resource {
    status_lookup_scoped(path, ScopeSpec::User)
}

/// The status lookup at `path`, for keys of routes with another scope (e.g. `ScopeSpec::Header("x-tenant-id")`).
pub fn status_lookup_scoped(path: &str, scope: ScopeSpec) -> actix_web::Resource {
    web::resource(path).app_data(StatusScope(scope)).route(web::get().to(lookup))
}

async fn lookup(request: HttpRequest) -> HttpResponse {
    let Some(config) = request.app_data::<Idempotency>() else {
        tracing::error!("the status lookup needs the Idempotency configuration registered as app data");
        return Problem::misconfigured().into_response(&ProblemStyle::DEFAULT, &request);
    };
    let settings = config.settings();
    let style = &settings.problems;
    let scope = request.app_data::<StatusScope>().map_or(ScopeSpec::User, |scope| scope.0);
    let scope_hash = match caller_scope(&request, settings, scope, "looking a key up") {
        Ok(scope_hash) => scope_hash,
        Err(problem) => return problem.into_response(style, &request),
    };
    let raw = request.match_info().get("key").unwrap_or_default();
    let key = match IdempotencyKey::parse(raw.as_bytes()) {
        Ok(key) => key,
        Err(error) => {
            return Problem::new(ProblemKind::KeyInvalid, format!("the key in the path is invalid: {error}"))
                .into_response(style, &request);
        }
    };
    let status = match lookup_in_scope(settings, scope_hash, &key_digest(key.as_str())).await {
        Ok(status) => status,
        // A store that keeps no lookups (a `RedisStore` without `status_lookups(true)`): the app mounted the lookup
        // without setting its store up for it. `unknown` would tell the caller a wrong answer, and 503 to retry.
        Err(error) if error.kind() == StoreErrorKind::Unsupported => {
            tracing::error!(%error, "the status lookup is mounted but its idempotency store does not answer lookups");
            return Problem::misconfigured().into_response(style, &request);
        }
        Err(error) => {
            tracing::error!(%error, "idempotency store failed during a status lookup");
            return Problem::new(ProblemKind::StoreUnavailable, "the idempotency store is unavailable; retry later")
                .retry_after(settings.store_retry_after)
                .into_response(style, &request);
        }
    };
    let (found, document) = match status {
        // No record: the key may still be one this server issued to this caller and nobody used yet.
        None => {
            match settings.key_issuer.as_ref().map(|issuer| issuer.verify(key.as_str(), &scope_hash, SystemTime::now()))
            {
                Some(Verdict::Valid { expires_at }) => {
                    (true, json!({"state": "issued", "expires_at": rfc3339(expires_at)}))
                }
                _ => (false, json!({"state": "unknown"})),
            }
        }
        Some(status) => {
            let started_at = rfc3339(status.created_at);
            let document = match status.state {
                KeyState::InProgress { lease_remaining } => json!({
                    "state": "in_progress",
                    "method": status.method,
                    "route": status.route,
                    "started_at": started_at,
                    "retry_after": retry_after_seconds(lease_remaining),
                }),
                KeyState::Completed { status: code, completed_at } => json!({
                    "state": "completed",
                    "status": code.as_u16(),
                    "method": status.method,
                    "route": status.route,
                    "started_at": started_at,
                    "completed_at": rfc3339(completed_at),
                }),
            };
            (true, document)
        }
    };
    let mut response = if found { HttpResponse::Ok() } else { HttpResponse::NotFound() };
    response.insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store"))).json(document)
}

/// The key's record under the caller's scope: during a scope-digest upgrade under the other digest first, as a
/// request would answer from it.
async fn lookup_in_scope(
    settings: &Settings,
    unkeyed: Digest,
    key_hash: &Digest,
) -> Result<Option<crate::store::KeyStatus>, crate::StoreError> {
    let scopes = settings.scope_digests.of(unkeyed, SystemTime::now());
    if let Some(other) = scopes.also
        && let Some(status) = settings.calls.lookup(&other, key_hash).await?
    {
        return Ok(Some(status));
    }
    settings.calls.lookup(&scopes.claimed, key_hash).await
}

/// The hashed (unkeyed) scope of the caller of a service mounted beside the routes (the status lookup, the key issuer),
/// resolved as the routes resolve it; or the problem that says why there is none. `doing` completes
/// "... needs an authenticated caller".
pub(crate) fn caller_scope(
    request: &HttpRequest,
    settings: &Settings,
    scope: ScopeSpec,
    doing: &str,
) -> Result<Digest, Problem> {
    match scope.resolve(request, settings.user_resolver.as_ref()) {
        Ok(scope_hash) => Ok(scope_hash),
        Err(ScopeError::NoResolver) => {
            tracing::error!("{doing} is scoped by user but no user resolver is registered");
            Err(Problem::misconfigured())
        }
        Err(ScopeError::Unauthenticated) => {
            Err(Problem::new(ProblemKind::Unauthenticated, format!("{doing} needs an authenticated caller")))
        }
        Err(ScopeError::MissingHeader(name)) => {
            Err(Problem::new(ProblemKind::ScopeMissing, format!("keys are scoped by the {name} header; send it")))
        }
    }
}

/// RFC 3339 for the years humantime formats (1970 to 9999); `null` for a stored time outside them (a damaged
/// row must not turn a lookup into a panic).
pub(crate) fn rfc3339(time: std::time::SystemTime) -> Option<String> {
    const YEAR_10000: std::time::Duration = std::time::Duration::from_secs(253_402_300_800);
    let since_epoch = time.duration_since(std::time::UNIX_EPOCH).ok()?;
    (since_epoch < YEAR_10000).then(|| humantime::format_rfc3339_seconds(time).to_string())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use actix_web::body::MessageBody as _;
    use actix_web::test::{TestRequest, call_service, init_service};
    use actix_web::{App, http::StatusCode};

    use super::{rfc3339, status_lookup};
    use crate::Idempotency;
    use crate::digest::Digest;
    use crate::store::{
        Attempt, Claim, ClaimRequest, Completion, KeyStatus, LeaseState, MemoryStore, Record, RecordId, Store,
        StoreError, StoreErrorKind, StoredResponse,
    };

    /// A store that keeps no status lookups (as a `RedisStore` without `status_lookups(true)`).
    struct WithoutLookups(MemoryStore);

    #[async_trait::async_trait]
    impl Store for WithoutLookups {
        async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
            self.0.claim(request).await
        }
        async fn heartbeat(&self, attempt: &Attempt, duration: Duration) -> Result<LeaseState, StoreError> {
            self.0.heartbeat(attempt, duration).await
        }
        async fn complete(
            &self,
            attempt: &Attempt,
            response: &StoredResponse,
            ttl: Duration,
        ) -> Result<Completion, StoreError> {
            self.0.complete(attempt, response, ttl).await
        }
        async fn release(&self, attempt: &Attempt) -> Result<(), StoreError> {
            self.0.release(attempt).await
        }
        async fn read(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
            self.0.read(id).await
        }
        async fn lookup(&self, _: &Digest, _: &Digest) -> Result<Option<KeyStatus>, StoreError> {
            Err(StoreError::new(StoreErrorKind::Unsupported, "lookups are off: turn on `status_lookups`"))
        }
    }

    #[actix_web::test]
    async fn a_store_without_lookups_answers_misconfigured_not_unknown_or_unavailable() {
        let config =
            Idempotency::builder(WithoutLookups(MemoryStore::new())).user_resolver(|_| Some("alice".into())).build();
        let app = init_service(App::new().app_data(config).service(status_lookup("/idempotency/{key}"))).await;
        let response = call_service(&app, TestRequest::get().uri("/idempotency/k-1").to_request()).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers().get("content-type").unwrap(), "application/problem+json");
        let body = response.into_body().try_into_bytes().unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("misconfigured") && !body.contains("unknown"), "{body}");
    }

    #[test]
    fn times_outside_the_formattable_range_are_null_not_a_panic() {
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_000_000)).as_deref(), Some("2026-11-18T11:06:40Z"));
        assert_eq!(rfc3339(UNIX_EPOCH - Duration::from_secs(1)), None);
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(300_000_000_000)), None);
    }
}
