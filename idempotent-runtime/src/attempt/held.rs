//! An acquired claim while its work runs, and how it is settled: kept (the result stored) or abandoned (the key
//! freed for a retry).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::claim_guard::ClaimGuard;
use super::lease::{LeaseWatch, while_renewing};
use crate::observe;
use crate::record::StoredResponse;
use crate::store::{Attempt, ClaimRequest, Completion, OpenTransaction, Store, StoreError, StoreErrorKind};

/// An acquired claim, which the work's outcome either keeps (stores the result) or abandons.
pub(crate) trait Held {
    /// When keeping fails, the work's result must not be handed out: its writes were undone with the claim.
    const RESPONSE_NEEDS_STORING: bool;

    /// Frees the key: a retry runs the work again.
    async fn abandon(self);

    /// Stores the result for replay (the store's answer, before the rules of [`keep`]).
    async fn store(self, stored: &StoredResponse) -> Result<Completion, StoreError>;
}

/// A plain claim: a record with a lease, renewed by the heartbeat, released if dropped (see [`ClaimGuard`]).
pub(crate) struct LeaseHold<'a> {
    guard: ClaimGuard<'a>,
    ttl: Duration,
}

impl Held for LeaseHold<'_> {
    const RESPONSE_NEEDS_STORING: bool = false;

    async fn abandon(self) {
        observe::timed("release", self.guard.release()).await;
    }

    async fn store(self, stored: &StoredResponse) -> Result<Completion, StoreError> {
        observe::timed("complete", self.guard.complete(stored, self.ttl)).await
    }
}

/// A transactional claim: an open transaction shared with the work, rolled back if dropped.
pub(crate) struct TransactionHold {
    open: OpenTransaction,
    ttl: Duration,
}

impl TransactionHold {
    /// The claim held by `open`, whose result is kept for `ttl`.
    pub(crate) fn new(open: OpenTransaction, ttl: Duration) -> Self {
        Self { open, ttl }
    }

    /// The transaction, to hand its `Tx` to the work.
    pub(crate) fn open(&self) -> &OpenTransaction {
        &self.open
    }
}

impl Held for TransactionHold {
    const RESPONSE_NEEDS_STORING: bool = true;

    async fn abandon(self) {
        observe::timed("rollback", self.open.rollback()).await;
    }

    async fn store(self, stored: &StoredResponse) -> Result<Completion, StoreError> {
        observe::timed("commit", self.open.commit_with(stored, self.ttl)).await.map(|()| Completion::Stored)
    }
}

/// A freshly acquired plain claim: the attempt that owns the record, and what the heartbeat learns of its lease.
/// Built from the claim (its id moves, not copied), and borrowed by the heartbeat and the work's [`LeaseHold`].
pub(crate) struct Lease {
    attempt: Attempt,
    duration: Duration,
    ttl: Duration,
    watch: LeaseWatch,
}

impl Lease {
    /// The lease `claim` just acquired.
    pub(crate) fn acquired(claim: ClaimRequest) -> Self {
        let ClaimRequest { id, token, lease, ttl, .. } = claim;
        Self { attempt: Attempt { id, token }, duration: lease, ttl, watch: LeaseWatch::claimed(lease) }
    }

    /// The attempt that owns the record.
    pub(crate) fn attempt(&self) -> &Attempt {
        &self.attempt
    }
}

/// Runs `attempt` on a freshly acquired claim (`lease`), under the heartbeat: the lease is renewed every third of
/// its length until `attempt` (the work, and settling it, with the completion's retries) is over. Dropped
/// mid-way, the claim is released in a background task.
pub(crate) async fn under_lease<'a, A, Fut>(
    store: &'a Arc<dyn Store>,
    lease: &'a Lease,
    attempt: impl FnOnce(LeaseHold<'a>) -> Fut,
) -> A
where
    Fut: Future<Output = A>,
{
    let guard = ClaimGuard::new(store, &lease.attempt, &lease.watch);
    let hold = LeaseHold { guard, ttl: lease.ttl };
    while_renewing(&**store, &lease.attempt, lease.duration, &lease.watch, || attempt(hold)).await
}

/// What keeping a claim came to (docs/contract.md, section 4).
#[derive(Debug)]
pub(crate) enum Kept {
    /// The result is stored and will be replayed.
    Stored,
    /// A newer attempt took the record over: this result was not stored (it is still this attempt's answer).
    Fenced,
    /// The work's own SQL failed and left its transaction aborted: nothing was committed, the key is free. The
    /// work's answer stands, unstored.
    Aborted(StoreError),
    /// Storing failed where the result must be stored (a transaction): nothing was committed, not even the
    /// work's writes, so the work's success must not be answered.
    NotCommitted(StoreError),
    /// Storing failed after the work ran on a plain claim: its result is still the answer. The claim stays until
    /// its lease lapses, then a retry runs the work again (the one at-least-once window of a plain claim).
    Unstored(StoreError),
}

/// Stores `stored` under `held` and applies the completion rules.
pub(crate) async fn keep<H: Held>(held: H, stored: &StoredResponse) -> Kept {
    match held.store(stored).await {
        Ok(Completion::Stored) => Kept::Stored,
        Ok(Completion::Fenced) => Kept::Fenced,
        Err(error) if error.kind() == StoreErrorKind::TransactionAborted => Kept::Aborted(error),
        Err(error) if H::RESPONSE_NEEDS_STORING => Kept::NotCommitted(error),
        Err(error) => Kept::Unstored(error),
    }
}
