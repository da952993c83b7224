//! The receiver (the idempotency core off HTTP), once per store: a closure runs once per key and redeliveries get
//! its stored result; failures, panics and cancellation free the key; the heartbeat keeps a slow run's claim.

#[macro_use]
mod support;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use idempotent_runtime::store::RecordState;
use idempotent_runtime::store::testing::CountingWaits;
use idempotent_runtime::{PostgresStore, ReceiveError, Received, Receiver, Store, StoreErrorKind};
use serde::{Deserialize, Serialize};
use support::eventually;
use support::postgres::pool_for;
use tokio::sync::Semaphore;

const NAMESPACE: &str = "orders-consumer";

on_every_store!(
    store => store.store.clone();
    runs_once_and_replays_the_stored_result,
    json_results_round_trip,
    a_different_payload_is_key_reused,
    concurrent_deliveries_run_once_and_the_others_are_in_flight,
    concurrent_deliveries_in_wait_mode_get_the_replay,
    an_error_releases_the_key,
    cancellation_releases_the_key_at_once,
    a_panic_releases_the_key_and_resumes,
    the_heartbeat_keeps_a_slow_runs_claim_past_its_lease,
);

/// How many times a closure ran.
#[derive(Clone, Default)]
struct Runs(Arc<AtomicUsize>);

impl Runs {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    /// A closure that counts its run and returns `result`.
    fn returning(
        &self,
        result: &'static str,
    ) -> impl FnOnce() -> std::future::Ready<Result<&'static [u8], std::io::Error>> + use<> {
        let runs = self.0.clone();
        move || {
            runs.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok(result.as_bytes()))
        }
    }
}

/// A delivery of `key` that is inside its closure when this returns, and finishes when the gate is opened.
struct Held {
    delivery: tokio::task::JoinHandle<Result<Received, ReceiveError<std::io::Error>>>,
    gate: Arc<Semaphore>,
}

impl Held {
    async fn start(receiver: &Receiver, key: &'static str, payload: &'static str, result: &'static str) -> Self {
        let (gate, started) = (Arc::new(Semaphore::new(0)), Arc::new(Semaphore::new(0)));
        let delivery = tokio::spawn({
            let (receiver, gate, started) = (receiver.clone(), gate.clone(), started.clone());
            async move {
                receiver
                    .run(NAMESPACE, key, payload, || async move {
                        started.add_permits(1);
                        let _permit = gate.acquire().await.unwrap();
                        Ok::<_, std::io::Error>(result)
                    })
                    .await
            }
        });
        let _started =
            tokio::time::timeout(Duration::from_secs(10), started.acquire()).await.expect("the closure starts");
        Self { delivery, gate }
    }

    async fn finish(self) -> Received {
        self.gate.add_permits(1);
        self.delivery.await.unwrap().unwrap_or_else(|error| panic!("{error}"))
    }
}

fn received(outcome: &Received) -> (&[u8], bool) {
    (&outcome.result[..], outcome.replayed)
}

