//! The request flow of an `#[idempotent]` route (docs/contract.md, sections 2 to 5), shared by every store.
//!
//! Order of checks: configuration, key presence (an optional key that is absent runs the handler unprotected),
//! scope (401 before 400, as authentication comes first), key validity, body cap, then one claim. Only a claimed
//! request runs the handler; its response is stored before it is sent, so a retry can never overtake it.
//!
//! Every request ends in one [`Outcome`], recorded once in [`handle`]: as the `outcome` field of the request's
//! span and as the matching metric.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant, SystemTime};

use actix_web::dev::Payload;
use actix_web::web::Bytes;
use actix_web::{FromRequest, Handler, HttpMessage as _, HttpRequest, HttpResponse, Responder};
use futures_util::FutureExt as _;
use tracing::Instrument as _;

use crate::attempt::{self, Claimed, Existing, Held, Kept, TransactionHold, TxClaimed};
use crate::config::{Idempotency, Settings};
use crate::fingerprint::fingerprint;
use crate::issued_key::Verdict;
use crate::key::{IdempotencyKey, KeyError};
use crate::key_source::{KeyLookup, lookup_in_form};
use crate::observe::{self, Outcome};
use crate::problem::{Problem, ProblemKind, style_of};
use crate::record::RecordId;
use crate::record_id::{derived_key_digest, key_digest};
use crate::replay::{replay_to, to_stored};
use crate::request_body::{BodyError, read_capped};
use crate::response_body::{Captured, capture};
use crate::route::RouteOptions;
use crate::scope::ScopeError;
use crate::store::{ClaimRequest, StoreError, StoreErrorKind};
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
    let route_label = request.match_pattern().unwrap_or_else(|| request.path().to_owned());
    let span = tracing::info_span!(
        "idempotent",
        route = %route_label,
        method = %request.method(),
        key = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    let answer = serve(route, &request, &route_label, payload, handler).instrument(span.clone()).await;
    span.record("outcome", answer.outcome.as_str());
    answer.outcome.count(&route_label);
    match answer.reply {
        Reply::Response(response) => response,
        // Rendered here, once, in the app's style (the configuration may be what is missing).
        Reply::Problem(problem) => problem.into_response(style_of(&request)),
    }
}

/// A response and how the request ended.
struct Answer {
    reply: Reply,
    outcome: Outcome,
}

/// What the client gets: a response, or one of the library's problems, still to be rendered.
enum Reply {
    Response(HttpResponse),
    Problem(Problem),
}

impl Answer {
    fn new(response: HttpResponse, outcome: Outcome) -> Self {
        Self { reply: Reply::Response(response), outcome }
    }

    fn problem(problem: Problem, outcome: Outcome) -> Self {
        Self { reply: Reply::Problem(problem), outcome }
    }
}

/// Where this request's key comes from, once the head has been looked at.
enum KeySource {
    /// A key the client sent.
    Given(IdempotencyKey),
    /// `key = "form:name"`: a field of the body, not read yet.
    InBody(&'static str),
    /// `key = "derived"`: the request itself is the key.
    Derived,
}

/// What the later steps need about the request.
struct Context<'a> {
    route: &'a RouteOptions,
    settings: &'a Settings,
    request: &'a HttpRequest,
    route_label: &'a str,
    /// The key as logs may show it (redacted, or `derived`).
    key: String,
}

