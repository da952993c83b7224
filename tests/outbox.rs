//! The outbox (issue 28) against real servers: messages enqueued in a transactional route's `Tx` commit with its
//! response or not at all, with deterministic ids; the relay publishes them to RabbitMQ (publisher confirms) and
//! NATS JetStream, marks them sent only after the broker confirmed them, shares the work between relays without
//! breaking a destination's order, wakes on `NOTIFY`, and purges what it sent.
//!
//! PostgreSQL (`DATABASE_URL`), RabbitMQ (`AMQP_URL`) and NATS with JetStream (`NATS_URL`) must be running (`bash
//! .ci/run` starts them); a test that cannot reach one fails, saying how to start it. Each test uses a schema, queues
//! and streams of its own.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody as _;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, post, test as actix_test};
use idempotent_runtime::outbox::amqp::AmqpPublisher;
use idempotent_runtime::outbox::nats::NatsPublisher;
use idempotent_runtime::outbox::{
    Backlog, MessageId, OutboxMessage, OutboxRelay, OutgoingMessage, PublishError, Publisher, RelayedBatch, backlog,
    backlog_by_destination,
};
use idempotent_runtime::store::RecordId;
use idempotent_runtime::{
    Idempotency, PostgresStore, ScopeValue, TransactionalReceiver, Tx, idempotent, key_digest, scope_digest,
};
use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use support::brokers::{
    CuttingProxy, START_NATS, START_RABBITMQ, address_of, amqp_url, nats_url, private_name, require_broker,
};
use support::pgbouncer::PgBouncer;
use support::postgres::{TestSchema, pool_for};

/// How long any awaited condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------------------------
// The app: a transactional route that enqueues `x-events` messages (default 2) to `x-destination` (default
// `orders`), payloads numbered from `x-base` (default 0), and answers `x-status` (default 201) with the ids.

fn header<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|value| value.to_str().ok())
}

async fn enqueue_and_answer(tx: &Tx, request: &HttpRequest) -> HttpResponse {
    let events: u32 = header(request, "x-events").map_or(2, |value| value.parse().unwrap());
    let base: u32 = header(request, "x-base").map_or(0, |value| value.parse().unwrap());
    let spread: u32 = header(request, "x-spread").map_or(1, |value| value.parse().unwrap());
    let destination = header(request, "x-destination").unwrap_or("orders");
    let mut ids = Vec::new();
    for event in 0..events {
        let number = base + event;
        let destination =
            if spread > 1 { format!("{destination}.{}", number % spread) } else { destination.to_owned() };
        let message = OutboxMessage::new(destination, number.to_string()).header("x-test", "outbox");
        ids.push(tx.enqueue(message).await.expect("enqueue").to_string());
    }
    let status = header(request, "x-status").map_or(201, |value| value.parse().unwrap());
    HttpResponse::build(StatusCode::from_u16(status).unwrap()).body(ids.join(","))
}

#[post("/orders")]
#[idempotent(scope = "global")]
async fn create_order(tx: Tx, request: HttpRequest) -> HttpResponse {
    enqueue_and_answer(&tx, &request).await
}

#[post("/short")]
#[idempotent(scope = "global", ttl = "1s")]
async fn short_lived(tx: Tx, request: HttpRequest) -> HttpResponse {
    enqueue_and_answer(&tx, &request).await
}

/// A migrated private schema, the store on it (with its listening connection), and a pool for checks.
struct Fixture {
    schema: TestSchema,
    store: PostgresStore,
    pool: deadpool_postgres::Pool,
}

impl Fixture {
    async fn new() -> Self {
        let schema = TestSchema::create().await;
        let pool = schema.pool(8);
        let store = PostgresStore::new(schema.pool(8)).with_schema(&schema.name).with_listener(schema.config());
        store.migrate().await.expect("migrate (creates idempotency_outbox)");
        Self { schema, store, pool }
    }

    async fn count(&self, filter: &str) -> i64 {
        let client = self.pool.get().await.unwrap();
        let sql = format!("SELECT count(*) FROM {}.idempotency_outbox WHERE {filter}", self.schema.name);
        client.query_one(&sql, &[]).await.unwrap().get(0)
    }

    async fn ids(&self) -> Vec<String> {
        let client = self.pool.get().await.unwrap();
        let sql = format!("SELECT id FROM {}.idempotency_outbox ORDER BY seq", self.schema.name);
        client.query(&sql, &[]).await.unwrap().iter().map(|row| row.get(0)).collect()
    }

    async fn sql(&self, statement: &str) {
        let statement = statement.replace("{outbox}", &format!("{}.idempotency_outbox", self.schema.name));
        self.pool.get().await.unwrap().batch_execute(&statement).await.unwrap();
    }

    async fn drop(self) {
        self.schema.drop_schema().await;
    }
}

/// The app on `store`, in the test's actix system.
macro_rules! app {
    ($store:expr) => {
        actix_test::init_service(
            App::new()
                .app_data(Idempotency::builder($store.clone()).build())
                .service(create_order)
                .service(short_lived),
        )
        .await
    };
}

/// One request to the app: its status, whether it was replayed, and its body (the ids it enqueued).
macro_rules! send {
    ($app:expr, $path:expr, $key:expr, $headers:expr) => {
        answer(actix_test::call_service(&$app, request($path, $key, $headers).to_request()).await)
    };
}

