//! How `PostgresStore` sends its statements: by default named and prepared once per connection, and with
//! `with_pooler_safe_statements()` (or once the default found a pooler that does not track prepared statements)
//! prepared once per backend under a name derived from their text and run with `EXECUTE`. The conformance suites
//! prove the answers right, directly and behind PgBouncer; these tests prove the statements really are prepared
//! and run from their plans, and that a backend which forgot them, or whose table changed under them, keeps
//! answering.

#[macro_use]
mod support;

use std::collections::HashMap;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::web::Bytes;
use idempotent_runtime::PostgresStore;
use idempotent_runtime::store::{
    Attempt, Claim, ClaimRequest, Completion, RecordId, RecordState, Store, StoredResponse, testing,
};
use support::Connection;
use support::pgbouncer::SERVER_POOL_SIZE;
use support::postgres::TestSchema;
use tokio_postgres::SimpleQueryMessage;

/// Claims, completions and replays of fresh keys, each checked by the conformance kit.
async fn workload(store: &dyn Store) {
    testing::one_claim_wins_and_the_record_is_replayed_after_completion(store).await;
    testing::a_completion_keeps_status_headers_and_body_exactly(store).await;
    testing::claims_stay_exact_when_retries_dominate(store).await;
}

/// The store's shared statements (named from their text) in `pg_prepared_statements`.
const SHARED: &str = "name LIKE 'idempotent\\_%'";

/// On the backend `client` reaches: how many prepared statements match `condition`, and how many times they ran
/// from a plan. One simple query: one round trip, so behind a pooler the answer is one backend's.
async fn prepared_statements(client: &tokio_postgres::Client, condition: &str) -> (u64, u64) {
    let sql = format!(
        "SELECT count(*), coalesce(sum(generic_plans + custom_plans), 0) FROM pg_prepared_statements WHERE {condition}"
    );
    let numbers = support::postgres::first_row_numbers(client, &sql).await;
    (numbers[0], numbers[1])
}