async fn serve<F, Args>(
    route: &RouteOptions,
    request: &HttpRequest,
    route_label: &str,
    payload: actix_web::web::Payload,
    handler: F,
) -> Answer
where
    F: Handler<Args>,
    Args: FromRequest,
    F::Output: Responder,
{
    let Some(config) = request.app_data::<Idempotency>().cloned() else {
        return misconfigured(
            route,
            route_label,
            "no idempotency configuration is registered: add `.app_data(Idempotency::builder(store).build())` to \
             the App",
        );
    };
    let settings = config.settings();
    let mut payload = payload.into_inner();

    let lookup = route.key.lookup(request, &settings.key_header);
    if matches!(lookup, KeyLookup::Missing) && !route.required {
        return Answer::new(run_unprotected(request, payload, handler).await, Outcome::Unprotected);
    }
    let scope_hash = match route.scope.resolve(request, settings.user_resolver.as_ref()) {
        Ok(scope_hash) => scope_hash,
        Err(ScopeError::NoResolver) => {
            return misconfigured(
                route,
                route_label,
                "this route has `scope = \"user\"` but no user resolver is registered: call `.user_resolver(...)` \
                 on the Idempotency builder, or choose another scope",
            );
        }
        Err(ScopeError::Unauthenticated) => {
            let problem = Problem::new(ProblemKind::Unauthenticated, "this route needs an authenticated user");
            return Answer::problem(problem, Outcome::Refused);
        }
        Err(ScopeError::MissingHeader(name)) => {
            let detail = format!("this route scopes keys by the {name} header; send it");
            return Answer::problem(Problem::new(ProblemKind::ScopeMissing, detail), Outcome::Refused);
        }
    };
    let source = match lookup {
        KeyLookup::Found(key) => KeySource::Given(key),
        KeyLookup::InBody(field) => KeySource::InBody(field),
        KeyLookup::Derived => KeySource::Derived,
        KeyLookup::Missing => return key_missing(route, settings),
        KeyLookup::Invalid(error) => return key_invalid(route, settings, &error),
    };

    let body = match read_capped(request, &mut payload, route.effective_max_request_body(settings)).await {
        Ok(body) => body,
        Err(BodyError::TooLarge { cap }) => {
            let detail = format!("the request body is larger than this route accepts ({cap} bytes)");
            return Answer::problem(Problem::new(ProblemKind::BodyTooLarge, detail), Outcome::Refused);
        }
        Err(BodyError::Unreadable(error)) => {
            let detail = format!("the request body could not be read: {error}");
            return Answer::problem(Problem::new(ProblemKind::BodyUnreadable, detail), Outcome::Refused);
        }
    };
    let source = match source {
        KeySource::InBody(field) => match lookup_in_form(request, &body, field) {
            KeyLookup::Found(key) => KeySource::Given(key),
            KeyLookup::Missing if !route.required => {
                let response = run_unprotected(request, Payload::from(body), handler).await;
                return Answer::new(response, Outcome::Unprotected);
            }
            KeyLookup::Invalid(error) => return key_invalid(route, settings, &error),
            KeyLookup::Missing | KeyLookup::InBody(_) | KeyLookup::Derived => return key_missing(route, settings),
        },
        other => other,
    };
    // issued_only: the key must be one this server issued to this caller; refused before anything is claimed.
    let issued_key_expired = match (&source, route.issued_only) {
        (_, false) => false,
        (KeySource::Given(key), true) => match check_issued(settings, key, &scope_hash) {
            Ok(expired) => expired,
            Err(NotAccepted::NoIssuer) => {
                return misconfigured(
                    route,
                    route_label,
                    "this route has `issued_only = true` but no key issuer is registered: call \
                     `.key_issuer(KeyIssuer::new(secret)?)` on the Idempotency builder",
                );
            }
            Err(NotAccepted::NotIssued) => return Answer::problem(not_issued(), Outcome::Refused),
        },
        (KeySource::InBody(_) | KeySource::Derived, true) => return Answer::problem(not_issued(), Outcome::Refused),
    };

    let fingerprint = fingerprint(request, route, route_label, &body);
    let (key_hash, key) = match &source {
        KeySource::Given(key) => (key_digest(key.as_str()), key.redacted()),
        // The same request from the same scope is the same key: a double-submit guard (docs/contract.md,
        // section 2).
        KeySource::Derived | KeySource::InBody(_) => (derived_key_digest(&fingerprint), "derived".to_owned()),
    };
    tracing::Span::current().record("key", key.as_str());
    let claim = ClaimRequest {
        fingerprint,
        id: RecordId {
            scope_hash,
            key_hash,
            method: request.method().as_str().to_owned(),
            // A namespace names the record whatever the route is called in this deploy.
            route: route.namespace.unwrap_or(route_label).to_owned(),
        },
        token: fastrand::i64(..),
        lease: route.effective_lease(settings),
        ttl: route.effective_ttl(settings),
    };
    let context = Context { route, settings, request, route_label, key };
    if issued_key_expired {
        // An expired issued key may still retry the request it started (within the route's ttl): only a first use
        // needs a key within its time.
        return match observe::timed("read", settings.calls.read(&claim.id)).await {
            Ok(Some(record)) => answer_existing(&context, Existing::decide(record, &claim)),
            Ok(None) => {
                let problem = Problem::new(
                    ProblemKind::KeyNotIssued,
                    "this issued idempotency key expired before it was used; get a new one from the key-issuing service",
                );
                Answer::problem(problem, Outcome::Refused)
            }
            Err(error) => store_failed(&context, &error),
        };
    }
    if route.transactional {
        serve_transactional(&context, body, handler, claim).await
    } else {
        serve_with_lease(&context, body, handler, claim).await
    }
}

