//! "Give me a key": a mountable service that issues idempotency keys bound to the caller's scope.
//!
//! ```no_run
//! # use actix_web::{App, HttpRequest};
//! # use idempotent_runtime::{Idempotency, KeyIssuer, MemoryStore, issue_keys};
//! # fn user_of(_request: &HttpRequest) -> Option<String> { None }
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = std::env::var("IDEMPOTENCY_KEY_SECRET")?; // at least 32 bytes
//! let idempotency =
//!     Idempotency::builder(MemoryStore::new()).user_resolver(user_of).key_issuer(KeyIssuer::new(secret)?).build();
//! let app = App::new().app_data(idempotency.clone()).service(issue_keys("/idempotency-keys"));
//! # drop(app);
//! # Ok(())
//! # }
//! ```
//!
//! `POST /idempotency-keys` answers `201 Created` with `{"key": "ik1_...", "expires_at": "2026-11-30T12:00:00Z"}`
//! (and `Cache-Control: no-store`). The key is bound to the caller's scope, resolved as the routes resolve it, so
//! it works for that caller only; a route with `issued_only = true` refuses every other key with 400
//! `key-not-issued`, and the status lookup reports an issued key nobody used yet as `issued`.

use std::time::SystemTime;

use actix_web::http::header::{CACHE_CONTROL, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::http::config::Idempotency;
use crate::http::problem::{Problem, ProblemStyle};
use crate::http::scope::ScopeSpec;
use crate::http::status::{caller_scope, rfc3339};

/// The scope a key-issuing resource resolves callers with.
#[derive(Clone, Copy)]
struct IssueScope(ScopeSpec);

/// The key-issuing service at `path` (`POST`), for routes scoped by user (the default scope).
pub fn issue_keys(path: &str) -> actix_web::Resource {
    issue_keys_scoped(path, ScopeSpec::User)
}

/// The key-issuing service at `path`, for routes with another scope (e.g. `ScopeSpec::Header("x-tenant-id")`):
/// a key is only valid on routes whose scope resolves to the same value.
pub fn issue_keys_scoped(path: &str, scope: ScopeSpec) -> actix_web::Resource {
    web::resource(path).app_data(IssueScope(scope)).route(web::post().to(issue))
}

async fn issue(request: HttpRequest) -> HttpResponse {
    let Some(config) = request.app_data::<Idempotency>() else {
        tracing::error!("the key-issuing service needs the Idempotency configuration registered as app data");
        return Problem::misconfigured().into_response(&ProblemStyle::DEFAULT, &request);
    };
    let settings = config.settings();
    let Some(issuer) = settings.key_issuer.as_ref() else {
        tracing::error!(
            "the key-issuing service needs a key issuer: call `.key_issuer(KeyIssuer::new(secret)?)` on the Idempotency builder"
        );
        return Problem::misconfigured().into_response(&settings.problems, &request);
    };
    let scope = request.app_data::<IssueScope>().map_or(ScopeSpec::User, |scope| scope.0);
    let scope_hash = match caller_scope(&request, settings, scope, "getting a key") {
        Ok(scope_hash) => scope_hash,
        Err(problem) => return problem.into_response(&settings.problems, &request),
    };
    let issued = issuer.issue(&scope_hash, SystemTime::now());
    crate::observe::increment(crate::observe::ISSUED, request.match_pattern().as_deref().unwrap_or("issue_keys"));
    HttpResponse::Created()
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(json!({"key": issued.key, "expires_at": rfc3339(issued.expires_at)}))
}
