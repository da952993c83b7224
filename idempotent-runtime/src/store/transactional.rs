//! Claims that live inside a database transaction shared with the handler (transactional routes).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{ClaimRequest, Lease, StoreError, StoreErrorKind, TransactionConnection};
use crate::record::{Record, StoredResponse};
use crate::store::Tx;

/// A store that can open a transaction, claim a record in it, and hand the transaction to the handler.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot share a transaction with the consumer's writes",
    label = "this store has no transactions",
    note = "a transactional receiver (the inbox) needs a store with transactions, such as `PostgresStore`; with \
            this store, use `Receiver::run`, whose closure takes no `Tx`"
)]
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
/// background task; a connection whose transaction cannot be ended cleanly is closed, never pooled again.
pub struct OpenTransaction {
    connection: Option<Arc<TransactionConnection>>,
    lease: Lease,
    /// The store that opened it: its statements and timeout finish it.
    store: super::PostgresStore,
}

impl std::fmt::Debug for OpenTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenTransaction").field("lease", &self.lease).finish_non_exhaustive()
    }
}

impl OpenTransaction {
    pub(crate) fn new(connection: TransactionConnection, lease: Lease, store: super::PostgresStore) -> Self {
        Self { connection: Some(Arc::new(connection)), lease, store }
    }

    /// The handle the handler receives.
    pub fn tx(&self) -> Option<Tx> {
        self.connection.as_ref().map(|connection| Tx::new(Arc::clone(connection)))
    }

    /// Stores the response and commits everything (claim, handler writes, response) at once, within the store's
    /// timeout. A handler whose own SQL failed left the transaction aborted: then nothing is committed and the
    /// error says so ([`StoreErrorKind::TransactionAborted`]).
    ///
    /// # Errors
    ///
    /// [`StoreErrorKind::TransactionAborted`] as above; any other [`StoreError`] when the statement or the commit
    /// fails or times out, in which case nothing was committed either.
    pub async fn commit_with(mut self, response: &StoredResponse, ttl: Duration) -> Result<(), StoreError> {
        let connection = self.take_connection()?;
        let committed = tokio::time::timeout(
            self.store.timeout(),
            super::postgres::complete_and_commit(&self.store, &connection, &self.lease, response, ttl),
        )
        .await;
        match committed {
            Ok(Ok(())) => {
                drop(connection.into_pooled());
                Ok(())
            }
            Ok(Err(error)) => {
                rollback(connection).await;
                Err(error)
            }
            // Unknown outcome: `connection` is dropped here, closed rather than pooled.
            Err(_) => Err(StoreError::new(StoreErrorKind::Timeout, "the commit did not answer in time")),
        }
    }

    /// Rolls everything back: the claim, and whatever the handler wrote.
    pub async fn rollback(mut self) {
        if let Ok(connection) = self.take_connection() {
            rollback(connection).await;
        }
    }

    fn take_connection(&mut self) -> Result<TransactionConnection, StoreError> {
        let shared = self.connection.take().ok_or_else(|| failed_message("the transaction is already closed"))?;
        // The handler's `Tx` is gone once its future completed; a `Tx` kept elsewhere keeps the connection, which
        // is then closed (not pooled) when that `Tx` goes.
        Arc::try_unwrap(shared).map_err(|_| failed_message("the handler kept its `Tx` beyond the request"))
    }
}

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else { return };
        let Ok(connection) = Arc::try_unwrap(connection) else { return };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(rollback(connection));
        }
    }
}

/// Rolls back and returns the connection to the pool; one whose rollback failed is closed instead.
pub(crate) async fn rollback(connection: TransactionConnection) {
    match connection.batch_execute("ROLLBACK").await {
        Ok(()) => drop(connection.into_pooled()),
        Err(error) => tracing::warn!(%error, "rollback of an idempotent transaction failed; closing its connection"),
    }
}

fn failed_message(message: &'static str) -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, message)
}
