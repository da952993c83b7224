//! Take-over and fencing: a claim whose worker died is taken over by a retry of the same request (never by a
//! different one), an expired record by any request, and the dead worker's token is fenced everywhere afterwards.

use std::time::Duration;

use super::fixture::{LONG, SHORT_LEASE, Scope, attempt_of, response};
use crate::record::RecordState;
use crate::store::{Claim, Completion, LeaseState, Store};

/// Rule: past its lease, a claim (its worker stopped heartbeating) is taken over by a retry of the same request
/// with `took_over: true`; the dead worker's completion is then fenced, its heartbeat lost, its release a no-op.
pub async fn a_dead_workers_claim_is_taken_over_and_its_late_completion_is_fenced(store: &dyn Store) {
    let scope = Scope::random();
    let dead = scope.request(2, 1, 21, SHORT_LEASE, LONG);
    assert_eq!(store.claim(&dead).await.unwrap(), Claim::Acquired { took_over: false }, "a fresh key is acquired");
    // The worker stops heartbeating (its process died); past the lease, a retry of the same request takes over.
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(100)).await;
    let retry = scope.request(2, 1, 22, LONG, LONG);
    assert_eq!(
        store.claim(&retry).await.unwrap(),
        Claim::Acquired { took_over: true },
        "a lapsed claim of the same request is taken over"
    );
    // The dead worker was only paused: its completion must not overwrite the newer attempt.
    assert_eq!(
        store.complete(&attempt_of(&dead), &response("stale"), LONG).await.unwrap(),
        Completion::Fenced,
        "a stale token's completion is fenced"
    );
    assert_eq!(
        store.heartbeat(&attempt_of(&dead), LONG).await.unwrap(),
        LeaseState::Lost,
        "a stale token's heartbeat is lost"
    );
    store.release(&attempt_of(&dead)).await.unwrap();
    assert_eq!(store.complete(&attempt_of(&retry), &response("newer"), LONG).await.unwrap(), Completion::Stored);
    let record = store.read(&retry.id).await.unwrap().expect("live record");
    assert_eq!(record.state, RecordState::Completed(response("newer")), "the newer attempt's response is kept");
}

/// Rule: a lapsed claim is not taken over by a different request (another fingerprint): the key still belongs to
/// the first request, read in progress with no lease remaining.
pub async fn a_different_request_cannot_take_over_a_lapsed_claim(store: &dyn Store) {
    let scope = Scope::random();
    let original = scope.request(3, 1, 31, SHORT_LEASE, LONG);
    store.claim(&original).await.unwrap();
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(100)).await;
    match store.claim(&scope.request(3, 2, 32, LONG, LONG)).await.unwrap() {
        Claim::Existing(record) => {
            assert_eq!(record.fingerprint, [1; 32], "the key still belongs to the first request");
            assert_eq!(
                record.state,
                RecordState::InProgress { lease_remaining: Duration::ZERO },
                "a lapsed lease reads as zero remaining"
            );
        }
        other => panic!("a different request must not take over: {other:?}"),
    }
}

/// Rule: a claim past both its lease and its ttl has expired: any request claims it afresh (`took_over: true`),
/// even one of another fingerprint.
pub async fn an_expired_claim_is_taken_over_by_any_request(store: &dyn Store) {
    let scope = Scope::random();
    let abandoned = scope.request(4, 1, 41, Duration::from_millis(100), Duration::from_millis(200));
    store.claim(&abandoned).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.read(&abandoned.id).await.unwrap(), None, "an expired claim reads as absent");
    assert_eq!(
        store.claim(&scope.request(4, 2, 42, LONG, LONG)).await.unwrap(),
        Claim::Acquired { took_over: true },
        "an expired claim is claimed afresh by any request"
    );
}

