//! The storage behind the library: the [`Store`] trait, the stores that implement it ([`MemoryStore`] for tests
//! and single-process tools; [`postgres`] for production, feature `postgres`, on by default; `RedisStore`, feature
//! `redis`), and the conformance kit a store's own tests run (`testing`, feature `testing`).
//!
//! A store provides only the primitives that must be atomic across processes: claim (with the take-over rule),
//! heartbeat, fenced completion and release, plus reads. What an outcome answers (which status is stored, what a
//! conflict answers, the timeout on every operation) is the runtime's policy, written once above every store.

mod error;
#[cfg(any(feature = "postgres", feature = "redis"))]
mod existing_share;
mod memory;
mod polling;
#[cfg(feature = "postgres")]
pub mod postgres;
mod primitives;
pub mod purge;
#[cfg(feature = "redis")]
mod redis;
mod shared;
mod takeover;
#[cfg(feature = "testing")]
pub mod testing;
mod transactional;

use std::time::Duration;

use async_trait::async_trait;

pub use self::error::{StoreError, StoreErrorKind};
pub use self::memory::MemoryStore;
pub use self::polling::MAX_WAIT_POLL_INTERVAL;
pub(crate) use self::polling::poll_until_settled;
#[cfg(feature = "postgres")]
pub(crate) use self::polling::settled;
#[cfg(feature = "postgres")]
pub use self::postgres::{DEFAULT_OPERATION_TIMEOUT, PostgresStore, SCHEMA_SQL, Tx};
pub use self::primitives::{Attempt, Claim, ClaimRequest, Completion, LeaseState, PurgeBatch};
#[cfg(feature = "redis")]
pub use self::redis::{DEFAULT_KEY_PREFIX, DEFAULT_REDIS_TIMEOUT, RedisStore, RedisStoreBuilder};
pub use self::takeover::{ClaimVerdict, StoredClaim, StoredClaimState, claim_verdict};
pub use self::transactional::{ClaimTransaction, OpenTransaction, TransactionalClaim, TransactionalStore};
use crate::digest::Digest;
pub use crate::record::{CorruptRecord, KeyState, KeyStatus, Record, RecordState, StoredResponse};
pub use crate::record_id::RecordId;

