//! docs/contract.md, section 4, "store unreachable or timing out": 503 `store-unavailable` with `Retry-After`, and
//! the handler does NOT run. Proved against a port where nothing listens, a server that never answers, and a real
//! PostgreSQL stopped while the app serves (then started again: service resumes on its own).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, post, web};
use idempotent_runtime::{Idempotency, PostgresStore, Store, idempotent};
use support::logs::CapturedLogs;
use support::postgres::pool_for;
use support::private_cluster::PrivateCluster;

#[derive(Default)]
struct Runs(AtomicUsize);

#[post("/pay")]
#[idempotent(scope = "global")]
async fn pay(runs: web::Data<Runs>) -> HttpResponse {
    let run = runs.0.fetch_add(1, Ordering::SeqCst) + 1;
    HttpResponse::Created().body(format!("run {run}"))
}

struct Harness {
    server: actix_test::TestServer,
    runs: web::Data<Runs>,
}

fn start(store: PostgresStore) -> Harness {
    let store: Arc<dyn Store> = Arc::new(store);
    let runs = web::Data::new(Runs::default());
    let app_runs = runs.clone();
    let server = actix_test::start(move || {
        App::new()
            .app_data(Idempotency::builder(store.clone()).store_retry_after(Duration::from_secs(2)).build())
            .app_data(app_runs.clone())
            .service(pay)
    });
    Harness { server, runs }
}

impl Harness {
    async fn pay(&self, key: &str) -> (StatusCode, Option<String>, serde_json::Value) {
        let mut response = self
            .server
            .post("/pay")
            .timeout(Duration::from_secs(30))
            .insert_header(("Idempotency-Key", key))
            .send_body("{}")
            .await
            .expect("the app answers");
        let retry_after =
            response.headers().get("retry-after").and_then(|value| value.to_str().ok()).map(str::to_owned);
        let body = response.body().await.expect("body");
        (response.status(), retry_after, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
    }

    fn runs(&self) -> usize {
        self.runs.0.load(Ordering::SeqCst)
    }
}

fn assert_store_unavailable((status, retry_after, body): &(StatusCode, Option<String>, serde_json::Value)) {
    assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(retry_after.as_deref(), Some("2"), "the configured Retry-After");
    assert_eq!(body["type"], "https://idempotent.rs/problems/store-unavailable");
}

#[actix_web::test]
async fn unreachable_store_answers_503_and_the_handler_does_not_run() {
    // Bind then drop: the port is free and nothing listens on it, so connecting is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = start(PostgresStore::new(pool_for(&format!("postgres://postgres@127.0.0.1:{port}/postgres"), None, 4)));
    for key in ["a", "a", "b"] {
        assert_store_unavailable(&app.pay(key).await);
    }
    assert_eq!(app.runs(), 0);
}

#[actix_web::test]
async fn store_that_never_answers_times_out_with_503() {
    // A server that accepts connections and never says a word: the store's operation timeout must answer.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(8).collect();
        std::thread::sleep(Duration::from_secs(60));
        drop(held);
    });
    let pool = pool_for(&format!("postgres://postgres@127.0.0.1:{port}/postgres"), None, 4);
    let app = start(PostgresStore::new(pool).with_timeout(Duration::from_millis(300)));
    let started = Instant::now();
    assert_store_unavailable(&app.pay("k").await);
    // Just above the configured 300 ms, well below the default operation timeout (5 s) and the runtime's own
    // store timeout (5 s): a `with_timeout` that was ignored fails here.
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1_800), "bounded by the configured store timeout, took {took:?}");
    assert!(Duration::from_millis(1_800) < idempotent_runtime::store::DEFAULT_OPERATION_TIMEOUT);
    assert_eq!(app.runs(), 0);
}

#[actix_web::test]
async fn stopped_postgres_answers_503_and_service_resumes_when_it_returns() {
    let cluster = PrivateCluster::start();
    let store = PostgresStore::new(pool_for(&cluster.url(), None, 4)).with_timeout(Duration::from_secs(2));
    store.migrate().await.expect("migrate the private cluster");
    let app = start(store);
    let (status, _, _) = app.pay("before").await;
    assert_eq!(status, StatusCode::CREATED);

    cluster.stop();
    for key in ["before", "during", "during"] {
        assert_store_unavailable(&app.pay(key).await);
    }
    assert_eq!(app.runs(), 1, "no handler ran while the store was down");

    cluster.resume();
    let returned = Instant::now();
    let mut reply = app.pay("during").await;
    while reply.0 == StatusCode::SERVICE_UNAVAILABLE && returned.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        reply = app.pay("during").await;
    }
    assert_eq!(reply.0, StatusCode::CREATED, "service resumes within 5 s of the store's return: {:?}", reply.2);
    support::report_figure(&format!("store restarted -> first success after {:?}", returned.elapsed()));
    let (status, _, _) = app.pay("before").await;
    assert_eq!(status, StatusCode::CREATED, "the record stored before the outage is still replayed");
    assert_eq!(app.runs(), 2);
}

