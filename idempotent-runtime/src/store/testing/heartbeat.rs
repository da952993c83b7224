//! Heartbeats: renewing a claim's lease while its token holds it, and reporting it lost once it does not.

use std::time::Duration;

use super::fixture::{LONG, SHORT_LEASE, Scope, attempt_of, response};
use crate::record::RecordState;
use crate::store::{Attempt, Claim, Completion, LeaseState, Store};

/// Rule: a heartbeat renews the lease from now (`Held`), so a claim kept alive past its first lease is not taken
/// over; once the record is completed, the heartbeat reports `Lost`.
pub async fn heartbeat_keeps_a_claim_and_reports_a_lost_one(store: &dyn Store) {
    let scope = Scope::random();
    let alive = scope.request(4, 1, 41, SHORT_LEASE, LONG);
    store.claim(&alive).await.unwrap();
    for _ in 0..4 {
        tokio::time::sleep(SHORT_LEASE / 3).await;
        assert_eq!(
            store.heartbeat(&attempt_of(&alive), SHORT_LEASE).await.unwrap(),
            LeaseState::Held,
            "the owner's heartbeat holds"
        );
    }
    // Well past the original lease: renewed, so a retry finds it in progress.
    match store.claim(&scope.request(4, 1, 42, LONG, LONG)).await.unwrap() {
        Claim::Existing(record) => match record.state {
            RecordState::InProgress { lease_remaining } => {
                assert!(lease_remaining > Duration::ZERO, "a renewed lease has time remaining");
            }
            other => panic!("expected in progress, got {other:?}"),
        },
        other => panic!("a live, heartbeating claim must not be taken over: {other:?}"),
    }
    store.complete(&attempt_of(&alive), &response("done"), LONG).await.unwrap();
    assert_eq!(store.heartbeat(&attempt_of(&alive), SHORT_LEASE).await.unwrap(), LeaseState::Lost, "completed");
}

/// Rule: a lease that lapsed while nobody took the record over still belongs to its token: the late heartbeat renews
/// it (`Held`) and a retry then finds the claim in progress again.
pub async fn a_late_heartbeat_renews_a_lapsed_lease_nobody_took_over(store: &dyn Store) {
    let scope = Scope::random();
    let slow = scope.request(6, 1, 61, SHORT_LEASE, LONG);
    store.claim(&slow).await.unwrap();
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(100)).await;
    assert_eq!(
        store.heartbeat(&attempt_of(&slow), LONG).await.unwrap(),
        LeaseState::Held,
        "the record still carries the token: its heartbeat renews the lease"
    );
    match store.claim(&scope.request(6, 1, 62, LONG, LONG)).await.unwrap() {
        Claim::Existing(record) => assert!(
            matches!(record.state, RecordState::InProgress { lease_remaining } if lease_remaining > SHORT_LEASE),
            "a renewed lease protects the claim again: {record:?}"
        ),
        other => panic!("a claim renewed by its heartbeat must not be taken over: {other:?}"),
    }
}

/// Rule: a heartbeat of a token the record does not carry is `Lost`: after a release, for a record that never
/// existed, and for another token of a live claim (which it leaves alone).
pub async fn heartbeat_of_a_token_the_record_does_not_carry_is_lost(store: &dyn Store) {
    let scope = Scope::random();
    let released = scope.request(7, 1, 71, LONG, LONG);
    store.claim(&released).await.unwrap();
    store.release(&attempt_of(&released)).await.unwrap();
    assert_eq!(store.heartbeat(&attempt_of(&released), LONG).await.unwrap(), LeaseState::Lost, "released");
    assert_eq!(store.read(&released.id).await.unwrap(), None, "a heartbeat never recreates a released record");

    let never = Attempt { id: scope.id(8), token: 81 };
    assert_eq!(store.heartbeat(&never, LONG).await.unwrap(), LeaseState::Lost, "a record that never existed");
    assert_eq!(store.read(&never.id).await.unwrap(), None, "a heartbeat never creates a record");

    let live = scope.request(9, 1, 91, SHORT_LEASE, LONG);
    store.claim(&live).await.unwrap();
    let other = Attempt { token: 92, ..attempt_of(&live) };
    assert_eq!(store.heartbeat(&other, LONG).await.unwrap(), LeaseState::Lost, "another token of a live claim");
    let record = store.read(&live.id).await.unwrap().expect("the live claim");
    assert!(
        matches!(record.state, RecordState::InProgress { lease_remaining } if lease_remaining <= SHORT_LEASE),
        "another token's heartbeat must not renew the claim: {record:?}"
    );
}

/// Rule: a heartbeat renews the lease past the claim's ttl: the record stays its worker's (another request is
/// answered the running record) for as long as the heartbeat keeps it, and its completion is then stored.
pub async fn a_heartbeat_keeps_a_claim_past_its_ttl(store: &dyn Store) {
    let scope = Scope::random();
    let worker = scope.request(9, 1, 91, SHORT_LEASE, Duration::from_millis(100));
    store.claim(&worker).await.unwrap();
    assert_eq!(store.heartbeat(&attempt_of(&worker), LONG).await.unwrap(), LeaseState::Held, "the owner renews");
    // Past the first lease and the ttl: only the renewed lease keeps the record.
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(100)).await;
    match store.claim(&scope.request(9, 2, 92, LONG, LONG)).await.unwrap() {
        Claim::Existing(record) => assert!(
            matches!(record.state, RecordState::InProgress { lease_remaining } if lease_remaining > SHORT_LEASE),
            "a lease renewed past the ttl keeps the record running: {record:?}"
        ),
        other => panic!("a claim kept by its heartbeat past its ttl must not be claimed afresh: {other:?}"),
    }
    assert_eq!(
        store.complete(&attempt_of(&worker), &response("kept"), LONG).await.unwrap(),
        Completion::Stored,
        "the worker completes the claim its heartbeat kept"
    );
}
