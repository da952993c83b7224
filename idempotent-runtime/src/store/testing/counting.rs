//! A store that counts the waiters it was asked for, so that a test opens its gate only once a duplicate is
//! really waiting (instead of sleeping and hoping it is).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::Digest;
use crate::store::{
    Attempt, Claim, ClaimRequest, Completion, KeyStatus, LeaseState, PurgeBatch, Record, RecordId, Store, StoreError,
    StoredResponse, TransactionalStore,
};

/// Another store, passed every call as it is, counting the calls to [`Store::wait`]: a runtime waiting on a
/// duplicate's record has called it. Clones share the count.
///
/// ```
/// use idempotent_runtime::MemoryStore;
/// use idempotent_runtime::store::testing::CountingWaits;
///
/// let store = CountingWaits::new(MemoryStore::new());
/// // `Idempotency::builder(store.clone())`, send the duplicate, then wait until `store.waits() > 0`.
/// assert_eq!(store.waits(), 0);
/// ```
#[derive(Clone)]
pub struct CountingWaits {
    inner: Arc<dyn Store>,
    waits: Arc<AtomicUsize>,
}

impl std::fmt::Debug for CountingWaits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountingWaits").field("waits", &self.waits()).finish_non_exhaustive()
    }
}

impl CountingWaits {
    /// Counts the waits asked of `store`.
    pub fn new(store: impl Store) -> Self {
        Self { inner: store.into_shared(), waits: Arc::new(AtomicUsize::new(0)) }
    }

    /// How many calls to [`Store::wait`] have started so far.
    pub fn waits(&self) -> usize {
        self.waits.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Store for CountingWaits {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        self.inner.claim(request).await
    }

    async fn heartbeat(&self, attempt: &Attempt, duration: Duration) -> Result<LeaseState, StoreError> {
        self.inner.heartbeat(attempt, duration).await
    }

    async fn complete(
        &self,
        attempt: &Attempt,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<Completion, StoreError> {
        self.inner.complete(attempt, response, ttl).await
    }

    async fn release(&self, attempt: &Attempt) -> Result<(), StoreError> {
        self.inner.release(attempt).await
    }

    async fn read(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        self.inner.read(id).await
    }

    async fn lookup(&self, scope_hash: &Digest, key_hash: &Digest) -> Result<Option<KeyStatus>, StoreError> {
        self.inner.lookup(scope_hash, key_hash).await
    }

    async fn wait(&self, id: &RecordId, timeout: Duration) -> Result<(), StoreError> {
        self.waits.fetch_add(1, Ordering::SeqCst);
        self.inner.wait(id, timeout).await
    }

    async fn purge_batch(&self, limit: usize) -> Result<PurgeBatch, StoreError> {
        self.inner.purge_batch(limit).await
    }

    fn transactional(&self) -> Option<&dyn TransactionalStore> {
        self.inner.transactional()
    }
}
