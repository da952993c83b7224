//! Metrics and tracing (docs/contract.md, section 6): every counter moves when its event happens, store latency is
//! recorded, and each request's span carries its route, outcome and a redacted key, never the key itself.
//!
//! One test: the metrics recorder and the tracing subscriber are process-wide, and the server runs on its own
//! thread, so events are counted for the whole binary.

mod support;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, post, web};
use idempotent_runtime::observe::{
    CLAIMED, FAIL_OPEN, FENCED, IN_FLIGHT, KEY_REUSED, PURGED, REPLAYED, STORE_ERRORS, STORE_SECONDS, TAKEOVERS,
};
use idempotent_runtime::purge::purge_expired;
use idempotent_runtime::store::{
    Attempt, Claim, ClaimRequest, Completion, KeyStatus, LeaseState, PurgeBatch, Record, RecordId, StoredResponse,
};
use idempotent_runtime::{Idempotency, MemoryStore, PostgresStore, Store, StoreError, async_trait, idempotent};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use support::logs::CapturedLogs;
use tokio::sync::Semaphore;

/// Holds requests marked `x-test-hold` inside the handler until the test opens the gate.
struct Gate {
    entered: std::sync::atomic::AtomicUsize,
    permits: Semaphore,
}

#[post("/observed")]
#[idempotent(scope = "global", ttl = "1s")]
async fn observed(gate: web::Data<Gate>, request: HttpRequest, body: String) -> HttpResponse {
    if request.headers().contains_key("x-test-hold") {
        gate.entered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        gate.permits.acquire().await.expect("open gate").forget();
    }
    HttpResponse::Created().body(body)
}

#[post("/observed-open")]
#[idempotent(scope = "global", fail_open = true)]
async fn observed_open(body: String) -> HttpResponse {
    HttpResponse::Created().body(body)
}

/// A store that loses every completion to a newer attempt, as a stale worker would.
struct AlwaysFenced(MemoryStore);

#[async_trait]
impl Store for AlwaysFenced {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        self.0.claim(request).await
    }
    async fn heartbeat(&self, lease: &Attempt, duration: Duration) -> Result<LeaseState, StoreError> {
        self.0.heartbeat(lease, duration).await
    }
    async fn complete(&self, _: &Attempt, _: &StoredResponse, _: Duration) -> Result<Completion, StoreError> {
        Ok(Completion::Fenced)
    }
    async fn release(&self, lease: &Attempt) -> Result<(), StoreError> {
        self.0.release(lease).await
    }
    async fn read(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        self.0.read(id).await
    }
    async fn lookup(&self, scope: &[u8; 32], key: &[u8; 32]) -> Result<Option<KeyStatus>, StoreError> {
        self.0.lookup(scope, key).await
    }
    async fn wait(&self, id: &RecordId, timeout: Duration) -> Result<(), StoreError> {
        self.0.wait(id, timeout).await
    }
    async fn purge_batch(&self, limit: usize) -> Result<PurgeBatch, StoreError> {
        self.0.purge_batch(limit).await
    }
}

fn counter(snapshotter: &Snapshotter, name: &str) -> u64 {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, _, _, _)| key.key().name() == name)
        .map(|(_, _, _, value)| match value {
            DebugValue::Counter(count) => count,
            _ => 0,
        })
        .sum()
}

fn server(store: Arc<dyn Store>, gate: web::Data<Gate>) -> actix_test::TestServer {
    actix_test::start(move || {
        App::new()
            .app_data(Idempotency::builder(store.clone()).build())
            .app_data(gate.clone())
            .service(observed)
            .service(observed_open)
    })
}

async fn post(server: &actix_test::TestServer, key: &str, body: &str, hold: bool) -> StatusCode {
    let mut request = server.post("/observed").insert_header(("Idempotency-Key", key));
    if hold {
        request = request.insert_header(("x-test-hold", "1"));
    }
    request.send_body(body.to_owned()).await.expect("answer").status()
}

