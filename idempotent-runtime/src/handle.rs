//! The request flow of an `#[idempotent]` route (CONTRACT sections 2 to 4), shared by every store.
//!
//! Order of checks: configuration, key presence (an optional key that is absent runs the handler unprotected),
//! scope (401 before 400, as authentication comes first), key validity, body cap, then one claim. Only a claimed
//! request runs the handler; its response is stored before it is sent, so a retry can never overtake it.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::web::Bytes;
use actix_web::{FromRequest, Handler, HttpMessage as _, HttpRequest, HttpResponse, Responder, ResponseError};
use futures_util::FutureExt as _;

use crate::claim_guard::ClaimGuard;
use crate::config::{Idempotency, Settings};
use crate::digest::hash_parts;
use crate::fingerprint::fingerprint;
use crate::heartbeat::with_heartbeat;
use crate::key::IdempotencyKey;
use crate::key_source::{KeyLookup, lookup_in_form};
use crate::problem::{Problem, ProblemKind};
use crate::record::Record;
use crate::record::{RecordId, RecordState};
use crate::replay::{replay, to_stored};
use crate::request_body::{BodyError, read_capped};
use crate::response_body::{Captured, capture};
use crate::route::RouteOptions;
use crate::scope::ScopeError;
use crate::store::{Claim, ClaimRequest, Completion, Lease, StoreError, StoreErrorKind, TransactionalClaim};
use crate::transaction::TxSlot;

/// Runs `handler` at most once per key, replaying its stored response to retries.
pub async fn handle<F, Args>(
    route: &'static RouteOptions,
    request: HttpRequest,
    payload: actix_web::web::Payload,
    handler: F,
) -> HttpResponse
where
    F: Handler<Args>,
    Args: FromRequest,
    F::Output: Responder,
{
    let Some(config) = request.app_data::<Idempotency>().cloned() else {
        return misconfigured(
            route,
            &request,
            "no idempotency configuration is registered: add \
             `.app_data(Idempotency::builder(store).build())` to the App",
        );
    };
    let settings = config.settings();
    let mut payload = payload.into_inner();

    let lookup = route.key.lookup(&request, &settings.key_header);
    if matches!(lookup, KeyLookup::Missing) && !route.required {
        return run_unprotected(&request, payload, handler).await;
    }
    let scope_hash = match route.scope.resolve(&request, settings.user_resolver.as_ref()) {
        Ok(scope_hash) => scope_hash,
        Err(ScopeError::NoResolver) => {
            return misconfigured(
                route,
                &request,
                "this route has `scope = \"user\"` but no user resolver is registered: call \
                 `.user_resolver(...)` on the Idempotency builder, or choose another scope",
            );
        }
        Err(ScopeError::Unauthenticated) => {
            return Problem::new(ProblemKind::Unauthenticated, "this route needs an authenticated user")
                .into_response();
        }
        Err(ScopeError::MissingHeader(name)) => {
            return Problem::new(
                ProblemKind::ScopeMissing,
                format!("this route scopes keys by the {name} header; send it"),
            )
            .into_response();
        }
    };
    // `Err(field)`: the key is a field of the body, read below.
    let key = match lookup {
        KeyLookup::Found(key) => Ok(key),
        KeyLookup::Missing => return key_missing(route, settings),
        KeyLookup::Invalid(error) => return key_invalid(route, settings, &error),
        KeyLookup::InBody(field) => Err(field),
    };

    let body = match read_capped(&request, &mut payload, route.effective_max_request_body(settings)).await {
        Ok(body) => body,
        Err(BodyError::TooLarge { cap }) => {
            return Problem::new(
                ProblemKind::BodyTooLarge,
                format!("the request body is larger than this route accepts ({cap} bytes)"),
            )
            .into_response();
        }
        Err(BodyError::Unreadable(error)) => return error.error_response(),
    };
    let key = match key {
        Ok(key) => key,
        Err(field) => match lookup_in_form(&request, &body, field) {
            KeyLookup::Found(key) => key,
            KeyLookup::Missing if !route.required => {
                return run_unprotected(&request, Payload::from(body), handler).await;
            }
            KeyLookup::Invalid(error) => return key_invalid(route, settings, &error),
            KeyLookup::Missing | KeyLookup::InBody(_) => return key_missing(route, settings),
        },
    };

    let route_pattern = request.match_pattern().unwrap_or_else(|| request.path().to_owned());
    let claim = ClaimRequest {
        fingerprint: fingerprint(&request, &route_pattern, &body),
        id: RecordId {
            scope_hash,
            key_hash: hash_parts(&[key.as_str().as_bytes()]),
            method: request.method().as_str().to_owned(),
            route: route_pattern,
        },
        token: fastrand::i64(..),
        lease: route.effective_lease(settings),
        ttl: route.effective_ttl(settings),
    };
    if route.transactional {
        return run_transactional(route, settings, &request, body, handler, claim, &key).await;
    }
    let wait_until = route.wait.map(|wait| Instant::now() + wait);
    loop {
        let record = match settings.store.claim(&claim).await {
            Err(error) => return store_failed(route, &request, settings, &key, &error),
            Ok(Claim::Acquired { took_over }) => {
                if took_over {
                    tracing::info!(route = %claim.id.route, key = %key.redacted(), "took over an expired or abandoned idempotency claim");
                }
                let ClaimRequest { id, token, ttl, lease, .. } = claim;
                let guard = ClaimGuard::new(settings.store.clone(), Lease { id, token });
                return run_claimed(route, settings, &request, body, handler, guard, Timing { ttl, lease }, &key).await;
            }
            Ok(Claim::Existing(record)) => record,
        };
        // on_conflict = "wait": a duplicate of a request in flight sleeps until the original completes or
        // releases (or its lease lapses, when this request may take over), then looks again.
        let now = Instant::now();
        match (&record.state, wait_until) {
            (RecordState::InProgress { lease_remaining }, Some(deadline))
                if now < deadline && record.fingerprint == claim.fingerprint =>
            {
                let until_change = (deadline - now).min((*lease_remaining).max(Duration::from_millis(10)));
                if let Err(error) = settings.store.wait(&claim.id, until_change).await {
                    return store_failed(route, &request, settings, &key, &error);
                }
            }
            _ => return answer_existing(record, &claim),
        }
    }
}

