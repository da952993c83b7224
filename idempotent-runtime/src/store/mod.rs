//! The storage behind the library: one trait, a PostgreSQL implementation for production and an in-memory one for
//! tests.
//!
//! A store makes every decision that must be atomic across processes (claim, take-over, fenced completion). The
//! HTTP policy (which status is stored, what a conflict answers) lives in [`crate::handle`], once for all stores.

mod listener;
mod memory;
mod postgres;
mod postgres_statement;
mod postgres_table;
mod postgres_transaction;
#[cfg(feature = "redis")]
mod redis;
mod takeover;
mod transaction_connection;
mod transactional;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

pub use self::memory::MemoryStore;
pub use self::postgres::{DEFAULT_OPERATION_TIMEOUT, MAX_WAIT_POLL_INTERVAL, PostgresStore, SCHEMA_SQL};
pub(crate) use self::postgres_statement::{
    StatementMode, failed as postgres_failed, pool_failed, query as postgres_query,
};
#[cfg(feature = "redis")]
pub use self::redis::{DEFAULT_KEY_PREFIX, DEFAULT_REDIS_TIMEOUT, RedisStore, RedisStoreBuilder};
pub use self::takeover::{ClaimVerdict, StoredClaim, StoredClaimState, claim_verdict};
pub(crate) use self::transaction_connection::TransactionConnection;
pub use self::transactional::{OpenTransaction, TransactionalClaim, TransactionalStore};
use crate::digest::Digest;
use crate::record::{KeyStatus, Record, RecordId, StoredResponse};

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

/// The answer to [`Store::heartbeat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// The lease was renewed: the record is still this attempt's.
    Held,
    /// The record no longer carries this lease's token (taken over, completed or released).
    Lost,
}

/// What one [`Store::purge_batch`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeBatch {
    /// Records looked at (at most the batch size).
    pub examined: usize,
    /// Expired records deleted among them.
    pub deleted: usize,
    /// True when this batch reached the end of the table: the next batch starts a new pass.
    pub pass_complete: bool,
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

    /// Renews the lease for `lease` from now, if the record still carries the lease's token.
    async fn heartbeat(&self, lease: &Lease, duration: Duration) -> Result<LeaseState, StoreError>;

    /// Stores the response and keeps the record for `ttl` from now, if the record still carries the lease's token.
    ///
    /// Completing again with the same lease answers [`Completion::Stored`]: a completion retried after an error
    /// may have landed the first time.
    async fn complete(&self, lease: &Lease, response: &StoredResponse, ttl: Duration)
    -> Result<Completion, StoreError>;

    /// Deletes an in-progress record this lease owns, so a retry runs the handler again.
    async fn release(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Reads a live (unexpired) record.
    async fn read(&self, id: &RecordId) -> Result<Option<Record>, StoreError>;

    /// The most recent live record of a key in a scope, on any route and method (for status lookups).
    async fn lookup(&self, scope_hash: &Digest, key_hash: &Digest) -> Result<Option<KeyStatus>, StoreError>;

    /// Waits until the record is no longer in progress (completed, released or gone) or `timeout` passes.
    /// Returning is a hint, not a promise: the caller claims again to learn the state. PostgreSQL is woken by
    /// notification when it has a listening connection, and polls with backoff otherwise.
    async fn wait(&self, id: &RecordId, timeout: Duration) -> Result<(), StoreError>;

    /// Deletes expired records among the next `limit` records of a sweep through the store. Each batch is bounded
    /// in work and locks only the rows it deletes; calling it repeatedly sweeps the whole store.
    async fn purge_batch(&self, limit: usize) -> Result<PurgeBatch, StoreError>;

    /// The store's support for transactional routes, if it has any (PostgreSQL does; the memory store does not).
    fn transactional(&self) -> Option<&dyn TransactionalStore> {
        None
    }
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

    /// The SQLSTATE of the PostgreSQL error behind this one, if the server answered with an error (e.g.
    /// `"57P01"` when an administrator shut the backend down). The error's text carries it too, with the
    /// server's message.
    pub fn sqlstate(&self) -> Option<&str> {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&*self.source);
        while let Some(error) = cause {
            if let Some(db) = error.downcast_ref::<tokio_postgres::error::DbError>() {
                return Some(db.code().code());
            }
            cause = error.source();
        }
        None
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
