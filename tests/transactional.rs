//! Transactional routes (docs/contract.md, section 5) against real PostgreSQL: the claim, the handler's own write through
//! `Tx` and the stored response commit together, or nothing does.

#[macro_use]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, post, web};
use idempotent_runtime::{Idempotency, MemoryStore, PostgresStore, Store, Tx, idempotent};
use support::pgbouncer::PgBouncer;
use support::postgres::TestSchema;
use support::probe::Probe;
use support::{Connection, eventually};

on_every_connection!(
    the_write_the_claim_and_the_response_commit_together,
    a_server_error_leaves_no_row_and_no_stored_response,
    a_panic_after_the_write_rolls_it_back,
    a_client_error_is_committed_with_its_writes,
    a_handler_whose_sql_failed_keeps_its_answer_but_nothing_is_committed,
    a_cancelled_request_rolls_back_and_frees_the_key_at_once,
    concurrent_duplicates_are_refused_at_once_not_blocked_on_the_uncommitted_claim,
    wait_mode_waits_for_the_commit_and_replays,
    a_transactional_route_on_a_store_without_transactions_is_misconfigured,
    a_column_type_change_fails_no_transactional_request,
);

/// Writes a row through the transaction, then answers the status in `x-status` (default 201), or panics.
async fn write_then_answer(tx: &Tx, probe: &Probe, request: &HttpRequest, note: &str) -> HttpResponse {
    tx.execute("INSERT INTO writes (note) VALUES ($1)", &[&note]).await.expect("insert through the transaction");
    if request.headers().contains_key("x-sql-error") {
        // The handler's own SQL fails (think: a unique violation) and it answers 409 itself.
        let failed = tx.execute("SELECT 1 / 0", &[]).await;
        assert!(failed.is_err());
        return HttpResponse::Conflict().body("duplicate order");
    }
    let run = probe.enter(request).await;
    let status = request.headers().get("x-status").and_then(|value| value.to_str().ok()?.parse().ok()).unwrap_or(201);
    if status == 999 {
        panic!("the handler failed after its write");
    }
    HttpResponse::build(StatusCode::from_u16(status).expect("valid status")).body(format!("run {run}: {note}"))
}

#[post("/write")]
#[idempotent(scope = "global")]
async fn write(tx: Tx, probe: web::Data<Probe>, request: HttpRequest, note: String) -> HttpResponse {
    write_then_answer(&tx, &probe, &request, &note).await
}

#[post("/write-wait")]
#[idempotent(scope = "global", on_conflict = "wait", wait = "10s")]
async fn write_wait(tx: Tx, probe: web::Data<Probe>, request: HttpRequest, note: String) -> HttpResponse {
    write_then_answer(&tx, &probe, &request, &note).await
}

struct Harness {
    server: actix_test::TestServer,
    probe: web::Data<Probe>,
    schema: TestSchema,
    pool: deadpool_postgres::Pool,
    /// The pooler the app goes through, if any.
    _bouncer: Option<PgBouncer>,
}

async fn start_with(
    connection: Connection,
    store: impl Fn(&TestSchema, deadpool_postgres::Pool) -> Arc<dyn Store>,
) -> Harness {
    let schema = TestSchema::create().await;
    let pool = schema.pool(4);
    let postgres = PostgresStore::new(pool.clone());
    postgres.migrate().await.expect("migrate");
    pool.get().await.unwrap().batch_execute("CREATE TABLE writes (id bigserial PRIMARY KEY, note text)").await.unwrap();
    let (app_pool, bouncer) = connection.app_pool(&schema, 16);
    let store = store(&schema, app_pool);
    let probe = web::Data::new(Probe::default());
    let app_probe = probe.clone();
    let server = actix_test::start(move || {
        App::new()
            .app_data(Idempotency::builder(store.clone()).build())
            .app_data(app_probe.clone())
            .wrap_fn(support::cancellation::cancel_marked_requests)
            .service(write)
            .service(write_wait)
    });
    Harness { server, probe, schema, pool, _bouncer: bouncer }
}

async fn start(connection: Connection) -> Harness {
    start_with(connection, |schema, pool| Arc::new(PostgresStore::new(pool).with_schema(&schema.name))).await
}

