//! The claimed part of an `#[idempotent]` route's flow: the attempt of the core (`crate::attempt`) run with the
//! handler as its work, and its outcome answered over HTTP (the response, a replay, or a problem).

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use actix_web::HttpMessage as _;
use actix_web::HttpResponse;
use actix_web::body::BoxBody;
use actix_web::dev::Payload;
use actix_web::web::Bytes;
use futures_util::FutureExt as _;
use futures_util::future::LocalBoxFuture;

use super::answer::{Answer, Context, misconfigured};
use super::handler_call::{HandlerCall, Ran};
use super::problem::{Problem, ProblemKind};
use super::replay::{replay_to, to_stored};
use super::response_body::{Captured, capture};
use crate::attempt::{self, Claimed, Existing, Held, Kept, Lease, TransactionHold, TxClaimed};
use crate::observe::{self, Outcome};
use crate::record_id::RecordId;
use crate::store::{Attempt, ClaimRequest, StoreError, StoreErrorKind};

/// A plain route: the claim is a record with a lease, renewed while the handler runs. During a scope-digest
/// upgrade, `also` is the record under the other digest: a fresh claim that finds it live defers to it.
pub(super) async fn serve_with_lease(
    context: &Context<'_>,
    body: Bytes,
    handler: HandlerCall,
    claim: ClaimRequest,
    also: Option<&RecordId>,
) -> Answer {
    let store = &context.settings.calls;
    match attempt::claim_or_wait(&**store, &claim, context.route.wait).await {
        Err(error) if fails_open(context, &error) => fail_open(context, &error, body, handler).await,
        Err(error) => store_failed(context, &error),
        Ok(Claimed::Existing(existing)) => answer_existing(context, existing),
        Ok(Claimed::Acquired { took_over }) => {
            if let Some(other) = also
                && let Some(answer) = defer_to_concurrent(context, &claim, other).await
            {
                return answer;
            }
            acquired(context, took_over);
            let started = Instant::now();
            let work = AssertUnwindSafe(handler.run(context.request, Payload::from(body))).catch_unwind();
            // The heartbeat covers the handler, the collection of a (possibly streaming) body, and storing it
            // (with its retries).
            let lease = Lease::acquired(claim);
            let answer =
                attempt::under_lease(store, &lease, |held| async { settle(context, held, work.await).await }).await;
            // As long as a duplicate would have waited: the next 409s of this route say so.
            context.settings.usual_durations.record(context.route_label, started.elapsed());
            answer
        }
    }
}

/// How a transactional route's claimed request is served: [`serve_transactional`], behind a function pointer that
/// only [`super::handle::handle_transactional`] names, so an app without transactional routes does not link that
/// path (about 24 KB of a release binary; BENCHMARKS.md, "Build cost per route").
pub(super) type ServeTransactional =
    for<'c> fn(&'c Context<'c>, Bytes, HandlerCall, ClaimRequest) -> LocalBoxFuture<'c, Answer>;

/// A transactional route (docs/contract.md, section 5): claim, handler writes and stored response commit together.
pub(super) fn serve_transactional<'c>(
    context: &'c Context<'c>,
    body: Bytes,
    handler: HandlerCall,
    claim: ClaimRequest,
) -> LocalBoxFuture<'c, Answer> {
    in_transaction(context, body, handler, claim).boxed_local()
}

