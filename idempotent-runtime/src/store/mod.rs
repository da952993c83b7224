//! The storage behind the library: one trait, a PostgreSQL implementation for production and an in-memory one for
//! tests.
//!
//! A store makes every decision that must be atomic across processes (claim, take-over, fenced completion). The
//! HTTP policy (which status is stored, what a conflict answers) lives in [`crate::handle`], once for all stores.

mod memory;
mod postgres;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

pub use self::memory::MemoryStore;
pub use self::postgres::{DEFAULT_OPERATION_TIMEOUT, PostgresStore, SCHEMA_SQL};
use crate::digest::Digest;
use crate::record::{Record, RecordId, StoredResponse};

/// What a request asks of the store before its handler may run.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// The record's identity.
    pub id: RecordId,
    /// The request's fingerprint.
    pub fingerprint: Digest,
    /// The fencing token of this attempt: completion and release only succeed while the record carries it, so a
    /// stale worker whose claim was taken over cannot overwrite the newer attempt.
    pub token: i64,
    /// How long the claim is protected from take-over.
    pub lease: Duration,
    /// How long the record lives (renewed when it completes).
    pub ttl: Duration,
}

/// The answer to a [`ClaimRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller owns the record now and must complete or release it.
    Acquired {
        /// True when an existing record was taken over: its lease lapsed (a crashed worker) or it expired.
        took_over: bool,
    },
    /// A live record exists and the caller does not own it.
    Existing(Record),
}

/// The owner's handle on an acquired record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The record's identity.
    pub id: RecordId,
    /// The fencing token the record was claimed with.
    pub token: i64,
}

/// The answer to [`Store::complete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// The response is stored and will be replayed.
    Stored,
    /// The record no longer carries this lease's token (another attempt took it over): nothing was written.
    Fenced,
}

/// The storage of idempotency records.
///
/// Implementations must make [`Store::claim`] atomic: of any number of concurrent claims of one record (in any
/// number of processes), exactly one is acquired.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Claims a record, or reads the live record that prevents it.
    ///
    /// A record is acquired when none exists, when the existing one expired, or when it is in progress with a
    /// lapsed lease and the same fingerprint (its worker died). An expired record is never returned.
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError>;

    /// Stores the response and keeps the record for `ttl` from now, if the record still carries the lease's token.
    async fn complete(&self, lease: &Lease, response: &StoredResponse, ttl: Duration)
    -> Result<Completion, StoreError>;

    /// Deletes an in-progress record this lease owns, so a retry runs the handler again.
    async fn release(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Reads a live (unexpired) record.
    async fn read(&self, id: &RecordId) -> Result<Option<Record>, StoreError>;
}

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
        };
        write!(f, "{what}: {}", self.source)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}