/// The storage of idempotency records: the few primitives the runtime needs to be atomic.
///
/// # What a store guarantees
///
/// - **One owner.** [`Store::claim`] is atomic: of any number of concurrent claims of one record, in any number of
///   processes, at most one is [`Claim::Acquired`] while the record is live.
/// - **The take-over rule.** A claim acquires a record that is absent or expired, or that is in progress with a
///   lapsed lease *and* the same fingerprint (its worker died: `took_over: true`). Any other live record is
///   answered as [`Claim::Existing`], with its fingerprint, and its remaining lease when in progress (zero once
///   lapsed). An expired record is never returned by any method.
/// - **Fencing.** [`Store::heartbeat`], [`Store::complete`] and [`Store::release`] act only while the record
///   carries the lease's token; a stale attempt (taken over) gets [`LeaseState::Lost`] / [`Completion::Fenced`] /
///   nothing, and never changes the newer attempt's record. Completing again with the same token answers
///   [`Completion::Stored`] (a retried completion may have landed).
/// - **Waiters.** [`Store::wait`] returns once the record is no longer in progress under a live lease
///   (completed, released, expired, or its lease lapsed so that the waiter may take over), or at its timeout. It
///   is a hint, not a promise: the runtime claims again after it. Across a take-over: a waiter waits on the attempt
///   that holds the record when it looks; a dead attempt's waiter returns when that lease lapses (and may take the
///   record over itself), and a waiter on the attempt that took over is woken by that attempt's completion or
///   release. The default polls [`Store::read`] with backoff
///   (10 ms doubling to [`MAX_WAIT_POLL_INTERVAL`]); a store with notifications should override it, subscribing
///   *before* it checks the record so that no completion is missed.
/// - **Expiry.** A record lives for its ttl from completion (or, in progress, until its ttl or lease runs out):
///   past it, every method treats it as absent. [`Store::purge_batch`] deletes expired records of a store that
///   keeps them; a store with native expiry (Redis) keeps the default, which answers
///   [`StoreErrorKind::Unsupported`].
///
/// The runtime bounds every call with its own timeout (a store that hangs gets a 503, not a hung request), maps
/// errors to answers, and decides everything that is policy. Transactional routes need
/// [`Store::transactional`] as well ([`TransactionalStore`]).
///
/// The conformance kit (`idempotent_runtime::store::testing`, feature `testing`) checks all of the above against
/// a real instance of the store, under real concurrency, in a few lines of a store's own tests.
///
/// # Implementing a store
///
/// A store outside this crate implements the trait through `idempotent_runtime::async_trait`. This one adds a
/// count of claims to another store (the repository's `tests/third_party_store.rs` implements a whole store from
/// scratch and passes the kit):
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::time::Duration;
///
/// use idempotent_runtime::store::{
///     Claim, ClaimRequest, Completion, KeyStatus, Attempt, LeaseState, Record, RecordId, StoredResponse,
/// };
/// use idempotent_runtime::{Digest, Idempotency, MemoryStore, Store, StoreError, async_trait};
///
/// /// Counts the claims it forwards.
/// struct Counted<S> {
///     inner: S,
///     claims: AtomicU64,
/// }
///
/// #[async_trait]
/// impl<S: Store> Store for Counted<S> {
///     async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
///         self.claims.fetch_add(1, Ordering::Relaxed);
///         self.inner.claim(request).await
///     }
///     async fn heartbeat(&self, attempt: &Attempt, duration: Duration) -> Result<LeaseState, StoreError> {
///         self.inner.heartbeat(attempt, duration).await
///     }
///     async fn complete(&self, attempt: &Attempt, response: &StoredResponse, ttl: Duration) -> Result<Completion, StoreError> {
///         self.inner.complete(attempt, response, ttl).await
///     }
///     async fn release(&self, attempt: &Attempt) -> Result<(), StoreError> {
///         self.inner.release(attempt).await
///     }
///     async fn read(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
///         self.inner.read(id).await
///     }
///     async fn lookup(&self, scope_hash: &Digest, key_hash: &Digest) -> Result<Option<KeyStatus>, StoreError> {
///         self.inner.lookup(scope_hash, key_hash).await
///     }
///     // `wait` and `purge_batch` keep their defaults: polling `read`, and "unsupported".
/// }
///
/// let store = Counted { inner: MemoryStore::new(), claims: AtomicU64::new(0) };
/// let idempotency = Idempotency::builder(store).build();
/// # let _ = idempotency;
/// ```
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Claims a record, or reads the live record that prevents it.
    ///
    /// A record is acquired when none exists, when the existing one expired, or when it is in progress with a
    /// lapsed lease and the same fingerprint (its worker died). An expired record is never returned.
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError>;

    /// Renews the attempt's lease for `duration` from now, if the record still carries the attempt's token.
    async fn heartbeat(&self, attempt: &Attempt, duration: Duration) -> Result<LeaseState, StoreError>;

    /// Stores the response and keeps the record for `ttl` from now, if the record still carries the attempt's
    /// token.
    ///
    /// Completing again with the same attempt answers [`Completion::Stored`]: a completion retried after an error
    /// may have landed the first time.
    async fn complete(
        &self,
        attempt: &Attempt,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<Completion, StoreError>;

    /// Deletes an in-progress record this attempt owns, so a retry runs the handler again.
    async fn release(&self, attempt: &Attempt) -> Result<(), StoreError>;

    /// Reads a live (unexpired) record. The runtime reads when an expired issued key retries (it may only replay
    /// what it started), and the default [`Store::wait`] polls with it.
    async fn read(&self, id: &RecordId) -> Result<Option<Record>, StoreError>;

    /// The most recent live record of a key in a scope, on any route and method (for status lookups).
    async fn lookup(&self, scope_hash: &Digest, key_hash: &Digest) -> Result<Option<KeyStatus>, StoreError>;

    /// Waits until the record is no longer in progress under a live lease (completed, released, gone, or its
    /// lease lapsed) or `timeout` passes. Returning is a hint, not a promise: the caller claims again to learn the
    /// state. The default polls [`Store::read`] with backoff; PostgreSQL is woken by notification when it has a
    /// listening connection, Redis through sharded pub/sub, the memory store at once.
    async fn wait(&self, id: &RecordId, timeout: Duration) -> Result<(), StoreError> {
        poll_until_settled(self, id, tokio::time::Instant::now() + timeout).await
    }

    /// Deletes expired records among about the next `limit` records of a sweep through the store. Each batch is
    /// bounded in work and locks only the rows it deletes; calling it repeatedly sweeps the whole store. A store
    /// may bound a batch by its own unit: PostgreSQL walks heap pages, as many as `limit` records filled at the
    /// density its last batch measured, so a batch over a stretch thinned by deletions may examine more.
    ///
    /// The default answers [`StoreErrorKind::Unsupported`]: right for a store that expires records itself.
    async fn purge_batch(&self, limit: usize) -> Result<PurgeBatch, StoreError> {
        let _ = limit;
        Err(StoreError::new(
            StoreErrorKind::Unsupported,
            "this store expires its records itself: there is nothing to purge",
        ))
    }

    /// The store's support for transactional routes, if it has any (PostgreSQL does; the memory store does not).
    fn transactional(&self) -> Option<&dyn TransactionalStore> {
        None
    }

    /// The store behind an `Arc`, as the runtime keeps it. Constructors call it, so that they take any store,
    /// including one already shared (`Arc<dyn Store>`, which does not get a second `Arc`). Keep the default.
    fn into_shared(self) -> std::sync::Arc<dyn Store>
    where
        Self: Sized,
    {
        std::sync::Arc::new(self)
    }
}
