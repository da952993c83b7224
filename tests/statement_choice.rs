//! How the default `PostgresStore` chooses the way it sends statements: named statements where they work, and the
//! pooler-safe way behind a transaction-mode pooler that does not track prepared statements, found by a probe
//! before the first named statement, or by a named statement's failure, which is then sent again. And what
//! PostgreSQL's own log shows of it: nothing on the default settings.

#[macro_use]
mod support;

use std::sync::{Arc, LazyLock};

use idempotent_runtime::PostgresStore;
use idempotent_runtime::store::{Store, testing};
use support::logs::CapturedLogs;
use support::pgbouncer::{PgBouncer, SERVER_POOL_SIZE};
use support::postgres::{TestSchema, pool_for};
use support::private_cluster::PrivateCluster;

/// The test binary's one log capture.
static LOGS: LazyLock<CapturedLogs> = LazyLock::new(CapturedLogs::install);

/// The tests take turns: each reads only what was logged during its turn, and the log says what its own stores
/// found.
static LOG_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The probe's warning: it found a pooler that does not track prepared statements.
const FOUND_BY_PROBE: &str = "go through a transaction-mode pooler that does not track prepared statements";

/// The switch's warning: a named statement failed the way such a pooler makes it fail.
const FOUND_BY_FAILURE: &str = "a named statement failed the way it does behind a transaction-mode pooler";

/// Claims, completions, replays and concurrent claims of fresh keys, each checked by the conformance kit.
async fn workload(store: &(impl Store + Clone + 'static)) {
    testing::one_claim_wins_and_the_record_is_replayed_after_completion(store).await;
    testing::a_completion_keeps_status_headers_and_body_exactly(store).await;
    testing::claims_stay_exact_when_retries_dominate(store).await;
    testing::concurrent_claims_of_one_record_acquire_exactly_once(Arc::new(store.clone())).await;
}

/// How many of the store's pooler-safe statements (SQL `PREPARE`d under `idempotent_...`) and of protocol-level
/// named statements the backend `client`'s next round trip reaches holds.
async fn statements_on_backend(client: &tokio_postgres::Client) -> (u64, u64) {
    let sql = "SELECT count(*) FILTER (WHERE name LIKE 'idempotent\\_%'), count(*) FILTER (WHERE NOT from_sql) \
               FROM pg_prepared_statements";
    let numbers = support::postgres::first_row_numbers(client, sql).await;
    (numbers[0], numbers[1])
}

/// Runs `test` in the log's turn and returns its result and what was logged meanwhile.
async fn logged_during<T>(test: impl Future<Output = T>) -> (T, String) {
    let _turn = LOG_TURN.lock().await;
    let before = LOGS.text().len();
    let result = test.await;
    (result, LOGS.text()[before..].to_owned())
}

/// Behind Debian 12's PgBouncer 1.18 in transaction mode, the default store finds the pooler by its probe, before
/// it sends any named statement, and answers every request the pooler-safe way. (Behind PgBouncer 1.21 and later,
/// which tracks prepared statements, it keeps its named statements.)
#[actix_web::test]
async fn behind_a_pooler_that_does_not_track_statements_the_probe_chooses_the_pooler_safe_way_first() {
    let schema = TestSchema::create().await;
    let bouncer = PgBouncer::in_front_of_database_url(Some(&schema.name));
    let pool = pool_for(&bouncer.url(), None, 16);
    let store = PostgresStore::new(pool.clone()).with_schema(&schema.name);
    store.migrate().await.expect("migrate");
    let ((), logged) = logged_during(async {
        let from = LOGS.text().len();
        workload(&store).await;
        // Until the probe answers, statements go unnamed; on a busy machine it may answer after the first workload.
        // Behind a pooler that does not track statements, run until it said so (or for 30 s) and once more.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        if !support::pgbouncer::tracks_prepared_statements() {
            while !LOGS.text()[from..].contains(FOUND_BY_PROBE) && std::time::Instant::now() < deadline {
                workload(&store).await;
            }
            workload(&store).await;
        }
    })
    .await;

    let client = pool.get().await.expect("a connection");
    let mut seen = (0, 0);
    for _ in 0..SERVER_POOL_SIZE * 2 {
        let (pooler_safe, named) = statements_on_backend(&client).await;
        seen = (seen.0.max(pooler_safe), seen.1.max(named));
    }
    if support::pgbouncer::tracks_prepared_statements() {
        assert!(!logged.contains(FOUND_BY_PROBE) && !logged.contains(FOUND_BY_FAILURE), "{logged}");
        assert_eq!(seen.0, 0, "no pooler-safe statement behind a tracking pooler");
    } else {
        assert!(logged.contains(FOUND_BY_PROBE), "the probe said what it found and which setting selects it: {logged}");
        assert!(!logged.contains(FOUND_BY_FAILURE), "no named statement of the store failed first: {logged}");
        assert!(seen.0 >= 2, "the claim and the completion at least went the pooler-safe way: {seen:?}");
    }
    drop(client);
    schema.drop_schema().await;
}

