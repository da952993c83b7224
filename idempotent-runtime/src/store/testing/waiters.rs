//! Waiters (`on_conflict = "wait"`): woken by the completion or the release of the record they wait on, back at
//! their timeout otherwise, and never stranded by a worker that died.
//!
//! What `Store::wait` promises: it returns once the record is no longer in progress under a live lease (completed,
//! released, expired, or its lease lapsed so that the waiter may take over), or at its timeout; returning early is
//! allowed (the caller claims again to learn the state).

use std::time::{Duration, Instant};

use super::fixture::{LONG, SHORT_LEASE, Scope, attempt_of, response};
use crate::record::{Record, RecordState};
use crate::store::{Claim, Store};

/// Longer than any case waits for: a waiter back well before it was woken, not timed out.
const WAIT: Duration = Duration::from_secs(20);

/// Within this, a waiter has clearly been woken (not timed out after [`WAIT`]).
const WOKEN_WITHIN: Duration = Duration::from_secs(5);

/// Rule: a waiter on a record in progress is woken by its completion, long before its timeout.
pub async fn waiter_is_woken_by_completion(store: &dyn Store) {
    let scope = Scope::random();
    let original = scope.request(7, 1, 71, LONG, LONG);
    store.claim(&original).await.unwrap();
    let started = Instant::now();
    let waiting = store.wait(&original.id, WAIT);
    let completing = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        store.complete(&attempt_of(&original), &response("done"), LONG).await.unwrap();
    };
    let (waited, ()) = futures_util::future::join(waiting, completing).await;
    waited.unwrap();
    assert!(started.elapsed() < WOKEN_WITHIN, "woken by the completion, not the 20 s timeout");
}

/// Rule: a waiter is woken by the release of the record; waiting on a record not in progress returns at once.
pub async fn waiter_is_woken_by_release(store: &dyn Store) {
    let scope = Scope::random();
    let original = scope.request(8, 1, 81, LONG, LONG);
    store.claim(&original).await.unwrap();
    let started = Instant::now();
    let releasing = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        store.release(&attempt_of(&original)).await.unwrap();
    };
    let (waited, ()) = futures_util::future::join(store.wait(&original.id, WAIT), releasing).await;
    waited.unwrap();
    assert!(started.elapsed() < WOKEN_WITHIN, "woken by the release");
    // A record that is not in progress returns at once.
    let started = Instant::now();
    store.wait(&original.id, WAIT).await.unwrap();
    assert!(started.elapsed() < WOKEN_WITHIN, "waiting on a record not in progress returns at once");
}

/// Rule: a waiter on a record that stays in progress returns at its timeout, not before and not much later.
pub async fn waiter_returns_at_its_timeout(store: &dyn Store) {
    let scope = Scope::random();
    let original = scope.request(9, 1, 91, LONG, LONG);
    store.claim(&original).await.unwrap();
    let started = Instant::now();
    store.wait(&original.id, Duration::from_millis(300)).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < WOKEN_WITHIN,
        "a waiter returns at its 300 ms timeout: waited {waited:?}"
    );
}

/// Rule: a waiter on a dead worker's claim returns once the lease lapsed (so that it may take the record over),
/// long before its own timeout.
pub async fn waiter_on_a_dead_workers_claim_returns_once_the_lease_lapses(store: &dyn Store) {
    let scope = Scope::random();
    let dead = scope.request(12, 1, 121, SHORT_LEASE, LONG);
    store.claim(&dead).await.unwrap();
    let started = Instant::now();
    store.wait(&dead.id, WAIT).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited < WOKEN_WITHIN,
        "a waiter must return once the {SHORT_LEASE:?} lease of a dead worker lapsed, not at its 20 s timeout: \
         waited {waited:?}"
    );
    let retry = scope.request(12, 1, 122, LONG, LONG);
    assert_eq!(store.claim(&retry).await.unwrap(), Claim::Acquired { took_over: true }, "then it takes over");
}

/// Rule: a waiter on a dead worker's claim is not stranded. Waiting as the runtime does (each wait bounded by the
/// lease remaining, then a claim again), the retry takes the record over once the lease lapsed, not before.
pub async fn waiter_of_a_dead_worker_takes_over_once_the_lease_lapses(store: &dyn Store) {
    let scope = Scope::random();
    let started = Instant::now();
    let dead = scope.request(10, 1, 101, SHORT_LEASE, LONG);
    assert_eq!(store.claim(&dead).await.unwrap(), Claim::Acquired { took_over: false }, "a fresh key is acquired");
    let retry = scope.request(10, 1, 102, LONG, LONG);
    let mut waits = 0;
    loop {
        match store.claim(&retry).await.unwrap() {
            Claim::Acquired { took_over } => {
                assert!(took_over, "the waiter's claim takes the dead worker's record over");
                break;
            }
            Claim::Existing(Record { state: RecordState::InProgress { lease_remaining }, .. }) => {
                assert!(lease_remaining <= SHORT_LEASE, "the lease remaining never exceeds the lease");
                assert!(
                    started.elapsed() < WOKEN_WITHIN,
                    "still not taken over {:?} after a {SHORT_LEASE:?} lease (after {waits} waits of at most the \
                     lease remaining)",
                    started.elapsed()
                );
                store.wait(&retry.id, lease_remaining.max(Duration::from_millis(10))).await.unwrap();
                waits += 1;
            }
            other => panic!("the dead worker's record is in progress until taken over: {other:?}"),
        }
    }
    assert!(started.elapsed() >= SHORT_LEASE, "taken over after {:?}, before the lease lapsed", started.elapsed());
    assert!(
        started.elapsed() < WOKEN_WITHIN,
        "taken over {:?} after a {SHORT_LEASE:?} lease: a wait outlived the lease remaining",
        started.elapsed()
    );
}

/// Rule: a waiter waits on the attempt that holds the record when it looks. After a take-over (the first worker
/// died), a waiter on the new attempt is woken by that attempt's completion, long before the new lease or its own
/// timeout runs out.
pub async fn waiter_on_a_taken_over_record_is_woken_by_the_new_attempts_completion(store: &dyn Store) {
    let scope = Scope::random();
    let dead = scope.request(11, 1, 111, SHORT_LEASE, LONG);
    store.claim(&dead).await.unwrap();
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(100)).await;
    let retry = scope.request(11, 1, 112, LONG, LONG);
    assert_eq!(store.claim(&retry).await.unwrap(), Claim::Acquired { took_over: true }, "taken over");
    // The waiter arrives after the take-over: the record it finds is the new attempt's, with an hour of lease.
    let started = Instant::now();
    let waiting = store.wait(&retry.id, WAIT);
    let completing = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        store.complete(&attempt_of(&retry), &response("done"), LONG).await.unwrap();
    };
    let (waited, ()) = futures_util::future::join(waiting, completing).await;
    waited.unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed < WOKEN_WITHIN,
        "a waiter on the attempt that took the record over was not woken by its completion: {elapsed:?}"
    );
}