#[actix_web::test]
async fn exhausted_pool_answers_503_and_recovers_when_a_connection_frees() {
    let schema = support::postgres::TestSchema::create().await;
    let pool = schema.pool(1);
    let store = PostgresStore::new(pool.clone()).with_timeout(Duration::from_millis(300));
    store.migrate().await.expect("migrate");
    let app = start(store);
    // The application holds the pool's only connection (a long transaction elsewhere in the app).
    let held = pool.get().await.expect("the only connection");
    assert_store_unavailable(&app.pay("k").await);
    assert_eq!(app.runs(), 0);
    drop(held);
    let (status, _, _) = app.pay("k").await;
    assert_eq!(status, StatusCode::CREATED, "the key was not left claimed by the refused request");
    assert_eq!(app.runs(), 1);
    drop(app);
    schema.drop_schema().await;
}

#[actix_web::test]
async fn statement_stuck_on_a_lock_is_cancelled_and_leaves_no_claim_behind() {
    let schema = support::postgres::TestSchema::create().await;
    let store = PostgresStore::new(schema.pool(4)).with_timeout(Duration::from_millis(300));
    store.migrate().await.expect("migrate");
    let app = start(store);
    let locker_pool = schema.pool(1);
    let mut locker = locker_pool.get().await.expect("connect");
    let lock = locker.transaction().await.expect("begin");
    lock.batch_execute("LOCK TABLE idempotency_records IN ACCESS EXCLUSIVE MODE").await.expect("lock");

    assert_store_unavailable(&app.pay("k").await);
    // Unlock only once no claim statement waits on the lock any more: cancelled, not merely abandoned by the
    // client (it would otherwise run as soon as the lock goes away).
    let waiting_on_lock = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%idempotency_records%' AND pid <> pg_backend_pid()";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = lock.query_one(waiting_on_lock, &[]).await.expect("pg_stat_activity").get(0);
        if waiting == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the timed-out claim statement was never cancelled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    lock.rollback().await.expect("unlock");

    let (status, _, body) = app.pay("k").await;
    assert_eq!(status, StatusCode::CREATED, "a retry right after the outage runs; nothing was claimed: {body}");
    assert_eq!(app.runs(), 1);
    drop(app);
    schema.drop_schema().await;
}

/// The operator learns what PostgreSQL said (SQLSTATE and message, not `db error`); the client learns nothing
/// internal. Staged with a store named on a schema that does not exist.
#[actix_web::test]
async fn a_database_error_is_logged_with_its_sqlstate_and_message_and_hidden_from_the_client() {
    // The one subscriber of this binary; only this test logs through it.
    let logs = CapturedLogs::install();
    let schema = support::postgres::TestSchema::create().await;
    let store = PostgresStore::new(schema.pool(2)).with_schema("idempotent_no_such_schema");

    let error = store.read(&idempotent_runtime::Receiver::record_id("n", "k")).await.expect_err("no such table");
    assert_eq!(error.sqlstate(), Some("42P01"), "{error}");
    let text = error.to_string();
    assert!(text.contains("SQLSTATE 42P01") && text.contains("does not exist"), "{text}");

    let app = start(store);
    let (status, retry_after, body) = app.pay("k").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(retry_after.is_some());
    let body = body.to_string();
    for internal in ["42P01", "SQLSTATE", "idempotency_records", "idempotent_no_such_schema", "does not exist"] {
        assert!(!body.contains(internal), "the problem body reveals {internal:?}: {body}");
    }
    let logs = logs.text();
    // Other tests of this binary answer 503 too (and the capture is global): take this test's line only, the
    // one naming its missing schema, and require SQLSTATE and message on it.
    let line = logs
        .lines()
        .find(|line| line.contains("answering 503") && line.contains("idempotent_no_such_schema"))
        .unwrap_or_else(|| panic!("no 503 line for this test's store in:\n{logs}"));
    assert!(line.contains("SQLSTATE 42P01") && line.contains("does not exist"), "{line}");
    assert_eq!(app.runs.0.load(Ordering::SeqCst), 0);
    schema.drop_schema().await;
}
