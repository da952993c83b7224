//! A completion that fails is retried, not abandoned: the handler has run, and a response left unstored would let
//! a retry after the lease run it a second time. The store's failures are injected (a wrapper around the memory
//! store), so each case is staged exactly; the outage suites (`reliability`) show the same on real servers.
//!
//! The metrics recorder is process-wide: it is installed once, and each test uses its own route label.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, post, web};
use idempotent_runtime::observe::ABANDONED_COMPLETIONS;
use idempotent_runtime::store::{
    Attempt, Claim, ClaimRequest, Completion, KeyStatus, LeaseState, PurgeBatch, Record, RecordId, StoredResponse,
};
use idempotent_runtime::{Idempotency, MemoryStore, Store, StoreError, StoreErrorKind, async_trait, idempotent};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// How the wrapped store's completion misbehaves.
#[derive(Clone, Copy)]
enum Fault {
    /// The first `n` completions fail without writing anything (the store was unreachable).
    FailFirst(usize),
    /// The first completion lands, then fails anyway (its answer was lost: a timeout, a cut connection).
    LandThenFail,
    /// Every completion fails, and the heartbeat reports the lease lost (another attempt took the record over).
    FailWithLostLease,
}

struct Faulty {
    inner: MemoryStore,
    fault: Fault,
    completions: AtomicUsize,
    heartbeats: AtomicUsize,
    runs: AtomicUsize,
}

fn unreachable_store() -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, "injected: the store did not answer")
}

#[async_trait]
impl Store for Faulty {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        self.inner.claim(request).await
    }
    async fn heartbeat(&self, lease: &Attempt, duration: Duration) -> Result<LeaseState, StoreError> {
        self.heartbeats.fetch_add(1, Ordering::SeqCst);
        match self.fault {
            Fault::FailWithLostLease => Ok(LeaseState::Lost),
            _ => self.inner.heartbeat(lease, duration).await,
        }
    }
    async fn complete(
        &self,
        lease: &Attempt,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<Completion, StoreError> {
        let attempt = self.completions.fetch_add(1, Ordering::SeqCst) + 1;
        match self.fault {
            Fault::FailFirst(failures) if attempt <= failures => Err(unreachable_store()),
            Fault::LandThenFail if attempt == 1 => {
                self.inner.complete(lease, response, ttl).await?;
                Err(StoreError::new(StoreErrorKind::Timeout, "injected: the completion landed, its answer was lost"))
            }
            Fault::FailWithLostLease => Err(unreachable_store()),
            _ => self.inner.complete(lease, response, ttl).await,
        }
    }
    async fn release(&self, lease: &Attempt) -> Result<(), StoreError> {
        self.inner.release(lease).await
    }
    async fn read(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        self.inner.read(id).await
    }
    async fn lookup(&self, scope: &[u8; 32], key: &[u8; 32]) -> Result<Option<KeyStatus>, StoreError> {
        self.inner.lookup(scope, key).await
    }
    async fn wait(&self, id: &RecordId, timeout: Duration) -> Result<(), StoreError> {
        self.inner.wait(id, timeout).await
    }
    async fn purge_batch(&self, limit: usize) -> Result<PurgeBatch, StoreError> {
        self.inner.purge_batch(limit).await
    }
}

/// Pays (counts a run); the lease is long, so only the heartbeat's verdict can end the retries early.
#[post("/pay/{case}")]
#[idempotent(scope = "global", lease = "30s")]
async fn pay(store: web::Data<Arc<Faulty>>) -> HttpResponse {
    pay_once(&store)
}

/// [`pay`] on a route of its own, so that its counters are its own.
#[post("/pay-until-the-bound")]
#[idempotent(scope = "global", lease = "30s")]
async fn pay_until_the_bound(store: web::Data<Arc<Faulty>>) -> HttpResponse {
    pay_once(&store)
}

fn pay_once(store: &Faulty) -> HttpResponse {
    let run = store.runs.fetch_add(1, Ordering::SeqCst) + 1;
    HttpResponse::Created().body(format!("payment {run}"))
}

/// Pays once the heartbeat has run (and learnt whether the lease holds), then completes.
#[post("/slow-pay/{case}")]
#[idempotent(scope = "global", lease = "1s")]
async fn slow_pay(store: web::Data<Arc<Faulty>>) -> HttpResponse {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.heartbeats.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    pay_once(&store)
}

fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("the only recorder of this binary");
        snapshotter
    })
}

/// The abandoned completions counted for one route.
fn abandoned(route: &str) -> u64 {
    snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, _, _, _)| {
            key.key().name() == ABANDONED_COMPLETIONS && key.key().labels().any(|label| label.value() == route)
        })
        .map(|(_, _, _, value)| match value {
            DebugValue::Counter(count) => count,
            _ => 0,
        })
        .sum()
}

struct Case {
    server: actix_test::TestServer,
    store: Arc<Faulty>,
}

impl Case {
    fn start(fault: Fault) -> Self {
        snapshotter();
        let store = Arc::new(Faulty {
            inner: MemoryStore::new(),
            fault,
            completions: AtomicUsize::new(0),
            heartbeats: AtomicUsize::new(0),
            runs: AtomicUsize::new(0),
        });
        let data = web::Data::new(Arc::clone(&store));
        let shared: Arc<dyn Store> = store.clone();
        let server = actix_test::start(move || {
            App::new()
                .app_data(Idempotency::builder(shared.clone()).build())
                .app_data(data.clone())
                .service(pay)
                .service(pay_until_the_bound)
                .service(slow_pay)
        });
        Self { server, store }
    }

    /// Sends `path` with key `k`: (status, replayed, body).
    async fn send(&self, path: &str) -> (StatusCode, bool, String) {
        let mut response = self
            .server
            .post(path)
            .timeout(Duration::from_secs(30))
            .insert_header(("Idempotency-Key", "k"))
            .send()
            .await
            .expect("answer");
        let body = String::from_utf8_lossy(&response.body().await.expect("body")).into_owned();
        let replayed = response.headers().get("idempotent-replayed").is_some_and(|value| value == "true");
        (response.status(), replayed, body)
    }

    fn completions(&self) -> usize {
        self.store.completions.load(Ordering::SeqCst)
    }

    fn runs(&self) -> usize {
        self.store.runs.load(Ordering::SeqCst)
    }
}

#[actix_web::test]
async fn a_completion_that_fails_twice_is_retried_and_the_retry_replays() {
    let case = Case::start(Fault::FailFirst(2));
    assert_eq!(case.send("/pay/fail-twice").await, (StatusCode::CREATED, false, "payment 1".to_owned()));
    assert_eq!(case.completions(), 3, "two failures, then stored");
    assert_eq!(case.send("/pay/fail-twice").await, (StatusCode::CREATED, true, "payment 1".to_owned()));
    assert_eq!(case.runs(), 1, "the retry replayed: one payment");
    assert_eq!(abandoned("/pay/{case}"), 0);
}

#[actix_web::test]
async fn a_completion_whose_answer_was_lost_is_recognised_by_its_token() {
    let case = Case::start(Fault::LandThenFail);
    assert_eq!(case.send("/pay/landed").await.0, StatusCode::CREATED);
    assert_eq!(case.completions(), 2, "the second try finds its own completion");
    assert_eq!(case.send("/pay/landed").await, (StatusCode::CREATED, true, "payment 1".to_owned()));
    assert_eq!(case.runs(), 1);
}

#[actix_web::test]
async fn a_completion_that_keeps_failing_gives_up_at_the_bound_and_is_counted() {
    let case = Case::start(Fault::FailFirst(usize::MAX));
    let started = std::time::Instant::now();
    let (status, replayed, _) = case.send("/pay-until-the-bound").await;
    let took = started.elapsed();
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "the handler ran: its answer is sent");
    assert_eq!(case.completions(), 6, "the bound: 6 tries");
    assert!(took < Duration::from_secs(10), "bounded: {took:?}");
    assert_eq!(abandoned("/pay-until-the-bound"), 1);
    // The key stays claimed until its lease lapses: an immediate retry is told the original is in flight.
    assert_eq!(case.send("/pay-until-the-bound").await.0, StatusCode::CONFLICT);
    assert_eq!(case.runs(), 1);
}

#[actix_web::test]
async fn a_lost_lease_stops_the_retries_at_once() {
    let case = Case::start(Fault::FailWithLostLease);
    assert_eq!(case.send("/slow-pay/lost").await.0, StatusCode::CREATED);
    assert_eq!(case.completions(), 1, "no retry once the heartbeat found the lease lost");
    assert_eq!(abandoned("/slow-pay/{case}"), 1);
}
