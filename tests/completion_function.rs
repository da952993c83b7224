//! The schema's completion function (`idempotency_records_complete`, `sql/schema.sql`): on the pooler-safe and the
//! unnamed statements a response is stored through it (its plan cached per connection, the response still bound;
//! the default's named statements prepare the plain `UPDATE` once per connection instead), it updates the table of the
//! schema it was created in whatever the caller's `search_path`, and a table created before it existed keeps
//! storing responses with the plain `UPDATE`, saying so once, as does a role that may not execute it.

mod support;

use std::sync::OnceLock;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use idempotent_runtime::PostgresStore;
use idempotent_runtime::store::{Attempt, Claim, ClaimRequest, Completion, RecordId, Store, StoredResponse, testing};
use support::logs::CapturedLogs;
use support::postgres::TestSchema;

/// The function's argument types, as `DROP FUNCTION` and `CREATE OR REPLACE FUNCTION` name it.
const SIGNATURE: &str =
    "idempotency_records_complete(bytea, bytea, text, text, bigint, float8, smallint, text[], bytea[], bytea)";

/// Claims a fresh key on `store`: the attempt that holds it.
async fn claim_fresh(store: &dyn Store) -> Attempt {
    let request = ClaimRequest {
        id: RecordId {
            scope_hash: [3; 32],
            key_hash: std::array::from_fn(|_| fastrand::u8(..)),
            method: "POST".into(),
            route: "/completed".into(),
        },
        fingerprint: [4; 32],
        token: fastrand::i64(..),
        lease: Duration::from_secs(30),
        ttl: Duration::from_secs(60),
    };
    let claim = store.claim(&request).await.expect("claim");
    assert!(matches!(claim, Claim::Acquired { .. }), "a fresh key is acquired: {claim:?}");
    Attempt { id: request.id, token: request.token }
}

/// Stores a response for `attempt`: `Ok` when it was stored.
async fn complete(store: &dyn Store, attempt: &Attempt) -> Result<(), String> {
    let response =
        StoredResponse { status: StatusCode::CREATED, headers: vec![], body: Some(Bytes::from_static(b"{}")) };
    match store.complete(attempt, &response, Duration::from_secs(60)).await {
        Ok(Completion::Stored) => Ok(()),
        Ok(other) => panic!("the attempt that holds the claim is fenced: {other:?}"),
        Err(error) => Err(error.to_string()),
    }
}

/// Claims a fresh key on `store` and stores a response for it: `Ok` when the response was stored.
async fn claim_and_complete(store: &dyn Store) -> Result<(), String> {
    let attempt = claim_fresh(store).await;
    complete(store, &attempt).await
}

/// This binary's logs, from every test's thread: one global subscriber, installed by the first test that asks.
fn logs() -> &'static CapturedLogs {
    static LOGS: OnceLock<CapturedLogs> = OnceLock::new();
    LOGS.get_or_init(CapturedLogs::install)
}

/// Whether `schema` has the completion function.
async fn has_function(pool: &deadpool_postgres::Pool, schema: &str) -> bool {
    let query = format!("SELECT to_regprocedure('{schema}.{SIGNATURE}') IS NOT NULL");
    pool.get().await.unwrap().query_one(&query, &[]).await.unwrap().get(0)
}

/// The rows of `table` that match `condition`.
async fn count(pool: &deadpool_postgres::Pool, table: &str, condition: &str) -> i64 {
    let query = format!("SELECT count(*) FROM {table} WHERE {condition}");
    pool.get().await.unwrap().query_one(&query, &[]).await.unwrap().get(0)
}

/// A store on a fresh schema with the pooler-safe statements, migrated, and a pool of that schema.
async fn migrated_store() -> (TestSchema, deadpool_postgres::Pool, PostgresStore) {
    let schema = TestSchema::create().await;
    let pool = schema.pool(4);
    let store = PostgresStore::new(pool.clone()).with_schema(&schema.name).with_pooler_safe_statements();
    store.migrate().await.expect("migrate");
    (schema, pool, store)
}

#[actix_web::test]
async fn responses_are_stored_through_the_function_except_on_named_statements() {
    let (schema, pool, store) = migrated_store().await;
    claim_and_complete(&store).await.expect("the schema's function stores the response");
    // A function that refuses every call tells which stores call it.
    let refusing = format!(
        "DROP FUNCTION {0}.{SIGNATURE}; CREATE FUNCTION {0}.{SIGNATURE} RETURNS SETOF boolean LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'the completion function ran'; END $$",
        schema.name
    );
    pool.get().await.unwrap().batch_execute(&refusing).await.expect("replace the function");

    for (mode, store) in [("pooler-safe", store.clone()), ("unnamed", store.clone().with_unnamed_statements())] {
        let answer = claim_and_complete(&store).await;
        assert!(
            answer.as_ref().is_err_and(|error| error.contains("the completion function ran")),
            "the {mode} statements store responses through the function: {answer:?}"
        );
    }
    // Named statements (the default's, directly, once its probe answered; until then it sends statements unnamed)
    // are planned once per connection anyway: the plain UPDATE, prepared.
    let default = PostgresStore::new(pool.clone()).with_schema(&schema.name);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while claim_and_complete(&default).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "the default's named statements do not call the function");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    claim_and_complete(&store.with_prepared_statements()).await.expect("named statements do not call the function");
    schema.drop_schema().await;
}