/// Directly, the probe finds named statements safe; when the backends then forget them (as they do behind a pooler
/// that hands the connection's next round trip to another backend), the first failed statement switches the store
/// to the pooler-safe way, is sent again, and every request is answered. The switch is said once.
#[actix_web::test]
async fn a_named_statement_the_backend_does_not_know_switches_the_store_and_is_sent_again() {
    let schema = TestSchema::create().await;
    let pool = schema.pool(2);
    let store = PostgresStore::new(pool.clone()).with_schema(&schema.name);
    store.migrate().await.expect("migrate");
    let ((), logged) = logged_during(async {
        workload(&store).await;
        let clients = [pool.get().await.expect("first"), pool.get().await.expect("second")];
        for client in &clients {
            let (pooler_safe, named) = statements_on_backend(client).await;
            assert_eq!(pooler_safe, 0, "named statements only, before the switch");
            assert!(named >= 1, "the store's named statements are prepared");
            client.batch_execute("DEALLOCATE ALL").await.expect("forget every prepared statement");
        }
        drop(clients);
        workload(&store).await;
        workload(&store).await;
    })
    .await;
    assert_eq!(logged.matches(FOUND_BY_FAILURE).count(), 1, "the switch is said once: {logged}");
    assert!(logged.contains("PostgresStore::with_pooler_safe_statements()"), "it names the setting: {logged}");
    let clients = [pool.get().await.expect("first"), pool.get().await.expect("second")];
    let mut pooler_safe = 0;
    for client in &clients {
        pooler_safe += statements_on_backend(client).await.0;
    }
    assert!(pooler_safe >= 2, "after the switch the statements go the pooler-safe way: {pooler_safe}");
    drop(clients);
    schema.drop_schema().await;
}

/// The ERROR lines of a server log.
fn error_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|line| line.contains("ERROR:")).collect()
}

/// On the default settings, the store's work leaves no ERROR line in PostgreSQL's own log, directly; behind
/// PgBouncer 1.18 (the pooler-safe way) the only ones are the documented ones: the probe's `prepared statement
/// "sN" does not exist` (at most once per store), and `prepared statement "idempotent_..." does not exist` once
/// per statement a backend meets first (or `already exists`, when the `PREPARE` that follows reaches a backend that
/// another client's `PREPARE` reached first).
#[actix_web::test]
async fn the_default_settings_leave_no_error_in_the_servers_log() {
    let _turn = LOG_TURN.lock().await;
    let cluster = PrivateCluster::start();
    let direct = pool_for(&cluster.url(), None, 8);
    let store = PostgresStore::new(direct.clone());
    store.migrate().await.expect("migrate");
    workload(&store).await;
    let log = cluster.server_log();
    assert!(log.contains("database system is ready"), "the server's log is read: {log}");
    assert_eq!(error_lines(&log), Vec::<&str>::new(), "directly, no ERROR line");

    let bouncer = PgBouncer::start("127.0.0.1", cluster.port, None);
    let pooled = PostgresStore::new(pool_for(&bouncer.url(), None, 8));
    let logged_from = LOGS.text().len();
    workload(&pooled).await;
    // What the store said it found, for a failure's message.
    let store_said = LOGS.text()[logged_from..].to_owned();
    let log = cluster.server_log();
    let errors = error_lines(&log);
    if support::pgbouncer::tracks_prepared_statements() {
        assert_eq!(errors, Vec::<&str>::new(), "behind a tracking pooler, no ERROR line");
    } else {
        // The probe's named statement, sent once, fails on a backend it was not prepared on: its evidence.
        let (probe, pooler_safe): (Vec<&str>, Vec<&str>) =
            errors.iter().partition(|line| line.contains("ERROR:  prepared statement \"s"));
        assert!(probe.len() <= 1, "the probe's one named statement: {probe:?}; the store said: {store_said}");
        for line in &pooler_safe {
            assert!(
                line.contains("ERROR:  prepared statement \"idempotent_")
                    && (line.ends_with("\" does not exist") || line.ends_with("\" already exists")),
                "only a backend's first EXECUTE of a pooler-safe statement (and its PREPARE, when another client's \
                 reached that backend first) logs an error: {line}"
            );
        }
    }
}
