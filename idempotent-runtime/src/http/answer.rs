//! What the steps of the request flow hand back: the answer (a response, or a problem still to render) with the
//! outcome it counts as, the context later steps need, and the misconfiguration answer.

use actix_web::{HttpRequest, HttpResponse};

use super::config::Settings;
use super::problem::{Problem, ProblemKind};
use super::route::RouteOptions;
use crate::observe::Outcome;

/// A response and how the request ended.
pub(super) struct Answer {
    pub(super) reply: Reply,
    pub(super) outcome: Outcome,
}

/// What the client gets: a response, or one of the library's problems, still to be rendered.
pub(super) enum Reply {
    Response(HttpResponse),
    Problem(Problem),
}

impl Answer {
    pub(super) fn new(response: HttpResponse, outcome: Outcome) -> Self {
        Self { reply: Reply::Response(response), outcome }
    }

    pub(super) fn problem(problem: Problem, outcome: Outcome) -> Self {
        Self { reply: Reply::Problem(problem), outcome }
    }
}

/// What the later steps need about the request.
pub(super) struct Context<'a> {
    pub(super) route: &'a RouteOptions,
    pub(super) settings: &'a Settings,
    pub(super) request: &'a HttpRequest,
    pub(super) route_label: &'a str,
    /// The key as logs may show it (redacted, or `derived`).
    pub(super) key: String,
}

pub(super) fn misconfigured(route: &RouteOptions, route_label: &str, fix: &str) -> Answer {
    if route.first_misconfiguration() {
        tracing::error!(route = %route_label, "idempotency misconfigured: {fix}");
    }
    let problem = Problem::new(ProblemKind::Misconfigured, "the server's idempotency configuration is incomplete");
    Answer::problem(problem, Outcome::Misconfigured)
}
