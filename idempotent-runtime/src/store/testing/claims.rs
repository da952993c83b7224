//! Claims: one of any number of claims of a record wins, sequentially and under real concurrency, and the others
//! read the record that prevents them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Barrier;

use super::fixture::{LONG, SHORT_LEASE, Scope, attempt_of, response};
use crate::record::RecordState;
use crate::store::{Claim, Completion, Store};

/// How many keys the concurrent cases race on, one after the other.
const RACED_KEYS: u8 = 8;

/// How many claims race for each key.
const CLAIMANTS: i64 = 16;

/// Rule: the first claim of a record is acquired; a second one reads the record in progress, then completed with
/// the stored response, and a read sees the same.
pub async fn one_claim_wins_and_the_record_is_replayed_after_completion(store: &dyn Store) {
    let scope = Scope::random();
    let first = scope.request(1, 1, 11, LONG, LONG);
    assert_eq!(store.claim(&first).await.unwrap(), Claim::Acquired { took_over: false }, "a fresh key is acquired");
    let second = scope.request(1, 1, 12, LONG, LONG);
    match store.claim(&second).await.unwrap() {
        Claim::Existing(record) => assert!(matches!(record.state, RecordState::InProgress { .. })),
        other => panic!("expected the in-flight record, got {other:?}"),
    }
    assert_eq!(store.complete(&attempt_of(&first), &response("one"), LONG).await.unwrap(), Completion::Stored);
    match store.claim(&second).await.unwrap() {
        Claim::Existing(record) => {
            assert_eq!(record.fingerprint, [1; 32], "a claim reads the stored fingerprint");
            assert_eq!(record.state, RecordState::Completed(response("one")), "a claim reads the stored response");
        }
        other => panic!("expected the completed record, got {other:?}"),
    }
    let read = store.read(&first.id).await.unwrap().expect("live record");
    assert_eq!(read.state, RecordState::Completed(response("one")), "a read sees the stored response");
}

/// Rule: claims answer the same however they are mixed: many retries of a completed key, a fresh key, ten
/// concurrent claims of one key (one wins), and a take-over after them.
pub async fn claims_stay_exact_when_retries_dominate(store: &dyn Store) {
    let scope = Scope::random();
    // Many retries of a completed key: a store may change how it claims (PostgreSQL starts reading first).
    let done = scope.request(60, 1, 600, LONG, LONG);
    store.claim(&done).await.unwrap();
    store.complete(&attempt_of(&done), &response("done"), LONG).await.unwrap();
    for token in 0..64 {
        let retry = store.claim(&scope.request(60, 1, 601 + token, LONG, LONG)).await.unwrap();
        assert!(matches!(retry, Claim::Existing(_)), "a retry of a completed key reads it: {retry:?}");
    }
    // Reading first, a different request with the completed key still reads the record as it was stored (the
    // flow refuses it as a reused key), and an expired record is claimed afresh.
    match store.claim(&scope.request(60, 2, 680, LONG, LONG)).await.unwrap() {
        Claim::Existing(record) => {
            assert_eq!(record.fingerprint, done.fingerprint, "the stored request's fingerprint, not the new one");
            assert!(matches!(record.state, RecordState::Completed(_)), "the completed record: {record:?}");
        }
        other => panic!("a reused key reads the completed record: {other:?}"),
    }
    let brief = scope.request(64, 1, 690, Duration::from_millis(100), Duration::from_millis(200));
    store.claim(&brief).await.unwrap();
    store.complete(&attempt_of(&brief), &response("brief"), Duration::from_millis(200)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        store.claim(&scope.request(64, 9, 691, LONG, LONG)).await.unwrap(),
        Claim::Acquired { took_over: true },
        "an expired record is claimed afresh by any request"
    );
    // Whatever the order, every answer is the same as before.
    let fresh = scope.request(61, 1, 700, LONG, LONG);
    assert_eq!(store.claim(&fresh).await.unwrap(), Claim::Acquired { took_over: false }, "a fresh key is acquired");
    match store.claim(&scope.request(61, 1, 701, LONG, LONG)).await.unwrap() {
        Claim::Existing(record) => assert!(matches!(record.state, RecordState::InProgress { .. })),
        other => panic!("the fresh key is in flight: {other:?}"),
    }
    let concurrent = futures_util::future::join_all((0..10).map(|token| {
        let request = scope.request(62, 1, 800 + token, LONG, LONG);
        async move { store.claim(&request).await.expect("claim") }
    }))
    .await;
    let acquired = concurrent.iter().filter(|claim| matches!(claim, Claim::Acquired { .. })).count();
    assert_eq!(acquired, 1, "one of ten concurrent claims wins: {concurrent:?}");
    let dead = scope.request(63, 1, 900, SHORT_LEASE, LONG);
    assert_eq!(store.claim(&dead).await.unwrap(), Claim::Acquired { took_over: false }, "a fresh key is acquired");
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(100)).await;
    assert_eq!(
        store.claim(&scope.request(63, 1, 901, LONG, LONG)).await.unwrap(),
        Claim::Acquired { took_over: true },
        "a lapsed claim of the same request is taken over"
    );
}

