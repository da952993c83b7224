//! The purge: bounded batches that delete expired records only, and sweep the whole store.
//!
//! A store without a purge answers `purge_batch` with an error of kind [`StoreErrorKind::Unsupported`]: these
//! cases then fail, naming [`Kit::without_purge`](super::Kit::without_purge), which leaves them out explicitly (a
//! kit that passed them unrun would certify a purge nobody checked). They count what a pass deletes, so first they let every short-lived
//! record of the kit's other cases expire and purge them: the store may be shared with those cases, but not with
//! anything else writing expiring records meanwhile.

use std::time::Duration;

use super::fixture::{LONG, SHORT_TTL_BOUND, Scope, attempt_of, response};
use crate::record::RecordState;
use crate::store::purge::purge_expired;
use crate::store::{Store, StoreErrorKind};

/// Rule: a purge deletes every expired record and nothing else: neither a live completed record nor a claim in
/// progress under its lease (even past its ttl); a second pass finds nothing.
pub async fn purge_deletes_only_expired_records(store: &dyn Store) {
    purge_what_other_cases_left(store, "purge_deletes_only_expired_records").await;
    let scope = Scope::random();
    let short = Duration::from_millis(100);
    for key in 10..40u8 {
        let claim = scope.request(key, 1, i64::from(key), short, short);
        store.claim(&claim).await.unwrap();
        store.complete(&attempt_of(&claim), &response("expiring"), short).await.unwrap();
    }
    let live = scope.request(50, 1, 500, LONG, LONG);
    store.claim(&live).await.unwrap();
    store.complete(&attempt_of(&live), &response("kept"), LONG).await.unwrap();
    let running = scope.request(51, 1, 510, LONG, short);
    store.claim(&running).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let report = purge_expired(store, 7).await.unwrap();
    assert_eq!(report.deleted, 30, "a purge deletes exactly the 30 expired records: {report:?}");
    assert!(report.examined >= 32, "a pass examines every record: {report:?}");
    assert!(store.read(&live.id).await.unwrap().is_some(), "an unexpired record stays");
    let running_record = store.read(&running.id).await.unwrap().expect("an in-progress record under its lease stays");
    assert!(matches!(running_record.state, RecordState::InProgress { .. }), "still in progress");
    let again = purge_expired(store, 7).await.unwrap();
    assert_eq!(again.deleted, 0, "a second pass finds nothing to delete: {again:?}");
}

/// Rule: a purge batch is bounded (a batch of 100 neither examines every one of 601 records nor completes the
/// pass), and repeated batches sweep the whole store: 600 expired records deleted, the live one kept.
pub async fn purge_sweeps_a_large_store_in_bounded_batches(store: &dyn Store) {
    purge_what_other_cases_left(store, "purge_sweeps_a_large_store_in_bounded_batches").await;
    let scope = Scope::random();
    // 600 expired records (spread over many heap pages or shards) and one live one.
    let short = Duration::from_millis(100);
    for n in 0..600u16 {
        let mut claim = scope.request(0, 1, i64::from(n), short, short);
        claim.id.key_hash = [0xee; 32];
        claim.id.key_hash[..2].copy_from_slice(&n.to_le_bytes());
        store.claim(&claim).await.unwrap();
        store.complete(&attempt_of(&claim), &response("expiring"), short).await.unwrap();
    }
    let live = scope.request(70, 1, 700, LONG, LONG);
    store.claim(&live).await.unwrap();
    store.complete(&attempt_of(&live), &response("kept"), LONG).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let first = store.purge_batch(100).await.unwrap();
    assert!(!first.pass_complete, "one batch of 100 does not sweep 601 records: {first:?}");
    assert!(first.examined < 601, "a batch is bounded: {first:?}");
    let rest = purge_expired(store, 100).await.unwrap();
    assert_eq!(first.deleted + rest.deleted, 600, "the sweep deletes every expired record: {first:?} then {rest:?}");
    assert!(rest.batches >= 2, "the sweep took several bounded batches: {rest:?}");
    assert!(store.read(&live.id).await.unwrap().is_some(), "the live record stays");
    assert_eq!(purge_expired(store, 100).await.unwrap().deleted, 0, "a second pass finds nothing");
}

/// Lets the short-lived records other cases may have left expire and purges them (two passes: the first may start
/// mid-sweep).
///
/// # Panics
///
/// When the store does not purge (its `purge_batch` answers `Unsupported`): such a store leaves the purge cases out
/// with [`Kit::without_purge`](super::Kit::without_purge), or does not call them.
async fn purge_what_other_cases_left(store: &dyn Store, case: &str) {
    match store.purge_batch(1).await {
        Err(error) if error.kind() == StoreErrorKind::Unsupported => panic!(
            "{case}: the store does not support purge ({error}); a store without a purge leaves the purge cases \
             out explicitly, with `Kit::without_purge()`"
        ),
        answer => drop(answer.unwrap_or_else(|error| panic!("a purge batch failed: {error}"))),
    }
    tokio::time::sleep(SHORT_TTL_BOUND).await;
    for _pass in 0..2 {
        while !store
            .purge_batch(1_000)
            .await
            .unwrap_or_else(|error| panic!("a purge batch failed: {error}"))
            .pass_complete
        {}
    }
}
