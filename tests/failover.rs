//! PostgreSQL failover under load (docs/guide/high-availability.md): a primary with a synchronous standby on private
//! ports, the app on the multi-host URL with `target_session_attrs=read-write`. Under load from concurrent clients
//! that retry each key until it is acknowledged, the primary and all its backends are killed with `kill -9`, and
//! one second later the standby is promoted.
//!
//! - On a transactional route every key is acknowledged, none is applied twice, and nothing acknowledged is lost:
//!   each acknowledged key has exactly one row on the promoted server, and replays there.
//! - On a plain route, whose handler writes on its own connection (outside the idempotency record), a key runs twice
//!   only when its request was in flight at the crash: counted and reported.
//! - While no server accepts writes the app answers 503 `store-unavailable` (or the handler's own 503 when its
//!   write failed), never a 500; the time from the kill to the first success is reported.
//!
//! `cargo test --test failover -- --nocapture` prints the figures; they are also appended to the figures file.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, post, web};
use deadpool_postgres::Pool;
use idempotent_runtime::{Idempotency, PostgresStore, Store, Tx, idempotent};
use support::postgres::pool_for;
use support::replicated_cluster::{Crash, ReplicatedCluster};

/// Concurrent clients on each route.
const CLIENTS_PER_ROUTE: usize = 8;
/// How long one key may take to be acknowledged, retries included.
const KEY_DEADLINE: Duration = Duration::from_secs(30);
/// The library's problem types, and the one the handlers answer when their own write fails.
const STORE_UNAVAILABLE: &str = "https://idempotent.rs/problems/store-unavailable";
const IN_FLIGHT: &str = "https://idempotent.rs/problems/in-flight";
const WRITE_FAILED: &str = "https://failover.test/problems/write-failed";

/// Transactional: the order row commits with the claim and the stored response, or not at all.
#[post("/orders")]
#[idempotent(scope = "global")]
async fn order(tx: Tx, key: String) -> HttpResponse {
    match tx.execute("INSERT INTO orders (key) VALUES ($1)", &[&key]).await {
        Ok(_) => HttpResponse::Created().body(key),
        Err(error) => write_failed(&error.to_string()),
    }
}

/// Plain: the handler first does something the store cannot see (it stands for a call to another system, and is
/// counted in process), then writes its row on its own connection, outside the idempotency record. A short lease,
/// so that a key whose worker is gone is taken over within the test.
#[post("/runs")]
#[idempotent(scope = "global", lease = "3s")]
async fn plain_run(pool: web::Data<Pool>, executions: web::Data<Executions>, key: String) -> HttpResponse {
    executions.record(&key);
    let write = async {
        let client = pool.get().await.map_err(|error| error.to_string())?;
        client.execute("INSERT INTO runs (key) VALUES ($1)", &[&key]).await.map_err(|error| error.to_string())
    };
    match actix_web::rt::time::timeout(Duration::from_secs(3), write).await {
        Ok(Ok(_)) => HttpResponse::Created().body(key),
        Ok(Err(error)) => write_failed(&error),
        Err(_) => write_failed("the write timed out"),
    }
}

/// How many times the plain handler ran, per key.
#[derive(Default)]
struct Executions(Mutex<HashMap<String, u32>>);

impl Executions {
    fn record(&self, key: &str) {
        *self.0.lock().expect("not poisoned").entry(key.to_owned()).or_default() += 1;
    }

    fn per_key(&self) -> HashMap<String, u32> {
        self.0.lock().expect("not poisoned").clone()
    }
}

/// The handler's own answer when its write failed: a 5xx, which is not stored; the key is released (or, when the
/// store is down too, left to its lease), and a retry runs the handler again.
fn write_failed(detail: &str) -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .content_type("application/problem+json")
        .body(serde_json::json!({"type": WRITE_FAILED, "status": 503, "detail": detail}).to_string())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Route {
    Transactional,
    Plain,
}

impl Route {
    fn path(self) -> &'static str {
        match self {
            Self::Transactional => "/orders",
            Self::Plain => "/runs",
        }
    }

    fn table(self) -> &'static str {
        match self {
            Self::Transactional => "orders",
            Self::Plain => "runs",
        }
    }
}

/// One request as its client saw it.
#[derive(Debug)]
struct Attempt {
    route: Route,
    key: String,
    sent: Instant,
    answered: Instant,
    /// `Err`: no answer (a transport error or the client's timeout).
    status: Result<StatusCode, String>,
    problem: Option<String>,
    retry_after: Option<u64>,
    replayed: bool,
}

