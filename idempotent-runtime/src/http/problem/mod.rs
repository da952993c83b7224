//! Error responses as RFC 9457 `application/problem+json` documents.
//!
//! Every response the library itself produces (as opposed to the handler's) is a problem document with a stable
//! `type` URI under [`PROBLEM_TYPE_BASE`] (or the app's own base), so clients can branch on it without parsing
//! prose. An app that answers errors in its own format registers a renderer
//! ([`crate::IdempotencyBuilder::render_problems`]): it gets each answer as a [`ProblemDetails`] and returns the
//! response; the status and the library's headers (`Retry-After`, `Cache-Control`, `Link`) are kept. The renderer
//! also sees the request it answers, so one app can answer a browser's form with a page and an API client with
//! the problem document ([`ProblemDetails::problem_json`]).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderValue, LINK, RETRY_AFTER};
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;

mod kind;

pub use self::kind::{PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE, ProblemKind};

/// One answer of the library as the app's renderer sees it (see [`crate::IdempotencyBuilder::render_problems`]).
///
/// The response the renderer returns keeps [`ProblemDetails::status`] and the library's headers
/// ([`ProblemDetails::headers`]: `Cache-Control: no-store`, `Retry-After` on 409 and 503, and `Link` when the app
/// set [`crate::IdempotencyBuilder::docs_link`]); everything else (body, content type) is the renderer's.
#[derive(Debug)]
pub struct ProblemDetails<'a> {
    kind: ProblemKind,
    status: StatusCode,
    type_uri: &'a str,
    detail: &'a str,
    headers: &'a HeaderMap,
    request: &'a HttpRequest,
}

impl ProblemDetails<'_> {
    /// What happened; its [`ProblemKind::slug`] is stable, to map onto the app's own error codes.
    pub fn kind(&self) -> ProblemKind {
        self.kind
    }

    /// The status of the answer (the renderer cannot change it).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `type` URI: the configured base followed by the kind's slug.
    pub fn type_uri(&self) -> &str {
        self.type_uri
    }

    /// The kind's short, constant summary (e.g. `Idempotency key reused`).
    pub fn title(&self) -> &'static str {
        self.kind.title()
    }

    /// What this caller should do, in a sentence.
    pub fn detail(&self) -> &str {
        self.detail
    }

    /// The headers the answer carries whatever the renderer returns.
    pub fn headers(&self) -> &HeaderMap {
        self.headers
    }

    /// `Retry-After` in whole seconds, on the answers that have one (409 `in-flight`, 503 `store-unavailable`).
    pub fn retry_after(&self) -> Option<u64> {
        self.headers.get(RETRY_AFTER)?.to_str().ok()?.parse().ok()
    }

    /// The request this answers: its route (`match_pattern`), `Accept` and headers, so the renderer can choose a
    /// format per route or per client (an HTML page for a browser's form post, JSON for an API client).
    pub fn request(&self) -> &HttpRequest {
        self.request
    }

    /// The library's own rendering of this answer (`application/problem+json`), for a renderer that reshapes only
    /// some answers and leaves the others as they are.
    pub fn problem_json(&self) -> HttpResponse {
        problem_json(self.status, self.type_uri, self.kind.title(), self.detail)
    }
}

/// The app's renderer of problems.
pub(crate) type ProblemRenderer = Arc<dyn Fn(&ProblemDetails<'_>) -> HttpResponse + Send + Sync>;

/// How the app wants the library's answers rendered: problem `type` base, documentation link, renderer.
pub(crate) struct ProblemStyle {
    pub(crate) type_base: Cow<'static, str>,
    /// The whole `Link` header value, built once at startup.
    pub(crate) link: Option<HeaderValue>,
    pub(crate) renderer: Option<ProblemRenderer>,
}

impl ProblemStyle {
    /// The library's defaults, for answers given before any configuration is found.
    pub(crate) const DEFAULT: ProblemStyle =
        ProblemStyle { type_base: Cow::Borrowed(PROBLEM_TYPE_BASE), link: None, renderer: None };
}

/// The style of the app that `request` belongs to, or the defaults.
pub(crate) fn style_of(request: &actix_web::HttpRequest) -> &ProblemStyle {
    const DEFAULT: &ProblemStyle = &ProblemStyle::DEFAULT;
    request.app_data::<crate::Idempotency>().map_or(DEFAULT, |config| &config.settings().problems)
}

/// One problem occurrence: a kind plus the detail that helps this caller.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    kind: ProblemKind,
    detail: String,
    retry_after: Option<Duration>,
    /// Overrides the kind's status (the app's configured status for `key-reused`).
    status: Option<StatusCode>,
}

