//! A route's handler behind one type-erased call: the only part of the request flow that knows the handler's
//! types.
//!
//! `#[idempotent]` hands each route's handler to [`super::handle::handle`], which is generic over it, so whatever
//! is generic is compiled once per route. Only extracting the handler's arguments, calling it and turning its
//! output into a response stay generic; the flow (claim, wait, heartbeat, completion, replay) takes a
//! [`HandlerCall`] and is compiled once for all routes. Before, the whole flow was generic: about 0.21 s of
//! release build and 37 KB of binary per route (BENCHMARKS.md, "Build cost per route").

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

type RunOnce<'r> = Box<dyn FnOnce(Payload) -> Pin<Box<dyn Future<Output = Ran> + 'r>> + 'r>;

/// A route's handler bound to its request, run at most once on the request's body.
pub(super) struct HandlerCall<'r> {
    run: RunOnce<'r>,
}

impl<'r> HandlerCall<'r> {
    /// Erases `handler`'s types: its extractors run on `request` and the payload given to [`HandlerCall::run`].
    pub(super) fn new<F, Args>(request: &'r HttpRequest, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'r,
        F::Output: Responder,
    {
        let run: RunOnce<'r> = Box::new(move |mut payload| {
            Box::pin(async move {
                match Args::from_request(request, &mut payload).await {
                    Err(error) => Ran::Rejected(error.into().error_response()),
                    Ok(args) => Ran::Responded(handler.call(args).await.respond_to(request).map_into_boxed_body()),
                }
            })
        });
        Self { run }
    }

    /// Extracts the handler's arguments from the request and `payload`, and runs it.
    pub(super) async fn run(self, payload: Payload) -> Ran {
        (self.run)(payload).await
    }

    /// [`HandlerCall::run`] without idempotency: an extractor's refusal is the answer too.
    pub(super) async fn run_unprotected(self, payload: Payload) -> HttpResponse {
        match self.run(payload).await {
            Ran::Rejected(response) | Ran::Responded(response) => response,
        }
    }
}