/// Rule: the claim is atomic. Of many claims of one record started at once (spawned tasks, in parallel on a
/// multi-thread runtime), exactly one is acquired, and every other reads that claim in progress; over several keys.
pub async fn concurrent_claims_of_one_record_acquire_exactly_once(store: Arc<dyn Store>) {
    let scope = Arc::new(Scope::random());
    for key in 0..RACED_KEYS {
        let claims = race(&store, &scope, key, 1).await;
        assert_acquired_once(&claims, key, false, "concurrent claims of a fresh record");
    }
}

/// Rule: the take-over is atomic. Of many retries that find the same lapsed claim at once (its worker died), exactly
/// one takes it over (`took_over: true`) and every other reads the new claim in progress; over several keys.
pub async fn concurrent_take_overs_of_a_lapsed_claim_acquire_exactly_once(store: Arc<dyn Store>) {
    let scope = Arc::new(Scope::random());
    for key in 0..RACED_KEYS {
        let dead = scope.request(key, 1, 1, SHORT_LEASE, LONG);
        assert_eq!(store.claim(&dead).await.unwrap(), Claim::Acquired { took_over: false }, "a fresh key");
    }
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(100)).await;
    for key in 0..RACED_KEYS {
        let claims = race(&store, &scope, key, 100).await;
        assert_acquired_once(&claims, key, true, "concurrent take-overs of a lapsed claim");
    }
}

/// Claims key `key` with [`CLAIMANTS`] spawned tasks released together, tokens from `first_token`.
async fn race(store: &Arc<dyn Store>, scope: &Arc<Scope>, key: u8, first_token: i64) -> Vec<Claim> {
    let start = Arc::new(Barrier::new(usize::try_from(CLAIMANTS).unwrap_or(1)));
    let tasks: Vec<_> = (0..CLAIMANTS)
        .map(|n| {
            let (store, start) = (Arc::clone(store), Arc::clone(&start));
            let request = scope.request(key, 1, first_token + n, LONG, LONG);
            tokio::spawn(async move {
                start.wait().await;
                store.claim(&request).await
            })
        })
        .collect();
    let mut claims = Vec::with_capacity(tasks.len());
    for task in tasks {
        let claim = task.await.unwrap_or_else(|error| panic!("a claiming task failed: {error}"));
        claims.push(claim.unwrap_or_else(|error| panic!("a concurrent claim failed: {error}")));
    }
    claims
}

fn assert_acquired_once(claims: &[Claim], key: u8, took_over: bool, what: &str) {
    let acquired: Vec<_> = claims.iter().filter(|claim| matches!(claim, Claim::Acquired { .. })).collect();
    assert_eq!(
        acquired.len(),
        1,
        "claim atomicity broken: {what} of key {key} acquired {} times, not once: {claims:?}",
        acquired.len()
    );
    assert_eq!(acquired[0], &Claim::Acquired { took_over }, "{what} of key {key}: the winner's `took_over`");
    for claim in claims {
        if let Claim::Existing(record) = claim {
            assert!(
                matches!(record.state, RecordState::InProgress { lease_remaining } if lease_remaining > SHORT_LEASE),
                "{what} of key {key}: a loser must read the winner's claim in progress: {record:?}"
            );
        }
    }
}