/// The server's clock, as text for a `timestamptz` literal.
async fn server_clock(client: &tokio_postgres::Client) -> String {
    let messages = client.simple_query("SELECT clock_timestamp()::text").await.expect("the server's clock");
    messages
        .iter()
        .find_map(|message| match message {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .expect("one row")
}

/// [`prepared_statements`] on each backend the pool's connections reach, each probe inside a transaction held
/// open until all are done, so that behind PgBouncer each reaches a backend of its own (all of them: as many probes
/// as it has backends); directly, on every connection of the pool.
async fn on_every_backend(connection: Connection, pool: &deadpool_postgres::Pool, condition: &str) -> Vec<(u64, u64)> {
    let clients = pinned(connection, pool).await;
    let mut found = Vec::new();
    for client in &clients {
        found.push(prepared_statements(client, condition).await);
    }
    unpin(&clients).await;
    found
}

/// A connection per backend, each in a transaction (so that behind PgBouncer each holds a backend of its own).
async fn pinned(connection: Connection, pool: &deadpool_postgres::Pool) -> Vec<deadpool_postgres::Object> {
    let backends = match connection {
        Connection::Direct => pool.status().size.max(1),
        Connection::PgBouncer => SERVER_POOL_SIZE,
    };
    let mut clients = Vec::new();
    for _ in 0..backends {
        let client = pool.get().await.expect("a connection");
        client.batch_execute("BEGIN").await.expect("pin a backend");
        clients.push(client);
    }
    clients
}

async fn unpin(clients: &[deadpool_postgres::Object]) {
    for client in clients {
        client.batch_execute("ROLLBACK").await.expect("release the backend");
    }
}

/// The store's statements (shared or protocol-level) on each backend [`on_every_backend`] reaches: for each backend
/// (by its process id), each statement's text and when it was prepared.
async fn statements_by_backend(
    connection: Connection,
    pool: &deadpool_postgres::Pool,
) -> HashMap<String, HashMap<String, String>> {
    let clients = pinned(connection, pool).await;
    let mut found: HashMap<String, HashMap<String, String>> = HashMap::new();
    for client in &clients {
        let messages = client
            .simple_query(&format!(
                "SELECT pg_backend_pid()::text, statement, prepare_time::text FROM pg_prepared_statements \
                 WHERE {SHARED} OR NOT from_sql"
            ))
            .await
            .expect("read pg_prepared_statements");
        for message in messages {
            if let SimpleQueryMessage::Row(row) = message {
                let text = |index: usize| row.get(index).expect("not null").to_owned();
                found.entry(text(0)).or_default().insert(text(1), text(2));
            }
        }
    }
    unpin(&clients).await;
    found
}

async fn statements_are_prepared_once_per_backend_and_run_from_their_plans(connection: Connection) {
    let schema = TestSchema::create().await;
    let (pool, _bouncer) = connection.app_pool(&schema, 16);
    let store = PostgresStore::new(pool.clone()).with_schema(&schema.name).with_pooler_safe_statements();
    store.migrate().await.expect("migrate");
    workload(&store).await;
    testing::concurrent_claims_of_one_record_acquire_exactly_once(std::sync::Arc::new(store.clone())).await;

    // Directly, the pool's connections each prepared what they ran. Behind PgBouncer the clients' connections
    // share SERVER_POOL_SIZE backends, and the probes below reach each of them.
    let best = on_every_backend(connection, &pool, SHARED).await.into_iter().max().expect("a backend");
    let (prepared, executions) = best;
    assert!(prepared >= 2, "the claim and the completion at least are prepared, found {prepared}");
    assert!(
        executions > prepared,
        "statements ran from their plans more than once each: {executions} runs of {prepared}"
    );
    // Once per backend: no backend holds one statement's text under two names.
    let duplicates = format!(
        "{SHARED} AND statement IN (SELECT statement FROM pg_prepared_statements WHERE {SHARED} GROUP BY statement \
         HAVING count(*) > 1)"
    );
    for (backend, (twice, _)) in on_every_backend(connection, &pool, &duplicates).await.into_iter().enumerate() {
        assert_eq!(twice, 0, "backend {backend}: {twice} statements prepared under more than one name");
    }
    schema.drop_schema().await;
}

mod pooler_safe {
    use super::*;
    on_every_connection!(statements_are_prepared_once_per_backend_and_run_from_their_plans);
}

/// By default, directly: the store's statements are tokio-postgres' named statements, prepared once per connection
/// and run from their plans, and none goes the pooler-safe way.
#[actix_web::test]
async fn by_default_statements_are_named_and_prepared_once_per_connection() {
    let schema = TestSchema::create().await;
    // The default probes two connections before its first statement (a pool of one cannot be probed, and goes the
    // pooler-safe way); both are read below.
    let pool = schema.pool(2);
    let store = PostgresStore::new(pool.clone()).with_schema(&schema.name);
    store.migrate().await.expect("migrate");
    workload(&store).await;
    let clients = [pool.get().await.expect("first"), pool.get().await.expect("second")];
    let (mut prepared, mut runs) = (0, 0);
    for client in &clients {
        assert_eq!(prepared_statements(client, SHARED).await, (0, 0), "no pooler-safe statement");
        let (named, named_runs) = prepared_statements(client, "NOT from_sql").await;
        (prepared, runs) = (prepared + named, runs + named_runs);
    }
    assert!(prepared >= 2, "the claim and the completion at least are named statements, found {prepared}");
    assert!(runs > prepared, "named statements ran from their plans more than once each: {runs} runs of {prepared}");
    drop(clients);
    schema.drop_schema().await;
}

/// A migrated store on a fresh schema whose pool holds one connection, so that every statement and every probe
/// reaches the same backend; after the workload ran once on it.
async fn store_on_one_backend() -> (TestSchema, deadpool_postgres::Pool, PostgresStore) {
    let schema = TestSchema::create().await;
    let pool = schema.pool(1);
    let store = PostgresStore::new(pool.clone()).with_schema(&schema.name).with_pooler_safe_statements();
    store.migrate().await.expect("migrate");
    workload(&store).await;
    (schema, pool, store)
}

/// The one backend has the store's statements prepared and ran them from their plans more than once each.
async fn assert_prepared_and_reused(pool: &deadpool_postgres::Pool) {
    let client = pool.get().await.expect("the pool's one connection");
    let (prepared, executions) = prepared_statements(&client, SHARED).await;
    assert!(prepared >= 2 && executions > prepared, "prepared again and reused: {executions} runs of {prepared}");
}

/// On one backend, a second workload prepares nothing again: every statement it runs is the one prepared by the
/// first, run from its plan (a store that prepared per request, or deallocated after each, fails here).
#[actix_web::test]
async fn one_backend_prepares_each_statement_once() {
    let (schema, pool, store) = store_on_one_backend().await;
    let client = pool.get().await.expect("the pool's one connection");
    let (prepared, runs) = prepared_statements(&client, SHARED).await;
    let after_first = server_clock(&client).await;
    drop(client);
    workload(&store).await;
    let client = pool.get().await.expect("the pool's one connection");
    let since = format!("{SHARED} AND prepare_time > '{after_first}'::timestamptz");
    assert_eq!(prepared_statements(&client, &since).await.0, 0, "prepared again by the second workload");
    let (prepared_after, runs_after) = prepared_statements(&client, SHARED).await;
    assert_eq!(prepared_after, prepared, "the same statements");
    assert!(runs_after >= runs + prepared, "each statement ran again from its plan: {runs} then {runs_after} runs");
    drop(client);
    schema.drop_schema().await;
}

/// A backend that forgot its prepared statements (`DISCARD ALL`, which PgBouncer's session mode runs between
/// clients) prepares them again at the next request; nothing fails meanwhile.
#[actix_web::test]
async fn a_backend_that_forgot_the_statements_prepares_them_again() {
    let (schema, pool, store) = store_on_one_backend().await;
    let client = pool.get().await.expect("the pool's one connection");
    assert!(prepared_statements(&client, SHARED).await.0 >= 2);
    client.batch_execute("DISCARD ALL").await.expect("discard");
    assert_eq!(prepared_statements(&client, SHARED).await, (0, 0));
    drop(client);

    workload(&store).await;
    assert_prepared_and_reused(&pool).await;
    schema.drop_schema().await;
}

/// A migration that changes a column's type makes PostgreSQL refuse the statements prepared before it (`cached
/// plan must not change result type`); the store forgets them and answers every request meanwhile, instead of
/// failing on such a backend for as long as it lives. Behind PgBouncer the `DEALLOCATE` may reach another backend,
/// which may not know the name: requests still succeed.
async fn a_column_whose_type_changed_under_prepared_statements_is_read_afresh(connection: Connection) {
    let schema = TestSchema::create().await;
    let (pool, _bouncer) = connection.app_pool(&schema, 16);
    let store = PostgresStore::new(pool.clone()).with_schema(&schema.name);
    store.migrate().await.expect("migrate");
    for _ in 0..SERVER_POOL_SIZE {
        workload(&store).await;
    }
    let before = statements_by_backend(connection, &pool).await;
    let client = pool.get().await.expect("a connection");
    client
        .batch_execute(&format!("ALTER TABLE {}.idempotency_records ALTER COLUMN state TYPE varchar(16)", schema.name))
        .await
        .expect("change the column's type");
    drop(client);

    for _ in 0..SERVER_POOL_SIZE * 2 {
        workload(&store).await;
    }
    // The refused statements were forgotten and prepared again (named or pooler-safe, whichever way the store
    // went): some backend holds a statement it had before the change, prepared anew. A store that only answered
    // around them would leave them as they were (a fresh backend's first statements do not count).
    let after = statements_by_backend(connection, &pool).await;
    let again = after
        .iter()
        .flat_map(|(backend, statements)| statements.iter().map(move |statement| (backend, statement)))
        .filter(|(backend, (text, prepared_at))| {
            before.get(*backend).and_then(|old| old.get(*text)).is_some_and(|old_at| old_at != *prepared_at)
        })
        .count();
    // Behind a pooler that tracks prepared statements, the server-side statements are the pooler's (PgBouncer
    // keeps one per text and backend, whatever name the client gives): the store cannot replace them, and answers
    // around them, unnamed, until the pooler's server connections are renewed (docs/decisions.md).
    let pooler_owns_them = connection == Connection::PgBouncer && support::pgbouncer::tracks_prepared_statements();
    assert!(
        again >= 1 || pooler_owns_them,
        "no statement was prepared again after the type change: before {before:?}, after {after:?}"
    );
    schema.drop_schema().await;
}

mod type_change {
    use super::*;
    on_every_connection!(a_column_whose_type_changed_under_prepared_statements_is_read_afresh);
}

/// Directly, on one backend: after the type change the statements are prepared again and run from their plans.
#[actix_web::test]
async fn after_a_type_change_one_backend_prepares_the_statements_again() {
    let (schema, pool, store) = store_on_one_backend().await;
    let client = pool.get().await.expect("the pool's one connection");
    let changed_at = server_clock(&client).await;
    client
        .batch_execute(&format!("ALTER TABLE {}.idempotency_records ALTER COLUMN state TYPE varchar(16)", schema.name))
        .await
        .expect("change the column's type");
    drop(client);
    workload(&store).await;
    workload(&store).await;
    let client = pool.get().await.expect("the pool's one connection");
    let since = format!("{SHARED} AND prepare_time > '{changed_at}'::timestamptz");
    let (prepared, runs) = prepared_statements(&client, &since).await;
    assert!(prepared >= 1 && runs >= 1, "prepared again after the change and run: {runs} runs of {prepared}");
    drop(client);
    schema.drop_schema().await;
}

/// The two other statement modes serve the same requests and leave no shared statement behind: unnamed statements
/// none at all, tokio-postgres' named statements only their own protocol-level ones.
#[actix_web::test]
async fn the_unnamed_and_the_named_modes_prepare_no_shared_statement() {
    let schema = TestSchema::create().await;
    let pool = schema.pool(1);
    let modes = [
        (PostgresStore::new(pool.clone()).with_schema(&schema.name).with_unnamed_statements(), "unnamed"),
        (PostgresStore::new(pool.clone()).with_schema(&schema.name).with_prepared_statements(), "named"),
    ];
    modes[0].0.migrate().await.expect("migrate");
    for (store, mode) in &modes {
        workload(store).await;
        let client = pool.get().await.expect("the pool's one connection");
        assert_eq!(prepared_statements(&client, SHARED).await, (0, 0), "{mode}: no shared statement");
        let (named, _) = prepared_statements(&client, "NOT from_sql").await;
        assert_eq!(named > 0, *mode == "named", "{mode}: {named} protocol-level statements");
    }
    schema.drop_schema().await;
}

/// Arguments travel inside the `EXECUTE` text as literals: a route with quotes, backslashes and non-ASCII text and
/// a fingerprint of high byte values reach the table exactly as bound parameters would, and read back unchanged.
/// (The stored response, here every byte value and headers that are not UTF-8, is always bound.)
#[actix_web::test]
async fn quotes_backslashes_and_every_byte_value_reach_the_table_unchanged() {
    let (schema, pool, store) = store_on_one_backend().await;
    let every_byte: Vec<u8> = (0..=255).collect();
    let route = "/o'clock\\\\{id}/é'';--";
    let response = StoredResponse {
        status: StatusCode::CREATED,
        headers: vec![
            (HeaderName::from_static("x-quote"), HeaderValue::from_static("it's \\ here")),
            (
                HeaderName::from_static("x-bytes"),
                HeaderValue::from_bytes(&[0x80, 0xff, b'\'', b'\\']).expect("obs-text"),
            ),
        ],
        body: Some(Bytes::from(every_byte.clone())),
    };
    let client = pool.get().await.expect("the pool's one connection");
    let (_, runs_before) = prepared_statements(&client, SHARED).await;
    drop(client);
    // Two keys: the claim and the read run `EXECUTE` for both; the lookup, new to the backend, for the second.
    for key in [[7_u8; 32], [8_u8; 32]] {
        let id = RecordId { scope_hash: [9; 32], key_hash: key, method: "POST".into(), route: route.into() };
        let fingerprint: [u8; 32] = every_byte[224..].try_into().expect("32 bytes");
        let request = ClaimRequest {
            id: id.clone(),
            fingerprint,
            token: i64::MIN,
            lease: Duration::from_secs(30),
            ttl: Duration::from_secs(3600),
        };
        assert_eq!(store.claim(&request).await.expect("claim"), Claim::Acquired { took_over: false });
        let attempt = Attempt { id: id.clone(), token: i64::MIN };
        assert_eq!(store.complete(&attempt, &response, request.ttl).await.expect("complete"), Completion::Stored);
        let record = store.read(&id).await.expect("read").expect("the record");
        assert_eq!(record.fingerprint, fingerprint);
        assert_eq!(record.state, RecordState::Completed(response.clone()));
        let status = store.lookup(&id.scope_hash, &key).await.expect("lookup").expect("a status");
        assert_eq!((status.method.as_str(), status.route.as_str()), ("POST", route));
    }
    let client = pool.get().await.expect("the pool's one connection");
    let (_, runs_after) = prepared_statements(&client, SHARED).await;
    assert!(runs_after >= runs_before + 5, "the arguments went through EXECUTE: {runs_before} runs, then {runs_after}");
    let completion = format!("{SHARED} AND statement LIKE '%SET state = ''completed''%'");
    assert_eq!(prepared_statements(&client, &completion).await, (0, 0), "the stored response is always bound");
    drop(client);
    schema.drop_schema().await;
}
