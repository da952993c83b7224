//! The `Store` contract without HTTP, once per store: what a crashed worker, a stale completion, a heartbeat, a
//! waiter and the purge must see. These are the cases HTTP cannot stage deterministically in one process (a worker
//! that stops heartbeating without its future being dropped).

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use idempotent_runtime::Store;
use idempotent_runtime::purge::purge_expired;
use idempotent_runtime::store::{
    Claim, ClaimRequest, Completion, Lease, LeaseState, MAX_WAIT_POLL_INTERVAL, RecordId, RecordState, StoredResponse,
};
use support::{Listening, StoreUnderTest};

fn request(key: u8, fingerprint: u8, token: i64, lease: Duration, ttl: Duration) -> ClaimRequest {
    ClaimRequest {
        id: RecordId { scope_hash: [1; 32], key_hash: [key; 32], method: "POST".into(), route: "/r".into() },
        fingerprint: [fingerprint; 32],
        token,
        lease,
        ttl,
    }
}

fn response(body: &'static str) -> StoredResponse {
    StoredResponse { status: StatusCode::CREATED, headers: vec![], body: Some(Bytes::from_static(body.as_bytes())) }
}

fn lease_of(request: &ClaimRequest) -> Lease {
    Lease { id: request.id.clone(), token: request.token }
}

const LONG: Duration = Duration::from_secs(3600);
const SHORT_LEASE: Duration = Duration::from_millis(300);

on_every_store!(
    store => &*store.store;
    one_claim_wins_and_the_record_is_replayed_after_completion,
    a_dead_workers_claim_is_taken_over_and_its_late_completion_is_fenced,
    a_completion_retried_with_its_own_lease_is_stored_not_fenced,
    a_different_request_cannot_take_over_a_lapsed_claim,
    heartbeat_keeps_a_claim_and_reports_a_lost_one,
    release_frees_the_key_and_a_stale_release_does_nothing,
    expired_records_read_as_absent_and_are_claimed_afresh,
    waiter_is_woken_by_completion_without_polling,
    waiter_is_woken_by_release,
    waiter_returns_at_its_timeout,
    claims_stay_exact_when_retries_dominate;
    purge: purge_deletes_only_expired_records,
    purge_sweeps_a_large_store_in_bounded_batches,
);

async fn one_claim_wins_and_the_record_is_replayed_after_completion(store: &dyn Store) {
    let first = request(1, 1, 11, LONG, LONG);
    assert_eq!(store.claim(&first).await.unwrap(), Claim::Acquired { took_over: false });
    let second = request(1, 1, 12, LONG, LONG);
    match store.claim(&second).await.unwrap() {
        Claim::Existing(record) => assert!(matches!(record.state, RecordState::InProgress { .. })),
        other => panic!("expected the in-flight record, got {other:?}"),
    }
    assert_eq!(store.complete(&lease_of(&first), &response("one"), LONG).await.unwrap(), Completion::Stored);
    match store.claim(&second).await.unwrap() {
        Claim::Existing(record) => {
            assert_eq!(record.fingerprint, [1; 32]);
            assert_eq!(record.state, RecordState::Completed(response("one")));
        }
        other => panic!("expected the completed record, got {other:?}"),
    }
    let read = store.read(&first.id).await.unwrap().expect("live record");
    assert_eq!(read.state, RecordState::Completed(response("one")));
}

async fn a_dead_workers_claim_is_taken_over_and_its_late_completion_is_fenced(store: &dyn Store) {
    let dead = request(2, 1, 21, SHORT_LEASE, LONG);
    assert_eq!(store.claim(&dead).await.unwrap(), Claim::Acquired { took_over: false });
    // The worker stops heartbeating (its process died); past the lease, a retry of the same request takes over.
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(100)).await;
    let retry = request(2, 1, 22, LONG, LONG);
    assert_eq!(store.claim(&retry).await.unwrap(), Claim::Acquired { took_over: true });
    // The dead worker was only paused: its completion must not overwrite the newer attempt.
    assert_eq!(store.complete(&lease_of(&dead), &response("stale"), LONG).await.unwrap(), Completion::Fenced);
    assert_eq!(store.heartbeat(&lease_of(&dead), LONG).await.unwrap(), LeaseState::Lost);
    store.release(&lease_of(&dead)).await.unwrap();
    assert_eq!(store.complete(&lease_of(&retry), &response("newer"), LONG).await.unwrap(), Completion::Stored);
    let record = store.read(&retry.id).await.unwrap().expect("live record");
    assert_eq!(record.state, RecordState::Completed(response("newer")));
}