#[derive(Serialize)]
struct ProblemDocument<'a> {
    #[serde(rename = "type")]
    type_uri: &'a str,
    title: &'static str,
    status: u16,
    detail: &'a str,
}

impl Problem {
    pub(crate) fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Self { kind, detail: detail.into(), retry_after: None, status: None }
    }

    /// 500 `misconfigured`, as a client sees it: the server's log says what is missing, the answer does not.
    pub(crate) fn misconfigured() -> Self {
        Self::new(ProblemKind::Misconfigured, "the server's idempotency configuration is incomplete")
    }

    /// Answers with `status` instead of the kind's own.
    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// Adds `Retry-After`, rounded up to whole seconds and at least 1 (a 0 would invite a hot retry loop).
    pub(crate) fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// The status this problem answers with.
    pub(crate) fn status(&self) -> StatusCode {
        self.status.unwrap_or_else(|| self.kind.status())
    }

    /// The response to `request`, in the app's style.
    pub(crate) fn into_response(self, style: &ProblemStyle, request: &HttpRequest) -> HttpResponse {
        let status = self.status();
        self.render(status, style, request)
    }

    /// The response to `request` with `status` and the library's headers, in the app's style.
    pub(crate) fn render(&self, status: StatusCode, style: &ProblemStyle, request: &HttpRequest) -> HttpResponse {
        let mut headers = HeaderMap::new();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(after) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(retry_after_seconds(after)));
        }
        if let Some(link) = &style.link {
            headers.insert(LINK, link.clone());
        }
        let type_uri = format!("{}{}", style.type_base, self.kind.slug());
        let mut response = match &style.renderer {
            Some(render) => {
                let details = ProblemDetails {
                    kind: self.kind,
                    status,
                    type_uri: &type_uri,
                    detail: &self.detail,
                    headers: &headers,
                    request,
                };
                let mut response = render(&details);
                *response.status_mut() = status;
                response
            }
            None => problem_json(status, &type_uri, self.kind.title(), &self.detail),
        };
        for (name, value) in headers.iter() {
            response.headers_mut().insert(name.clone(), value.clone());
        }
        response
    }
}

impl Problem {
    /// As an actix error whose response is this problem.
    #[cfg(feature = "postgres")]
    pub(crate) fn into_error(self, style: &ProblemStyle, request: &HttpRequest) -> actix_web::Error {
        let detail = self.detail.clone();
        actix_web::error::InternalError::from_response(detail, self.into_response(style, request)).into()
    }
}

/// An `application/problem+json` response: the document names the type, title, status and detail.
fn problem_json(status: StatusCode, type_uri: &str, title: &'static str, detail: &str) -> HttpResponse {
    let document = ProblemDocument { type_uri, title, status: status.as_u16(), detail };
    // Serializing a struct of strings and integers cannot fail.
    let body = serde_json::to_string(&document).unwrap_or_default();
    let mut response = HttpResponse::with_body(status, body).map_into_boxed_body();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
    response
}