fn request(path: &str, key: &str, headers: &[(&str, &str)]) -> actix_test::TestRequest {
    let mut request = actix_test::TestRequest::post().uri(path).insert_header(("Idempotency-Key", key));
    for header in headers {
        request = request.insert_header(*header);
    }
    request
}

fn answer(response: ServiceResponse) -> (StatusCode, bool, String) {
    let status = response.status();
    let replayed = response.headers().contains_key("idempotent-replayed");
    let body = response.into_body().try_into_bytes().map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    (status, replayed, body.unwrap_or_default())
}

/// The ids a request under `key` on `/orders` enqueues, by the documented formula.
fn expected_ids(key: &str, count: u32) -> Vec<String> {
    expected_ids_on("/orders", key, 0, count)
}

/// The ids of `count` messages enqueued on `route` under `key`, in the key's `generation`th life with rows left.
fn expected_ids_on(route: &str, key: &str, generation: u32, count: u32) -> Vec<String> {
    let record = RecordId {
        scope_hash: scope_digest(ScopeValue::Global),
        key_hash: key_digest(key),
        method: "POST".to_owned(),
        route: route.to_owned(),
    };
    (0..count)
        .map(|position| MessageId::derive_in_generation(&record.digest(), generation, position).to_string())
        .collect()
}