/// A completion whose answer was lost (a timeout after it landed) is tried again with the same lease: the store
/// recognises its own completion instead of reporting it fenced.
async fn a_completion_retried_with_its_own_lease_is_stored_not_fenced(store: &dyn Store) {
    let original = request(10, 1, 101, LONG, LONG);
    store.claim(&original).await.unwrap();
    assert_eq!(store.complete(&lease_of(&original), &response("once"), LONG).await.unwrap(), Completion::Stored);
    assert_eq!(store.complete(&lease_of(&original), &response("once"), LONG).await.unwrap(), Completion::Stored);
    let stale = Lease { token: 999, ..lease_of(&original) };
    assert_eq!(store.complete(&stale, &response("other"), LONG).await.unwrap(), Completion::Fenced);
    let record = store.read(&original.id).await.unwrap().expect("live record");
    assert_eq!(record.state, RecordState::Completed(response("once")));
}

async fn a_different_request_cannot_take_over_a_lapsed_claim(store: &dyn Store) {
    let original = request(3, 1, 31, SHORT_LEASE, LONG);
    store.claim(&original).await.unwrap();
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(100)).await;
    match store.claim(&request(3, 2, 32, LONG, LONG)).await.unwrap() {
        Claim::Existing(record) => {
            assert_eq!(record.fingerprint, [1; 32], "the key still belongs to the first request");
            assert_eq!(record.state, RecordState::InProgress { lease_remaining: Duration::ZERO });
        }
        other => panic!("a different request must not take over: {other:?}"),
    }
}

async fn heartbeat_keeps_a_claim_and_reports_a_lost_one(store: &dyn Store) {
    let alive = request(4, 1, 41, SHORT_LEASE, LONG);
    store.claim(&alive).await.unwrap();
    for _ in 0..4 {
        tokio::time::sleep(SHORT_LEASE / 3).await;
        assert_eq!(store.heartbeat(&lease_of(&alive), SHORT_LEASE).await.unwrap(), LeaseState::Held);
    }
    // Well past the original lease: renewed, so a retry finds it in progress.
    match store.claim(&request(4, 1, 42, LONG, LONG)).await.unwrap() {
        Claim::Existing(record) => match record.state {
            RecordState::InProgress { lease_remaining } => assert!(lease_remaining > Duration::ZERO),
            other => panic!("expected in progress, got {other:?}"),
        },
        other => panic!("a live, heartbeating claim must not be taken over: {other:?}"),
    }
    store.complete(&lease_of(&alive), &response("done"), LONG).await.unwrap();
    assert_eq!(store.heartbeat(&lease_of(&alive), SHORT_LEASE).await.unwrap(), LeaseState::Lost, "completed");
}

async fn release_frees_the_key_and_a_stale_release_does_nothing(store: &dyn Store) {
    let first = request(5, 1, 51, LONG, LONG);
    store.claim(&first).await.unwrap();
    store.release(&lease_of(&first)).await.unwrap();
    assert_eq!(store.read(&first.id).await.unwrap(), None);
    let second = request(5, 1, 52, LONG, LONG);
    assert_eq!(store.claim(&second).await.unwrap(), Claim::Acquired { took_over: false });
    store.release(&lease_of(&first)).await.unwrap();
    assert!(store.read(&second.id).await.unwrap().is_some(), "another attempt's release cannot free this claim");
    store.complete(&lease_of(&second), &response("kept"), LONG).await.unwrap();
    store.release(&lease_of(&second)).await.unwrap();
    assert!(store.read(&second.id).await.unwrap().is_some(), "a completed record is never released");
}

async fn expired_records_read_as_absent_and_are_claimed_afresh(store: &dyn Store) {
    let first = request(6, 1, 61, Duration::from_millis(100), Duration::from_millis(200));
    store.claim(&first).await.unwrap();
    store.complete(&lease_of(&first), &response("old"), Duration::from_millis(200)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.read(&first.id).await.unwrap(), None, "expiry is checked on read");
    let different = request(6, 9, 62, LONG, LONG);
    assert_eq!(store.claim(&different).await.unwrap(), Claim::Acquired { took_over: true }, "a fresh request");
}