impl Attempt {
    fn succeeded(&self) -> bool {
        self.status.as_ref().is_ok_and(StatusCode::is_success)
    }

    /// Sent before the crash was over and answered after it began: the crash is not an instant (the frozen
    /// primary's backends still answer until the `kill -9`, and the processes take a moment to die), and a request
    /// that overlapped it may have run without its record surviving.
    fn in_flight_during(&self, crash: &Crash) -> bool {
        self.sent < crash.over_at && self.answered >= crash.frozen_at
    }

    /// What the failover contract allows: 201, 409 `in-flight` with `Retry-After`, 503 `store-unavailable` with
    /// `Retry-After`, or the handler's own 503 when its write failed.
    fn allowed(&self) -> bool {
        let problem = self.problem.as_deref();
        match self.status {
            Ok(StatusCode::CREATED) => true,
            Ok(StatusCode::CONFLICT) => problem == Some(IN_FLIGHT) && self.retry_after.is_some(),
            Ok(StatusCode::SERVICE_UNAVAILABLE) => {
                problem == Some(STORE_UNAVAILABLE) && self.retry_after == Some(1) || problem == Some(WRITE_FAILED)
            }
            _ => false,
        }
    }
}

async fn send(client: &awc::Client, base: &str, route: Route, key: &str) -> Attempt {
    let sent = Instant::now();
    let response = client
        .post(format!("{base}{}", route.path()))
        .insert_header(("Idempotency-Key", key))
        .send_body(key.to_owned())
        .await;
    let mut attempt = Attempt {
        route,
        key: key.to_owned(),
        sent,
        answered: Instant::now(),
        status: Err(String::new()),
        problem: None,
        retry_after: None,
        replayed: false,
    };
    match response {
        Ok(mut response) => {
            let body = response.body().await.unwrap_or_default();
            let header =
                |name: &str| response.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
            attempt.answered = Instant::now();
            attempt.status = Ok(response.status());
            attempt.replayed = header("idempotent-replayed").as_deref() == Some("true");
            attempt.retry_after = header("retry-after").and_then(|value| value.parse().ok());
            attempt.problem = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|body| body.get("type")?.as_str().map(str::to_owned));
        }
        Err(error) => attempt.status = Err(error.to_string()),
    }
    attempt
}

/// What one client did: every attempt, and the keys it started (all acknowledged unless one ran out of time).
#[derive(Default)]
struct ClientLog {
    attempts: Vec<Attempt>,
    acknowledged: Vec<String>,
    unacknowledged: Vec<String>,
}

/// One client: fresh keys one after the other, each retried (same key, same body) until a 2xx, 100 ms after a 503
/// or a transport error, `Retry-After` after a 409. Starts no new key once `stop` is set.
async fn drive(client: &awc::Client, base: &str, route: Route, id: usize, stop: &AtomicBool) -> ClientLog {
    let mut log = ClientLog::default();
    let mut next = 0;
    while !stop.load(Ordering::SeqCst) {
        let key = format!("{}-{id}-{next}", route.table());
        next += 1;
        let began = Instant::now();
        loop {
            let attempt = send(client, base, route, &key).await;
            let succeeded = attempt.succeeded();
            let pause = match attempt.status {
                Ok(StatusCode::CONFLICT) => Duration::from_secs(attempt.retry_after.unwrap_or(1)),
                _ => Duration::from_millis(100),
            };
            log.attempts.push(attempt);
            if succeeded {
                log.acknowledged.push(key);
                break;
            }
            if began.elapsed() > KEY_DEADLINE {
                log.unacknowledged.push(key);
                break;
            }
            actix_web::rt::time::sleep(pause).await;
        }
    }
    log
}

/// Rows per key in `table`, on `pool`.
async fn rows_per_key(pool: &Pool, table: &str) -> HashMap<String, i64> {
    let client = pool.get().await.expect("connect to the promoted standby");
    let rows = client
        .query(&format!("SELECT key, count(*) FROM {table} GROUP BY key"), &[])
        .await
        .unwrap_or_else(|error| panic!("count the rows of {table}: {error}"));
    rows.iter().map(|row| (row.get(0), row.get(1))).collect()
}