/// Waits for `condition` (async) until [`DEADLINE`].
async fn wait_for<F: std::future::Future<Output = bool>>(what: &str, mut condition: impl FnMut() -> F) {
    let started = Instant::now();
    while !condition().await {
        assert!(started.elapsed() < DEADLINE, "timed out after {DEADLINE:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Publishers for tests.

/// Records what it is asked to publish and confirms everything (optionally after a delay per batch).
#[derive(Clone, Default)]
struct Recorder {
    published: Arc<Mutex<Vec<OutgoingMessage>>>,
    delay: Duration,
}

impl Recorder {
    fn published(&self) -> Vec<OutgoingMessage> {
        self.published.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Publisher for Recorder {
    async fn publish(&self, batch: &[OutgoingMessage]) -> Vec<Result<(), PublishError>> {
        tokio::time::sleep(self.delay).await;
        self.published.lock().unwrap().extend(batch.iter().cloned());
        batch.iter().map(|_| Ok(())).collect()
    }
}

/// Refuses everything, as a broker that nacks.
struct Refuser;

#[async_trait::async_trait]
impl Publisher for Refuser {
    async fn publish(&self, batch: &[OutgoingMessage]) -> Vec<Result<(), PublishError>> {
        batch.iter().map(|_| Err(PublishError::new("nacked by the test broker"))).collect()
    }
}

/// Says when it was called, then never answers (a broker that hangs, or a relay killed mid-batch).
struct Hanging(tokio::sync::mpsc::UnboundedSender<usize>);

#[async_trait::async_trait]
impl Publisher for Hanging {
    async fn publish(&self, batch: &[OutgoingMessage]) -> Vec<Result<(), PublishError>> {
        let _ = self.0.send(batch.len());
        std::future::pending().await
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Enqueue.

#[actix_web::test]
async fn enqueued_messages_commit_with_the_response_under_deterministic_ids() {
    let fixture = Fixture::new().await;
    let app = app!(fixture.store);
    let (status, _, body) = send!(app, "/orders", "order-1", &[("x-events", "3")]);
    assert_eq!(status, StatusCode::CREATED);
    let ids: Vec<String> = body.split(',').map(str::to_owned).collect();
    assert_eq!(ids, expected_ids("order-1", 3), "ids: SHA-256 of the tag, the record's digest and the position");
    assert_eq!(fixture.ids().await, ids, "the rows committed with the response, in enqueue order");
    assert_eq!(fixture.count("sent_at IS NULL AND attempts = 0").await, 3, "unsent until a relay confirms them");
    fixture.store.migrate().await.expect("migrate() again, on the live table: nothing changes");
    assert_eq!(fixture.ids().await, ids);
    fixture.drop().await;
}

#[actix_web::test]
async fn a_rolled_back_handler_enqueues_nothing_and_its_rerun_enqueues_the_same_ids() {
    let fixture = Fixture::new().await;
    let app = app!(fixture.store);
    let (status, _, rolled_back) = send!(app, "/orders", "order-2", &[("x-status", "500")]);
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(fixture.count("true").await, 0, "a 5xx rolls the enqueues back with the claim");

    let (status, replayed, rerun) = send!(app, "/orders", "order-2", &[]);
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "the retry runs the handler again");
    assert_eq!(rerun, rolled_back, "the rerun enqueued the ids the rolled-back run had");
    assert_eq!(fixture.ids().await.join(","), rerun);
    fixture.drop().await;
}

#[actix_web::test]
async fn a_replayed_request_enqueues_nothing() {
    let fixture = Fixture::new().await;
    let app = app!(fixture.store);
    let (_, _, first) = send!(app, "/orders", "order-3", &[]);
    let (status, replayed, second) = send!(app, "/orders", "order-3", &[]);
    assert_eq!((status, replayed), (StatusCode::CREATED, true));
    assert_eq!(second, first, "the stored response, byte for byte");
    assert_eq!(fixture.count("true").await, 2, "the replay ran no handler and enqueued nothing");
    fixture.drop().await;
}

#[actix_web::test]
async fn a_key_used_again_after_its_record_expired_enqueues_new_messages_under_new_ids() {
    let fixture = Fixture::new().await;
    let app = app!(fixture.store);
    let events = &[("x-events", "2")];
    let (status, _, first) = send!(app, "/short", "order-4", events);
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first, expected_ids_on("/short", "order-4", 0, 2).join(","));
    // The record's ttl is 1 s: past it, the same key is a fresh request (contract, section 4), a new operation
    // whose messages must not be taken for copies of the first ones.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, replayed, second) = send!(app, "/short", "order-4", events);
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "expired: the handler ran again");
    assert_eq!(second, expected_ids_on("/short", "order-4", 1, 2).join(","), "the next generation of ids");
    assert_eq!(fixture.count("true").await, 4, "both requests' messages are in the outbox");

    // A third life whose first run rolls back: its rerun arrives at the same (third-generation) ids.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, _, rolled_back) = send!(app, "/short", "order-4", &[("x-events", "2"), ("x-status", "500")]);
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(fixture.count("true").await, 4, "the rolled-back run left no row");
    let (status, _, third) = send!(app, "/short", "order-4", events);
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(third, rolled_back, "a rerun after a rollback enqueues the same ids");
    assert_eq!(third, expected_ids_on("/short", "order-4", 2, 2).join(","));
    assert_eq!(fixture.count("true").await, 6);
    fixture.drop().await;
}

#[actix_web::test]
async fn a_transactional_receiver_enqueues_in_its_transaction() {
    let fixture = Fixture::new().await;
    let inbox = TransactionalReceiver::new(fixture.store.clone());
    let id = inbox
        .run("payments", "message-1", b"payload", |tx| async move {
            let id = tx.enqueue(OutboxMessage::new("payment.applied", b"1".to_vec())).await?;
            Ok::<_, tokio_postgres::Error>(id.to_string())
        })
        .await
        .expect("applied");
    let record = idempotent_runtime::Receiver::record_id("payments", "message-1");
    assert_eq!(std::str::from_utf8(&id.result).unwrap(), MessageId::derive(&record.digest(), 0).as_str());
    let failed = inbox
        .run("payments", "message-2", b"payload", |tx| async move {
            tx.enqueue(OutboxMessage::new("payment.applied", b"2".to_vec())).await.map_err(|_| "sql")?;
            Err::<Vec<u8>, _>("the consumer's work failed")
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(fixture.count("true").await, 1, "the failed delivery's enqueue rolled back");
    fixture.drop().await;
}

// ---------------------------------------------------------------------------------------------------------------
// The relay.

#[actix_web::test]
async fn a_row_is_marked_sent_only_after_the_broker_confirmed_it() {
    let fixture = Fixture::new().await;
    let app = app!(fixture.store);
    send!(app, "/orders", "order-5", &[("x-events", "3")]);

    let refused = OutboxRelay::builder(&fixture.store, Refuser).build();
    assert_eq!(refused.relay_once().await.unwrap(), RelayedBatch { sent: 0, failed: 3 });
    assert_eq!(fixture.count("sent_at IS NULL AND attempts = 1 AND next_attempt_at > now()").await, 3);
    assert_eq!(fixture.count("last_error = 'nacked by the test broker'").await, 3);
    let backlog = backlog(&fixture.store).await.unwrap();
    assert_eq!((backlog.waiting, backlog.failing), (3, 3));
    assert_eq!(refused.relay_once().await.unwrap(), RelayedBatch::default(), "failed rows wait for their backoff");

    // Due again: a publisher that confirms sends them, and only then are they marked sent.
    fixture.sql("UPDATE {outbox} SET next_attempt_at = now()").await;
    let recorder = Recorder::default();
    let relay = OutboxRelay::builder(&fixture.store, recorder.clone()).build();
    assert_eq!(relay.relay_once().await.unwrap(), RelayedBatch { sent: 3, failed: 0 });
    assert_eq!(fixture.count("sent_at IS NOT NULL AND attempts = 2 AND last_error IS NULL").await, 3);
    let published: Vec<String> = recorder.published().iter().map(|message| message.id.to_string()).collect();
    assert_eq!(published, expected_ids("order-5", 3));
    assert_eq!(relay.relay_once().await.unwrap(), RelayedBatch::default(), "nothing is sent twice");
    fixture.drop().await;
}

#[actix_web::test]
async fn a_relay_dropped_mid_batch_leaves_its_rows_to_the_next_relay() {
    let fixture = Fixture::new().await;
    let app = app!(fixture.store);
    send!(app, "/orders", "order-6", &[("x-events", "4")]);

    let (called, mut calls) = tokio::sync::mpsc::unbounded_channel();
    let stuck = OutboxRelay::builder(&fixture.store, Hanging(called)).build();
    let pass = tokio::spawn(async move { stuck.relay_once().await });
    assert_eq!(calls.recv().await, Some(4), "the first relay claimed the four rows and is publishing");
    let recorder = Recorder::default();
    let relay = OutboxRelay::builder(&fixture.store, recorder.clone()).build();
    assert_eq!(relay.relay_once().await.unwrap(), RelayedBatch::default(), "claimed rows go to one relay at a time");

    pass.abort(); // the relay dies mid-publish: its transaction is rolled back, its rows are free again
    let _ = pass.await;
    wait_for("the second relay to send the rows", || async {
        relay.relay_once().await.unwrap();
        recorder.published().len() == 4
    })
    .await;
    assert_eq!(fixture.count("sent_at IS NOT NULL").await, 4);
    fixture.drop().await;
}

#[actix_web::test]
async fn relays_of_two_schemas_reached_through_search_path_never_hold_each_others_destination() {
    // Two apps on one database, each finding its tables by `search_path` (no `with_schema`), as the examples do:
    // their outboxes have the same unqualified name, and the same destination.
    let (first, second) = (TestSchema::create().await, TestSchema::create().await);
    let stores = [&first, &second].map(|schema| PostgresStore::new(schema.pool(4)));
    for store in &stores {
        store.migrate().await.expect("migrate");
        let app = app!(store);
        send!(app, "/orders", "order-shared", &[("x-events", "3")]);
    }
    let (called, mut calls) = tokio::sync::mpsc::unbounded_channel();
    let stuck = OutboxRelay::builder(&stores[0], Hanging(called)).build();
    let pass = tokio::spawn(async move { stuck.relay_once().await });
    assert_eq!(calls.recv().await, Some(3), "the first schema's relay holds `orders` while it publishes");

    let recorder = Recorder::default();
    let relay = OutboxRelay::builder(&stores[1], recorder.clone()).build();
    let batch = relay.relay_once().await.unwrap();
    assert_eq!(batch, RelayedBatch { sent: 3, failed: 0 }, "the other schema's `orders` is not held by it");
    pass.abort();
    let _ = pass.await;
    first.drop_schema().await;
    second.drop_schema().await;
}

#[actix_web::test]
async fn backlog_counts_waiting_failing_and_the_oldest_unsent() {
    let fixture = Fixture::new().await;
    assert_eq!(backlog(&fixture.store).await.unwrap(), Backlog { waiting: 0, oldest_unsent: None, failing: 0 });
    let app = app!(fixture.store);
    send!(app, "/orders", "order-7", &[("x-events", "2"), ("x-destination", "a")]);
    send!(app, "/orders", "order-8", &[("x-events", "3"), ("x-destination", "b")]);
    fixture.sql("UPDATE {outbox} SET created_at = now() - interval '90 seconds' WHERE destination = 'a'").await;
    fixture.sql("UPDATE {outbox} SET last_error = 'boom', attempts = 1 WHERE destination = 'b'").await;

    let backlog = backlog(&fixture.store).await.unwrap();
    assert_eq!((backlog.waiting, backlog.failing), (5, 3));
    let oldest = backlog.oldest_unsent.expect("rows wait");
    assert!((90..100).contains(&oldest.as_secs()), "the oldest unsent row is 90 s old: {oldest:?}");

    let by_destination = backlog_by_destination(&fixture.store).await.unwrap();
    let summary: Vec<(&str, u64, u64, Option<&str>)> = by_destination
        .iter()
        .map(|row| (row.destination.as_str(), row.waiting, row.failing, row.last_error.as_deref()))
        .collect();
    assert_eq!(summary, vec![("a", 2, 0, None), ("b", 3, 3, Some("boom"))]);

    fixture.sql("UPDATE {outbox} SET sent_at = now()").await;
    assert_eq!(
        idempotent_runtime::outbox::backlog(&fixture.store).await.unwrap(),
        Backlog { waiting: 0, oldest_unsent: None, failing: 0 },
        "sent rows are not backlog"
    );
    fixture.drop().await;
}

#[actix_web::test]
async fn sent_rows_are_purged_after_the_retention_and_unsent_ones_never() {
    let fixture = Fixture::new().await;
    let app = app!(fixture.store);
    send!(app, "/orders", "order-9", &[("x-events", "3")]);
    send!(app, "/orders", "order-10", &[("x-events", "2"), ("x-destination", "later")]);
    let recorder = Recorder::default();
    let keeping = OutboxRelay::builder(&fixture.store, recorder.clone()).retention(Duration::from_secs(3600)).build();
    assert_eq!(keeping.relay_once().await.unwrap().sent, 5);
    assert_eq!(keeping.purge_sent().await.unwrap(), 0, "sent moments ago: kept for the retention");

    // Two rows sent two hours ago, one unsent row as old: only the sent ones go.
    fixture.sql("UPDATE {outbox} SET sent_at = now() - interval '2 hours' WHERE destination = 'later'").await;
    send!(app, "/orders", "order-11", &[("x-events", "1"), ("x-destination", "unsent")]);
    fixture.sql("UPDATE {outbox} SET created_at = now() - interval '3 hours' WHERE destination = 'unsent'").await;
    assert_eq!(keeping.purge_sent().await.unwrap(), 2);
    assert_eq!(fixture.count("true").await, 4);

    // A running relay purges by itself.
    let purging = OutboxRelay::builder(&fixture.store, Refuser).retention(Duration::ZERO).build();
    let running = tokio::spawn(async move { purging.run().await });
    wait_for("the running relay to purge the sent rows", || async { fixture.count("sent_at IS NOT NULL").await == 0 })
        .await;
    running.abort();
    assert_eq!(fixture.count("sent_at IS NULL").await, 1, "the unsent row stays, whatever its age");
    fixture.drop().await;
}

#[actix_web::test]
async fn the_relay_is_woken_by_the_commit_well_before_its_poll_interval() {
    let fixture = Fixture::new().await;
    let app = app!(fixture.store);
    send!(app, "/orders", "order-12", &[("x-events", "1")]);
    let recorder = Recorder::default();
    let relay = OutboxRelay::builder(&fixture.store, recorder.clone()).poll_interval(Duration::from_secs(60)).build();
    let running = tokio::spawn(async move { relay.run().await });
    // The first pass follows the LISTEN: once the first row is published, the relay listens.
    wait_for("the first pass", || async { recorder.published().len() == 1 }).await;

    let committed = Instant::now();
    send!(app, "/orders", "order-13", &[("x-events", "1")]);
    wait_for("the notified relay", || async { recorder.published().len() == 2 }).await;
    let latency = committed.elapsed();
    assert!(latency < Duration::from_secs(10), "woken by NOTIFY, not by the 60 s poll: {latency:?}");
    wait_for("the row marked sent", || async { fixture.count("sent_at IS NULL").await == 0 }).await;

    // A rolled-back transaction wakes nobody and leaves nothing.
    send!(app, "/orders", "order-14", &[("x-events", "1"), ("x-status", "503")]);
    assert_eq!(fixture.count("true").await, 2);
    running.abort();
    println!("outbox: commit to publish in {latency:?} with a 60 s poll interval");
    fixture.drop().await;
}

#[actix_web::test]
async fn without_a_listening_connection_the_relay_polls() {
    let fixture = Fixture::new().await;
    let app = app!(fixture.store);
    // One store without a listener configuration, one whose listener cannot connect (nothing listens on port 1).
    let unreachable: tokio_postgres::Config = "host=127.0.0.1 port=1 user=postgres".parse().unwrap();
    let store = || PostgresStore::new(fixture.schema.pool(2)).with_schema(&fixture.schema.name);
    let stores = [store(), store().with_listener(unreachable)];
    let recorder = Recorder::default();
    let mut running = Vec::new();
    for store in &stores {
        let relay = OutboxRelay::builder(store, recorder.clone()).poll_interval(Duration::from_millis(200)).build();
        running.push(tokio::spawn(async move { relay.run().await }));
    }
    for request in 0..3 {
        send!(app, "/orders", &format!("polled-{request}"), &[("x-events", "1")]);
    }
    wait_for("the polling relays to send every row", || async { fixture.count("sent_at IS NULL").await == 0 }).await;
    assert_eq!(recorder.published().len(), 3, "each row once");
    for relay in running {
        relay.abort();
    }
    fixture.drop().await;
}

/// Counts its calls and refuses everything, as a broker that is down.
#[derive(Clone, Default)]
struct CountingRefuser(Arc<std::sync::atomic::AtomicUsize>);

#[async_trait::async_trait]
impl Publisher for CountingRefuser {
    async fn publish(&self, batch: &[OutgoingMessage]) -> Vec<Result<(), PublishError>> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        batch.iter().map(|_| Err(PublishError::new("the test broker is down"))).collect()
    }
}

#[actix_web::test]
async fn a_relay_whose_broker_is_down_waits_for_its_poll_instead_of_retrying_at_once() {
    let fixture = Fixture::new().await;
    let app = app!(fixture.store);
    send!(app, "/orders", "order-down", &[("x-events", "4")]);
    // Full batches of due rows: a relay that took "full" for "go on at once" would try all four at once, one
    // batch after the other. Nothing wakes it after the first batch but its poll, a minute away.
    let refuser = CountingRefuser::default();
    let relay = OutboxRelay::builder(&fixture.store, refuser.clone())
        .batch_size(1)
        .poll_interval(Duration::from_secs(60))
        .build();
    let running = tokio::spawn(async move { relay.run().await });
    let calls = || refuser.0.load(std::sync::atomic::Ordering::SeqCst);
    wait_for("the first batch", || async { calls() >= 1 }).await;
    wait_for("its failure to be recorded", || async { fixture.count("attempts = 1").await == 1 }).await;
    // A loop back would have claimed the next due row within milliseconds of the first failure.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(calls(), 1, "one failed batch, then the relay waits");
    assert_eq!(fixture.count("attempts = 0").await, 3, "the other rows were not tried");
    running.abort();
    fixture.drop().await;
}

// ---------------------------------------------------------------------------------------------------------------
// RabbitMQ.

async fn rabbitmq() -> (Connection, Channel) {
    let url = amqp_url();
    require_broker("RabbitMQ", &url, START_RABBITMQ);
    let connection = Connection::connect(&url, ConnectionProperties::default()).await.expect("connect to RabbitMQ");
    let channel = connection.create_channel().await.expect("a channel");
    (connection, channel)
}

async fn declare(channel: &Channel, queue: &str) {
    channel.queue_declare(queue.into(), QueueDeclareOptions::durable(), FieldTable::default()).await.expect("queue");
}

/// Takes every message of `queue` (acknowledged), waiting until `count` arrived.
async fn take(channel: &Channel, queue: &str, count: usize) -> Vec<lapin::message::Delivery> {
    let mut taken = Vec::new();
    let started = Instant::now();
    while taken.len() < count {
        assert!(started.elapsed() < DEADLINE, "{queue}: {} of {count} messages after {DEADLINE:?}", taken.len());
        match channel.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.expect("basic.get") {
            Some(message) => taken.push(message.delivery),
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    taken
}

#[actix_web::test]
async fn the_relay_publishes_to_rabbitmq_with_the_id_as_message_id_after_publisher_confirms() {
    let (connection, channel) = rabbitmq().await;
    let fixture = Fixture::new().await;
    let queue = private_name("idempotent_test_outbox");
    declare(&channel, &queue).await;
    let app = app!(fixture.store);
    send!(app, "/orders", "order-15", &[("x-events", "3"), ("x-destination", &queue)]);
    // A destination no queue takes: returned by the broker (mandatory), so it fails instead of being lost.
    let nowhere = private_name("idempotent_test_nowhere");
    send!(app, "/orders", "order-16", &[("x-events", "1"), ("x-destination", &nowhere)]);
    // More of both, interleaved: the unroutable ones are returned at once, before the durable queue's confirms of
    // the messages published ahead of them, and each failure must still land on its own message.
    send!(app, "/orders", "order-16b", &[("x-events", "60"), ("x-destination", &queue), ("x-base", "3")]);
    send!(app, "/orders", "order-16c", &[("x-events", "1"), ("x-destination", &nowhere)]);

    let publisher = AmqpPublisher::connect(&amqp_url()).await.expect("the publisher connects");
    let relay = OutboxRelay::builder(&fixture.store, publisher).build();
    assert_eq!(relay.relay_once().await.unwrap(), RelayedBatch { sent: 63, failed: 2 });
    assert_eq!(fixture.count(&format!("sent_at IS NOT NULL AND destination = '{queue}'")).await, 63);
    assert_eq!(fixture.count(&format!("sent_at IS NULL AND attempts = 1 AND destination = '{nowhere}'")).await, 2);
    let error = backlog_by_destination(&fixture.store).await.unwrap()[0].last_error.clone().unwrap();
    assert!(error.contains("NO_ROUTE"), "the broker's reason is kept: {error}");

    let deliveries = take(&channel, &queue, 63).await;
    let ids: Vec<String> = deliveries
        .iter()
        .map(|delivery| delivery.properties.message_id().as_ref().expect("a message_id").to_string())
        .collect();
    assert_eq!(ids[..3], expected_ids("order-15", 3), "message_id = the outbox id, in enqueue order");
    for (number, delivery) in deliveries.iter().enumerate() {
        assert_eq!(idempotent_runtime::inbox::amqp::message_key(delivery), Some(ids[number].as_str()));
        assert_eq!(delivery.data, number.to_string().into_bytes());
        assert_eq!(*delivery.properties.delivery_mode(), Some(2), "persistent");
        let headers = delivery.properties.headers().as_ref().expect("headers");
        let value = headers.inner().get("x-test").expect("the message's header");
        assert!(matches!(value, AMQPValue::LongString(text) if text.as_bytes() == b"outbox"), "{value:?}");
    }
    channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.unwrap();
    connection.close(200, "done".into()).await.unwrap();
    fixture.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_publish_500_rows_each_once_and_in_order_per_destination() {
    const DESTINATIONS: u32 = 5;
    const ROWS: u32 = 500;
    const PER_REQUEST: u32 = 10;
    let (connection, channel) = rabbitmq().await;
    let fixture = Fixture::new().await;
    let prefix = private_name("idempotent_test_order");
    let queues: Vec<String> = (0..DESTINATIONS).map(|number| format!("{prefix}.{number}")).collect();
    for queue in &queues {
        declare(&channel, queue).await;
    }
    // Two relays, each with its own broker connection, small batches so that they take turns.
    let mut relays = Vec::new();
    for _ in 0..2 {
        let publisher = AmqpPublisher::connect(&amqp_url()).await.expect("the publisher connects");
        let relay = OutboxRelay::builder(&fixture.store, publisher).batch_size(16).build();
        relays.push(tokio::spawn(async move { relay.run().await }));
    }

    // The requests, one after another while the relays run: enqueue order is commit order, so each queue must
    // receive its numbers in increasing order. The app has a pool of its own: a connection runs on the runtime
    // that opened it, and the app's runtime ends with its last request. Sharing the relays' pool, a relay could
    // hold such a connection then, lose it mid-batch, and (as it must) send the batch again.
    let (schema, pool) = (fixture.schema.name.clone(), fixture.schema.pool(8));
    tokio::task::spawn_blocking(move || {
        actix_web::rt::System::new().block_on(async move {
            let store = PostgresStore::new(pool).with_schema(&schema);
            let app = app!(store);
            for request in 0..ROWS / PER_REQUEST {
                let base = (request * PER_REQUEST).to_string();
                let headers = [
                    ("x-events", "10"),
                    ("x-base", base.as_str()),
                    ("x-destination", prefix.as_str()),
                    ("x-spread", "5"),
                ];
                let (status, _, _) = send!(app, "/orders", &format!("bulk-{request}"), &headers);
                assert_eq!(status, StatusCode::CREATED);
            }
        });
    })
    .await
    .unwrap();

    let mut seen = HashSet::new();
    for queue in &queues {
        let deliveries = take(&channel, queue, (ROWS / DESTINATIONS) as usize).await;
        let numbers: Vec<u32> =
            deliveries.iter().map(|delivery| std::str::from_utf8(&delivery.data).unwrap().parse().unwrap()).collect();
        assert!(numbers.windows(2).all(|pair| pair[0] < pair[1]), "{queue} received out of order: {numbers:?}");
        for delivery in &deliveries {
            let id = delivery.properties.message_id().as_ref().unwrap().to_string();
            assert!(seen.insert(id), "a row was published twice");
        }
    }
    assert_eq!(seen.len(), ROWS as usize, "every row was published once");
    wait_for("every row marked sent", || async { fixture.count("sent_at IS NULL").await == 0 }).await;
    for relay in relays {
        relay.abort();
    }
    // Nothing more arrives: no row is published twice later either.
    for queue in &queues {
        let extra = channel.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap();
        assert!(extra.is_none(), "{queue} got a message beyond its rows");
        channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.unwrap();
    }
    connection.close(200, "done".into()).await.unwrap();
    fixture.drop().await;
}

// ---------------------------------------------------------------------------------------------------------------
// NATS JetStream.

#[actix_web::test]
async fn the_relay_publishes_to_jetstream_with_nats_msg_id_and_the_idempotency_key() {
    let url = nats_url();
    require_broker("NATS", &url, START_NATS);
    let client = async_nats::connect(&url).await.expect("connect to NATS");
    let jetstream = async_nats::jetstream::new(client.clone());
    let name = private_name("idempotent_test_outbox");
    let subject = format!("{name}.created");
    let mut stream = jetstream
        .get_or_create_stream(async_nats::jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            ..Default::default()
        })
        .await
        .expect("a JetStream stream (is JetStream on? -js)");
    let fixture = Fixture::new().await;
    let app = app!(fixture.store);
    send!(app, "/orders", "order-17", &[("x-events", "2"), ("x-destination", &subject)]);

    let relay = OutboxRelay::builder(&fixture.store, NatsPublisher::new(client.clone())).build();
    assert_eq!(relay.relay_once().await.unwrap(), RelayedBatch { sent: 2, failed: 0 });
    let ids = expected_ids("order-17", 2);
    for (sequence, id) in (1..).zip(&ids) {
        let message = stream.get_raw_message(sequence).await.expect("the stored message");
        let headers = &message.headers;
        assert_eq!(headers.get("Nats-Msg-Id").map(|value| value.as_str()), Some(id.as_str()));
        assert_eq!(
            headers.get(idempotent_runtime::inbox::nats::KEY_HEADER).map(|value| value.as_str()),
            Some(id.as_str()),
            "the key the inbox reads"
        );
        assert_eq!(headers.get("x-test").map(|value| value.as_str()), Some("outbox"));
    }

    // A re-send (the relay died before marking them sent) is dropped by the stream's duplicate window.
    fixture.sql("UPDATE {outbox} SET sent_at = NULL").await;
    assert_eq!(relay.relay_once().await.unwrap(), RelayedBatch { sent: 2, failed: 0 });
    assert_eq!(stream.info().await.unwrap().state.messages, 2, "Nats-Msg-Id deduplicated the copies");

    // A subject no stream captures: no ack, the message fails and is retried later.
    send!(app, "/orders", "order-18", &[("x-events", "1"), ("x-destination", &format!("{name}_none.x"))]);
    assert_eq!(relay.relay_once().await.unwrap(), RelayedBatch { sent: 0, failed: 1 });

    jetstream.delete_stream(&name).await.unwrap();
    fixture.drop().await;
}

#[actix_web::test]
async fn the_amqp_publisher_connects_again_after_its_connection_was_cut() {
    let (connection, channel) = rabbitmq().await;
    let fixture = Fixture::new().await;
    let queue = private_name("idempotent_test_outbox_cut");
    declare(&channel, &queue).await;
    let app = app!(fixture.store);
    let proxy = CuttingProxy::start(address_of(&amqp_url()));
    let proxied = amqp_url().replacen(&address_of(&amqp_url()).to_string(), &format!("127.0.0.1:{}", proxy.port), 1);
    let relay = OutboxRelay::builder(&fixture.store, AmqpPublisher::connect(&proxied).await.expect("connect")).build();
    send!(app, "/orders", "order-19", &[("x-events", "2"), ("x-destination", &queue)]);
    assert_eq!(relay.relay_once().await.unwrap().sent, 2);

    proxy.cut_all();
    send!(app, "/orders", "order-20", &[("x-events", "2"), ("x-destination", &queue)]);
    // The batch on the cut connection fails (or, if the cut is seen first, goes out on a new one); then the
    // publisher connects again and the messages go, each once marked sent.
    wait_for("the messages sent after the cut", || async {
        fixture.sql("UPDATE {outbox} SET next_attempt_at = now() WHERE sent_at IS NULL").await;
        relay.relay_once().await.unwrap();
        fixture.count("sent_at IS NULL").await == 0
    })
    .await;
    assert!(proxy.accepted() >= 2, "the publisher opened a new connection");
    let mut deliveries = take(&channel, &queue, 4).await;
    // A copy re-sent after a lost confirm would be a fifth delivery (absorbed by the inbox): take it too.
    while let Some(extra) = channel.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap() {
        deliveries.push(extra.delivery);
    }
    let ids: HashSet<String> =
        deliveries.iter().map(|delivery| delivery.properties.message_id().as_ref().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 4, "both requests' messages arrived");
    channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.unwrap();
    connection.close(200, "done".into()).await.unwrap();
    fixture.drop().await;
}

// ---------------------------------------------------------------------------------------------------------------
// Behind PgBouncer in transaction mode.

#[actix_web::test]
async fn enqueue_and_relay_work_through_pgbouncer_with_a_direct_listener() {
    let fixture = Fixture::new().await;
    let bouncer = PgBouncer::in_front_of_database_url(None);
    // The app and the relay go through the pooler; only the LISTEN connection is direct.
    let store = PostgresStore::new(pool_for(&bouncer.url(), None, 8))
        .with_schema(&fixture.schema.name)
        .with_listener(fixture.schema.config());
    let app = app!(store);
    for request in 0..10 {
        let (status, _, _) = send!(app, "/orders", &format!("pooled-{request}"), &[("x-events", "3")]);
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, _, _) = send!(app, "/orders", "pooled-rolled-back", &[("x-status", "500")]);
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(fixture.count("true").await, 30);

    let recorder = Recorder { delay: Duration::from_millis(5), ..Recorder::default() };
    let relay = OutboxRelay::builder(&store, recorder.clone()).batch_size(7).poll_interval(Duration::from_secs(60));
    let relay = relay.build();
    let running = tokio::spawn(async move { relay.run().await });
    wait_for("the 30 rows sent through the pooler", || async { fixture.count("sent_at IS NULL").await == 0 }).await;
    // Woken through the direct listener while its statements go through the pooler.
    send!(app, "/orders", "pooled-late", &[("x-events", "1")]);
    wait_for("the late row, well before the 60 s poll", || async { recorder.published().len() == 31 }).await;
    assert_eq!(backlog(&store).await.unwrap().waiting, 0);
    running.abort();
    drop(bouncer);
    fixture.drop().await;
}

// ---------------------------------------------------------------------------------------------------------------
// Metrics.

/// Confirms every message but those whose destination starts with `refused`.
struct Selective;

#[async_trait::async_trait]
impl Publisher for Selective {
    async fn publish(&self, batch: &[OutgoingMessage]) -> Vec<Result<(), PublishError>> {
        let verdict = |message: &OutgoingMessage| match message.destination.starts_with("refused") {
            true => Err(PublishError::new("refused")),
            false => Ok(()),
        };
        batch.iter().map(verdict).collect()
    }
}

/// The metrics recorded since the last snapshot (a snapshot drains them), by name and `destination` label.
fn metrics_since(snapshotter: &Snapshotter) -> HashMap<(String, Option<String>), f64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let destination = key.key().labels().find(|label| label.key() == "destination");
            let value = match value {
                DebugValue::Counter(count) => count as f64,
                DebugValue::Gauge(gauge) => gauge.into_inner(),
                DebugValue::Histogram(_) => f64::NAN,
            };
            ((key.key().name().to_owned(), destination.map(|label| label.value().to_owned())), value)
        })
        .collect()
}

fn named(name: &str, destination: Option<&str>) -> (String, Option<String>) {
    (name.to_owned(), destination.map(str::to_owned))
}

#[actix_web::test]
async fn the_relay_counts_sent_and_failed_messages_and_gauges_the_backlog() {
    // This test's thread only (actix's runtime runs every task of the test on it).
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let fixture = Fixture::new().await;
    let app = app!(fixture.store);
    send!(app, "/orders", "order-21", &[("x-events", "2"), ("x-destination", "metered")]);
    send!(app, "/orders", "order-22", &[("x-events", "1"), ("x-destination", "refused.metered")]);

    let relay = OutboxRelay::builder(&fixture.store, Selective).build();
    assert_eq!(relay.relay_once().await.unwrap(), RelayedBatch { sent: 2, failed: 1 });
    let recorded = metrics_since(&snapshotter);
    assert_eq!(recorded.get(&named("idempotent_outbox_sent_total", Some("metered"))), Some(&2.0), "{recorded:?}");
    let failed = named("idempotent_outbox_failed_total", Some("refused.metered"));
    assert_eq!(recorded.get(&failed), Some(&1.0), "{recorded:?}");

    fixture.sql("UPDATE {outbox} SET created_at = now() - interval '1 minute' WHERE sent_at IS NULL").await;
    let running = tokio::spawn(async move { relay.run().await });
    wait_for("the backlog gauges", || async {
        let recorded = metrics_since(&snapshotter);
        recorded.get(&named("idempotent_outbox_waiting", None)) == Some(&1.0)
            && recorded.get(&named("idempotent_outbox_oldest_unsent_seconds", None)).is_some_and(|age| *age >= 60.0)
    })
    .await;
    running.abort();
    fixture.drop().await;
}