async fn in_transaction(context: &Context<'_>, body: Bytes, handler: HandlerCall, claim: ClaimRequest) -> Answer {
    let Some(store) = context.settings.calls.transactional() else {
        return misconfigured(
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
    held.open().lend(&mut context.request.extensions_mut());
    let ran = AssertUnwindSafe(handler.run(context.request, Payload::from(body))).catch_unwind().await;
    // A handler whose extractors failed before `Tx` was taken leaves it here: drop it before committing.
    held.open().take_back(&mut context.request.extensions_mut());
    let answer = settle(context, held, ran).await;
    context.settings.usual_durations.record(context.route_label, started.elapsed());
    answer
}

fn acquired(context: &Context<'_>, took_over: bool) {
    observe::increment(observe::CLAIMED, context.route_label);
    if took_over {
        observe::increment(observe::TAKEOVERS, context.route_label);
        tracing::info!(key = %context.key, "took over an expired or abandoned idempotency claim");
    }
}

/// Applies the outcome policy (docs/contract.md, section 4) to what the handler did; the completion rules are
/// the core's ([`attempt::keep`]).
async fn settle<H: Held>(context: &Context<'_>, held: H, ran: std::thread::Result<Ran>) -> Answer {
    let (head, stored_body, body) = match to_keep(context, ran).await {
        Ok(kept) => kept,
        // One place gives the claim back, whatever the reason: one await point instead of four.
        Err(answer) => {
            held.abandon().await;
            return answer;
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

/// What of the handler's answer is kept: its head, its body as stored (`None` when it is larger than the route
/// keeps) and as sent. `Err`: the answer when the claim must be given back instead (a panic, an extractor's
/// refusal, a status the policy does not store, a body that failed).
async fn to_keep(
    context: &Context<'_>,
    ran: std::thread::Result<Ran>,
) -> Result<(HttpResponse<()>, Option<Bytes>, BoxBody), Answer> {
    let response = match ran {
        Err(_) => {
            tracing::error!(key = %context.key, "handler panicked; idempotency claim released");
            let problem = Problem::new(
                ProblemKind::HandlerPanicked,
                "the request failed; it was not recorded and may be retried",
            );
            return Err(Answer::problem(problem, Outcome::Failed));
        }
        // The handler's extractors refused the request: the handler never started, nothing to remember.
        Ok(Ran::Rejected(response)) => return Err(Answer::new(response, Outcome::Released)),
        Ok(Ran::Responded(response)) => response,
    };
    // Answers that are not final (5xx, 408, 425, 429 by default) release the key: a retry runs again.
    if !context.route.effective_store_policy(context.settings).stores(response.status()) {
        return Err(Answer::new(response, Outcome::Released));
    }
    let (head, body) = response.into_parts();
    match capture(body, context.route.effective_max_response_body(context.settings)).await {
        Ok(Captured::Whole(bytes)) => Ok((head, Some(bytes.clone()), BoxBody::new(bytes))),
        Ok(Captured::TooLarge(body)) => Ok((head, None, body)),
        Err(error) => {
            tracing::error!(%error, key = %context.key, "the handler's response body failed; idempotency claim released");
            let problem =
                Problem::new(ProblemKind::ResponseFailed, "the response could not be produced; it may be retried");
            Err(Answer::problem(problem, Outcome::Failed))
        }
    }
}

/// During a scope-digest upgrade, before claiming: the answer from the live record under the other digest
/// (`other`), if there is one this request must not claim past (docs/decisions.md, "Keyed scope digests"). A
/// record in progress whose lease lapsed is not one: its worker died, and the request claims under its own digest
/// as it would take the record over. With `on_conflict = "wait"` a record in flight is waited for, then read
/// again. `None`: claim as usual.
pub(super) async fn answer_from_other(context: &Context<'_>, claim: &ClaimRequest, other: &RecordId) -> Option<Answer> {
    let store = &context.settings.calls;
    let wait_until = context.route.wait.and_then(|wait| Instant::now().checked_add(wait));
    loop {
        let record = match observe::timed("read", store.read(other)).await {
            Ok(Some(record)) => record,
            Ok(None) => return None,
            // The claim meets the same store: it fails open, answers 503, or (the store is back) claims.
            Err(error) if fails_open(context, &error) => return None,
            Err(error) => return Some(store_failed(context, &error)),
        };
        let lease_remaining = match Existing::decide(record, claim) {
            Existing::InFlight { lease_remaining } if lease_remaining.is_zero() => return None,
            Existing::InFlight { lease_remaining } => lease_remaining,
            existing => return Some(answer_existing(context, existing)),
        };
        let now = Instant::now();
        match wait_until {
            Some(deadline) if now < deadline => {
                let until_change = (deadline - now).min(lease_remaining);
                if let Err(error) = observe::timed("wait", store.wait(other, until_change)).await {
                    return Some(store_failed(context, &error));
                }
            }
            _ => return Some(in_flight(context, lease_remaining)),
        }
    }
}

/// During a scope-digest upgrade, just after a fresh claim: whether a process on the other step of the upgrade
/// claimed the same request under the other digest at the same moment. Both claim first and look at the other
/// digest second, so of two such claims at least one sees the other; the one that sees a live record releases its
/// own claim and answers from that record (409 while it runs), so at most one runs the handler.
async fn defer_to_concurrent(context: &Context<'_>, claim: &ClaimRequest, other: &RecordId) -> Option<Answer> {
    let store = &context.settings.calls;
    let answer = match observe::timed("read", store.read(other)).await {
        Ok(None) => return None,
        Ok(Some(record)) => match Existing::decide(record, claim) {
            // A dead worker's record, not a concurrent claim.
            Existing::InFlight { lease_remaining } if lease_remaining.is_zero() => return None,
            Existing::InFlight { lease_remaining } => in_flight(context, lease_remaining),
            existing => answer_existing(context, existing),
        },
        // Unchecked, this claim may be a second one: give it up.
        Err(error) => store_failed(context, &error),
    };
    let ours = Attempt { id: claim.id.clone(), token: claim.token };
    if let Err(error) = observe::timed("release", store.release(&ours)).await {
        tracing::warn!(key = %context.key, %error, "could not release a claim that deferred to the other scope digest; it lapses with its lease");
    }
    Some(answer)
}

/// The answer to a request whose key has a live record it does not own: 422 for another request, the replay of
/// a completed one, or 409 until the lease lapses.
pub(super) fn answer_existing(context: &Context<'_>, existing: Existing) -> Answer {
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
    let retry_after = context.settings.usual_durations.retry_after(context.route_label, lease_remaining);
    Answer::problem(problem.retry_after(retry_after), Outcome::InFlight)
}

/// Whether this failure lets the route run its handler unprotected (`fail_open = true`, and the store is
/// unreachable or timing out; a corrupt record or a missing set-up still answers).
pub(super) fn fails_open(context: &Context<'_>, error: &StoreError) -> bool {
    context.route.fail_open && matches!(error.kind(), StoreErrorKind::Unavailable | StoreErrorKind::Timeout)
}

/// `fail_open = true` and the store is unavailable: the handler runs without protection, logged and counted.
pub(super) async fn fail_open(context: &Context<'_>, error: &StoreError, body: Bytes, handler: HandlerCall) -> Answer {
    observe::increment(observe::STORE_ERRORS, context.route_label);
    tracing::warn!(
        key = %context.key,
        %error,
        "idempotency store unavailable; this route fails open: the handler runs unprotected (a retry may run it again)"
    );
    Answer::new(handler.run_unprotected(context.request, Payload::from(body)).await, Outcome::FailOpen)
}

pub(super) fn store_failed(context: &Context<'_>, error: &StoreError) -> Answer {
    if error.kind() == StoreErrorKind::Unsupported {
        return misconfigured(context.route_label, &error.to_string());
    }
    tracing::error!(key = %context.key, %error, "idempotency store failed; answering 503");
    let problem = Problem::new(
        ProblemKind::StoreUnavailable,
        "the idempotency store is unavailable, so the request was not processed; retry after the given delay",
    );
    Answer::problem(problem.retry_after(context.settings.store_retry_after), Outcome::StoreUnavailable)
}
