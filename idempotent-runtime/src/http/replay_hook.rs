//! The app's view of a replay: the hook set with [`crate::IdempotencyBuilder::on_replay`] and the response it may
//! change. The settings hold the hook, and the replay (`super::replay`) calls it, so it sits below both.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::{HttpRequest, HttpResponse};

use crate::record::StoredResponse;

/// The app's replay hook ([`crate::IdempotencyBuilder::on_replay`]).
pub(crate) type ReplayHook = Arc<dyn Fn(&mut ReplayedResponse<'_>) + Send + Sync>;

/// A replayed response on its way out, as the app's replay hook sees it: the request it answers, the stored
/// response (read-only), and the headers of this one response (writable).
#[derive(Debug)]
pub struct ReplayedResponse<'a> {
    request: &'a HttpRequest,
    route: &'a str,
    stored: &'a StoredResponse,
    response: &'a mut HttpResponse,
}

impl<'a> ReplayedResponse<'a> {
    pub(crate) fn new(
        request: &'a HttpRequest,
        route: &'a str,
        stored: &'a StoredResponse,
        response: &'a mut HttpResponse,
    ) -> Self {
        Self { request, route, stored, response }
    }

    /// The retry being answered.
    pub fn request(&self) -> &HttpRequest {
        self.request
    }

    /// The route pattern (e.g. `/payments/{id}`), a bounded label for metrics.
    pub fn route(&self) -> &str {
        self.route
    }

    /// The stored status (what the client gets).
    pub fn status(&self) -> StatusCode {
        self.stored.status
    }

    /// The stored response: status, headers and body bytes as first sent (the body is `None` when it was over
    /// the response cap).
    pub fn stored(&self) -> &StoredResponse {
        self.stored
    }

    /// The headers this replay is sent with (the stored ones plus `Idempotent-Replayed: true`).
    pub fn headers(&self) -> &HeaderMap {
        self.response.headers()
    }

    /// The headers this replay is sent with, to add or change some: only this response changes, never the
    /// stored record.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        self.response.headers_mut()
    }
}
