//! How a store fails: a [`StoreError`] with a broad [`StoreErrorKind`] the runtime maps to its answer (503, or the
//! 500 of a misconfiguration) and the underlying error for logs.

use std::fmt;

/// A store that failed: unreachable, timed out, or returned something it should not have.
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// The broad reason of a [`StoreError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// No connection could be had, or the connection failed.
    Unavailable,
    /// The operation took longer than the store's timeout.
    Timeout,
    /// A stored record does not decode.
    Corrupt,
    /// The store was not set up for what the route asks (e.g. waiting without notifications).
    Unsupported,
    /// A transactional route's handler left its transaction aborted (its own SQL failed): nothing was committed.
    TransactionAborted,
}

impl StoreError {
    /// A new error of the given kind.
    pub fn new(kind: StoreErrorKind, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self { kind, source: source.into() }
    }

    /// The broad reason.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            StoreErrorKind::Unavailable => "idempotency store unavailable",
            StoreErrorKind::Timeout => "idempotency store timed out",
            StoreErrorKind::Corrupt => "idempotency record corrupt",
            StoreErrorKind::Unsupported => "idempotency store not set up for this route",
            StoreErrorKind::TransactionAborted => "the handler's transaction was aborted by its own SQL",
        };
        write!(f, "{what}: {}", self.source)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}
