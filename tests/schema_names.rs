//! A schema name is any string (issue 29): one that spells the statements' placeholders and holds a quote, a
//! backslash and a double quote, or non-ASCII characters, still names its own schema and nothing else, in
//! sessions where `standard_conforming_strings` is off and `backslash_quote` on, and under a non-UTF-8
//! `client_encoding`. The store shares the application's pool, so it meets whatever sessions the application
//! set up.

mod support;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use idempotent_runtime::outbox::{
    OutboxMessage, OutboxRelay, OutgoingMessage, PublishError, Publisher, RelayedBatch, backlog,
};
use idempotent_runtime::store::testing;
use idempotent_runtime::{PostgresStore, Store, TransactionalReceiver, admin};
use tokio_postgres::NoTls;

use support::postgres::{TestSchema, database_url};

/// The sessions the store must work in, as the `SET` an application could have run on its pool's connections.
const SESSIONS: [(&str, &str); 3] = [
    ("default", "SET standard_conforming_strings = on"),
    ("no standard strings", "SET standard_conforming_strings = off; SET backslash_quote = on"),
    (
        "SJIS, no standard strings",
        "SET client_encoding = 'SJIS'; SET standard_conforming_strings = off; SET backslash_quote = on",
    ),
];

/// A pool of one connection set up with `session`: every statement of the store then runs in it.
async fn pool_in(session: &str) -> Pool {
    let url = database_url();
    let config: tokio_postgres::Config =
        url.parse().unwrap_or_else(|error| panic!("DATABASE_URL={url} is not a PostgreSQL URL: {error}"));
    let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    let pool = Pool::builder(manager).max_size(1).build().expect("a pool without runtime hooks always builds");
    pool.get().await.expect("a connection").batch_execute(session).await.expect("the session's settings");
    pool
}

/// Confirms every message (the outbox's relay needs a publisher; no broker is involved here).
struct Confirming;

#[async_trait::async_trait]
impl Publisher for Confirming {
    async fn publish(&self, batch: &[OutgoingMessage]) -> Vec<Result<(), PublishError>> {
        batch.iter().map(|_| Ok(())).collect()
    }
}

/// `name` as an identifier, for this suite's own statements (on a UTF-8 session with standard strings).
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Migrates a store in `schema` on a pool in `session`, runs claims, completions, replays, the purge and the
/// table check through it, and shows that its records are in `schema` and nowhere else.
async fn the_store_keeps_to_its_schema(schema: &str, session_name: &str, session: &str) {
    // Fails loudly, with the fix, when PostgreSQL is unreachable.
    let admin = TestSchema::create().await;
    let admin_pool = admin.pool(1);
    let store = PostgresStore::new(pool_in(session).await).with_schema(schema);
    let context = format!("schema {schema:?}, session {session_name}");
    store.migrate().await.unwrap_or_else(|error| panic!("{context}: migrate: {error}"));

    testing::one_claim_wins_and_the_record_is_replayed_after_completion(&store).await;
    testing::a_completion_keeps_status_headers_and_body_exactly(&store).await;
    store
        .clone()
        .with_unnamed_statements()
        .purge_batch(1_000)
        .await
        .unwrap_or_else(|error| panic!("{context}: {error}"));
    store.purge_batch(1_000).await.unwrap_or_else(|error| panic!("{context}: purge: {error}"));
    let check = admin::check_table(&store).await.unwrap_or_else(|error| panic!("{context}: check: {error}"));
    // The table check binds the name as text, which the server reads in the session's client_encoding while
    // tokio-postgres always sends UTF-8: a non-ASCII name is misread under SJIS (as any bound text would be).
    if schema.is_ascii() || !session.contains("client_encoding") {
        assert!(check.present, "{context}: the table check finds the table");
    }

    // The outbox, beside the records: enqueue in a receiver's transaction, relay, backlog.
    let inbox = TransactionalReceiver::new(store.clone());
    inbox
        .run("outbox", "message-1", b"payload", |tx| async move {
            tx.enqueue(OutboxMessage::new("d", b"event".to_vec())).await.map(|_| Vec::new())
        })
        .await
        .unwrap_or_else(|error| panic!("{context}: enqueue: {error:?}"));
    assert_eq!(backlog(&store).await.unwrap_or_else(|error| panic!("{context}: backlog: {error}")).waiting, 1);
    let relay = OutboxRelay::builder(&store, Confirming).retention(std::time::Duration::ZERO).build();
    let relayed = relay.relay_once().await.unwrap_or_else(|error| panic!("{context}: relay: {error}"));
    assert_eq!(relayed, RelayedBatch { sent: 1, failed: 0 }, "{context}");
    assert_eq!(relay.purge_sent().await.unwrap_or_else(|error| panic!("{context}: purge sent: {error}")), 1);

    let client = admin_pool.get().await.expect("an admin connection");
    let rows: i64 = client
        .query_one(&format!("SELECT count(*) FROM {}.idempotency_records", quoted(schema)), &[])
        .await
        .unwrap_or_else(|error| panic!("{context}: the schema's table: {error}"))
        .get(0);
    assert!(rows >= 2, "{context}: the records are in the schema's table ({rows})");
    let tables: i64 = client
        .query_one("SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename = 'idempotency_records' AND schemaname LIKE '%' || $1", &[&suffix(schema)])
        .await
        .expect("count the tables")
        .get(0);
    assert_eq!(tables, 1, "{context}: one table, in the schema named, and no other schema made");
    client.batch_execute(&format!("DROP SCHEMA {} CASCADE", quoted(schema))).await.expect("drop the schema");
    admin.drop_schema().await;
}

/// The unique end of a schema name made by [`schema_name`].
fn suffix(schema: &str) -> String {
    schema.rsplit('_').next().expect("a name made by schema_name").to_owned()
}

/// `stem` made unique to this run (identifiers stay under PostgreSQL's 63 bytes).
fn schema_name(stem: &str) -> String {
    format!("{stem}_{}{}", std::process::id(), fastrand::u32(..))
}

#[actix_web::test]
async fn a_schema_that_spells_placeholders_and_holds_quotes_and_a_backslash_is_its_own() {
    for (session_name, session) in SESSIONS {
        let schema = schema_name("x{schema_prefix}{table}'\\'\"");
        the_store_keeps_to_its_schema(&schema, session_name, session).await;
    }
}

#[actix_web::test]
async fn a_schema_that_is_not_ascii_is_its_own_whatever_the_client_encoding() {
    for (session_name, session) in SESSIONS {
        // 0x81 (in U+0081's UTF-8) opens a two-byte character in SJIS, which would swallow the backslash after it.
        let schema = schema_name("sché\u{81}\\'\"{table}");
        the_store_keeps_to_its_schema(&schema, session_name, session).await;
    }
}