/// A transactional route (CONTRACT section 5): claim, handler writes and stored response commit together.
async fn run_transactional<F, Args>(
    route: &RouteOptions,
    settings: &Settings,
    request: &HttpRequest,
    body: Bytes,
    handler: F,
    claim: ClaimRequest,
    key: &IdempotencyKey,
) -> HttpResponse
where
    F: Handler<Args>,
    Args: FromRequest,
    F::Output: Responder,
{
    let Some(store) = settings.store.transactional() else {
        return misconfigured(
            route,
            request,
            "this route is transactional (its handler takes `Tx`) but the store cannot share a transaction with \
             it: register a PostgresStore, or remove the `Tx` parameter",
        );
    };
    let open = match store.claim_in_transaction(&claim, route.wait).await {
        Err(error) => return store_failed(route, request, settings, key, &error),
        Ok(TransactionalClaim::Busy) => {
            return Problem::new(
                ProblemKind::InFlight,
                "a request with this idempotency key is still being processed; retry after the given delay",
            )
            .retry_after(Duration::from_secs(1))
            .into_response();
        }
        Ok(TransactionalClaim::Existing(record)) => return answer_existing(record, &claim),
        Ok(TransactionalClaim::Acquired(open)) => open,
    };
    request.extensions_mut().insert(TxSlot(open.tx()));
    let outcome = AssertUnwindSafe(run(request, Payload::from(body), handler)).catch_unwind().await;
    // A handler whose extractors failed before `Tx` was taken leaves it here: drop it before committing.
    request.extensions_mut().remove::<TxSlot>();
    let response = match outcome {
        Err(_) => {
            tracing::error!(route = %claim.id.route, key = %key.redacted(), "handler panicked; its transaction was rolled back");
            open.rollback().await;
            return Problem::new(
                ProblemKind::HandlerPanicked,
                "the request failed; it was not recorded and may be retried",
            )
            .into_response();
        }
        Ok(Ran::Rejected(response)) => {
            open.rollback().await;
            return response;
        }
        Ok(Ran::Responded(response)) => response,
    };
    if response.status().is_server_error() && !route.store_server_errors {
        open.rollback().await;
        return response;
    }
    let (head, body) = response.into_parts();
    let (stored_body, body) = match capture(body, route.effective_max_response_body(settings)).await {
        Ok(Captured::Whole(bytes)) => (Some(bytes.clone()), actix_web::body::BoxBody::new(bytes)),
        Ok(Captured::TooLarge(body)) => (None, body),
        Err(error) => {
            tracing::error!(%error, key = %key.redacted(), "the handler's response body failed; its transaction was rolled back");
            open.rollback().await;
            return Problem::new(ProblemKind::ResponseFailed, "the response could not be produced; it may be retried")
                .into_response();
        }
    };
    let stored = to_stored(&head, stored_body, settings);
    match open.commit_with(&stored, claim.ttl).await {
        Ok(()) => head.set_body(body),
        // Nothing was committed, not even the handler's writes: answering its success would be a lie.
        Err(error) => store_failed(route, request, settings, key, &error),
    }
}

