//! What the steps of the request flow hand back: the answer (a response, or a problem still to render) with the
//! outcome it counts as, the context later steps need, and the misconfiguration answer.

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

use actix_web::{HttpRequest, HttpResponse};

use super::config::Settings;
use super::key::LoggedKey;
use super::problem::Problem;
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
    pub(super) key: LoggedKey<'a>,
}

pub(super) fn misconfigured(route_label: &str, fix: &str) -> Answer {
    if first_misconfiguration(route_label) {
        tracing::error!(route = %route_label, "idempotency misconfigured: {fix}");
    }
    let problem = Problem::misconfigured();
    Answer::problem(problem, Outcome::Misconfigured)
}

/// True the first time a route reports a misconfiguration in this process: a misconfigured app logs the fix once
/// per route, not per request. Process-wide, as the configuration itself may be what is missing; past
/// [`MOST_LOGGED`] routes (paths chosen by clients, for a route without a pattern) nothing more is logged.
fn first_misconfiguration(route_label: &str) -> bool {
    static LOGGED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let mut logged = LOGGED.lock().unwrap_or_else(PoisonError::into_inner);
    logged.len() < MOST_LOGGED && logged.insert(route_label.to_owned())
}

/// How many routes' misconfigurations are logged at most.
const MOST_LOGGED: usize = 1024;

#[cfg(test)]
mod tests {
    use super::first_misconfiguration;

    #[test]
    fn a_misconfigured_route_is_logged_once() {
        // Labels of this test alone: the set is process-wide.
        assert!(first_misconfiguration("/answer-tests/a"));
        assert!(!first_misconfiguration("/answer-tests/a"), "the second time is not logged");
        assert!(first_misconfiguration("/answer-tests/b"), "another route is");
    }
}