#[actix_web::test]
async fn counters_latency_and_spans_report_what_happened() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("the only recorder of this binary");
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .init();

    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let gate = web::Data::new(Gate { entered: std::sync::atomic::AtomicUsize::new(0), permits: Semaphore::new(0) });
    let app = server(Arc::clone(&store), gate.clone());

    assert_eq!(post(&app, "secret-key-123456", "a", false).await, StatusCode::CREATED);
    assert_eq!(counter(&snapshotter, CLAIMED), 1);
    assert_eq!(post(&app, "secret-key-123456", "a", false).await, StatusCode::CREATED);
    assert_eq!(counter(&snapshotter, REPLAYED), 1);
    assert_eq!(post(&app, "secret-key-123456", "b", false).await, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(counter(&snapshotter, KEY_REUSED), 1);

    let held = post(&app, "held", "x", true);
    let duplicate = async {
        let entered = || gate.entered.load(std::sync::atomic::Ordering::SeqCst) == 1;
        assert!(support::eventually(Duration::from_secs(10), entered).await, "the held request claimed its key");
        let status = post(&app, "held", "x", false).await;
        gate.permits.add_permits(1);
        status
    };
    let (held, duplicate) = tokio::join!(held, duplicate);
    assert_eq!((held, duplicate), (StatusCode::CREATED, StatusCode::CONFLICT));
    assert_eq!(counter(&snapshotter, IN_FLIGHT), 1);

    // An expired record is taken over by the next claim (the route's ttl is 1 s).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(post(&app, "secret-key-123456", "a", false).await, StatusCode::CREATED);
    assert_eq!(counter(&snapshotter, TAKEOVERS), 1);

    let fenced = server(Arc::new(AlwaysFenced(MemoryStore::new())), gate.clone());
    assert_eq!(post(&fenced, "stale", "a", false).await, StatusCode::CREATED);
    assert_eq!(counter(&snapshotter, FENCED), 1);

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let unreachable = PostgresStore::new(support::postgres::pool_for(
        &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        None,
        1,
    ));
    let broken = server(Arc::new(unreachable), gate.clone());
    assert_eq!(post(&broken, "k", "a", false).await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(counter(&snapshotter, STORE_ERRORS), 1);
    // A fail-open route runs its handler anyway: counted, and its span says so.
    let open = broken.post("/observed-open").insert_header(("Idempotency-Key", "k")).send_body("a").await;
    assert_eq!(open.expect("answer").status(), StatusCode::CREATED);
    // One snapshot for both: the debugging recorder resets what a snapshot reads.
    let snapshot = snapshotter.snapshot().into_vec();
    let count = |name: &str| {
        snapshot
            .iter()
            .filter(|(key, _, _, _)| key.key().name() == name)
            .map(|(_, _, _, value)| if let DebugValue::Counter(count) = value { *count } else { 0 })
            .sum::<u64>()
    };
    assert_eq!((count(FAIL_OPEN), count(STORE_ERRORS)), (1, 1), "counted as fail-open, and the store did fail");

    let report = purge_expired(&*store, 100).await.expect("purge");
    assert!(report.deleted >= 1, "{report:?}");
    assert_eq!(counter(&snapshotter, PURGED), report.deleted as u64);
    // The debugging recorder drains histogram samples at each snapshot: time one fresh request alone.
    assert_eq!(post(&app, "timed", "a", false).await, StatusCode::CREATED);
    let snapshot = snapshotter.snapshot().into_vec();
    let samples = |operation: &str| {
        snapshot
            .iter()
            .filter(|(key, _, _, _)| {
                key.key().name() == STORE_SECONDS
                    && key.key().labels().any(|label| label.key() == "operation" && label.value() == operation)
            })
            .map(|(_, _, _, value)| if let DebugValue::Histogram(samples) = value { samples.len() } else { 0 })
            .sum::<usize>()
    };
    assert_eq!((samples("claim"), samples("complete")), (1, 1), "the request's claim and completion are timed");

    let logs = logs.text();
    assert!(logs.contains("route=/observed"), "{logs}");
    assert!(logs.contains("this route fails open"), "the unprotected run is logged: {logs}");
    for outcome in ["executed", "replayed", "key_reused", "store_unavailable", "fail_open"] {
        assert!(
            logs.contains(&format!("outcome=\"{outcome}\"")) || logs.contains(&format!("outcome={outcome}")),
            "span outcome {outcome} in {logs}"
        );
    }
    assert!(logs.contains("secr…(17 chars)"), "the key is shown redacted: {logs}");
    assert!(!logs.contains("secret-key-123456"), "the raw key never reaches the logs");
}