/// The answer to a request whose key has a live record it does not own: 422 for another request (checked before
/// the in-flight check), the replay of a completed one, or 409 until the lease lapses.
fn answer_existing(record: Record, claim: &ClaimRequest) -> HttpResponse {
    if record.fingerprint != claim.fingerprint {
        return Problem::new(
            ProblemKind::KeyReused,
            "this idempotency key was already used for a different request (method, path, query or body \
             differ); use a new key for a new request",
        )
        .into_response();
    }
    match record.state {
        RecordState::Completed(stored) => replay(&stored),
        RecordState::InProgress { lease_remaining } => Problem::new(
            ProblemKind::InFlight,
            "a request with this idempotency key is still being processed; retry after the given delay",
        )
        .retry_after(lease_remaining)
        .into_response(),
    }
}

/// How long the record lives once complete, and how long each lease (and heartbeat renewal) lasts.
struct Timing {
    ttl: Duration,
    lease: Duration,
}

/// Runs the handler under a claim and stores or releases according to its outcome.
#[allow(clippy::too_many_arguments)] // One call site; a struct would only rename the same eight values.
async fn run_claimed<F, Args>(
    route: &RouteOptions,
    settings: &Settings,
    request: &HttpRequest,
    body: Bytes,
    handler: F,
    guard: ClaimGuard,
    timing: Timing,
    key: &IdempotencyKey,
) -> HttpResponse
where
    F: Handler<Args>,
    Args: FromRequest,
    F::Output: Responder,
{
    let work = AssertUnwindSafe(run(request, Payload::from(body), handler)).catch_unwind();
    // The heartbeat keeps a slow handler's claim from being taken over while it is alive; it stops when the
    // handler's future completes.
    let outcome = with_heartbeat(&*settings.store, guard.lease(), timing.lease, work).await;
    let response = match outcome {
        Err(_) => {
            tracing::error!(route = %request.match_pattern().unwrap_or_default(), key = %key.redacted(), "handler panicked; idempotency claim released");
            guard.release().await;
            return Problem::new(
                ProblemKind::HandlerPanicked,
                "the request failed; it was not recorded and may be retried",
            )
            .into_response();
        }
        Ok(Ran::Rejected(response)) => {
            // The handler's extractors refused the request: the handler never started, nothing to remember.
            guard.release().await;
            return response;
        }
        Ok(Ran::Responded(response)) => response,
    };
    if response.status().is_server_error() && !route.store_server_errors {
        guard.release().await;
        return response;
    }

    let (head, body) = response.into_parts();
    let (stored_body, body) = match capture(body, route.effective_max_response_body(settings)).await {
        Ok(Captured::Whole(bytes)) => (Some(bytes.clone()), actix_web::body::BoxBody::new(bytes)),
        Ok(Captured::TooLarge(body)) => (None, body),
        Err(error) => {
            tracing::error!(%error, key = %key.redacted(), "the handler's response body failed; idempotency claim released");
            guard.release().await;
            return Problem::new(ProblemKind::ResponseFailed, "the response could not be produced; it may be retried")
                .into_response();
        }
    };
    let stored = to_stored(&head, stored_body, settings);
    if let Some(lease) = guard.lease() {
        match settings.store.complete(lease, &stored, timing.ttl).await {
            Ok(Completion::Stored) => {}
            Ok(Completion::Fenced) => tracing::warn!(
                route = %lease.id.route,
                key = %key.redacted(),
                "this attempt lost its claim to a newer one; its response was not stored"
            ),
            // The handler ran: its response goes to the client. The claim stays until its lease lapses, then a
            // retry runs the handler again (at-least-once for this rare case).
            Err(error) => tracing::error!(
                route = %lease.id.route,
                key = %key.redacted(),
                %error,
                "could not store the response; the key stays claimed until its lease lapses"
            ),
        }
    }
    guard.disarm();
    head.set_body(body)
}