struct Reply {
    status: StatusCode,
    replayed: bool,
    retry_after: Option<String>,
    body: String,
}

impl Harness {
    async fn send(&self, path: &str, key: &str, note: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request =
            self.server.post(path).timeout(Duration::from_secs(30)).insert_header(("Idempotency-Key", key));
        for header in headers {
            request = request.insert_header(*header);
        }
        let mut response = request.send_body(note.to_owned()).await.expect("answer");
        let body = String::from_utf8_lossy(&response.body().await.expect("body")).into_owned();
        let header = |name: &str| response.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
        Reply {
            status: response.status(),
            replayed: header("idempotent-replayed").as_deref() == Some("true"),
            retry_after: header("retry-after"),
            body,
        }
    }

    async fn count(&self, sql: &str) -> i64 {
        self.pool.get().await.expect("connect").query_one(sql, &[]).await.expect("count").get(0)
    }

    async fn rows(&self) -> i64 {
        self.count("SELECT count(*) FROM writes").await
    }

    async fn records(&self) -> i64 {
        self.count("SELECT count(*) FROM idempotency_records").await
    }

    fn runs(&self) -> usize {
        self.probe.runs()
    }

    async fn finish(self) {
        drop(self.server);
        self.schema.drop_schema().await;
    }
}

async fn the_write_the_claim_and_the_response_commit_together(connection: Connection) {
    let app = start(connection).await;
    let first = app.send("/write", "k", "hello", &[]).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!((app.rows().await, app.records().await), (1, 1));
    let retry = app.send("/write", "k", "hello", &[]).await;
    assert!(retry.replayed);
    assert_eq!(retry.body, first.body);
    assert_eq!(app.rows().await, 1, "the retry wrote nothing");
    let reused = app.send("/write", "k", "other", &[]).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.runs(), 1);
    app.finish().await;
}

/// A migration that changes the type of a column the transactional claim returns makes PostgreSQL refuse the
/// named statements prepared before it (`cached plan must not change result type`): the claim starts again, and no
/// request fails, fresh or replayed.
async fn a_column_type_change_fails_no_transactional_request(connection: Connection) {
    let app = start(connection).await;
    for key in 0..8 {
        assert_eq!(app.send("/write", &format!("before-{key}"), "hello", &[]).await.status, StatusCode::CREATED);
    }
    let alter = format!("ALTER TABLE {}.idempotency_records ALTER COLUMN state TYPE varchar(16)", app.schema.name);
    app.pool.get().await.expect("connect").batch_execute(&alter).await.expect("change the column's type");
    for key in 0..8 {
        let fresh = app.send("/write", &format!("after-{key}"), "hello", &[]).await;
        assert_eq!(fresh.status, StatusCode::CREATED, "a fresh key after the change: {}", fresh.body);
        let replay = app.send("/write", &format!("before-{key}"), "hello", &[]).await;
        assert!(replay.replayed, "a key from before the change is replayed: {:?} {}", replay.status, replay.body);
    }
    assert_eq!(app.runs(), 16, "each key ran once");
    app.finish().await;
}

async fn a_server_error_leaves_no_row_and_no_stored_response(connection: Connection) {
    let app = start(connection).await;
    let failed = app.send("/write", "k", "hello", &[("x-status", "500")]).await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!((app.rows().await, app.records().await), (0, 0), "rolled back, key free");
    let retry = app.send("/write", "k", "hello", &[]).await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert!(!retry.replayed);
    assert_eq!(app.rows().await, 1);
    app.finish().await;
}

async fn a_panic_after_the_write_rolls_it_back(connection: Connection) {
    let app = start(connection).await;
    let failed = app.send("/write", "k", "hello", &[("x-status", "999")]).await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!((app.rows().await, app.records().await), (0, 0));
    assert_eq!(app.send("/write", "k", "hello", &[]).await.status, StatusCode::CREATED);
    app.finish().await;
}

