//! PostgreSQL's [`ClaimTransaction`]: one pooled connection inside `BEGIN`, lent to the handler as [`Tx`].

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Extensions;
use async_trait::async_trait;

use super::{PostgresStore, TransactionConnection, Tx};
use crate::record::StoredResponse;
use crate::store::{Attempt, ClaimTransaction, StoreError, StoreErrorKind};

/// A PostgreSQL transaction holding a claim. Dropped while still open (the request was cancelled), it rolls back in a
/// background task; a connection whose transaction cannot be ended cleanly is closed, never pooled again.
pub(crate) struct PostgresTransaction {
    connection: Option<Arc<TransactionConnection>>,
    lease: Attempt,
    /// The outbox context every `Tx` of this transaction shares (record digest, enqueue positions).
    outbox: Arc<crate::outbox::TxOutbox>,
    /// The store that opened it: its statements and timeout finish it.
    store: PostgresStore,
}

impl std::fmt::Debug for PostgresTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTransaction").field("lease", &self.lease).finish_non_exhaustive()
    }
}

impl PostgresTransaction {
    pub(crate) fn new(connection: TransactionConnection, lease: Attempt, store: PostgresStore) -> Self {
        let outbox = Arc::new(crate::outbox::TxOutbox::new(&lease.id, &store));
        Self { connection: Some(Arc::new(connection)), lease, outbox, store }
    }

    fn take_connection(&mut self) -> Result<TransactionConnection, StoreError> {
        let shared = self.connection.take().ok_or_else(|| failed_message("the transaction is already closed"))?;
        // The handler's `Tx` is gone once its future completed; a `Tx` kept elsewhere keeps the connection, which
        // is then closed (not pooled) when that `Tx` goes.
        Arc::try_unwrap(shared).map_err(|_| failed_message("the handler kept its `Tx` beyond the request"))
    }
}

#[async_trait]
impl ClaimTransaction for PostgresTransaction {
    fn lend(&self, extensions: &mut Extensions) {
        if let Some(connection) = &self.connection {
            extensions.insert(Tx::new(Arc::clone(connection), Arc::clone(&self.outbox)));
        }
    }

    fn take_back(&self, extensions: &mut Extensions) {
        extensions.remove::<Tx>();
    }

    /// Within the store's timeout; when the commit's answer does not come, the connection is closed rather than
    /// pooled (its state is unknown).
    async fn commit_with(mut self: Box<Self>, response: &StoredResponse, ttl: Duration) -> Result<(), StoreError> {
        let connection = self.take_connection()?;
        let committed = tokio::time::timeout(
            self.store.timeout(),
            super::complete_and_commit(&self.store, &connection, &self.lease, response, ttl),
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

    async fn rollback(mut self: Box<Self>) {
        if let Ok(connection) = self.take_connection() {
            rollback(connection).await;
        }
    }
}

impl Drop for PostgresTransaction {
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
