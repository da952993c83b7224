//! The store conformance kit (feature `testing`): the whole [`Store`](crate::Store) contract as async functions, one per case, for
//! the tests of any store, this crate's or your own.
//!
//! Every case takes the store (`&dyn Store`, or `Arc<dyn Store>` for the cases that spawn concurrent claims), works
//! in a random scope of its own (so cases can share one store, and reruns on a persistent store never meet an
//! earlier run's records), and panics with a message naming the rule the store broke. [`run_all`] runs every case
//! in sequence and names the case that failed; [`Kit`] can leave some out; [`CASES`] lists them.
//!
//! The cases, by concept: claims (one wins, under real concurrency too), take-over and fencing, heartbeats,
//! completion and release, waiters, reads, lookups and expiry, the purge, and the runtime's timeout on a store that
//! stops answering. A store without a purge answers
//! [`Store::purge_batch`](crate::Store::purge_batch) with an error of kind
//! [`StoreErrorKind::Unsupported`](crate::StoreErrorKind::Unsupported): the purge
//! cases then fail, unless [`Kit::without_purge`] leaves them out explicitly. The cases take a few seconds in all (they watch short leases and ttls lapse).
//!
//! In a store's own tests, enable the feature for the dev-dependency
//! (`idempotent-runtime = { version = "0.1", features = ["testing"] }`), implement the store, and call the kit from
//! a test; build the store inside the runtime that runs the kit:
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::time::Duration;
//!
//! use idempotent_runtime::store::{
//!     Attempt, Claim, ClaimRequest, Completion, KeyStatus, LeaseState, Record, RecordId, StoredResponse, testing,
//! };
//! use idempotent_runtime::{Digest, MemoryStore, Store, StoreError, async_trait};
//!
//! /// A store of your own: here one that counts the claims it passes to another.
//! struct Counted {
//!     inner: MemoryStore,
//!     claims: AtomicU64,
//! }
//!
//! #[async_trait]
//! impl Store for Counted {
//!     async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
//!         self.claims.fetch_add(1, Ordering::Relaxed);
//!         self.inner.claim(request).await
//!     }
//!     async fn heartbeat(&self, attempt: &Attempt, duration: Duration) -> Result<LeaseState, StoreError> {
//!         self.inner.heartbeat(attempt, duration).await
//!     }
//!     async fn complete(&self, attempt: &Attempt, response: &StoredResponse, ttl: Duration) -> Result<Completion, StoreError> {
//!         self.inner.complete(attempt, response, ttl).await
//!     }
//!     async fn release(&self, attempt: &Attempt) -> Result<(), StoreError> {
//!         self.inner.release(attempt).await
//!     }
//!     async fn read(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
//!         self.inner.read(id).await
//!     }
//!     async fn lookup(&self, scope_hash: &Digest, key_hash: &Digest) -> Result<Option<KeyStatus>, StoreError> {
//!         self.inner.lookup(scope_hash, key_hash).await
//!     }
//!     // `wait` keeps its default (polling `read`), which the kit checks; `purge_batch` its "unsupported", so the
//!     // test below leaves the purge cases out.
//! }
//!
//! // #[test]
//! fn counted_store_conforms_to_the_store_contract() {
//!     // A multi-thread runtime, so that the concurrent cases claim in parallel (`testing::block_on` builds the same).
//!     testing::block_on(async {
//!         let store = Arc::new(Counted { inner: MemoryStore::new(), claims: AtomicU64::new(0) });
//!         testing::Kit::new(store).without_purge().run().await;
//!     });
//! }
//! # counted_store_conforms_to_the_store_contract();
//! ```
//!
//! One test per case names each failure in the test runner's report instead:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use idempotent_runtime::MemoryStore;
//! use idempotent_runtime::store::testing;
//!
//! // #[test]
//! fn a_dead_workers_late_completion_is_fenced() {
//!     testing::block_on(async {
//!         let store = MemoryStore::new();
//!         testing::a_dead_workers_claim_is_taken_over_and_its_late_completion_is_fenced(&store).await;
//!     });
//! }
//! ```

/// How long the Redis store keeps a record after it expired (its `EXPIRY_GRACE`), for the bench's floor that runs
/// the store's own scripts with the store's arguments. Not public API.
#[doc(hidden)]
#[cfg(feature = "redis")]
pub const REDIS_EXPIRY_GRACE: std::time::Duration = super::redis::EXPIRY_GRACE;

/// The keys the Redis store gives a record under `prefix` with the default settings: its hash and its waiters'
/// channel, for the same floor. Not public API.
#[doc(hidden)]
#[cfg(feature = "redis")]
pub fn redis_record_keys(prefix: &str, id: &crate::store::RecordId) -> (Vec<u8>, Vec<u8>) {
    super::redis::record_and_channel_keys(prefix, id)
}

mod claims;
mod completion;
mod counting;
mod fixture;
mod heartbeat;
mod kit;
mod lookup;
mod purge;
mod takeover;
mod timeouts;
mod waiters;

pub use self::claims::{
    claims_stay_exact_when_retries_dominate, concurrent_claims_of_one_record_acquire_exactly_once,
    concurrent_take_overs_of_a_lapsed_claim_acquire_exactly_once,
    one_claim_wins_and_the_record_is_replayed_after_completion,
};
pub use self::completion::{
    a_completion_keeps_status_headers_and_body_exactly, a_completion_keeps_the_record_for_its_own_ttl_not_the_lease,
    a_completion_retried_with_its_own_lease_is_stored_not_fenced,
    release_frees_the_key_and_a_stale_release_does_nothing,
};
pub use self::counting::CountingWaits;
pub use self::heartbeat::{
    a_heartbeat_keeps_a_claim_past_its_ttl, a_late_heartbeat_renews_a_lapsed_lease_nobody_took_over,
    heartbeat_keeps_a_claim_and_reports_a_lost_one, heartbeat_of_a_token_the_record_does_not_carry_is_lost,
};
pub use self::kit::{CASES, Kit, PURGE_CASES, block_on, run_all};
pub use self::lookup::{
    expired_records_read_as_absent_and_are_claimed_afresh, lookup_finds_the_most_recent_live_record_on_any_route,
    lookup_ignores_expired_records, lookup_never_reports_another_scopes_record,
};
pub use self::purge::{purge_deletes_only_expired_records, purge_sweeps_a_large_store_in_bounded_batches};
pub use self::takeover::{
    a_dead_workers_claim_is_taken_over_and_its_late_completion_is_fenced,
    a_different_request_cannot_take_over_a_lapsed_claim, a_running_claim_outlives_its_ttl_until_its_lease_ends,
    a_stale_token_cannot_complete_renew_or_release_the_new_claim, an_expired_claim_is_taken_over_by_any_request,
};
pub use self::timeouts::a_store_that_stops_answering_is_bounded_by_the_runtimes_timeout;
pub use self::waiters::{
    waiter_is_woken_by_completion, waiter_is_woken_by_release,
    waiter_of_a_dead_worker_takes_over_once_the_lease_lapses,
    waiter_on_a_dead_workers_claim_returns_once_the_lease_lapses,
    waiter_on_a_taken_over_record_is_woken_by_the_new_attempts_completion, waiter_returns_at_its_timeout,
};
