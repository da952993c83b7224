//! The `orders` example (a transactional route) as real server processes on real PostgreSQL: killed while its
//! handler sleeps after the INSERT, hammered with duplicates, and walked through as a user would; each order
//! enqueues one `order.created` event in its outbox, a killed attempt or a replay none (`tests/outbox_e2e.rs`
//! relays them to real brokers).

#[macro_use]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use serde_json::{Value, json};
use support::Connection;
use support::example_process::{ExampleProcess, example_binary, free_port};
use support::pgbouncer::PgBouncer;
use support::postgres::TestSchema;

struct Reply {
    status: Option<StatusCode>,
    replayed: bool,
    body: Value,
}

async fn send(
    base: &str,
    method: &str,
    path: &str,
    user: Option<&str>,
    key: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let client = awc::Client::builder().timeout(Duration::from_secs(60)).finish();
    let method = actix_web::http::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = client.request(method, format!("{base}{path}"));
    if let Some(user) = user {
        request = request.insert_header(("Authorization", format!("Bearer {user}")));
    }
    if let Some(key) = key {
        request = request.insert_header(("Idempotency-Key", key));
    }
    let response = match body {
        Some(body) => request.send_json(&body).await,
        None => request.send().await,
    };
    match response {
        Ok(mut response) => {
            // An answer whose body cannot be read fails here, and one that is not JSON keeps its text: two
            // unreadable bodies must never compare equal as two defaults.
            let status = response.status();
            let raw = response.body().await.unwrap_or_else(|error| panic!("the {status} answer's body: {error}"));
            Reply {
                status: Some(status),
                replayed: response.headers().get("idempotent-replayed").is_some_and(|value| value == "true"),
                body: serde_json::from_slice(&raw)
                    .unwrap_or_else(|_| Value::String(format!("not JSON: {}", String::from_utf8_lossy(&raw)))),
            }
        }
        Err(_) => Reply { status: None, replayed: false, body: Value::Null },
    }
}

async fn order(base: &str, user: &str, key: &str, item: &str, delay_ms: u64) -> Reply {
    send(base, "POST", "/orders", Some(user), Some(key), Some(json!({"item": item, "qty": 1, "delay_ms": delay_ms})))
        .await
}

/// The `order.created` events in the outbox (`orders` enqueues one per order; nothing relays them here), as the
/// order ids they carry.
async fn events_of(schema: &TestSchema, user: &str) -> Vec<i64> {
    let client = schema.pool(1).get().await.expect("connect");
    client
        .query(
            "SELECT convert_from(payload, 'UTF8')::jsonb->>'order_id' FROM idempotency_outbox \
             WHERE destination = 'order.created' AND convert_from(payload, 'UTF8')::jsonb->>'user' = $1 ORDER BY seq",
            &[&user],
        )
        .await
        .expect("the outbox")
        .iter()
        .map(|row| row.get::<_, String>(0).parse().expect("an order id"))
        .collect()
}

async fn orders_of(schema: &TestSchema, user: &str) -> Vec<String> {
    let client = schema.pool(1).get().await.expect("connect");
    client
        .query("SELECT item FROM orders WHERE user_id = $1 ORDER BY id", &[&user])
        .await
        .expect("orders")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[actix_web::test]
async fn kill_dash_nine_after_the_insert_leaves_nothing_and_the_key_is_free_at_once() {
    const KILLS: usize = 5;
    let schema = TestSchema::create().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let watcher = schema.pool(1);
    let mut process = Some(ExampleProcess::start_on(port, "orders", Some(&schema.database_url()), &[]));
    for kill in 0..KILLS {
        let key = format!("crash-{kill}");
        let item = format!("item-{kill}");
        // The handler INSERTs its order, then sleeps 30 s: kill the process during that sleep.
        let in_flight = order(&base, "crash", &key, &item, 30_000);
        let kill_after_insert = async {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let inserted: i64 = watcher
                    .get()
                    .await
                    .expect("connect")
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity \
                         WHERE state = 'idle in transaction' AND query LIKE 'INSERT INTO orders%'",
                        &[],
                    )
                    .await
                    .expect("pg_stat_activity")
                    .get(0);
                if inserted == 1 {
                    break;
                }
                assert!(Instant::now() < deadline, "the handler never reached its INSERT");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            process.take().expect("running").kill();
        };
        let (killed, ()) = tokio::join!(in_flight, kill_after_insert);
        assert!(killed.status.is_none(), "the client saw the process die");
        assert!(orders_of(&schema, "crash").await.iter().all(|existing| *existing != item), "no order left behind");

        // Restarted, the very first retry runs (no lease to wait out) and creates the order once.
        process = Some(ExampleProcess::start_on(port, "orders", Some(&schema.database_url()), &[]));
        let started = Instant::now();
        let retry = order(&base, "crash", &key, &item, 0).await;
        assert_eq!(retry.status, Some(StatusCode::CREATED), "{:?}", retry.body);
        assert!(!retry.replayed);
        assert!(started.elapsed() < Duration::from_secs(5));
        let replay = order(&base, "crash", &key, &item, 0).await;
        assert!(replay.replayed);
        assert!(retry.body["id"].is_i64(), "the created order as JSON: {:?}", retry.body);
        assert_eq!(replay.body, retry.body);
    }
    let orders = orders_of(&schema, "crash").await;
    support::report_figure(&format!(
        "orders: kill -9 x{KILLS} after the INSERT: {} orders afterwards, one per key: {orders:?}",
        orders.len()
    ));
    assert_eq!(orders.len(), KILLS, "each key's order exists exactly once");
    // The killed attempts enqueued nothing; each created order enqueued its event once, replays none.
    assert_eq!(events_of(&schema, "crash").await.len(), KILLS, "one order.created per order");
    drop(process);
    schema.drop_schema().await;
}

