//! The kinds of problem the library answers with, and their stable `type` URIs.

use actix_web::http::StatusCode;

/// The base every problem `type` URI starts with; the slug of a [`ProblemKind`] follows it.
pub const PROBLEM_TYPE_BASE: &str = "https://idempotent.rs/problems/";

/// The media type of every problem response.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// The kinds of problem the library answers with. The slug (and so the `type` URI) of each is stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProblemKind {
    /// 400: the route requires an `Idempotency-Key` and the request has none.
    KeyMissing,
    /// 400: the key is malformed, too long, or sent more than once.
    KeyInvalid,
    /// 400: the route scopes keys by a header the request does not carry.
    ScopeMissing,
    /// 401: the route scopes keys by user and the request has no user.
    Unauthenticated,
    /// 409: a request with this key is still being processed.
    InFlight,
    /// 413: the request body is larger than the route accepts.
    BodyTooLarge,
    /// 400: the request body could not be read (broken chunked encoding, the client went away mid-body).
    BodyUnreadable,
    /// 422: the key was already used for a different request.
    KeyReused,
    /// 500: the application is missing configuration the route needs.
    Misconfigured,
    /// 500: the handler panicked; nothing was stored and a retry runs it again.
    HandlerPanicked,
    /// 500: the handler's response body failed while it was being read; nothing was stored.
    ResponseFailed,
    /// 503: the idempotency store could not be reached; the handler did not run.
    StoreUnavailable,
    /// Replay of a response whose body was too large to store (status and headers are the original ones).
    ResponseNotStored,
    /// 400: the route takes only keys the server issued, and this one was not issued to this caller (forged,
    /// altered, another caller's) or its time to be used expired.
    KeyNotIssued,
}

impl ProblemKind {
    /// The stable slug that ends the `type` URI, e.g. `key-reused`.
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

    /// A short, human-readable summary that does not change between occurrences.
    pub const fn title(self) -> &'static str {
        match self {
            Self::KeyMissing => "Idempotency key missing",
            Self::KeyInvalid => "Idempotency key invalid",
            Self::ScopeMissing => "Idempotency scope missing",
            Self::Unauthenticated => "Authentication required",
            Self::InFlight => "Request in flight",
            Self::BodyTooLarge => "Request body too large",
            Self::BodyUnreadable => "Request body unreadable",
            Self::KeyReused => "Idempotency key reused",
            Self::Misconfigured => "Idempotency misconfigured",
            Self::HandlerPanicked => "Handler failed",
            Self::ResponseFailed => "Response failed",
            Self::StoreUnavailable => "Idempotency store unavailable",
            Self::ResponseNotStored => "Response not stored",
            Self::KeyNotIssued => "Idempotency key not issued",
        }
    }

    /// The status the library answers with; for [`ProblemKind::ResponseNotStored`] the replay uses the stored
    /// status instead and this is only a fallback.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::KeyMissing | Self::KeyInvalid | Self::ScopeMissing | Self::BodyUnreadable => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::InFlight => StatusCode::CONFLICT,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::KeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Misconfigured | Self::HandlerPanicked | Self::ResponseFailed | Self::ResponseNotStored => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::KeyNotIssued => StatusCode::BAD_REQUEST,
        }
    }

    /// The full `type` URI, e.g. `https://idempotent.rs/problems/key-reused`.
    pub fn type_uri(self) -> String {
        format!("{PROBLEM_TYPE_BASE}{}", self.slug())
    }
}

/// The client's typed problems (feature `client`) know every problem the server answers, by the same slug.
#[cfg(all(test, feature = "client"))]
mod client_agreement {
    use idempotent_client::ProblemType;

    use super::ProblemKind;

    /// Exhaustive on purpose: a new `ProblemKind` does not compile until the client knows it.
    fn client_type(kind: ProblemKind) -> ProblemType {
        match kind {
            ProblemKind::KeyMissing => ProblemType::KeyMissing,
            ProblemKind::KeyInvalid => ProblemType::KeyInvalid,
            ProblemKind::ScopeMissing => ProblemType::ScopeMissing,
            ProblemKind::Unauthenticated => ProblemType::Unauthenticated,
            ProblemKind::InFlight => ProblemType::InFlight,
            ProblemKind::BodyTooLarge => ProblemType::BodyTooLarge,
            ProblemKind::BodyUnreadable => ProblemType::BodyUnreadable,
            ProblemKind::KeyReused => ProblemType::KeyReused,
            ProblemKind::Misconfigured => ProblemType::Misconfigured,
            ProblemKind::HandlerPanicked => ProblemType::HandlerPanicked,
            ProblemKind::ResponseFailed => ProblemType::ResponseFailed,
            ProblemKind::StoreUnavailable => ProblemType::StoreUnavailable,
            ProblemKind::ResponseNotStored => ProblemType::ResponseNotStored,
            ProblemKind::KeyNotIssued => ProblemType::KeyNotIssued,
        }
    }

    #[test]
    fn every_server_problem_has_its_client_type() {
        let server_kinds = ProblemType::ALL.map(|client| {
            let kind = [
                ProblemKind::KeyMissing,
                ProblemKind::KeyInvalid,
                ProblemKind::ScopeMissing,
                ProblemKind::Unauthenticated,
                ProblemKind::InFlight,
                ProblemKind::BodyTooLarge,
                ProblemKind::BodyUnreadable,
                ProblemKind::KeyReused,
                ProblemKind::Misconfigured,
                ProblemKind::HandlerPanicked,
                ProblemKind::ResponseFailed,
                ProblemKind::StoreUnavailable,
                ProblemKind::ResponseNotStored,
                ProblemKind::KeyNotIssued,
            ]
            .into_iter()
            .find(|kind| client_type(*kind) == client)
            .expect("every client type is a server kind");
            assert_eq!(kind.slug(), client.slug());
            assert_eq!(ProblemType::from_type_uri(&kind.type_uri()), Some(client));
            kind
        });
        assert_eq!(server_kinds.len(), ProblemType::ALL.len());
    }
}
