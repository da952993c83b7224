//! A route's handler behind one type-erased call: the only part of the request flow that knows the handler's
//! types.
//!
//! `#[idempotent]` hands each route's handler to [`super::handle::handle`], which is generic over it, so whatever
//! is generic is compiled once per route. Only extracting the handler's arguments, calling it and turning its
//! output into a response stay generic; the flow (claim, wait, heartbeat, completion, replay) takes a
//! [`HandlerCall`] and is compiled once for all routes. Before, the whole flow was generic: about 0.21 s of
//! release build and 37 KB of binary per route (BENCHMARKS.md, "Build cost per route").
//!
//! The call borrows nothing: the request is lent to [`HandlerCall::run`], so the flow's future can own it, and
//! `handle` returns that one future instead of wrapping it in a state machine of its own for every route.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, Handler, HttpRequest, HttpResponse, Responder};

/// What running a handler with its own extractors gave.
pub(super) enum Ran {
    /// An extractor refused the request: the handler never started.
    Rejected(HttpResponse),
    /// The handler's response.
    Responded(HttpResponse),
}

type Running<'r> = Pin<Box<dyn Future<Output = Ran> + 'r>>;
type RunOnce = Box<dyn for<'r> FnOnce(&'r HttpRequest, Payload) -> Running<'r>>;

/// A route's handler, run at most once on its request's body.
pub(super) struct HandlerCall {
    run: RunOnce,
}

impl HandlerCall {
    /// Erases `handler`'s types: its extractors run on the request and payload given to [`HandlerCall::run`].
    pub(super) fn new<F, Args>(handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder,
    {
        let run: RunOnce = Box::new(move |request, mut payload| {
            Box::pin(async move {
                match Args::from_request(request, &mut payload).await {
                    Err(error) => Ran::Rejected(error.into().error_response()),
                    Ok(args) => Ran::Responded(handler.call(args).await.respond_to(request).map_into_boxed_body()),
                }
            })
        });
        Self { run }
    }

    /// Extracts the handler's arguments from `request` and `payload`, and runs it.
    pub(super) async fn run(self, request: &HttpRequest, payload: Payload) -> Ran {
        (self.run)(request, payload).await
    }

    /// [`HandlerCall::run`] without idempotency: an extractor's refusal is the answer too.
    pub(super) async fn run_unprotected(self, request: &HttpRequest, payload: Payload) -> HttpResponse {
        match self.run(request, payload).await {
            Ran::Rejected(response) | Ran::Responded(response) => response,
        }
    }
}