#[actix_web::test]
async fn primary_killed_under_load_then_standby_promoted_loses_nothing_acknowledged() {
    let test_started = Instant::now();
    let cluster = Arc::new(ReplicatedCluster::start());
    let setup = test_started.elapsed();

    let pool = pool_for(&cluster.url(), None, 16);
    let store = PostgresStore::new(pool.clone()).with_timeout(Duration::from_secs(2));
    store.migrate().await.expect("migrate through the multi-host URL (the primary)");
    pool.get()
        .await
        .expect("connect to the primary")
        .batch_execute(
            "CREATE TABLE orders (id bigserial PRIMARY KEY, key text NOT NULL);
             CREATE TABLE runs (id bigserial PRIMARY KEY, key text NOT NULL);",
        )
        .await
        .expect("create the handlers' tables");
    let store: Arc<dyn Store> = Arc::new(store);
    let app_pool = web::Data::new(pool.clone());
    let executions = web::Data::new(Executions::default());
    let app_executions = executions.clone();
    let server = actix_test::start(move || {
        App::new()
            .app_data(Idempotency::builder(store.clone()).store_retry_after(Duration::from_secs(1)).build())
            .app_data(app_pool.clone())
            .app_data(app_executions.clone())
            .service(order)
            .service(plain_run)
    });
    let base = server.url("").trim_end_matches('/').to_owned();
    let client = awc::Client::builder()
        .connector(awc::Connector::new().limit(4 * CLIENTS_PER_ROUTE))
        .timeout(Duration::from_secs(20))
        .finish();

    let stop = AtomicBool::new(false);
    let load_started = Instant::now();
    let load = futures_util::future::join_all(
        [Route::Transactional, Route::Plain]
            .into_iter()
            .flat_map(|route| (0..CLIENTS_PER_ROUTE).map(move |id| (route, id)))
            .map(|(route, id)| drive(&client, &base, route, id, &stop)),
    );
    // The scenario: a second of load, the crash, a second without a primary (a failover manager's detection), the
    // promotion, and 3 s more of load (service resumes within them, checked below); then the clients finish the
    // keys they started.
    let scenario = async {
        actix_web::rt::time::sleep(Duration::from_secs(1)).await;
        // The servers are driven by blocking commands, run beside the clients' thread so that the load goes on.
        let crashing = cluster.clone();
        let (sync_state, crash) =
            actix_web::rt::task::spawn_blocking(move || (crashing.standby_sync_state(), crashing.crash_primary()))
                .await
                .expect("crash the primary");
        assert_eq!(sync_state, "sync", "the standby is synchronous when the primary is killed");
        actix_web::rt::time::sleep(Duration::from_secs(1)).await;
        let promoting = cluster.clone();
        let promote_started = Instant::now();
        actix_web::rt::task::spawn_blocking(move || promoting.promote_standby()).await.expect("promote");
        let promoted_at = Instant::now();
        actix_web::rt::time::sleep(Duration::from_secs(3)).await;
        stop.store(true, Ordering::SeqCst);
        (crash, promote_started, promoted_at)
    };
    let (logs, (crash, promote_started, promoted_at)) = futures_util::future::join(load, scenario).await;
    let (killed_at, killed) = (crash.killed_at, crash.processes);
    let load_ended = Instant::now();

    let attempts: Vec<&Attempt> = logs.iter().flat_map(|log| &log.attempts).collect();
    let unacknowledged: Vec<&String> = logs.iter().flat_map(|log| &log.unacknowledged).collect();
    let acknowledged = |route: Route| -> Vec<&String> {
        logs.iter()
            .flat_map(|log| &log.acknowledged)
            .filter(|key| key.starts_with(&format!("{}-", route.table())))
            .collect()
    };

    // The contract's answers only, and nothing but 201 before the crash.
    let refused: Vec<&&Attempt> = attempts.iter().filter(|attempt| !attempt.allowed()).collect();
    assert!(
        refused.is_empty(),
        "answers outside the contract ({}): {:?}",
        refused.len(),
        &refused[..refused.len().min(10)]
    );
    let before_crash: Vec<&&Attempt> =
        attempts.iter().filter(|attempt| attempt.answered < killed_at && !attempt.succeeded()).collect();
    assert!(before_crash.is_empty(), "failures before the crash: {before_crash:?}");
    assert!(unacknowledged.is_empty(), "keys never acknowledged within {KEY_DEADLINE:?}: {unacknowledged:?}");

    // Service resumed: the first success of a request sent after the crash (one in flight at the crash may still be
    // answered 201 on the plain route: its handler had run, and its response goes to the client whether or not
    // storing it succeeds).
    let first_success = |route: Route| {
        attempts
            .iter()
            .filter(|attempt| attempt.route == route && attempt.sent > killed_at && attempt.succeeded())
            .map(|attempt| attempt.answered)
            .min()
            .unwrap_or_else(|| panic!("{route:?}: no success after the crash"))
    };
    let resumed = first_success(Route::Transactional).min(first_success(Route::Plain));
    assert!(resumed > promote_started, "nothing succeeds before the promotion");
    assert!(
        resumed - promote_started < Duration::from_secs(3),
        "service resumes within 3 s of the promotion: {:?}",
        resumed - promote_started
    );

    let promoted = pool_for(&cluster.standby_url(), None, 4);
    let in_recovery: bool = promoted
        .get()
        .await
        .expect("connect to the promoted standby")
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .expect("ask the promoted standby")
        .get(0);
    assert!(!in_recovery, "the standby was promoted");

    // Transactional: one row per acknowledged key, no key with two, no row without an acknowledged key.
    let orders = rows_per_key(&promoted, "orders").await;
    let acknowledged_orders = acknowledged(Route::Transactional);
    let lost: Vec<&&String> = acknowledged_orders.iter().filter(|key| !orders.contains_key(key.as_str())).collect();
    assert!(lost.is_empty(), "acknowledged orders lost at the failover: {lost:?}");
    let applied_twice: Vec<(&String, &i64)> = orders.iter().filter(|(_, count)| **count > 1).collect();
    assert!(applied_twice.is_empty(), "orders applied twice: {applied_twice:?}");
    assert_eq!(orders.len(), acknowledged_orders.len(), "every order row belongs to an acknowledged key");
    let orders_in_flight =
        attempts.iter().filter(|a| a.route == Route::Transactional && a.in_flight_during(&crash)).count();

    // Every acknowledged order replays on the promoted server; the handler does not run again.
    let (client, base, acknowledged_orders) = (&client, &base, &acknowledged_orders);
    let replays = futures_util::future::join_all((0..2 * CLIENTS_PER_ROUTE).map(|lane| async move {
        let mut replays = Vec::new();
        for key in acknowledged_orders.iter().skip(lane).step_by(2 * CLIENTS_PER_ROUTE) {
            replays.push(send(client, base, Route::Transactional, key).await);
        }
        replays
    }))
    .await;
    let not_replayed: Vec<&Attempt> = replays
        .iter()
        .flatten()
        .filter(|attempt| !(attempt.status == Ok(StatusCode::CREATED) && attempt.replayed))
        .collect();
    assert!(not_replayed.is_empty(), "acknowledged orders that did not replay: {not_replayed:?}");
    assert_eq!(rows_per_key(&promoted, "orders").await, orders, "the replays ran no handler");

    // Plain: every acknowledged key ran and has its row; a key ran twice (its handler, counted in process, or its row)
    // only if a request of it was in flight at the crash, and no key ran more than twice.
    let runs = rows_per_key(&promoted, "runs").await;
    let executions = executions.per_key();
    let acknowledged_runs = acknowledged(Route::Plain);
    let lost: Vec<&&String> = acknowledged_runs.iter().filter(|key| !runs.contains_key(key.as_str())).collect();
    assert!(lost.is_empty(), "acknowledged runs lost at the failover: {lost:?}");
    let runs_in_flight: HashSet<&str> = attempts
        .iter()
        .filter(|a| a.route == Route::Plain && a.in_flight_during(&crash))
        .map(|a| a.key.as_str())
        .collect();
    let ran_twice: Vec<(&String, u32)> =
        executions.iter().filter(|(_, count)| **count > 1).map(|(k, c)| (k, *c)).collect();
    let rows_twice: Vec<(&String, i64)> = runs.iter().filter(|(_, count)| **count > 1).map(|(k, c)| (k, *c)).collect();
    for (key, count) in
        ran_twice.iter().map(|(k, c)| (*k, i64::from(*c))).chain(rows_twice.iter().map(|(k, c)| (*k, *c)))
    {
        assert!(runs_in_flight.contains(key.as_str()), "plain key {key} ran {count} times, not in flight at the crash");
        assert_eq!(count, 2, "plain key {key} ran {count} times");
    }
    for (key, rows) in &runs {
        let ran = executions.get(key).copied().unwrap_or_default();
        assert!(i64::from(ran) >= *rows, "{key}: {rows} rows from {ran} executions");
    }
    // Acknowledged plain keys whose completion the crash lost: still in progress, so a retry after the lease would
    // run them again (docs/contract.md, section 5: plain routes are at-least-once for side effects the store
    // cannot see).
    let in_progress: Vec<(String, i64)> = promoted
        .get()
        .await
        .expect("connect")
        .query("SELECT route, count(*) FROM idempotency_records WHERE state = 'in_progress' GROUP BY route", &[])
        .await
        .expect("count the records in progress")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert!(
        in_progress.iter().all(|(route, _)| route != Route::Transactional.path()),
        "a transactional record is never left in progress: {in_progress:?}"
    );
    let unstored: i64 = in_progress.iter().map(|(_, count)| count).sum();

    let count = |route: Route, status: StatusCode, problem: Option<&str>| {
        attempts
            .iter()
            .filter(|a| {
                a.route == route && a.status == Ok(status) && problem.is_none_or(|p| a.problem.as_deref() == Some(p))
            })
            .count()
    };
    let last_unavailable = attempts
        .iter()
        .filter(|attempt| attempt.status == Ok(StatusCode::SERVICE_UNAVAILABLE))
        .map(|attempt| attempt.answered)
        .max()
        .map_or(Duration::ZERO, |last| last.saturating_duration_since(promote_started));
    let total = test_started.elapsed();
    support::report_figure(&format!(
        "failover (kill -9 of the primary and its {} child processes under load from {} clients, sync standby promoted \
         after 1 s): kill -> first success {:?}; promotion started -> first success {:?} (pg_ctl promote -w \
         returned after {:?}); last 503 answered {last_unavailable:?} after the promotion started",
        killed - 1,
        2 * CLIENTS_PER_ROUTE,
        resumed - killed_at,
        resumed - promote_started,
        promoted_at - promote_started,
    ));
    support::report_figure(&format!(
        "failover, transactional route: {} keys acknowledged ({} before the crash), {} requests in flight at the \
         crash, 0 lost, 0 applied twice, all replayed; answers: {} x 201, {} x 503 store-unavailable, {} x 503 \
         write-failed, {} x 409",
        acknowledged_orders.len(),
        acknowledged_before(&attempts, Route::Transactional, killed_at),
        orders_in_flight,
        count(Route::Transactional, StatusCode::CREATED, None),
        count(Route::Transactional, StatusCode::SERVICE_UNAVAILABLE, Some(STORE_UNAVAILABLE)),
        count(Route::Transactional, StatusCode::SERVICE_UNAVAILABLE, Some(WRITE_FAILED)),
        count(Route::Transactional, StatusCode::CONFLICT, None),
    ));
    support::report_figure(&format!(
        "failover, plain route: {} keys acknowledged ({} before the crash), {} requests in flight at the crash, \
         {} keys whose handler ran twice and {} whose row was written twice (all in flight at the crash), 0 lost, \
         {unstored} acknowledged with their response unstored (a retry after the lease would run them again); \
         answers: {} x 201, {} x 503 store-unavailable, {} x 503 write-failed, {} x 409",
        acknowledged_runs.len(),
        acknowledged_before(&attempts, Route::Plain, killed_at),
        runs_in_flight.len(),
        ran_twice.len(),
        rows_twice.len(),
        count(Route::Plain, StatusCode::CREATED, None),
        count(Route::Plain, StatusCode::SERVICE_UNAVAILABLE, Some(STORE_UNAVAILABLE)),
        count(Route::Plain, StatusCode::SERVICE_UNAVAILABLE, Some(WRITE_FAILED)),
        count(Route::Plain, StatusCode::CONFLICT, None),
    ));
    support::report_figure(&format!(
        "failover suite: setup (initdb, clone, streaming) {setup:?}, load {:?}, whole test {total:?}",
        load_ended - load_started,
    ));
    drop(server);
    drop(cluster);
}

/// Keys of `route` acknowledged before `moment`.
fn acknowledged_before(attempts: &[&Attempt], route: Route, moment: Instant) -> usize {
    attempts.iter().filter(|a| a.route == route && a.succeeded() && a.answered < moment).count()
}