async fn runs_once_and_replays_the_stored_result(store: Arc<dyn Store>) {
    let receiver = Receiver::new(store.clone());
    let runs = Runs::default();
    let first = receiver.run(NAMESPACE, "m-1", "payload", runs.returning("first")).await.unwrap();
    assert_eq!(received(&first), (b"first".as_slice(), false));
    for _ in 0..3 {
        let again = receiver.run(NAMESPACE, "m-1", "payload", runs.returning("second")).await.unwrap();
        assert_eq!(received(&again), (b"first".as_slice(), true), "the stored result, not a new run");
    }
    assert_eq!(runs.count(), 1);

    // The record is where the docs say, with the result as a 200 body.
    let record = store.read(&Receiver::record_id(NAMESPACE, "m-1")).await.unwrap().expect("a live record");
    match record.state {
        RecordState::Completed(stored) => {
            assert_eq!(stored.status.as_u16(), 200);
            assert!(stored.headers.is_empty());
            assert_eq!(stored.body.as_deref(), Some(b"first".as_slice()));
        }
        other => panic!("expected a completed record, got {other:?}"),
    }

    // Another key, or the same key in another namespace, is another record.
    let other_key = receiver.run(NAMESPACE, "m-2", "payload", runs.returning("other key")).await.unwrap();
    assert_eq!(received(&other_key), (b"other key".as_slice(), false));
    let other_namespace = receiver.run("billing", "m-1", "payload", runs.returning("billing")).await.unwrap();
    assert_eq!(received(&other_namespace), (b"billing".as_slice(), false));
    assert_eq!(runs.count(), 3);
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Receipt {
    entry: u64,
    note: String,
}

async fn json_results_round_trip(store: Arc<dyn Store>) {
    let receiver = Receiver::new(store);
    let runs = Runs::default();
    for expected_replay in [false, true] {
        let runs = runs.clone();
        let outcome = receiver
            .run_json(NAMESPACE, "m-json", b"{}", || async move {
                runs.0.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(Receipt { entry: 7, note: "applied".into() })
            })
            .await
            .unwrap();
        assert_eq!(
            outcome,
            Received { result: Receipt { entry: 7, note: "applied".into() }, replayed: expected_replay }
        );
    }
    assert_eq!(runs.count(), 1);

    // A stored result read back as a type it is not: an error, not a panic nor a new run.
    let wrong = receiver.run_json(NAMESPACE, "m-json", b"{}", || async { Ok::<u64, std::io::Error>(1) }).await;
    assert!(matches!(wrong, Err(ReceiveError::Json(_))), "{wrong:?}");
}

async fn a_different_payload_is_key_reused(store: Arc<dyn Store>) {
    let receiver = Receiver::new(store);
    let runs = Runs::default();
    receiver.run(NAMESPACE, "m-1", "payload A", runs.returning("A")).await.unwrap();
    let reused = receiver.run(NAMESPACE, "m-1", "payload B", runs.returning("B")).await;
    assert!(matches!(reused, Err(ReceiveError::KeyReused)), "{reused:?}");
    assert_eq!(runs.count(), 1, "the closure did not run for the other payload");

    // Also while the first delivery is still running (checked before in flight, as over HTTP).
    let held = Held::start(&receiver, "m-2", "payload A", "A").await;
    let reused = receiver.run(NAMESPACE, "m-2", "payload B", runs.returning("B")).await;
    assert!(matches!(reused, Err(ReceiveError::KeyReused)), "{reused:?}");
    assert_eq!(received(&held.finish().await), (b"A".as_slice(), false));
    assert_eq!(runs.count(), 1);
}

/// Ten deliveries of one key at once; the closure holds until `release` is given permits.
async fn deliver_concurrently(
    receiver: &Receiver,
    runs: &Runs,
    gate: &Arc<Semaphore>,
) -> Vec<tokio::task::JoinHandle<Result<Received, ReceiveError<std::io::Error>>>> {
    (0..10)
        .map(|_| {
            let (receiver, runs, gate) = (receiver.clone(), runs.clone(), gate.clone());
            tokio::spawn(async move {
                receiver
                    .run(NAMESPACE, "m-concurrent", "payload", || async move {
                        runs.0.fetch_add(1, Ordering::SeqCst);
                        let _permit = gate.acquire().await.unwrap();
                        Ok::<_, std::io::Error>("the one run")
                    })
                    .await
            })
        })
        .collect()
}

async fn concurrent_deliveries_run_once_and_the_others_are_in_flight(store: Arc<dyn Store>) {
    let receiver = Receiver::new(store);
    let (runs, gate) = (Runs::default(), Arc::new(Semaphore::new(0)));
    let deliveries = deliver_concurrently(&receiver, &runs, &gate).await;
    // Nine deliveries answer while the first is held in its closure.
    assert!(
        eventually(Duration::from_secs(10), || deliveries.iter().filter(|delivery| delivery.is_finished()).count()
            == 9)
        .await
    );
    gate.add_permits(1);
    let (mut ran, mut in_flight) = (0, 0);
    for delivery in deliveries {
        match delivery.await.unwrap() {
            Ok(outcome) => {
                assert_eq!(received(&outcome), (b"the one run".as_slice(), false));
                ran += 1;
            }
            Err(ReceiveError::InFlight { retry_after }) => {
                assert!(retry_after > Duration::ZERO && retry_after <= idempotent_runtime::DEFAULT_LEASE);
                in_flight += 1;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((ran, in_flight, runs.count()), (1, 9, 1));
}

async fn concurrent_deliveries_in_wait_mode_get_the_replay(store: Arc<dyn Store>) {
    let waits = CountingWaits::new(store);
    let receiver = Receiver::new(waits.clone()).on_conflict_wait(Duration::from_secs(10));
    let (runs, gate) = (Runs::default(), Arc::new(Semaphore::new(0)));
    let deliveries = deliver_concurrently(&receiver, &runs, &gate).await;
    assert!(eventually(Duration::from_secs(5), || runs.count() == 1).await, "one delivery runs the closure");
    // The nine others are waiting on the record before the first may finish.
    assert!(eventually(Duration::from_secs(10), || waits.waits() >= 9).await, "{} of 9 waited", waits.waits());
    assert_eq!(deliveries.iter().filter(|delivery| delivery.is_finished()).count(), 0, "nobody answered early");
    gate.add_permits(1);
    let mut replayed = 0;
    for delivery in deliveries {
        let outcome = delivery.await.unwrap().unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(&outcome.result[..], b"the one run");
        replayed += usize::from(outcome.replayed);
    }
    assert_eq!((replayed, runs.count()), (9, 1));
}

async fn an_error_releases_the_key(store: Arc<dyn Store>) {
    let receiver = Receiver::new(store);
    let runs = Runs::default();
    let failed = receiver
        .run(NAMESPACE, "m-1", "payload", || {
            runs.0.fetch_add(1, Ordering::SeqCst);
            async { Err::<&[u8], _>(std::io::Error::other("ledger down")) }
        })
        .await;
    match failed {
        Err(ReceiveError::Failed(error)) => assert_eq!(error.to_string(), "ledger down"),
        other => panic!("expected the closure's error, got {other:?}"),
    }
    // At once, without waiting for the lease: the redelivery runs again, and its result is stored.
    let retried = receiver.run(NAMESPACE, "m-1", "payload", runs.returning("second try")).await.unwrap();
    assert_eq!(received(&retried), (b"second try".as_slice(), false));
    assert_eq!(runs.count(), 2);
}

async fn cancellation_releases_the_key_at_once(store: Arc<dyn Store>) {
    let receiver = Receiver::new(store);
    let runs = Runs::default();
    let never = Arc::new(Semaphore::new(0));
    let started = Arc::new(Semaphore::new(0));
    let delivery = receiver.run(NAMESPACE, "m-1", "payload", {
        let (never, started) = (never.clone(), started.clone());
        || async move {
            started.add_permits(1);
            let _permit = never.acquire().await.unwrap();
            Ok::<_, std::io::Error>("never")
        }
    });
    // The future is dropped at the timeout, mid-closure (the consumer shut down, a timeout fired).
    let timed_out = tokio::time::timeout(Duration::from_millis(300), delivery).await;
    assert!(timed_out.is_err());
    assert_eq!(started.available_permits(), 1, "the closure had started");
    // The default lease is 30 s; the key is free long before.
    let waiting = receiver.clone().on_conflict_wait(Duration::from_secs(10));
    let freed = Instant::now();
    let redelivery = waiting.run(NAMESPACE, "m-1", "payload", runs.returning("redelivered")).await.unwrap();
    assert_eq!(received(&redelivery), (b"redelivered".as_slice(), false));
    assert!(freed.elapsed() < Duration::from_secs(5), "released at once, took {:?}", freed.elapsed());
    assert_eq!(runs.count(), 1);
}

async fn a_panic_releases_the_key_and_resumes(store: Arc<dyn Store>) {
    let receiver = Receiver::new(store);
    let panicked = AssertUnwindSafe(receiver.run(NAMESPACE, "m-1", "payload", || async {
        if true {
            panic!("boom");
        }
        Ok::<&[u8], std::io::Error>(b"unreachable")
    }))
    .catch_unwind()
    .await;
    let payload = panicked.expect_err("the panic resumes in the caller");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    // Released before the panic resumed: the redelivery runs now.
    let runs = Runs::default();
    let redelivery = receiver.run(NAMESPACE, "m-1", "payload", runs.returning("after the panic")).await.unwrap();
    assert_eq!(received(&redelivery), (b"after the panic".as_slice(), false));
}

async fn the_heartbeat_keeps_a_slow_runs_claim_past_its_lease(store: Arc<dyn Store>) {
    const LEASE: Duration = Duration::from_millis(300);
    let receiver = Receiver::new(store.clone()).lease(LEASE);
    let runs = Runs::default();
    let slow = tokio::spawn({
        let (receiver, runs) = (receiver.clone(), runs.clone());
        async move {
            receiver
                .run(NAMESPACE, "m-slow", "payload", || async move {
                    runs.0.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(LEASE * 5).await;
                    Ok::<_, std::io::Error>("slow")
                })
                .await
        }
    });
    assert!(eventually(Duration::from_secs(5), || runs.count() == 1).await);
    // Long past the lease, the slow run's claim still holds: a redelivery is in flight, not a take-over.
    tokio::time::sleep(LEASE * 3).await;
    let redelivery = receiver.run(NAMESPACE, "m-slow", "payload", runs.returning("took over")).await;
    assert!(matches!(redelivery, Err(ReceiveError::InFlight { .. })), "{redelivery:?}");
    assert_eq!(runs.count(), 1);
    let first = slow.await.unwrap().unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(received(&first), (b"slow".as_slice(), false));
    let replay = receiver.run(NAMESPACE, "m-slow", "payload", runs.returning("again")).await.unwrap();
    assert_eq!(received(&replay), (b"slow".as_slice(), true), "its result was stored, not fenced");
}

#[actix_web::test]
async fn an_unreachable_store_is_store_unavailable_and_the_closure_does_not_run() {
    // Bind then drop: the port is free and nothing listens on it, so connecting is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let pool = pool_for(&format!("postgres://postgres@127.0.0.1:{port}/postgres"), None, 4);
    let receiver = Receiver::new(PostgresStore::new(pool).with_timeout(Duration::from_millis(500)));
    let runs = Runs::default();
    for key in ["a", "a", "b"] {
        match receiver.run(NAMESPACE, key, "payload", runs.returning("never")).await {
            Err(error @ ReceiveError::StoreUnavailable(_)) => {
                let ReceiveError::StoreUnavailable(store_error) = &error else { unreachable!() };
                assert!(matches!(store_error.kind(), StoreErrorKind::Unavailable | StoreErrorKind::Timeout));
                assert!(std::error::Error::source(&error).is_some());
                assert!(error.to_string().contains("did not run"), "{error}");
            }
            other => panic!("expected StoreUnavailable, got {other:?}"),
        }
    }
    assert_eq!(runs.count(), 0);
}

/// Without a listening connection (a pooled deployment that gave none), a waiting delivery polls the record and
/// replays the original's result once it is stored.
#[actix_web::test]
async fn waiting_on_a_postgres_store_without_listener_polls_and_replays() {
    let schema = support::postgres::TestSchema::create().await;
    let store = PostgresStore::new(schema.pool(4));
    store.migrate().await.unwrap();
    let waits = CountingWaits::new(store);
    let receiver = Receiver::new(waits.clone()).on_conflict_wait(Duration::from_secs(5));
    let held = Held::start(&receiver, "m-1", "payload", "first").await;
    let runs = Runs::default();
    let waiting = receiver.run(NAMESPACE, "m-1", "payload", runs.returning("second"));
    let finishing = async {
        assert!(eventually(Duration::from_secs(10), || waits.waits() >= 1).await, "the delivery never waited");
        held.finish().await
    };
    let (waited, original) = tokio::join!(waiting, finishing);
    let waited = waited.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(received(&original), (b"first".as_slice(), false));
    assert_eq!(received(&waited), (b"first".as_slice(), true), "the waiter replays the original's result");
    assert_eq!(runs.count(), 0);
    schema.drop_schema().await;
}
