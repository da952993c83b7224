//! Turning a handler's response into a stored one, and a stored one back into a response.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};

use crate::http::config::{REPLAYED_HEADER, Settings};
use crate::http::problem::{Problem, ProblemKind, ProblemStyle};
use crate::http::replay_hook::ReplayedResponse;
use crate::record::StoredResponse;

/// What to store of a response: its status, the headers that may be replayed, in order, and the body if it fit.
pub(crate) fn to_stored(head: &HttpResponse<()>, body: Option<Bytes>, settings: &Settings) -> StoredResponse {
    let headers = head
        .headers()
        .iter()
        .filter(|(name, _)| settings.may_store_header(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    StoredResponse { status: head.status(), headers, body }
}

/// The stored response, byte for byte, marked `Idempotent-Replayed: true`. A completion stored without its body
/// (over the cap) replays its status and headers with a `response-not-stored` problem as the body.
pub(crate) fn replay(stored: &StoredResponse, style: &ProblemStyle, request: &HttpRequest) -> HttpResponse {
    let mut response = HttpResponse::build(stored.status);
    for (name, value) in &stored.headers {
        response.append_header((name.clone(), value.clone()));
    }
    response.insert_header((REPLAYED_HEADER, HeaderValue::from_static("true")));
    match &stored.body {
        Some(body) => response.body(body.clone()),
        None => {
            let problem = Problem::new(
                ProblemKind::ResponseNotStored,
                "the original request completed, but its response body was too large to store; \
                 the status and headers are the original ones and the request was not run again",
            );
            // The app's rendering of the problem gives the content type and the body; status and headers stay
            // the stored ones.
            let rendered = problem.render(stored.status, style, request);
            if let Some(content_type) = rendered.headers().get(CONTENT_TYPE) {
                response.insert_header((CONTENT_TYPE, content_type.clone()));
            }
            response.insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")));
            response.body(rendered.into_body())
        }
    }
}

/// The replay of `stored` for `request`, shown to the app's hook if it has one.
pub(crate) fn replay_to(
    request: &HttpRequest,
    route: &str,
    stored: &StoredResponse,
    settings: &Settings,
) -> HttpResponse {
    let mut response = replay(stored, &settings.problems, request);
    if let Some(hook) = &settings.replay_hook {
        hook(&mut ReplayedResponse::new(request, route, stored, &mut response));
    }
    response
}

#[cfg(test)]
mod tests {
    use actix_web::body::to_bytes;
    use actix_web::http::StatusCode;
    use actix_web::http::header::{DATE, HeaderName, SET_COOKIE};

    use super::*;
    use crate::{Idempotency, MemoryStore};

    #[actix_web::test]
    async fn stored_headers_skip_transmission_headers_cookies_and_the_deny_list() {
        let config = Idempotency::builder(MemoryStore::new())
            .deny_response_header(HeaderName::from_static("x-request-id"))
            .build();
        let head = HttpResponse::Created()
            .insert_header(("content-type", "application/json"))
            .insert_header((DATE, "Sun, 22 Nov 2026 10:00:00 GMT"))
            .insert_header((SET_COOKIE, "session=secret"))
            .insert_header(("connection", "keep-alive"))
            .insert_header(("x-request-id", "abc"))
            .insert_header(("location", "/payments/1"))
            .finish()
            .drop_body();
        let stored = to_stored(&head, Some(Bytes::from_static(b"{}")), config.settings());
        let names: Vec<&str> = stored.headers.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.contains(&"content-type") && names.contains(&"location"));
    }

    #[actix_web::test]
    async fn replay_is_byte_identical_and_marked() {
        let stored = StoredResponse {
            status: StatusCode::ACCEPTED,
            headers: vec![(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"))],
            body: Some(Bytes::from_static(b"\x00\xffbody")),
        };
        let response =
            replay(&stored, &ProblemStyle::DEFAULT, &actix_web::test::TestRequest::default().to_http_request());
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(response.headers().get(REPLAYED_HEADER).unwrap(), "true");
        assert_eq!(response.headers().get(CONTENT_TYPE).unwrap(), "application/octet-stream");
        assert_eq!(to_bytes(response.into_body()).await.unwrap(), &b"\x00\xffbody"[..]);
    }

    #[actix_web::test]
    async fn a_completion_without_body_replays_status_headers_and_a_problem() {
        let stored = StoredResponse { status: StatusCode::OK, headers: vec![], body: None };
        let response =
            replay(&stored, &ProblemStyle::DEFAULT, &actix_web::test::TestRequest::default().to_http_request());
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers().get(CONTENT_TYPE).unwrap(), crate::PROBLEM_CONTENT_TYPE);
        let body = to_bytes(response.into_body()).await.unwrap();
        assert!(std::str::from_utf8(&body).unwrap().contains("response-not-stored"));
    }
}
