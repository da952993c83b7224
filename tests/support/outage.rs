//! A store that can be taken down on command: every operation fails as an unreachable store's does, until it is
//! brought back. Wraps a real store, so the same outage is tested on every store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use idempotent_runtime::store::{
    Attempt, Claim, ClaimRequest, Completion, KeyStatus, LeaseState, PurgeBatch, Record, RecordId, StoredResponse,
    TransactionalStore,
};
use idempotent_runtime::{Digest, Store, StoreError, StoreErrorKind, async_trait};

pub struct Outage {
    inner: Arc<dyn Store>,
    down: AtomicBool,
}

impl Outage {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self { inner, down: AtomicBool::new(false) })
    }

    /// From now on every operation fails (`true`) or reaches the real store again (`false`).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::new(StoreErrorKind::Unavailable, "connection refused (simulated outage)"));
        }
        Ok(())
    }
}

#[async_trait]
impl Store for Outage {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        self.check()?;
        self.inner.claim(request).await
    }
    async fn heartbeat(&self, attempt: &Attempt, duration: Duration) -> Result<LeaseState, StoreError> {
        self.check()?;
        self.inner.heartbeat(attempt, duration).await
    }
    async fn complete(
        &self,
        attempt: &Attempt,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<Completion, StoreError> {
        self.check()?;
        self.inner.complete(attempt, response, ttl).await
    }
    async fn release(&self, attempt: &Attempt) -> Result<(), StoreError> {
        self.check()?;
        self.inner.release(attempt).await
    }
    async fn read(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        self.check()?;
        self.inner.read(id).await
    }
    async fn lookup(&self, scope_hash: &Digest, key_hash: &Digest) -> Result<Option<KeyStatus>, StoreError> {
        self.check()?;
        self.inner.lookup(scope_hash, key_hash).await
    }
    async fn wait(&self, id: &RecordId, timeout: Duration) -> Result<(), StoreError> {
        self.check()?;
        self.inner.wait(id, timeout).await
    }
    async fn purge_batch(&self, limit: usize) -> Result<PurgeBatch, StoreError> {
        self.check()?;
        self.inner.purge_batch(limit).await
    }
    fn transactional(&self) -> Option<&dyn TransactionalStore> {
        self.inner.transactional()
    }
}
