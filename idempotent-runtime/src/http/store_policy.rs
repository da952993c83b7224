//! Which of the handler's answers are stored and replayed, and which release the key so a retry runs again.
//!
//! A stored answer is replayed for the whole ttl, so only final answers should be: a 503 or a 429 says "not now",
//! and replaying it for 24 hours would turn a passing condition into a permanent one. The default, [`StorePolicy::Final`],
//! therefore releases the key on 5xx and on the transient 4xx (408, 425, 429).

use actix_web::http::StatusCode;

/// Which handler responses are stored (and replayed to retries); the others release the key.
///
/// Set app-wide with [`crate::IdempotencyBuilder::store_responses`] and per route with
/// `#[idempotent(store_responses = "...")]` (the route's choice wins).
///
/// ```
/// use idempotent_runtime::StorePolicy;
/// use actix_web::http::StatusCode;
///
/// assert!(StorePolicy::Final.stores(StatusCode::NOT_FOUND));
/// assert!(!StorePolicy::Final.stores(StatusCode::TOO_MANY_REQUESTS));
/// assert!(StorePolicy::All.stores(StatusCode::INTERNAL_SERVER_ERROR));
/// assert!(!StorePolicy::Success.stores(StatusCode::CONFLICT));
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum StorePolicy {
    /// The default (`"final"`): everything except 5xx and the transient 408 Request Timeout, 425 Too Early and
    /// 429 Too Many Requests.
    Final,
    /// `"all"`: every response, 5xx included (Stripe's choice: a retry sees the same failure).
    All,
    /// `"success"`: only 1xx, 2xx and 3xx; every 4xx and 5xx releases the key.
    Success,
    /// A path to `fn(StatusCode) -> bool`: `true` stores.
    Function(fn(StatusCode) -> bool),
}

impl StorePolicy {
    /// Whether a handler response with this status is stored.
    pub fn stores(self, status: StatusCode) -> bool {
        match self {
            Self::Final => !status.is_server_error() && !is_transient(status),
            Self::All => true,
            Self::Success => !status.is_client_error() && !status.is_server_error(),
            Self::Function(stores) => stores(status),
        }
    }
}

/// The 4xx that describe the moment, not the request.
fn is_transient(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 425 | 429)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_releases_server_errors_and_transient_client_errors() {
        for code in [200, 201, 204, 302, 400, 404, 409, 422] {
            assert!(StorePolicy::Final.stores(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [408, 425, 429, 500, 502, 503, 504] {
            assert!(!StorePolicy::Final.stores(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }

    #[test]
    fn all_success_and_functions() {
        for code in [200, 404, 429, 500] {
            assert!(StorePolicy::All.stores(StatusCode::from_u16(code).unwrap()));
        }
        assert!(StorePolicy::Success.stores(StatusCode::CREATED));
        assert!(StorePolicy::Success.stores(StatusCode::SEE_OTHER));
        assert!(!StorePolicy::Success.stores(StatusCode::NOT_FOUND));
        let only_created = StorePolicy::Function(|status| status == StatusCode::CREATED);
        assert!(only_created.stores(StatusCode::CREATED));
        assert!(!only_created.stores(StatusCode::OK));
    }
}