/// Whole seconds for `Retry-After`: rounded up, never 0.
pub(crate) fn retry_after_seconds(after: Duration) -> u64 {
    let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    seconds.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(4_001)), 5);
        assert_eq!(retry_after_seconds(Duration::from_secs(30)), 30);
    }

    fn request_to(path: &str) -> HttpRequest {
        actix_web::test::TestRequest::post().uri(path).to_http_request()
    }

    #[actix_web::test]
    async fn problem_document_names_type_title_status_and_detail() {
        let response = Problem::new(ProblemKind::KeyReused, "different body")
            .into_response(&ProblemStyle::DEFAULT, &request_to("/"));
        let body = actix_web::body::to_bytes(response.into_body()).await.unwrap();
        let document: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(document["type"], "https://idempotent.rs/problems/key-reused");
        assert_eq!(document["title"], "Idempotency key reused");
        assert_eq!(document["status"], 422);
        assert_eq!(document["detail"], "different body");
    }

    #[test]
    fn response_is_problem_json_and_not_cacheable() {
        let response = Problem::new(ProblemKind::InFlight, "busy")
            .retry_after(Duration::from_millis(1500))
            .into_response(&ProblemStyle::DEFAULT, &request_to("/"));
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(response.headers().get(CONTENT_TYPE).unwrap(), PROBLEM_CONTENT_TYPE);
        assert_eq!(response.headers().get(CACHE_CONTROL).unwrap(), "no-store");
        assert_eq!(response.headers().get(RETRY_AFTER).unwrap(), "2");
        assert!(response.headers().get(LINK).is_none());
    }

    #[actix_web::test]
    async fn a_renderer_shapes_the_body_but_keeps_status_and_headers() {
        let renderer: ProblemRenderer = Arc::new(|problem: &ProblemDetails<'_>| {
            assert_eq!(problem.retry_after(), Some(2));
            HttpResponse::ImATeapot().insert_header((RETRY_AFTER, "999")).body(format!(
                "{}|{}|{}",
                problem.kind().slug(),
                problem.type_uri(),
                problem.detail()
            ))
        });
        let style = ProblemStyle {
            type_base: Cow::Borrowed("https://api.example.com/errors/"),
            link: Some(HeaderValue::from_static("<https://api.example.com/docs/idempotency>; rel=\"describedby\"")),
            renderer: Some(renderer),
        };
        let response = Problem::new(ProblemKind::InFlight, "busy")
            .retry_after(Duration::from_millis(1500))
            .into_response(&style, &request_to("/"));
        assert_eq!(response.status(), StatusCode::CONFLICT, "the renderer cannot change the status");
        assert_eq!(response.headers().get(RETRY_AFTER).unwrap(), "2", "nor the library's headers");
        assert_eq!(response.headers().get(CACHE_CONTROL).unwrap(), "no-store");
        assert!(response.headers().get(LINK).unwrap().to_str().unwrap().ends_with("rel=\"describedby\""));
        let body = actix_web::body::to_bytes(response.into_body()).await.unwrap();
        assert_eq!(body, "in-flight|https://api.example.com/errors/in-flight|busy");
    }

    #[actix_web::test]
    async fn a_renderer_can_answer_per_request_and_fall_back_to_the_problem_document() {
        // A page for the form route, the library's own document everywhere else.
        let renderer: ProblemRenderer = Arc::new(|problem: &ProblemDetails<'_>| {
            if problem.request().path() == "/checkout" {
                HttpResponse::Ok().content_type("text/html; charset=utf-8").body(format!("<p>{}</p>", problem.title()))
            } else {
                problem.problem_json()
            }
        });
        let style = ProblemStyle { renderer: Some(renderer), ..ProblemStyle::DEFAULT };
        let reused = || Problem::new(ProblemKind::KeyReused, "another amount");

        let page = reused().into_response(&style, &request_to("/checkout"));
        assert_eq!(page.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(page.headers().get(CONTENT_TYPE).unwrap(), "text/html; charset=utf-8");
        let body = actix_web::body::to_bytes(page.into_body()).await.unwrap();
        assert_eq!(body, "<p>Idempotency key reused</p>");

        let document = reused().into_response(&style, &request_to("/payments"));
        assert_eq!(document.headers().get(CONTENT_TYPE).unwrap(), PROBLEM_CONTENT_TYPE);
        assert_eq!(document.headers().get(CACHE_CONTROL).unwrap(), "no-store");
        let fallback = actix_web::body::to_bytes(document.into_body()).await.unwrap();
        let own = reused().into_response(&ProblemStyle::DEFAULT, &request_to("/payments"));
        let own = actix_web::body::to_bytes(own.into_body()).await.unwrap();
        assert_eq!(fallback, own, "the fallback is the library's own document");
    }
}