async fn waiter_is_woken_by_completion_without_polling(store: &dyn Store) {
    let original = request(7, 1, 71, LONG, LONG);
    store.claim(&original).await.unwrap();
    let started = Instant::now();
    let waiting = store.wait(&original.id, Duration::from_secs(20));
    let completing = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        store.complete(&lease_of(&original), &response("done"), LONG).await.unwrap();
    };
    let (waited, ()) = tokio::join!(waiting, completing);
    waited.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "woken by the completion, not the 20 s timeout");
}

async fn waiter_is_woken_by_release(store: &dyn Store) {
    let original = request(8, 1, 81, LONG, LONG);
    store.claim(&original).await.unwrap();
    let started = Instant::now();
    let releasing = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        store.release(&lease_of(&original)).await.unwrap();
    };
    let (waited, ()) = tokio::join!(store.wait(&original.id, Duration::from_secs(20)), releasing);
    waited.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "woken by the release");
    // A record that is not in progress returns at once.
    let started = Instant::now();
    store.wait(&original.id, Duration::from_secs(20)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
}

async fn waiter_returns_at_its_timeout(store: &dyn Store) {
    let original = request(9, 1, 91, LONG, LONG);
    store.claim(&original).await.unwrap();
    let started = Instant::now();
    store.wait(&original.id, Duration::from_millis(300)).await.unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(5), "waited {waited:?}");
}

async fn purge_deletes_only_expired_records(store: &dyn Store) {
    let short = Duration::from_millis(100);
    for key in 10..40u8 {
        let claim = request(key, 1, i64::from(key), short, short);
        store.claim(&claim).await.unwrap();
        store.complete(&lease_of(&claim), &response("expiring"), short).await.unwrap();
    }
    let live = request(50, 1, 500, LONG, LONG);
    store.claim(&live).await.unwrap();
    store.complete(&lease_of(&live), &response("kept"), LONG).await.unwrap();
    let running = request(51, 1, 510, LONG, short);
    store.claim(&running).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let report = purge_expired(store, 7).await.unwrap();
    assert_eq!(report.deleted, 30, "{report:?}");
    assert!(report.examined >= 32, "{report:?}");
    assert!(store.read(&live.id).await.unwrap().is_some(), "an unexpired record stays");
    let running_record = store.read(&running.id).await.unwrap().expect("an in-progress record under its lease stays");
    assert!(matches!(running_record.state, RecordState::InProgress { .. }));
    let again = purge_expired(store, 7).await.unwrap();
    assert_eq!(again.deleted, 0);
}

async fn purge_sweeps_a_large_store_in_bounded_batches(store: &dyn Store) {
    // 600 expired records (spread over many heap pages or shards) and one live one.
    let short = Duration::from_millis(100);
    for n in 0..600u16 {
        let mut claim = request(0, 1, i64::from(n), short, short);
        claim.id.key_hash = [0xee; 32];
        claim.id.key_hash[..2].copy_from_slice(&n.to_le_bytes());
        store.claim(&claim).await.unwrap();
        store.complete(&lease_of(&claim), &response("expiring"), short).await.unwrap();
    }
    let live = request(70, 1, 700, LONG, LONG);
    store.claim(&live).await.unwrap();
    store.complete(&lease_of(&live), &response("kept"), LONG).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let first = store.purge_batch(100).await.unwrap();
    assert!(!first.pass_complete, "one batch of 100 does not sweep 601 records: {first:?}");
    assert!(first.examined < 601, "a batch is bounded: {first:?}");
    let rest = purge_expired(store, 100).await.unwrap();
    assert_eq!(first.deleted + rest.deleted, 600, "{first:?} then {rest:?}");
    assert!(rest.batches >= 2, "the sweep took several bounded batches: {rest:?}");
    assert!(store.read(&live.id).await.unwrap().is_some(), "the live record stays");
    assert_eq!(purge_expired(store, 100).await.unwrap().deleted, 0, "a second pass finds nothing");
}

