//! A store that never answers (a third-party store without timeouts of its own) must not hang the request: the
//! runtime bounds every store call with its own timeout (`IdempotencyBuilder::store_timeout`,
//! `Receiver::store_timeout`), answering 503 `store-unavailable` with `Retry-After` over HTTP (the handler not run)
//! and `ReceiveError::StoreUnavailable` of kind `Timeout` to a receiver.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, post, web};
use idempotent_runtime::store::{
    Attempt, Claim, ClaimRequest, Completion, KeyStatus, LeaseState, PurgeBatch, Record, RecordId, StoredResponse,
};
use idempotent_runtime::{
    Digest, Idempotency, ReceiveError, Receiver, Store, StoreError, StoreErrorKind, async_trait, idempotent,
};

/// Every operation waits forever.
struct HungStore;

#[async_trait]
impl Store for HungStore {
    async fn claim(&self, _: &ClaimRequest) -> Result<Claim, StoreError> {
        std::future::pending().await
    }

    async fn heartbeat(&self, _: &Attempt, _: Duration) -> Result<LeaseState, StoreError> {
        std::future::pending().await
    }

    async fn complete(&self, _: &Attempt, _: &StoredResponse, _: Duration) -> Result<Completion, StoreError> {
        std::future::pending().await
    }

    async fn release(&self, _: &Attempt) -> Result<(), StoreError> {
        std::future::pending().await
    }

    async fn read(&self, _: &RecordId) -> Result<Option<Record>, StoreError> {
        std::future::pending().await
    }

    async fn lookup(&self, _: &Digest, _: &Digest) -> Result<Option<KeyStatus>, StoreError> {
        std::future::pending().await
    }

    async fn wait(&self, _: &RecordId, _: Duration) -> Result<(), StoreError> {
        std::future::pending().await
    }

    async fn purge_batch(&self, _: usize) -> Result<PurgeBatch, StoreError> {
        std::future::pending().await
    }
}

const TIMEOUT: Duration = Duration::from_millis(300);

/// An answer must come before this: just above the configured timeout and well below the default, so a
/// `store_timeout` that was ignored (the default applying instead) fails.
const BOUND: Duration = Duration::from_millis(1_800);
const _: () = assert!(BOUND.as_millis() < idempotent_runtime::DEFAULT_STORE_TIMEOUT.as_millis());

#[derive(Default)]
struct Runs(AtomicUsize);

#[post("/pay")]
#[idempotent(scope = "global")]
async fn pay(runs: web::Data<Runs>) -> HttpResponse {
    runs.0.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Created().finish()
}

#[actix_web::test]
async fn a_hung_store_answers_503_within_the_timeout_and_the_handler_does_not_run() {
    let runs = web::Data::new(Runs::default());
    let app_runs = runs.clone();
    let server = actix_test::start(move || {
        App::new()
            .app_data(
                Idempotency::builder(HungStore)
                    .store_timeout(TIMEOUT)
                    .store_retry_after(Duration::from_secs(2))
                    .build(),
            )
            .app_data(app_runs.clone())
            .service(pay)
    });
    let started = Instant::now();
    let mut response = server
        .post("/pay")
        .timeout(Duration::from_secs(30))
        .insert_header(("Idempotency-Key", "k-1"))
        .send_body("{}")
        .await
        .expect("the app answers");
    let took = started.elapsed();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers().get("retry-after").and_then(|value| value.to_str().ok()), Some("2"));
    let body: serde_json::Value = serde_json::from_slice(&response.body().await.expect("body")).expect("json");
    assert_eq!(body["type"], "https://idempotent.rs/problems/store-unavailable");
    assert!(took >= TIMEOUT, "answered after {took:?}, before the timeout");
    assert!(took < BOUND, "answered after {took:?}: the configured timeout was not applied");
    assert_eq!(runs.0.load(Ordering::SeqCst), 0, "the handler must not run");
}

#[tokio::test]
async fn a_hung_store_answers_store_unavailable_to_a_receiver() {
    let receiver = Receiver::new(HungStore).store_timeout(TIMEOUT);
    let ran = AtomicUsize::new(0);
    let started = Instant::now();
    let outcome = receiver
        .run("orders", "m-1", b"payload", || async {
            ran.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(b"done".to_vec())
        })
        .await;
    let took = started.elapsed();
    match outcome {
        Err(ReceiveError::StoreUnavailable(error)) => assert_eq!(error.kind(), StoreErrorKind::Timeout),
        other => panic!("expected StoreUnavailable, got {other:?}"),
    }
    assert!(took >= TIMEOUT, "answered after {took:?}, before the timeout");
    assert!(took < BOUND, "answered after {took:?}: the configured timeout was not applied");
    assert_eq!(ran.load(Ordering::SeqCst), 0, "the work must not run");
}