async fn a_client_error_is_committed_with_its_writes(connection: Connection) {
    let app = start(connection).await;
    let refused = app.send("/write", "k", "hello", &[("x-status", "409")]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!((app.rows().await, app.records().await), (1, 1), "4xx is an answer: stored with its writes");
    assert!(app.send("/write", "k", "hello", &[]).await.replayed);
    app.finish().await;
}

async fn a_handler_whose_sql_failed_keeps_its_answer_but_nothing_is_committed(connection: Connection) {
    let app = start(connection).await;
    let refused = app.send("/write", "k", "hello", &[("x-sql-error", "1")]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "the handler's own answer, not a 503: {}", refused.body);
    assert_eq!(refused.body, "duplicate order");
    assert_eq!((app.rows().await, app.records().await), (0, 0), "its aborted transaction committed nothing");
    let retry = app.send("/write", "k", "hello", &[]).await;
    assert_eq!(retry.status, StatusCode::CREATED, "the key was free");
    app.finish().await;
}

async fn a_cancelled_request_rolls_back_and_frees_the_key_at_once(connection: Connection) {
    let app = start(connection).await;
    let cancelled = app.send("/write", "k", "hello", &[("x-test-hold", "1"), ("x-test-cancel", "1")]).await;
    assert_eq!(cancelled.status, StatusCode::GATEWAY_TIMEOUT);
    // The rollback runs in the background right after the drop; poll for it, far below any lease.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut retry = app.send("/write", "k", "hello", &[]).await;
    while retry.status == StatusCode::CONFLICT && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        retry = app.send("/write", "k", "hello", &[]).await;
    }
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(app.rows().await, 1, "the cancelled write was rolled back");
    app.finish().await;
}

async fn concurrent_duplicates_are_refused_at_once_not_blocked_on_the_uncommitted_claim(connection: Connection) {
    let app = start(connection).await;
    let original = app.send("/write", "k", "hello", &[("x-test-hold", "1")]);
    let duplicates = async {
        assert!(eventually(Duration::from_secs(10), || app.runs() == 1).await, "the original is in its handler");
        let started = Instant::now();
        let replies = futures_util::future::join_all((0..20).map(|_| app.send("/write", "k", "hello", &[]))).await;
        let took = started.elapsed();
        app.probe.open(1);
        (replies, took)
    };
    let (original, (replies, took)) = tokio::join!(original, duplicates);
    assert_eq!(original.status, StatusCode::CREATED);
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::CONFLICT);
        assert_eq!(reply.retry_after.as_deref(), Some("1"));
    }
    assert!(took < Duration::from_secs(5), "409s came while the original still held its transaction ({took:?})");
    assert_eq!((app.rows().await, app.runs()), (1, 1));
    app.finish().await;
}

async fn wait_mode_waits_for_the_commit_and_replays(connection: Connection) {
    let app = start(connection).await;
    let original = app.send("/write-wait", "k", "hello", &[("x-test-hold", "1")]);
    let duplicate = async {
        assert!(eventually(Duration::from_secs(10), || app.runs() == 1).await);
        let waiting = app.send("/write-wait", "k", "hello", &[]);
        let opening = async {
            // The duplicate's claim is blocked on the original's uncommitted one before the original may commit.
            let blocked = Instant::now();
            while !support::postgres::store_statement_waits_on_a_lock(&app.pool, &app.schema.name).await {
                assert!(blocked.elapsed() < Duration::from_secs(10), "the duplicate never waited on the original");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            app.probe.open(1);
        };
        tokio::join!(waiting, opening).0
    };
    let (original, duplicate) = tokio::join!(original, duplicate);
    assert_eq!(original.status, StatusCode::CREATED);
    assert_eq!(duplicate.status, StatusCode::CREATED);
    assert!(duplicate.replayed, "the waiting duplicate got the committed response");
    assert_eq!(duplicate.body, original.body);
    assert_eq!((app.rows().await, app.runs()), (1, 1));
    app.finish().await;
}

async fn a_transactional_route_on_a_store_without_transactions_is_misconfigured(connection: Connection) {
    let app = start_with(connection, |_, _| Arc::new(MemoryStore::new())).await;
    let reply = app.send("/write", "k", "hello", &[]).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.body.contains("https://idempotent.rs/problems/misconfigured"), "{}", reply.body);
    assert_eq!((app.runs(), app.rows().await), (0, 0), "never a silent non-transactional run");
    app.finish().await;
}