/// The outcome of running a handler with its own extractors.
enum Ran {
    Rejected(HttpResponse),
    Responded(HttpResponse),
}

async fn run<F, Args>(request: &HttpRequest, mut payload: Payload, handler: F) -> Ran
where
    F: Handler<Args>,
    Args: FromRequest,
    F::Output: Responder,
{
    match Args::from_request(request, &mut payload).await {
        Err(error) => Ran::Rejected(error.into().error_response()),
        Ok(args) => Ran::Responded(handler.call(args).await.respond_to(request).map_into_boxed_body()),
    }
}

async fn run_unprotected<F, Args>(request: &HttpRequest, payload: Payload, handler: F) -> HttpResponse
where
    F: Handler<Args>,
    Args: FromRequest,
    F::Output: Responder,
{
    match run(request, payload, handler).await {
        Ran::Rejected(response) | Ran::Responded(response) => response,
    }
}

fn store_failed(
    route: &RouteOptions,
    request: &HttpRequest,
    settings: &Settings,
    key: &IdempotencyKey,
    error: &StoreError,
) -> HttpResponse {
    if error.kind() == StoreErrorKind::Unsupported {
        return misconfigured(route, request, &error.to_string());
    }
    tracing::error!(route = %request.match_pattern().unwrap_or_default(), key = %key.redacted(), %error, "idempotency store failed; answering 503");
    store_unavailable(settings)
}

fn key_missing(route: &RouteOptions, settings: &Settings) -> HttpResponse {
    let source = route.key.describe(&settings.key_header);
    Problem::new(ProblemKind::KeyMissing, format!("this route requires an idempotency key in {source}")).into_response()
}

fn key_invalid(route: &RouteOptions, settings: &Settings, error: &crate::key::KeyError) -> HttpResponse {
    let source = route.key.describe(&settings.key_header);
    Problem::new(ProblemKind::KeyInvalid, format!("the idempotency key in {source} is invalid: {error}"))
        .into_response()
}

fn store_unavailable(settings: &Settings) -> HttpResponse {
    Problem::new(
        ProblemKind::StoreUnavailable,
        "the idempotency store is unavailable, so the request was not processed; retry after the given delay",
    )
    .retry_after(settings.store_retry_after)
    .into_response()
}

fn misconfigured(route: &RouteOptions, request: &HttpRequest, fix: &str) -> HttpResponse {
    if route.first_misconfiguration() {
        tracing::error!(route = %request.match_pattern().unwrap_or_default(), "idempotency misconfigured: {fix}");
    }
    Problem::new(ProblemKind::Misconfigured, "the server's idempotency configuration is incomplete").into_response()
}
