//! The PostgreSQL purge: started by the app, it deletes expired records on its own, in bounded batches at a capped
//! pace, while leaving live ones; dropping its handle stops it.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use idempotent_runtime::purge::{PurgePace, purge_expired_paced, spawn_purger};
use idempotent_runtime::store::{Attempt, ClaimRequest, RecordId, StoredResponse};
use idempotent_runtime::{PostgresStore, Store};
use support::postgres::TestSchema;

async fn completed(store: &dyn Store, key: u8, ttl: Duration) {
    let request = ClaimRequest {
        id: RecordId { scope_hash: [7; 32], key_hash: [key; 32], method: "POST".into(), route: "/purged".into() },
        fingerprint: [1; 32],
        token: i64::from(key),
        lease: Duration::from_millis(50),
        ttl,
    };
    store.claim(&request).await.expect("claim");
    let response = StoredResponse { status: StatusCode::OK, headers: vec![], body: Some(Bytes::from_static(b"x")) };
    store.complete(&Attempt { id: request.id, token: request.token }, &response, ttl).await.expect("complete");
}

#[actix_web::test]
async fn background_purge_deletes_expired_records_and_keeps_live_ones() {
    let schema = TestSchema::create().await;
    let pool = schema.pool(4);
    let store = PostgresStore::new(pool.clone());
    store.migrate().await.expect("migrate");
    let store: Arc<dyn Store> = Arc::new(store);
    for key in 0..25 {
        completed(&*store, key, Duration::from_millis(100)).await;
    }
    completed(&*store, 99, Duration::from_secs(3600)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let rows = || async {
        pool.get()
            .await
            .unwrap()
            .query_one("SELECT count(*) FROM idempotency_records", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    assert_eq!(rows().await, 26, "expired records stay until purged (reads already ignore them)");
    let task = spawn_purger(Arc::clone(&store), Duration::from_millis(50), 10);
    let deadline = Instant::now() + Duration::from_secs(10);
    while rows().await != 1 {
        assert!(Instant::now() < deadline, "the background purge did not run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.stop();
    // Stopped: records that expire from now on stay.
    completed(&*store, 50, Duration::from_millis(50)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rows().await, 2, "the stopped purge no longer runs");
    schema.drop_schema().await;
}

/// A purge batch commits without waiting for the disk (a purge lost in a crash is only done again), but only its
/// own transaction does: the connection goes back to the pool as it came, and the claims that use it next still
/// commit durably.
#[actix_web::test]
async fn a_purge_batch_leaves_its_connection_committing_durably() {
    let schema = TestSchema::create().await;
    // One connection: the purge's, then the claims'.
    let pool = schema.pool(1);
    let store = PostgresStore::new(pool.clone());
    store.migrate().await.expect("migrate");
    completed(&store, 1, Duration::from_millis(10)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let setting = || async {
        pool.get().await.unwrap().query_one("SHOW synchronous_commit", &[]).await.unwrap().get::<_, String>(0)
    };
    let before = setting().await;
    let batch = store.purge_batch(100).await.expect("purge");
    assert_eq!(batch.deleted, 1, "the expired record is purged");
    assert_eq!(setting().await, before, "the purge's asynchronous commit stays in its own transaction");
    schema.drop_schema().await;
}

/// The pace's cap holds: a purge capped at 200 deletes a second takes about a second to delete 200 records (each
/// batch waits out its records' share of the second), where one uncapped takes a few milliseconds.
#[actix_web::test]
async fn a_capped_purge_deletes_no_faster_than_its_cap() {
    let schema = TestSchema::create().await;
    let store = PostgresStore::new(schema.pool(2));
    store.migrate().await.expect("migrate");
    for key in 0..200 {
        completed(&store, key, Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let pace = PurgePace { batch: 20, rest: 0.0, max_deletes_per_second: Some(200) };
    let started = Instant::now();
    let report = purge_expired_paced(&store, pace).await.expect("purge");
    let took = started.elapsed();
    assert_eq!(report.deleted, 200, "every expired record is purged");
    assert!(report.batches > 2, "the purge ran in batches of about 20 records: {report:?}");
    // Every batch but the last waits out its share: at most one batch's records (well under 100) go unpaced.
    assert!(took >= Duration::from_millis(500), "200 records at 200 a second took {took:?}");
    schema.drop_schema().await;
}
