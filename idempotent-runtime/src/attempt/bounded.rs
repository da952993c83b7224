//! The one place where the runtime bounds store calls with a timeout, whatever the store.
//!
//! A store's own timeouts (PostgreSQL has them) are not something a third-party store must have: a store that
//! never answers would hang the request, or the message consumer, for good. Every call the runtime makes goes
//! through [`BoundedStore`], so it ends within the timeout, as [`StoreErrorKind::Timeout`] (answered 503
//! `store-unavailable` over HTTP, `ReceiveError::StoreUnavailable` by a receiver).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::digest::Digest;
use crate::record::{KeyStatus, Record, StoredResponse};
use crate::record_id::RecordId;
use crate::store::{
    Attempt, Claim, ClaimRequest, Completion, LeaseState, PurgeBatch, Store, StoreError, StoreErrorKind,
    TransactionalClaim, TransactionalStore,
};

/// How long the runtime waits for one store operation by default (`IdempotencyBuilder::store_timeout`,
/// `Receiver::store_timeout`): 5 seconds, the same as `PostgresStore`'s own default operation timeout, so that
/// a PostgreSQL store with its defaults times out at the same moment either way.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// A store whose every operation ends within `timeout` (a `wait` within its own timeout plus this one).
pub(crate) struct BoundedStore {
    inner: Arc<dyn Store>,
    timeout: Duration,
}

impl BoundedStore {
    /// `store`, bounded by `timeout`, shareable as the runtime's store.
    pub(crate) fn shared(store: Arc<dyn Store>, timeout: Duration) -> Arc<dyn Store> {
        Arc::new(Self { inner: store, timeout })
    }

    /// The store itself: calling through `Arc<dyn Store>`'s own `Store` impl would box every call's future once
    /// more.
    fn inner(&self) -> &dyn Store {
        &*self.inner
    }

    async fn bounded<T>(
        &self,
        operation: &'static str,
        limit: Duration,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        // The call's future is dropped when the time is up: a store must tolerate being cancelled, as it is
        // when a client disconnects.
        tokio::time::timeout(limit, call).await.unwrap_or_else(|_elapsed| {
            Err(StoreError::new(
                StoreErrorKind::Timeout,
                format!("the store's {operation} did not answer within {limit:?}"),
            ))
        })
    }
}

#[async_trait]
impl Store for BoundedStore {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        self.bounded("claim", self.timeout, self.inner().claim(request)).await
    }

    async fn heartbeat(&self, attempt: &Attempt, duration: Duration) -> Result<LeaseState, StoreError> {
        self.bounded("heartbeat", self.timeout, self.inner().heartbeat(attempt, duration)).await
    }

    async fn complete(
        &self,
        attempt: &Attempt,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<Completion, StoreError> {
        self.bounded("complete", self.timeout, self.inner().complete(attempt, response, ttl)).await
    }

    async fn release(&self, attempt: &Attempt) -> Result<(), StoreError> {
        self.bounded("release", self.timeout, self.inner().release(attempt)).await
    }

    async fn read(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        self.bounded("read", self.timeout, self.inner().read(id)).await
    }

    async fn lookup(&self, scope_hash: &Digest, key_hash: &Digest) -> Result<Option<KeyStatus>, StoreError> {
        self.bounded("lookup", self.timeout, self.inner().lookup(scope_hash, key_hash)).await
    }

    async fn wait(&self, id: &RecordId, timeout: Duration) -> Result<(), StoreError> {
        // Waiting is meant to take up to `timeout`; only what goes beyond it by more than one operation's time is
        // a store that does not answer.
        let limit = timeout.saturating_add(self.timeout);
        self.bounded("wait", limit, self.inner().wait(id, timeout)).await
    }

    async fn purge_batch(&self, limit: usize) -> Result<PurgeBatch, StoreError> {
        self.bounded("purge", self.timeout, self.inner().purge_batch(limit)).await
    }

    fn transactional(&self) -> Option<&dyn TransactionalStore> {
        self.inner().transactional().map(|_| self as &dyn TransactionalStore)
    }
}

#[async_trait]
impl TransactionalStore for BoundedStore {
    async fn claim_in_transaction(
        &self,
        request: &ClaimRequest,
        wait: Option<Duration>,
    ) -> Result<TransactionalClaim, StoreError> {
        let Some(inner) = self.inner().transactional() else {
            // Only reachable if the store changed its mind since `transactional()` answered.
            return Err(StoreError::new(StoreErrorKind::Unsupported, "the store has no transactions"));
        };
        let limit = wait.map_or(self.timeout, |wait| wait.saturating_add(self.timeout));
        self.bounded("claim_in_transaction", limit, inner.claim_in_transaction(request, wait)).await
    }
}
