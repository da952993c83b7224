//! A [`Store`] wrapper that times every operation of the store inside it: the memory-store scenarios report the
//! store's own worst operation next to the end-to-end latencies, which on a loaded machine also include every
//! moment the server's thread waited for a core.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use idempotent_runtime::store::{
    Attempt, Claim, ClaimRequest, Completion, KeyStatus, LeaseState, PurgeBatch, Record, RecordId, StoredResponse,
    TransactionalStore,
};
use idempotent_runtime::{Digest, Store, StoreError, async_trait};

/// Operation durations in nanoseconds, recorded after each operation (outside the store's own locks; with one
/// server worker this lock is never contended).
static DURATIONS: Mutex<Option<Histogram<u64>>> = Mutex::new(None);

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Times `claim` and `complete` (the operations of every fresh key and replay); the others pass through.
pub(crate) struct TimedStore<S>(pub(crate) S);

/// The store operations' durations (nanoseconds) recorded since the last call, which starts afresh.
pub(crate) fn take_durations() -> Histogram<u64> {
    let mut durations = DURATIONS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    durations.take().unwrap_or_else(new_histogram)
}

fn record(started: Instant) {
    let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let mut durations = DURATIONS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    durations.get_or_insert_with(new_histogram).saturating_record(nanos);
}

#[async_trait]
impl<S: Store> Store for TimedStore<S> {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        let started = Instant::now();
        let claim = self.0.claim(request).await;
        record(started);
        claim
    }

    async fn heartbeat(&self, attempt: &Attempt, duration: Duration) -> Result<LeaseState, StoreError> {
        self.0.heartbeat(attempt, duration).await
    }

    async fn complete(
        &self,
        attempt: &Attempt,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<Completion, StoreError> {
        let started = Instant::now();
        let completion = self.0.complete(attempt, response, ttl).await;
        record(started);
        completion
    }

    async fn release(&self, attempt: &Attempt) -> Result<(), StoreError> {
        self.0.release(attempt).await
    }

    async fn read(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        self.0.read(id).await
    }

    async fn lookup(&self, scope_hash: &Digest, key_hash: &Digest) -> Result<Option<KeyStatus>, StoreError> {
        self.0.lookup(scope_hash, key_hash).await
    }

    async fn wait(&self, id: &RecordId, timeout: Duration) -> Result<(), StoreError> {
        self.0.wait(id, timeout).await
    }

    async fn purge_batch(&self, limit: usize) -> Result<PurgeBatch, StoreError> {
        self.0.purge_batch(limit).await
    }

    fn transactional(&self) -> Option<&dyn TransactionalStore> {
        self.0.transactional()
    }
}
