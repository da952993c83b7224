//! Claims that live inside a database transaction shared with the handler (transactional routes).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{ClaimRequest, Lease, StoreError, StoreErrorKind};
use crate::record::{Record, StoredResponse};
use crate::transaction::Tx;

/// A store that can open a transaction, claim a record in it, and hand the transaction to the handler.
#[async_trait]
pub trait TransactionalStore: Send + Sync {
    /// Begins a transaction and claims the record inside it. A concurrent duplicate is answered at once with
    /// [`TransactionalClaim::Busy`] (it never blocks on the uncommitted claim), unless `wait` is given: then it
    /// waits up to `wait` for the other transaction to end and looks again.
    async fn claim_in_transaction(
        &self,
        request: &ClaimRequest,
        wait: Option<Duration>,
    ) -> Result<TransactionalClaim, StoreError>;
}

/// The answer to [`TransactionalStore::claim_in_transaction`].
#[derive(Debug)]
pub enum TransactionalClaim {
    /// The record is claimed in an open transaction, which the caller commits or rolls back.
    Acquired(OpenTransaction),
    /// A committed, live record exists (its transaction is over); nothing is held.
    Existing(Record),
    /// Another transaction holds the record: the original request is in flight. Nothing is held.
    Busy,
}

/// A transaction holding a claim. Dropped while still open (the request was cancelled), it rolls back in a
/// background task, so the pooled connection never returns to the pool inside a transaction.
pub struct OpenTransaction {
    client: Option<Arc<deadpool_postgres::Client>>,
    lease: Lease,
}

impl std::fmt::Debug for OpenTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenTransaction").field("lease", &self.lease).finish_non_exhaustive()
    }
}

impl OpenTransaction {
    pub(crate) fn new(client: deadpool_postgres::Client, lease: Lease) -> Self {
        Self { client: Some(Arc::new(client)), lease }
    }

    /// The handle the handler receives.
    pub fn tx(&self) -> Option<Tx> {
        self.client.as_ref().map(|client| Tx::new(Arc::clone(client)))
    }

    /// Stores the response and commits everything (claim, handler writes, response) at once.
    pub async fn commit_with(mut self, response: &StoredResponse, ttl: Duration) -> Result<(), StoreError> {
        let client = self.take_client()?;
        let result = super::postgres::complete_and_commit(&client, &self.lease, response, ttl).await;
        if result.is_err() {
            rollback(client).await;
        }
        result
    }

    /// Rolls everything back: the claim, and whatever the handler wrote.
    pub async fn rollback(mut self) {
        if let Ok(client) = self.take_client() {
            rollback(client).await;
        }
    }

    fn take_client(&mut self) -> Result<deadpool_postgres::Client, StoreError> {
        let shared = self.client.take().ok_or_else(|| failed_message("the transaction is already closed"))?;
        // The handler's `Tx` is gone once its future completed; a `Tx` kept elsewhere would be a bug in the app.
        Arc::try_unwrap(shared).map_err(|_| failed_message("the handler kept its `Tx` beyond the request"))
    }
}

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else { return };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Ok(client) = Arc::try_unwrap(client) {
                    rollback(client).await;
                }
            });
        }
    }
}

/// Rolls back; a connection whose rollback failed is taken out of the pool rather than reused mid-transaction.
async fn rollback(client: deadpool_postgres::Client) {
    if let Err(error) = client.batch_execute("ROLLBACK").await {
        tracing::warn!(%error, "rollback of an idempotent transaction failed; discarding its connection");
        drop(deadpool_postgres::Object::take(client));
    }
}

fn failed_message(message: &'static str) -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, message)
}