async fn claims_stay_exact_when_retries_dominate(store: &dyn Store) {
    // Many retries of a completed key: a store may change how it claims (PostgreSQL starts reading first).
    let done = request(60, 1, 600, LONG, LONG);
    store.claim(&done).await.unwrap();
    store.complete(&lease_of(&done), &response("done"), LONG).await.unwrap();
    for token in 0..64 {
        assert!(matches!(store.claim(&request(60, 1, 601 + token, LONG, LONG)).await.unwrap(), Claim::Existing(_)));
    }
    // Whatever the order, every answer is the same as before.
    let fresh = request(61, 1, 700, LONG, LONG);
    assert_eq!(store.claim(&fresh).await.unwrap(), Claim::Acquired { took_over: false });
    match store.claim(&request(61, 1, 701, LONG, LONG)).await.unwrap() {
        Claim::Existing(record) => assert!(matches!(record.state, RecordState::InProgress { .. })),
        other => panic!("the fresh key is in flight: {other:?}"),
    }
    let concurrent =
        futures_util::future::join_all((0..10).map(|token| store.claim_owned(request(62, 1, 800 + token, LONG, LONG))))
            .await;
    let acquired = concurrent.iter().filter(|claim| matches!(claim, Claim::Acquired { .. })).count();
    assert_eq!(acquired, 1, "one of ten concurrent claims wins: {concurrent:?}");
    let dead = request(63, 1, 900, SHORT_LEASE, LONG);
    assert_eq!(store.claim(&dead).await.unwrap(), Claim::Acquired { took_over: false });
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(100)).await;
    assert_eq!(store.claim(&request(63, 1, 901, LONG, LONG)).await.unwrap(), Claim::Acquired { took_over: true });
}

/// Claims with an owned request, for concurrent claims in one `join_all`.
trait ClaimOwned {
    async fn claim_owned(&self, request: ClaimRequest) -> Claim;
}

impl ClaimOwned for dyn Store {
    async fn claim_owned(&self, request: ClaimRequest) -> Claim {
        self.claim(&request).await.expect("claim")
    }
}

/// How long after a completion returned its waiter returned, over a few rounds (the worst is reported).
async fn wake_up_latency(store: &dyn Store, rounds: u8) -> Duration {
    let mut worst = Duration::ZERO;
    for round in 0..rounds {
        let original = request(100 + round, 1, 1_000 + i64::from(round), LONG, LONG);
        store.claim(&original).await.unwrap();
        let waiting = async {
            store.wait(&original.id, Duration::from_secs(20)).await.unwrap();
            Instant::now()
        };
        let completing = async {
            // Long enough for the waiter to be registered (it subscribes, then marks the record).
            tokio::time::sleep(Duration::from_millis(300)).await;
            store.complete(&lease_of(&original), &response("done"), LONG).await.unwrap();
            Instant::now()
        };
        let (woken, completed) = tokio::join!(waiting, completing);
        worst = worst.max(woken.saturating_duration_since(completed));
    }
    worst
}

/// Behind PgBouncer, with the direct listening connection: woken by notification within 100 ms.
#[actix_web::test]
async fn behind_pgbouncer_a_waiter_is_woken_within_100_ms_by_the_direct_listening_connection() {
    let store = StoreUnderTest::pgbouncer_listening(Listening::Direct).await;
    let worst = wake_up_latency(&*store.store, 5).await;
    support::report_figure(&format!(
        "PgBouncer, direct listening connection: waiter woken {worst:?} after the completion (worst of 5)"
    ));
    assert!(worst < Duration::from_millis(100), "woken {worst:?} after the completion");
    store.cleanup().await;
}

/// Behind PgBouncer without a listening connection: the waiter polls, and learns of the completion within the
/// polling interval's bound (plus the look itself).
#[actix_web::test]
async fn behind_pgbouncer_without_a_listening_connection_a_waiter_learns_within_the_polling_bound() {
    let store = StoreUnderTest::pgbouncer_listening(Listening::None).await;
    let worst = wake_up_latency(&*store.store, 5).await;
    support::report_figure(&format!(
        "PgBouncer, no listening connection (polling, bound {MAX_WAIT_POLL_INTERVAL:?}): waiter returned {worst:?} after the completion (worst of 5)"
    ));
    assert!(worst < MAX_WAIT_POLL_INTERVAL + Duration::from_millis(100), "returned {worst:?} after the completion");
    store.cleanup().await;
}

/// A listening connection that cannot connect does not strand waiters: they poll.
#[actix_web::test]
async fn a_listening_connection_that_cannot_connect_falls_back_to_polling() {
    let store = StoreUnderTest::pgbouncer_listening(Listening::Unreachable).await;
    let worst = wake_up_latency(&*store.store, 3).await;
    support::report_figure(&format!(
        "unreachable listening connection (polling): waiter returned {worst:?} after the completion (worst of 3)"
    ));
    assert!(worst < MAX_WAIT_POLL_INTERVAL + Duration::from_millis(100), "returned {worst:?} after the completion");
    store.cleanup().await;
}