/// Rule (fencing): once a claim was taken over, nothing the old token does reaches the new claim: its completion is
/// fenced, its heartbeat lost, its release does nothing (the new claim stays in progress and its own heartbeat holds).
pub async fn a_stale_token_cannot_complete_renew_or_release_the_new_claim(store: &dyn Store) {
    let scope = Scope::random();
    let dead = scope.request(5, 1, 51, SHORT_LEASE, LONG);
    store.claim(&dead).await.unwrap();
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(100)).await;
    let retry = scope.request(5, 1, 52, LONG, LONG);
    assert_eq!(store.claim(&retry).await.unwrap(), Claim::Acquired { took_over: true }, "taken over");

    store.release(&attempt_of(&dead)).await.unwrap();
    match store.read(&retry.id).await.unwrap() {
        Some(record) => assert!(
            matches!(record.state, RecordState::InProgress { lease_remaining } if lease_remaining > SHORT_LEASE),
            "a stale token's release must leave the new claim in progress: {record:?}"
        ),
        None => panic!("a stale token's release deleted the new claim"),
    }
    assert_eq!(
        store.heartbeat(&attempt_of(&dead), LONG).await.unwrap(),
        LeaseState::Lost,
        "a stale token's heartbeat is lost"
    );
    assert_eq!(
        store.heartbeat(&attempt_of(&retry), LONG).await.unwrap(),
        LeaseState::Held,
        "the new claim's own heartbeat holds"
    );
    assert_eq!(
        store.complete(&attempt_of(&dead), &response("stale"), LONG).await.unwrap(),
        Completion::Fenced,
        "a stale token's completion is fenced"
    );
    let record = store.read(&retry.id).await.unwrap().expect("the new claim");
    assert!(
        matches!(record.state, RecordState::InProgress { .. }),
        "a fenced completion must not complete the new claim: {record:?}"
    );
}

/// Rule: a running record expires only once both its ttl ended and its lease lapsed. A route whose lease outlives
/// its ttl keeps the key its worker's: past the ttl, another request is answered the running record (never a fresh
/// claim) and the worker's completion is stored; past both, any request claims the key afresh.
pub async fn a_running_claim_outlives_its_ttl_until_its_lease_ends(store: &dyn Store) {
    let scope = Scope::random();
    let short_ttl = Duration::from_millis(100);
    let worker = scope.request(6, 1, 61, LONG, short_ttl);
    store.claim(&worker).await.unwrap();
    tokio::time::sleep(short_ttl + Duration::from_millis(100)).await;
    match store.read(&worker.id).await.unwrap() {
        Some(record) => assert!(
            matches!(record.state, RecordState::InProgress { lease_remaining } if lease_remaining > SHORT_LEASE),
            "past its ttl, a claim under a live lease reads in progress: {record:?}"
        ),
        None => panic!("a claim under a live lease read as expired once its ttl ended"),
    }
    match store.claim(&scope.request(6, 2, 62, LONG, LONG)).await.unwrap() {
        Claim::Existing(record) => assert_eq!(record.fingerprint, [1; 32], "the key is still the worker's"),
        other => panic!("a claim under a live lease must not be claimed afresh past its ttl: {other:?}"),
    }
    assert_eq!(
        store.complete(&attempt_of(&worker), &response("late"), LONG).await.unwrap(),
        Completion::Stored,
        "the worker completes its claim past the ttl it claimed with"
    );
    let record = store.read(&worker.id).await.unwrap().expect("the completed record");
    assert_eq!(record.state, RecordState::Completed(response("late")), "the worker's response is kept");

    let abandoned = scope.request(7, 1, 71, SHORT_LEASE, short_ttl);
    store.claim(&abandoned).await.unwrap();
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(100)).await;
    assert_eq!(store.read(&abandoned.id).await.unwrap(), None, "past its lease and its ttl, a claim reads as absent");
    assert_eq!(
        store.claim(&scope.request(7, 2, 72, LONG, LONG)).await.unwrap(),
        Claim::Acquired { took_over: true },
        "past its lease and its ttl, a claim is claimed afresh by any request"
    );
}