/// A plain route: the claim is a record with a lease, renewed while the handler runs.
async fn serve_with_lease<F, Args>(context: &Context<'_>, body: Bytes, handler: F, claim: ClaimRequest) -> Answer
where
    F: Handler<Args>,
    Args: FromRequest,
    F::Output: Responder,
{
    let store = &context.settings.calls;
    match attempt::claim_or_wait(&**store, &claim, context.route.wait).await {
        Err(error) if fails_open(context, &error) => fail_open(context, &error, body, handler).await,
        Err(error) => store_failed(context, &error),
        Ok(Claimed::Existing(existing)) => answer_existing(context, existing),
        Ok(Claimed::Acquired { took_over }) => {
            acquired(context, took_over);
            let started = Instant::now();
            let work = AssertUnwindSafe(run(context.request, Payload::from(body), handler)).catch_unwind();
            // The heartbeat covers the handler, the collection of a (possibly streaming) body, and storing it
            // (with its retries).
            let answer =
                attempt::under_lease(store, &claim, |held| async { settle(context, held, work.await).await }).await;
            // As long as a duplicate would have waited: the next 409s of this route say so.
            context.route.usual_duration.record(started.elapsed());
            answer
        }
    }
}

/// A transactional route (docs/contract.md, section 5): claim, handler writes and stored response commit together.
async fn serve_transactional<F, Args>(context: &Context<'_>, body: Bytes, handler: F, claim: ClaimRequest) -> Answer
where
    F: Handler<Args>,
    Args: FromRequest,
    F::Output: Responder,
{
    let Some(store) = context.settings.calls.transactional() else {
        return misconfigured(
            context.route,
            context.route_label,
            "this route is transactional (its handler takes `Tx`) but the store cannot share a transaction with it: \
             register a PostgresStore, or remove the `Tx` parameter",
        );
    };
    let open = match attempt::claim_in_transaction(store, &claim, context.route.wait).await {
        Err(error) => return store_failed(context, &error),
        // The original's lease is not visible through its open transaction: the route's lease bounds it.
        Ok(TxClaimed::Busy) => return in_flight(context, claim.lease),
        Ok(TxClaimed::Existing(existing)) => return answer_existing(context, existing),
        Ok(TxClaimed::Acquired(open)) => open,
    };
    acquired(context, false);
    let started = Instant::now();
    let held = TransactionHold::new(open, claim.ttl);
    context.request.extensions_mut().insert(TxSlot(held.open().tx()));
    let ran = AssertUnwindSafe(run(context.request, Payload::from(body), handler)).catch_unwind().await;
    // A handler whose extractors failed before `Tx` was taken leaves it here: drop it before committing.
    context.request.extensions_mut().remove::<TxSlot>();
    let answer = settle(context, held, ran).await;
    context.route.usual_duration.record(started.elapsed());
    answer
}

fn acquired(context: &Context<'_>, took_over: bool) {
    observe::increment(observe::CLAIMED, context.route_label);
    if took_over {
        observe::increment(observe::LEASE_TAKEOVER, context.route_label);
        tracing::info!(key = %context.key, "took over an expired or abandoned idempotency claim");
    }
}

/// Applies the outcome policy (docs/contract.md, section 4) to what the handler did; the completion rules are
/// the core's ([`attempt::keep`]).
async fn settle<H: Held>(context: &Context<'_>, held: H, ran: std::thread::Result<Ran>) -> Answer {
    let response = match ran {
        Err(_) => {
            tracing::error!(key = %context.key, "handler panicked; idempotency claim released");
            held.abandon().await;
            let problem = Problem::new(
                ProblemKind::HandlerPanicked,
                "the request failed; it was not recorded and may be retried",
            );
            return Answer::problem(problem, Outcome::Failed);
        }
        // The handler's extractors refused the request: the handler never started, nothing to remember.
        Ok(Ran::Rejected(response)) => {
            held.abandon().await;
            return Answer::new(response, Outcome::Released);
        }
        Ok(Ran::Responded(response)) => response,
    };
    // Answers that are not final (5xx, 408, 425, 429 by default) release the key: a retry runs again.
    if !context.route.effective_store_policy(context.settings).stores(response.status()) {
        held.abandon().await;
        return Answer::new(response, Outcome::Released);
    }
    let (head, body) = response.into_parts();
    let (stored_body, body) = match capture(body, context.route.effective_max_response_body(context.settings)).await {
        Ok(Captured::Whole(bytes)) => (Some(bytes.clone()), actix_web::body::BoxBody::new(bytes)),
        Ok(Captured::TooLarge(body)) => (None, body),
        Err(error) => {
            tracing::error!(%error, key = %context.key, "the handler's response body failed; idempotency claim released");
            held.abandon().await;
            let problem =
                Problem::new(ProblemKind::ResponseFailed, "the response could not be produced; it may be retried");
            return Answer::problem(problem, Outcome::Failed);
        }
    };
    let stored = to_stored(&head, stored_body, context.settings);
    match attempt::keep(held, &stored).await {
        Kept::Stored => {}
        Kept::Fenced => {
            observe::increment(observe::FENCED, context.route_label);
            tracing::warn!(key = %context.key, "this attempt lost its claim to a newer one; its response was not stored");
        }
        // The handler's own SQL failed (say, a unique violation it answered with 409): its transaction was
        // aborted, so nothing was committed. Its answer stands, unstored, and the key is free: a release.
        Kept::Aborted(_) => {
            tracing::info!(key = %context.key, "the handler's transaction was aborted by its own SQL; nothing was stored");
            return Answer::new(head.set_body(body), Outcome::Released);
        }
        Kept::NotCommitted(error) => return store_failed(context, &error),
        Kept::Unstored(error) => {
            observe::increment(observe::STORE_ERRORS, context.route_label);
            tracing::error!(key = %context.key, %error, "could not store the response; the key stays claimed until its lease lapses");
        }
    }
    Answer::new(head.set_body(body), Outcome::Executed)
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

/// The answer to a request whose key has a live record it does not own: 422 for another request, the replay of
/// a completed one, or 409 until the lease lapses.
fn answer_existing(context: &Context<'_>, existing: Existing) -> Answer {
    let settings = context.settings;
    match existing {
        Existing::KeyReused => {
            let problem = Problem::new(
                ProblemKind::KeyReused,
                "this idempotency key was already used for a different request (method, path, query or body \
                 differ); use a new key for a new request",
            );
            Answer::problem(problem.with_status(settings.key_reused_status), Outcome::KeyReused)
        }
        Existing::Completed(stored) => {
            let response = replay_to(context.request, context.route_label, &stored, settings);
            Answer::new(response, Outcome::Replayed)
        }
        Existing::InFlight { lease_remaining } => in_flight(context, lease_remaining),
    }
}

/// 409: the original is still running. `Retry-After` is how long this route's requests usually take, at least
/// 1 s and at most the original's remaining lease.
fn in_flight(context: &Context<'_>, lease_remaining: Duration) -> Answer {
    let problem = Problem::new(
        ProblemKind::InFlight,
        "a request with this idempotency key is still being processed; retry after the given delay",
    );
    let retry_after = context.route.usual_duration.retry_after(lease_remaining);
    Answer::problem(problem.retry_after(retry_after), Outcome::InFlight)
}

/// Whether this failure lets the route run its handler unprotected (`fail_open = true`, and the store is
/// unreachable or timing out; a corrupt record or a missing set-up still answers).
fn fails_open(context: &Context<'_>, error: &StoreError) -> bool {
    context.route.fail_open && matches!(error.kind(), StoreErrorKind::Unavailable | StoreErrorKind::Timeout)
}

/// `fail_open = true` and the store is unavailable: the handler runs without protection, logged and counted.
async fn fail_open<F, Args>(context: &Context<'_>, error: &StoreError, body: Bytes, handler: F) -> Answer
where
    F: Handler<Args>,
    Args: FromRequest,
    F::Output: Responder,
{
    observe::increment(observe::STORE_ERRORS, context.route_label);
    tracing::warn!(
        key = %context.key,
        %error,
        "idempotency store unavailable; this route fails open: the handler runs unprotected (a retry may run it again)"
    );
    Answer::new(run_unprotected(context.request, Payload::from(body), handler).await, Outcome::FailOpen)
}

fn store_failed(context: &Context<'_>, error: &StoreError) -> Answer {
    if error.kind() == StoreErrorKind::Unsupported {
        return misconfigured(context.route, context.route_label, &error.to_string());
    }
    tracing::error!(key = %context.key, %error, "idempotency store failed; answering 503");
    let problem = Problem::new(
        ProblemKind::StoreUnavailable,
        "the idempotency store is unavailable, so the request was not processed; retry after the given delay",
    );
    Answer::problem(problem.retry_after(context.settings.store_retry_after), Outcome::StoreUnavailable)
}

fn key_missing(route: &RouteOptions, settings: &Settings) -> Answer {
    let source = route.key.describe(&settings.key_header);
    let problem = Problem::new(ProblemKind::KeyMissing, format!("this route requires an idempotency key in {source}"));
    Answer::problem(problem, Outcome::Refused)
}

fn key_invalid(route: &RouteOptions, settings: &Settings, error: &KeyError) -> Answer {
    let source = route.key.describe(&settings.key_header);
    let detail = format!("the idempotency key in {source} is invalid: {error}");
    Answer::problem(Problem::new(ProblemKind::KeyInvalid, detail), Outcome::Refused)
}

/// Why an `issued_only` route does not accept a key.
enum NotAccepted {
    /// The app registered no key issuer (a configuration error).
    NoIssuer,
    /// Not issued to this caller: forged, altered, another caller's.
    NotIssued,
}

/// `issued_only = true`: `Ok(false)` for a key issued to this caller and within its time, `Ok(true)` for one whose
/// time expired (it may only retry what it started).
fn check_issued(
    settings: &Settings,
    key: &IdempotencyKey,
    scope_hash: &crate::digest::Digest,
) -> Result<bool, NotAccepted> {
    let issuer = settings.key_issuer.as_ref().ok_or(NotAccepted::NoIssuer)?;
    match issuer.verify(key.as_str(), scope_hash, SystemTime::now()) {
        Verdict::Valid { .. } => Ok(false),
        Verdict::Expired => Ok(true),
        Verdict::NotIssued => Err(NotAccepted::NotIssued),
    }
}

fn not_issued() -> Problem {
    Problem::new(
        ProblemKind::KeyNotIssued,
        "this route only accepts idempotency keys the server issued to you (POST to its key-issuing service); this \
         key was not issued to you",
    )
}

fn misconfigured(route: &RouteOptions, route_label: &str, fix: &str) -> Answer {
    if route.first_misconfiguration() {
        tracing::error!(route = %route_label, "idempotency misconfigured: {fix}");
    }
    let problem = Problem::new(ProblemKind::Misconfigured, "the server's idempotency configuration is incomplete");
    Answer::problem(problem, Outcome::Misconfigured)
}
