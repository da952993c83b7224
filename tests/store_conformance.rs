//! The `Store` contract without HTTP, once per store: the cases of the conformance kit
//! (`idempotent_runtime::store::testing`), each as a test of its own on every store, so that a failure names the
//! case and the store. They stage what HTTP cannot stage deterministically in one process (a worker that stops
//! heartbeating without its future being dropped). The store-specific tests are at the bottom.

#[macro_use]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use idempotent_runtime::Store;
use idempotent_runtime::store::testing::{self, *};
use idempotent_runtime::store::{Attempt, ClaimRequest, MAX_WAIT_POLL_INTERVAL, RecordId, StoredResponse};
use support::{Listening, StoreUnderTest};

on_every_store!(
    store => &*store.store;
    // Claims.
    one_claim_wins_and_the_record_is_replayed_after_completion,
    claims_stay_exact_when_retries_dominate,
    // Take-over and fencing.
    a_dead_workers_claim_is_taken_over_and_its_late_completion_is_fenced,
    a_different_request_cannot_take_over_a_lapsed_claim,
    an_expired_claim_is_taken_over_by_any_request,
    a_stale_token_cannot_complete_renew_or_release_the_new_claim,
    a_running_claim_outlives_its_ttl_until_its_lease_ends,
    // Heartbeat.
    heartbeat_keeps_a_claim_and_reports_a_lost_one,
    a_late_heartbeat_renews_a_lapsed_lease_nobody_took_over,
    a_heartbeat_keeps_a_claim_past_its_ttl,
    heartbeat_of_a_token_the_record_does_not_carry_is_lost,
    // Completion and release.
    a_completion_retried_with_its_own_lease_is_stored_not_fenced,
    release_frees_the_key_and_a_stale_release_does_nothing,
    a_completion_keeps_status_headers_and_body_exactly,
    a_completion_keeps_the_record_for_its_own_ttl_not_the_lease,
    // Waiters.
    waiter_is_woken_by_completion,
    waiter_is_woken_by_release,
    waiter_returns_at_its_timeout,
    waiter_on_a_dead_workers_claim_returns_once_the_lease_lapses,
    waiter_of_a_dead_worker_takes_over_once_the_lease_lapses,
    waiter_on_a_taken_over_record_is_woken_by_the_new_attempts_completion,
    // Reads, lookups and expiry.
    expired_records_read_as_absent_and_are_claimed_afresh,
    lookup_finds_the_most_recent_live_record_on_any_route,
    lookup_never_reports_another_scopes_record,
    lookup_ignores_expired_records;
    purge: purge_deletes_only_expired_records,
    purge_sweeps_a_large_store_in_bounded_batches,
);

/// Runs each listed case that spawns its claims (it takes the store itself) on every store, on a multi-thread
/// runtime so that the claims run in parallel, as tests `case::memory`, `case::postgres`, `case::pgbouncer`,
/// `case::redis` and `case::redis_cluster`.
macro_rules! in_parallel_on_every_store {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                in_parallel_on_every_store!(@store $case: memory, postgres, pgbouncer, redis, redis_cluster);
            }
        )*
    };
    (@store $case:ident: $($kind:ident),*) => {
        $(
            #[test]
            fn $kind() {
                super::testing::block_on(async {
                    let store = crate::support::StoreUnderTest::$kind().await;
                    super::$case(std::sync::Arc::clone(&store.store)).await;
                    store.cleanup().await;
                });
            }
        )*
    };
}

in_parallel_on_every_store!(
    concurrent_claims_of_one_record_acquire_exactly_once,
    concurrent_take_overs_of_a_lapsed_claim_acquire_exactly_once,
    a_store_that_stops_answering_is_bounded_by_the_runtimes_timeout,
);

/// The whole kit in one run on one store (cases sharing it), as a third-party store runs it.
#[test]
fn the_whole_kit_passes_on_the_memory_store_in_one_run() {
    testing::block_on(testing::run_all(Arc::new(idempotent_runtime::MemoryStore::new())));
}

const LONG: Duration = Duration::from_secs(3600);

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

fn attempt_of(request: &ClaimRequest) -> Attempt {
    Attempt { id: request.id.clone(), token: request.token }
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
            store.complete(&attempt_of(&original), &response("done"), LONG).await.unwrap();
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
