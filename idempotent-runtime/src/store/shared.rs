//! A store shared with other code (`Arc<dyn Store>`, as `Idempotency::store` returns it) is a store too, so every
//! constructor takes `impl Store` and there is one constructor per thing.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Attempt, Claim, ClaimRequest, Completion, LeaseState, PurgeBatch, Store, StoreError, TransactionalStore};
use crate::digest::Digest;
use crate::record::{KeyStatus, Record, StoredResponse};
use crate::record_id::RecordId;

#[async_trait]
impl Store for Arc<dyn Store> {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        (**self).claim(request).await
    }

    async fn heartbeat(&self, attempt: &Attempt, duration: Duration) -> Result<LeaseState, StoreError> {
        (**self).heartbeat(attempt, duration).await
    }

    async fn complete(
        &self,
        attempt: &Attempt,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<Completion, StoreError> {
        (**self).complete(attempt, response, ttl).await
    }

    async fn release(&self, attempt: &Attempt) -> Result<(), StoreError> {
        (**self).release(attempt).await
    }

    async fn read(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        (**self).read(id).await
    }

    async fn lookup(&self, scope_hash: &Digest, key_hash: &Digest) -> Result<Option<KeyStatus>, StoreError> {
        (**self).lookup(scope_hash, key_hash).await
    }

    async fn wait(&self, id: &RecordId, timeout: Duration) -> Result<(), StoreError> {
        (**self).wait(id, timeout).await
    }

    async fn purge_batch(&self, limit: usize) -> Result<PurgeBatch, StoreError> {
        (**self).purge_batch(limit).await
    }

    fn transactional(&self) -> Option<&dyn TransactionalStore> {
        (**self).transactional()
    }

    /// Already shared: no second `Arc` around it.
    fn into_shared(self) -> Arc<dyn Store> {
        self
    }
}