/// The orders example on `schema`, directly or through a private PgBouncer (then listening on a direct
/// connection, `DATABASE_LISTEN_URL`, as docs/guide/postgres-in-production.md asks of a pooled deployment).
fn start_orders(connection: Connection, schema: &TestSchema) -> (ExampleProcess, Option<PgBouncer>) {
    let (url, bouncer) = connection.database_url(schema);
    let direct = schema.database_url();
    let example = ExampleProcess::start_with_env("orders", Some(&url), &[("DATABASE_LISTEN_URL", &direct)]);
    (example, bouncer)
}

on_every_connection!(twenty_concurrent_duplicates_create_one_order_and_no_server_error, orders_example_walk_through);

async fn twenty_concurrent_duplicates_create_one_order_and_no_server_error(connection: Connection) {
    let schema = TestSchema::create().await;
    let (example, _bouncer) = start_orders(connection, &schema);
    let replies =
        futures_util::future::join_all((0..20).map(|_| order(&example.base, "dup", "same-key", "lamp", 500))).await;
    let created = replies.iter().filter(|reply| reply.status == Some(StatusCode::CREATED)).count();
    let conflicts = replies.iter().filter(|reply| reply.status == Some(StatusCode::CONFLICT)).count();
    support::report_figure(&format!(
        "orders ({connection:?}): 20 concurrent duplicates -> {created} x 201, {conflicts} x 409, {} other",
        replies.len() - created - conflicts
    ));
    assert!(replies.iter().all(|reply| matches!(reply.status, Some(StatusCode::CREATED | StatusCode::CONFLICT))));
    assert!(created >= 1);
    assert_eq!(orders_of(&schema, "dup").await, ["lamp"], "one order");
    let created_id =
        replies.iter().find(|reply| reply.status == Some(StatusCode::CREATED)).expect("a 201").body["id"].as_i64();
    assert_eq!(
        events_of(&schema, "dup").await,
        [created_id.expect("the order's id")],
        "one order.created, replays none"
    );
    drop(example);
    schema.drop_schema().await;
}

async fn orders_example_walk_through(connection: Connection) {
    let schema = TestSchema::create().await;
    let (example, _bouncer) = start_orders(connection, &schema);
    let base = example.base.clone();
    assert_eq!(send(&base, "GET", "/", None, None, None).await.status, Some(StatusCode::OK));
    assert_eq!(send(&base, "GET", "/orders", None, None, None).await.status, Some(StatusCode::UNAUTHORIZED));
    let anonymous = send(&base, "POST", "/orders", None, Some("k"), Some(json!({"item": "x", "qty": 1}))).await;
    assert_eq!(anonymous.status, Some(StatusCode::UNAUTHORIZED));

    let created = order(&base, "ann", "k1", "book", 0).await;
    assert_eq!(created.status, Some(StatusCode::CREATED));
    assert_eq!(created.body["item"], "book");
    assert_eq!(created.body["qty"], 1);
    let invalid_orders = [
        json!({"item": "", "qty": 1}),
        json!({"item": "x", "qty": 0}),
        json!({"item": "x", "qty": 1, "delay_ms": 60_001}),
    ];
    for (index, invalid) in invalid_orders.into_iter().enumerate() {
        let key = format!("invalid-{index}");
        let reply = send(&base, "POST", "/orders", Some("ann"), Some(&key), Some(invalid.clone())).await;
        assert_eq!(reply.status, Some(StatusCode::UNPROCESSABLE_ENTITY), "{invalid}: {}", reply.body);
    }
    let listed = send(&base, "GET", "/orders", Some("ann"), None, None).await;
    assert_eq!(listed.status, Some(StatusCode::OK));
    assert_eq!(listed.body, json!([{"id": created.body["id"], "item": "book", "qty": 1}]));
    drop(example);
    schema.drop_schema().await;
}

#[test]
fn orders_example_without_database_url_says_what_to_set() {
    let output = Command::new(example_binary("orders")).env_remove("DATABASE_URL").output().expect("run orders");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
}
