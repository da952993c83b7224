//! The library's problem responses (RFC 9457 `application/problem+json`) as types a caller can branch on.

use std::time::Duration;

use http::StatusCode;
use serde::Deserialize;

/// The stable problem types of the idempotent server library, by the slug that ends their `type` URI
/// (`https://idempotent.rs/problems/<slug>`, or the app's own base).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProblemType {
    /// 400 `key-missing`: the route requires a key (the middleware always sends one on the methods it keys).
    KeyMissing,
    /// 400 `key-invalid`: the key is malformed, too long, or sent twice.
    KeyInvalid,
    /// 400 `scope-missing`: the route scopes keys by a header the request lacks.
    ScopeMissing,
    /// 401 `unauthenticated`.
    Unauthenticated,
    /// 409 `in-flight`: the original request with this key is still running (retried).
    InFlight,
    /// 413 `body-too-large`.
    BodyTooLarge,
    /// 400 `body-unreadable`.
    BodyUnreadable,
    /// 422 `key-reused`: the key was used for a different request. Never retried: it is a bug in the caller.
    KeyReused,
    /// 500 `misconfigured`: the server's configuration is incomplete.
    Misconfigured,
    /// 500 `handler-panicked`: nothing was stored; the same request may be sent again.
    HandlerPanicked,
    /// 500 `response-failed`: nothing was stored; the same request may be sent again.
    ResponseFailed,
    /// 503 `store-unavailable`: the server could not reach its store and did not run the request (retried).
    StoreUnavailable,
    /// `response-not-stored`: the request ran, but its response was too large to keep for this retry.
    ResponseNotStored,
    /// 400 `key-not-issued`: the route takes only keys the server issued to this caller.
    KeyNotIssued,
}

impl ProblemType {
    /// Every type, for lookups by slug.
    pub const ALL: [Self; 14] = [
        Self::KeyMissing,
        Self::KeyInvalid,
        Self::ScopeMissing,
        Self::Unauthenticated,
        Self::InFlight,
        Self::BodyTooLarge,
        Self::BodyUnreadable,
        Self::KeyReused,
        Self::Misconfigured,
        Self::HandlerPanicked,
        Self::ResponseFailed,
        Self::StoreUnavailable,
        Self::ResponseNotStored,
        Self::KeyNotIssued,
    ];

    /// The slug that ends the `type` URI, e.g. `key-reused`.
    pub const fn slug(self) -> &'static str {
        match self {
            Self::KeyMissing => "key-missing",
            Self::KeyInvalid => "key-invalid",
            Self::ScopeMissing => "scope-missing",
            Self::Unauthenticated => "unauthenticated",
            Self::InFlight => "in-flight",
            Self::BodyTooLarge => "body-too-large",
            Self::BodyUnreadable => "body-unreadable",
            Self::KeyReused => "key-reused",
            Self::Misconfigured => "misconfigured",
            Self::HandlerPanicked => "handler-panicked",
            Self::ResponseFailed => "response-failed",
            Self::StoreUnavailable => "store-unavailable",
            Self::ResponseNotStored => "response-not-stored",
            Self::KeyNotIssued => "key-not-issued",
        }
    }

    /// The type whose slug ends `type_uri` (after its last `/`).
    pub fn from_type_uri(type_uri: &str) -> Option<Self> {
        let slug = type_uri.rsplit('/').next()?;
        Self::ALL.into_iter().find(|kind| kind.slug() == slug)
    }
}

/// A problem document the server answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The library's problem type, when the `type` URI names one.
    pub kind: Option<ProblemType>,
    /// The `type` URI as sent.
    pub type_uri: String,
    /// The response status.
    pub status: StatusCode,
    /// The `title`, if any.
    pub title: Option<String>,
    /// The `detail`, if any: what the server says to this caller.
    pub detail: Option<String>,
    /// The `Retry-After` the server sent, as a delay.
    pub retry_after: Option<Duration>,
}

#[derive(Deserialize)]
struct Document {
    #[serde(rename = "type")]
    type_uri: Option<String>,
    title: Option<String>,
    detail: Option<String>,
}

impl Problem {
    /// The problem in a response, if its content type is `application/problem+json` and its body one.
    pub(crate) fn parse(
        status: StatusCode,
        content_type: Option<&[u8]>,
        body: &[u8],
        retry_after: Option<Duration>,
    ) -> Option<Self> {
        let media_type = content_type?.split(|byte| *byte == b';').next()?;
        if !media_type.trim_ascii().eq_ignore_ascii_case(b"application/problem+json") {
            return None;
        }
        let document: Document = serde_json::from_slice(body).ok()?;
        // RFC 9457: an absent type is "about:blank".
        let type_uri = document.type_uri.unwrap_or_else(|| "about:blank".to_owned());
        Some(Self {
            kind: ProblemType::from_type_uri(&type_uri),
            type_uri,
            status,
            title: document.title,
            detail: document.detail,
            retry_after,
        })
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.type_uri)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_name_types_under_any_base() {
        assert_eq!(
            ProblemType::from_type_uri("https://idempotent.rs/problems/key-reused"),
            Some(ProblemType::KeyReused)
        );
        assert_eq!(
            ProblemType::from_type_uri("https://docs.example.com/errors/in-flight"),
            Some(ProblemType::InFlight)
        );
        assert_eq!(ProblemType::from_type_uri("https://examples.idempotent.rs/problems/invalid-payment"), None);
        for kind in ProblemType::ALL {
            assert_eq!(ProblemType::from_type_uri(&format!("x/{}", kind.slug())), Some(kind));
        }
    }

    #[test]
    fn only_problem_documents_parse() {
        let body = br#"{"type":"https://idempotent.rs/problems/key-reused","title":"t","status":422,"detail":"d"}"#;
        let problem =
            Problem::parse(StatusCode::UNPROCESSABLE_ENTITY, Some(b"application/problem+json"), body, None).unwrap();
        assert_eq!(problem.kind, Some(ProblemType::KeyReused));
        assert_eq!(problem.detail.as_deref(), Some("d"));
        assert!(Problem::parse(StatusCode::CONFLICT, Some(b"application/json"), body, None).is_none());
        assert!(Problem::parse(StatusCode::CONFLICT, None, body, None).is_none());
        assert!(Problem::parse(StatusCode::CONFLICT, Some(b"application/problem+json"), b"<html>", None).is_none());
        let blank = Problem::parse(StatusCode::CONFLICT, Some(b"Application/Problem+JSON; charset=utf-8"), b"{}", None);
        assert_eq!(blank.map(|problem| problem.type_uri), Some("about:blank".to_owned()));
    }
}
