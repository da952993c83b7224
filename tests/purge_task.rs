//! The background purge: started by the app, it deletes expired records on its own, in bounded batches, while
//! leaving live ones; dropping its handle stops it.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use idempotent_runtime::purge::spawn_purger;
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
