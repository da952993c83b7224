//! Claims that live inside a database transaction shared with the handler (transactional routes, CONTRACT
//! section 5): the claim, the handler's writes and the stored response commit together or not at all.
//!
//! Two traits, both public so that a store on another database driver can offer transactional routes:
//! [`TransactionalStore`] opens a transaction and claims the record in it; the [`ClaimTransaction`] it returns
//! lends the handler a handle (PostgreSQL's is [`crate::Tx`], taken by its extractor from the request's
//! extensions), then commits with the response or rolls back.

use std::time::Duration;

use actix_web::dev::Extensions;
use async_trait::async_trait;

use super::{ClaimRequest, StoreError};
use crate::record::{Record, StoredResponse};

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

/// A driver's open transaction holding a claim: what [`OpenTransaction`] runs on.
///
/// Dropped without [`ClaimTransaction::commit_with`] (the request was cancelled), it must roll back, in a
/// background task if it has to: nothing of an unfinished attempt may commit.
#[async_trait]
pub trait ClaimTransaction: Send {
    /// Puts the handler's handle on this transaction where its extractor finds it (e.g. `Tx` in the request's
    /// extensions). Called once, before the handler runs.
    fn lend(&self, extensions: &mut Extensions);

    /// Takes a handle the handler did not take back out of `extensions` (its extractors failed before), so that
    /// nothing outlives the transaction.
    fn take_back(&self, extensions: &mut Extensions);

    /// Stores the response and commits everything (claim, handler writes, response) at once. A handler whose own
    /// statements failed left the transaction aborted: then nothing is committed and the error is of kind
    /// [`crate::StoreErrorKind::TransactionAborted`].
    async fn commit_with(self: Box<Self>, response: &StoredResponse, ttl: Duration) -> Result<(), StoreError>;

    /// Rolls everything back: the claim, and whatever the handler wrote.
    async fn rollback(self: Box<Self>);
}

/// A transaction holding a claim, whatever the driver.
pub struct OpenTransaction(Box<dyn ClaimTransaction>);

impl std::fmt::Debug for OpenTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenTransaction").finish_non_exhaustive()
    }
}

impl OpenTransaction {
    /// Wraps a driver's transaction.
    pub fn new(transaction: impl ClaimTransaction + 'static) -> Self {
        Self(Box::new(transaction))
    }

    /// See [`ClaimTransaction::lend`].
    pub fn lend(&self, extensions: &mut Extensions) {
        self.0.lend(extensions);
    }

    /// See [`ClaimTransaction::take_back`].
    pub fn take_back(&self, extensions: &mut Extensions) {
        self.0.take_back(extensions);
    }

    /// Stores the response and commits everything at once; see [`ClaimTransaction::commit_with`].
    ///
    /// # Errors
    ///
    /// [`crate::StoreErrorKind::TransactionAborted`] when the handler's own SQL failed; any other [`StoreError`]
    /// when storing or committing fails or times out, in which case nothing was committed either.
    pub async fn commit_with(self, response: &StoredResponse, ttl: Duration) -> Result<(), StoreError> {
        self.0.commit_with(response, ttl).await
    }

    /// Rolls everything back: the claim, and whatever the handler wrote.
    pub async fn rollback(self) {
        self.0.rollback().await;
    }
}