#[actix_web::test]
async fn a_table_created_before_the_function_existed_still_stores_responses() {
    let (schema, pool, store) = migrated_store().await;
    pool.get().await.unwrap().batch_execute(&format!("DROP FUNCTION {}.{SIGNATURE}", schema.name)).await.unwrap();

    // The first completions, at once, all find the function missing; the store says so once, and the next
    // completions no longer look for it.
    let logs = logs();
    let mut attempts = Vec::new();
    for _ in 0..4 {
        attempts.push(claim_fresh(&store).await);
    }
    // Sent together, the four completions all try the function before any of them hears it is missing.
    let first = futures_util::future::join_all(attempts.iter().map(|attempt| complete(&store, attempt))).await;
    assert!(first.iter().all(Result::is_ok), "every first completion is stored: {first:?}");
    testing::a_completion_keeps_status_headers_and_body_exactly(&store).await;
    testing::one_claim_wins_and_the_record_is_replayed_after_completion(&store).await;
    // The warning quotes the missing function by its schema, which is this test's alone.
    let warnings = logs
        .text()
        .lines()
        .filter(|line| line.contains("completion function cannot be called") && line.contains(&schema.name))
        .count();
    assert_eq!(warnings, 1, "one warning for the store, not one per completion");
    // Applying the schema again brings the function back; a store started afterwards uses it.
    store.migrate().await.expect("migrate again");
    assert!(has_function(&pool, &schema.name).await, "migrate() creates the function on a table that lacked it");
    let restarted = PostgresStore::new(pool).with_schema(&schema.name).with_pooler_safe_statements();
    testing::a_completion_keeps_status_headers_and_body_exactly(&restarted).await;
    schema.drop_schema().await;
}

#[actix_web::test]
async fn the_function_writes_to_its_own_schemas_table_whatever_the_search_path() {
    let (records, decoy) = (TestSchema::create().await, TestSchema::create().await);
    PostgresStore::new(decoy.pool(1)).migrate().await.expect("a decoy table first in the search_path");
    // The store's connections look up names in the decoy's schema; its table and function are in `records`.
    let store = PostgresStore::new(decoy.pool(4)).with_schema(&records.name).with_pooler_safe_statements();
    store.migrate().await.expect("migrate");
    assert!(has_function(&decoy.pool(1), &records.name).await, "the function is created beside its table");

    testing::one_claim_wins_and_the_record_is_replayed_after_completion(&store).await;
    testing::a_completion_keeps_status_headers_and_body_exactly(&store).await;
    let store_table = format!("{}.idempotency_records", records.name);
    let completed = count(&decoy.pool(1), &store_table, "state = 'completed'").await;
    assert!(completed >= 2, "the completions reached the store's table: {completed}");
    let decoy_rows = count(&decoy.pool(1), "idempotency_records", "true").await;
    assert_eq!(decoy_rows, 0, "nothing reached the table the caller's search_path names");
    records.drop_schema().await;
    decoy.drop_schema().await;
}

/// A migrated schema, its owner's pool, and an application role that may use the table but owns nothing, with a
/// pool that logs in as it.
struct TwoRoles {
    schema: TestSchema,
    owner: deadpool_postgres::Pool,
    role: String,
    app: deadpool_postgres::Pool,
}

impl TwoRoles {
    async fn create() -> Self {
        let schema = TestSchema::create().await;
        let owner = schema.pool(2);
        PostgresStore::new(owner.clone()).migrate().await.expect("migrate as the owner");
        let role = format!("{}_app", schema.name);
        let grants = format!(
            "CREATE ROLE {role} LOGIN; GRANT USAGE, CREATE ON SCHEMA {0} TO {role}; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON {0}.idempotency_records TO {role}",
            schema.name
        );
        owner.get().await.unwrap().batch_execute(&grants).await.expect("an application role");
        let mut config = schema.config();
        config.user(&role);
        let manager = deadpool_postgres::Manager::from_config(config, tokio_postgres::NoTls, Default::default());
        let app = deadpool_postgres::Pool::builder(manager).max_size(2).build().unwrap();
        Self { schema, owner, role, app }
    }

    async fn drop_all(self) {
        let Self { schema, owner, role, app } = self;
        drop(app);
        schema.drop_schema().await;
        owner.get().await.unwrap().batch_execute(&format!("DROP ROLE {role}")).await.expect("drop the role");
    }
}

#[actix_web::test]
async fn migrating_as_another_role_leaves_the_function_to_its_owner() {
    let roles = TwoRoles::create().await;

    // Only the owner may replace a function: the application role's migrate() leaves it and succeeds.
    PostgresStore::new(roles.app.clone()).migrate().await.expect("another role's migrate()");
    assert!(has_function(&roles.owner, &roles.schema.name).await, "the owner's function stays");
    let store = PostgresStore::new(roles.app.clone()).with_pooler_safe_statements();
    testing::a_completion_keeps_status_headers_and_body_exactly(&store).await;

    roles.drop_all().await;
}

#[actix_web::test]
async fn a_role_that_may_not_execute_the_function_still_stores_responses() {
    let roles = TwoRoles::create().await;
    let revoke = format!("REVOKE EXECUTE ON FUNCTION {}.{SIGNATURE} FROM PUBLIC", roles.schema.name);
    roles.owner.get().await.unwrap().batch_execute(&revoke).await.expect("revoke EXECUTE");

    // The function answers 42501 to this role: its completions run as the plain UPDATE, which it may run.
    let store = PostgresStore::new(roles.app.clone()).with_pooler_safe_statements();
    testing::a_completion_keeps_status_headers_and_body_exactly(&store).await;
    claim_and_complete(&store).await.expect("a later completion, without the function");

    drop(store);
    roles.drop_all().await;
}
