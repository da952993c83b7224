//! What the library reports about itself: one outcome per request, as metrics (through the `metrics` facade, so
//! any exporter works) and as a field of the request's `tracing` span.
//!
//! Metric names are stable and listed here; every request counter carries a `route` label (the route pattern, never
//! the concrete path, so cardinality stays bounded), and the outbox's counters a `destination` label.

use std::future::Future;
use std::time::Instant;

/// Requests that claimed their key and ran the handler.
pub const CLAIMED: &str = "idempotent_claimed_total";
/// Requests answered with a stored response.
pub const REPLAYED: &str = "idempotent_replayed_total";
/// Requests refused (409) because the original was still in flight (outcome `in_flight`).
pub const IN_FLIGHT: &str = "idempotent_in_flight_total";
/// Requests refused (422) because the key was used for a different request (outcome `key_reused`).
pub const KEY_REUSED: &str = "idempotent_key_reused_total";
/// Claims that took over an expired record or one whose worker died.
pub const TAKEOVERS: &str = "idempotent_takeovers_total";
/// Completions discarded because a newer attempt owned the record (fencing).
pub const FENCED: &str = "idempotent_fenced_completions_total";
/// Store operations that failed (unreachable, timeout, corrupt record).
pub const STORE_ERRORS: &str = "idempotent_store_errors_total";
/// Responses that could not be stored even after retrying while the lease held (the store stayed down, or the
/// lease was lost): the handler ran, and a retry after the lease runs it again.
pub const ABANDONED_COMPLETIONS: &str = "idempotent_abandoned_completions_total";
/// Requests on `fail_open` routes whose handler ran unprotected because the store was unavailable.
pub const FAIL_OPEN: &str = "idempotent_fail_open_total";
/// Expired records deleted by the purge.
pub const PURGED: &str = "idempotent_purged_total";
/// Keys issued by the key-issuing service (`issue_keys`), labelled by its path pattern.
pub const ISSUED: &str = "idempotent_keys_issued_total";
/// Outbox rows committed and not yet confirmed by the broker (gauge, set by a running relay about once a second).
pub const OUTBOX_WAITING: &str = "idempotent_outbox_waiting";
/// The age of the oldest unsent outbox row, in seconds; 0 when nothing waits (gauge, set as
/// [`OUTBOX_WAITING`]).
pub const OUTBOX_OLDEST_UNSENT_SECONDS: &str = "idempotent_outbox_oldest_unsent_seconds";
/// Outbox messages the broker confirmed, labelled by `destination`.
pub const OUTBOX_SENT: &str = "idempotent_outbox_sent_total";
/// Outbox publish attempts that failed (refused, or unconfirmed), labelled by `destination`.
pub const OUTBOX_FAILED: &str = "idempotent_outbox_failed_total";
/// Latency of store operations, in seconds, labelled by `operation` (`claim`, `complete`, `release`, ...).
pub const STORE_SECONDS: &str = "idempotent_store_duration_seconds";

/// How a request through an idempotent route ended; the `outcome` field of its span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The handler ran and its response was stored.
    Executed,
    /// The handler ran and its response was deliberately not stored (5xx, extractor rejection).
    Released,
    /// The stored response was replayed.
    Replayed,
    /// 409: the original is in flight.
    InFlight,
    /// 422: the key belongs to another request.
    KeyReused,
    /// The request was refused before any claim (bad key, no user, body too large).
    Refused,
    /// The route runs without protection (optional key absent).
    Unprotected,
    /// 500: configuration missing.
    Misconfigured,
    /// 503: the store failed.
    StoreUnavailable,
    /// 500: the handler panicked or its body failed.
    Failed,
    /// The store was unavailable and the route fails open: the handler ran unprotected.
    FailOpen,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Executed => "executed",
            Self::Released => "released",
            Self::Replayed => "replayed",
            Self::InFlight => "in_flight",
            Self::KeyReused => "key_reused",
            Self::Refused => "refused",
            Self::Unprotected => "unprotected",
            Self::Misconfigured => "misconfigured",
            Self::StoreUnavailable => "store_unavailable",
            Self::Failed => "failed",
            Self::FailOpen => "fail_open",
        }
    }

    /// Counts the outcome's metric, if it has one.
    pub(crate) fn count(self, route: &str) {
        let name = match self {
            Self::Replayed => REPLAYED,
            Self::InFlight => IN_FLIGHT,
            Self::KeyReused => KEY_REUSED,
            Self::StoreUnavailable => STORE_ERRORS,
            Self::FailOpen => FAIL_OPEN,
            _ => return,
        };
        increment(name, route);
    }
}

/// Adds one to a counter of a route.
pub(crate) fn increment(name: &'static str, route: &str) {
    metrics::counter!(name, "route" => route.to_owned()).increment(1);
}

/// Runs a store operation and records its latency.
pub(crate) async fn timed<T>(operation: &'static str, work: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let result = work.await;
    metrics::histogram!(STORE_SECONDS, "operation" => operation).record(started.elapsed().as_secs_f64());
    result
}
