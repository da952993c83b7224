//! Claiming a record: claim, or wait for a duplicate in flight and claim again (`on_conflict = "wait"`).

use std::time::{Duration, Instant};

use super::Existing;
use crate::observe;
use crate::store::{Claim, ClaimRequest, OpenTransaction, Store, StoreError, TransactionalClaim, TransactionalStore};

/// How a claim ended when the store answered.
#[derive(Debug)]
pub(crate) enum Claimed {
    /// The attempt owns the record and must keep or abandon it.
    Acquired {
        /// An expired record, or one whose worker died, was taken over.
        took_over: bool,
    },
    /// A live record the attempt does not own, decided.
    Existing(Existing),
}

/// Claims `claim`'s record. With `wait`, a duplicate of a request in flight sleeps (in [`Store::wait`]) until the
/// original completes or releases, or its lease lapses (when this attempt may take over), then claims again; it
/// stops waiting `wait` after it started. A store failure ends the attempt: the caller answers it.
pub(crate) async fn claim_or_wait(
    store: &dyn Store,
    claim: &ClaimRequest,
    wait: Option<Duration>,
) -> Result<Claimed, StoreError> {
    let wait_until = wait.and_then(|wait| Instant::now().checked_add(wait));
    loop {
        let record = match observe::timed("claim", store.claim(claim)).await? {
            Claim::Acquired { took_over } => return Ok(Claimed::Acquired { took_over }),
            Claim::Existing(record) => record,
        };
        let existing = Existing::decide(record, claim);
        let Some(until_change) = wait_before_claiming_again(&existing, wait_until) else {
            return Ok(Claimed::Existing(existing));
        };
        observe::timed("wait", store.wait(&claim.id, until_change)).await?;
    }
}

/// `on_conflict = "wait"`: how long a duplicate should sleep before claiming again, if it should wait at all:
/// only for the same request while it is in flight, until the original completes or releases, its lease lapses (a
/// retry may then take over), or the duplicate's own deadline passes.
fn wait_before_claiming_again(existing: &Existing, wait_until: Option<Instant>) -> Option<Duration> {
    let &Existing::InFlight { lease_remaining } = existing else { return None };
    let deadline = wait_until?;
    let now = Instant::now();
    (now < deadline).then(|| (deadline - now).min(lease_remaining.max(Duration::from_millis(10))))
}

/// How a claim in a transaction ended when the store answered.
#[derive(Debug)]
pub(crate) enum TxClaimed {
    /// The record is claimed in this open transaction, shared with the work.
    Acquired(OpenTransaction),
    /// A committed live record the attempt does not own, decided.
    Existing(Existing),
    /// Another transaction holds the record (the original is running; its lease is not visible through it).
    Busy,
}

/// Claims `claim`'s record inside a new transaction; with `wait`, a duplicate waits up to that long for the
/// other transaction to end (the store does the waiting).
pub(crate) async fn claim_in_transaction(
    store: &dyn TransactionalStore,
    claim: &ClaimRequest,
    wait: Option<Duration>,
) -> Result<TxClaimed, StoreError> {
    Ok(match observe::timed("claim", store.claim_in_transaction(claim, wait)).await? {
        TransactionalClaim::Acquired(open) => TxClaimed::Acquired(open),
        TransactionalClaim::Existing(record) => TxClaimed::Existing(Existing::decide(record, claim)),
        TransactionalClaim::Busy => TxClaimed::Busy,
    })
}
