//! The request flow of an `#[idempotent]` route (docs/contract.md, sections 2 to 5), shared by every store.
//!
//! Order of checks: configuration, key presence (an optional key that is absent runs the handler unprotected),
//! scope (401 before 400, as authentication comes first), key validity, body cap, then one claim. Only a claimed
//! request runs the handler; its response is stored before it is sent, so a retry can never overtake it.
//!
//! Every request ends in one [`Outcome`], recorded once in `respond`: as the `outcome` field of the request's
//! span and as the matching metric.

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use actix_web::dev::Payload;
use actix_web::{FromRequest, Handler, HttpRequest, HttpResponse, Responder};
use tracing::Instrument as _;

use super::answer::{Answer, Context, Reply, misconfigured};
use super::handler_call::HandlerCall;
use super::run::{
    ServeTransactional, answer_existing, answer_from_other, serve_transactional, serve_with_lease, store_failed,
};
use crate::attempt::Existing;
use crate::http::config::{Idempotency, Settings};
use crate::http::fingerprint::fingerprint;
use crate::http::issued_key::Verdict;
use crate::http::key::{IdempotencyKey, KeyError, LoggedKey};
use crate::http::key_source::{KeyLookup, lookup_in_form};
use crate::http::problem::{Problem, ProblemKind, style_of};
use crate::http::request_body::{BodyError, read_capped};
use crate::http::route::RouteOptions;
use crate::http::scope::ScopeError;
use crate::observe::{self, Outcome};
use crate::record_id::{RecordId, derived_key_digest, key_digest};
use crate::store::ClaimRequest;

/// Runs `handler` at most once per key, replaying its stored response to retries. Only the type erasure is
/// generic (compiled per route); the future it returns is the flow's, the same for every route.
pub fn handle<F, Args>(
    route: &'static RouteOptions,
    request: HttpRequest,
    payload: actix_web::web::Payload,
    handler: F,
) -> impl Future<Output = HttpResponse> + use<F, Args>
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder,
{
    flow(route, request, payload, HandlerCall::new(handler), None)
}

/// [`handle`] for a route whose handler takes `Tx`: the claim, the handler's writes and its stored response commit
/// in one transaction. A separate entry point, so that only an app with such routes links that path.
pub fn handle_transactional<F, Args>(
    route: &'static RouteOptions,
    request: HttpRequest,
    payload: actix_web::web::Payload,
    handler: F,
) -> impl Future<Output = HttpResponse> + use<F, Args>
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder,
{
    flow(route, request, payload, HandlerCall::new(handler), Some(serve_transactional))
}

/// The flow's future, boxed. It is large (about 5 KB: `-Zprint-type-sizes`), and returned by value it would be
/// copied on its way up to actix-web on every request; boxed, a pointer moves.
fn flow(
    route: &'static RouteOptions,
    request: HttpRequest,
    payload: actix_web::web::Payload,
    handler: HandlerCall,
    transactional: Option<ServeTransactional>,
) -> Pin<Box<impl Future<Output = HttpResponse>>> {
    Box::pin(respond(route, request, payload, handler, transactional))
}

async fn respond(
    route: &'static RouteOptions,
    request: HttpRequest,
    payload: actix_web::web::Payload,
    handler: HandlerCall,
    transactional: Option<ServeTransactional>,
) -> HttpResponse {
    let route_label = request.match_pattern().unwrap_or_else(|| request.path().to_owned());
    let span = tracing::info_span!(
        "idempotent",
        route = %route_label,
        method = %request.method(),
        key = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    let answer = serve(route, &request, &route_label, payload, handler, transactional).instrument(span.clone()).await;
    span.record("outcome", answer.outcome.as_str());
    answer.outcome.count(&route_label);
    match answer.reply {
        Reply::Response(response) => response,
        // Rendered here, once, in the app's style (the configuration may be what is missing).
        Reply::Problem(problem) => problem.into_response(style_of(&request), &request),
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

async fn serve(
    route: &RouteOptions,
    request: &HttpRequest,
    route_label: &str,
    payload: actix_web::web::Payload,
    handler: HandlerCall,
    transactional: Option<ServeTransactional>,
) -> Answer {
    let Some(config) = request.app_data::<Idempotency>().cloned() else {
        return misconfigured(
            route_label,
            "no idempotency configuration is registered: add `.app_data(Idempotency::builder(store).build())` to \
             the App",
        );
    };
    let settings = config.settings();
    let mut payload = payload.into_inner();

    let lookup = route.key.lookup(request, &settings.key_header);
    if matches!(lookup, KeyLookup::Missing) && !route.required {
        return Answer::new(handler.run_unprotected(request, payload).await, Outcome::Unprotected);
    }
    // Unkeyed: issued keys are signed over it (the tag never shows it); records live under `scope_digests`.
    let scope_hash = match route.scope.resolve(request, settings.user_resolver.as_ref()) {
        Ok(scope_hash) => scope_hash,
        Err(ScopeError::NoResolver) => {
            return misconfigured(
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
                let response = handler.run_unprotected(request, Payload::from(body)).await;
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
        KeySource::Given(key) => (key_digest(key.as_str()), LoggedKey::Given(key.as_str())),
        // The same request from the same scope is the same key: a double-submit guard (docs/contract.md,
        // section 2).
        KeySource::Derived | KeySource::InBody(_) => (derived_key_digest(&fingerprint), LoggedKey::Derived),
    };
    tracing::Span::current().record("key", tracing::field::display(key));
    let scopes = settings.scope_digests.of(scope_hash, SystemTime::now());
    let claim = ClaimRequest {
        fingerprint,
        id: RecordId {
            scope_hash: scopes.claimed,
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
    // During a scope-digest upgrade: the record may be under the other digest (docs/decisions.md).
    let also = scopes.also.map(|scope_hash| RecordId { scope_hash, ..claim.id.clone() });
    if let Some(other) = &also
        && let Some(answer) = answer_from_other(&context, &claim, other).await
    {
        return answer;
    }
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
    match transactional {
        Some(serve_transactional) => serve_transactional(&context, body, handler, claim).await,
        None => serve_with_lease(&context, body, handler, claim, also.as_ref()).await,
    }
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
