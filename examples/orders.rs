//! Exactly-once orders: `POST /orders` is a transactional route, so the order row, the idempotency claim and the
//! stored response commit in one PostgreSQL transaction.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run --example orders
//!
//! curl -i -X POST localhost:8080/orders -H 'Authorization: Bearer alice' -H 'Idempotency-Key: order-1' \
//!      -H 'Content-Type: application/json' -d '{"item": "book", "qty": 2, "delay_ms": 5000}'
//! ```
//!
//! Kill the server during the 5 s delay (the order row is already INSERTed, uncommitted): nothing is left behind,
//! not the order and not the key, and the retry after a restart creates the order exactly once.
//!
//! `GET /openapi.json` documents the API, with the idempotency parts that `IdempotencyDocs` adds.
//!
//! # The outbox: `order.created`
//!
//! Each order also enqueues an `order.created` event (`{"order_id", "user", "item", "qty"}`) with
//! `tx.enqueue(..)`, in the same transaction: the event exists exactly when the order does, and a replayed request
//! enqueues nothing. The server always enqueues; it also relays the outbox (a task in the server process) when a
//! broker is named:
//!
//! - `AMQP_URL` (e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`): to the durable queue `order_events` (declared at
//!   start; `AMQP_QUEUE` renames it), published on the default exchange with publisher confirms, `message_id` = the
//!   event's deterministic id;
//! - else `NATS_URL` (e.g. `nats://127.0.0.1:4222`): to the JetStream subject `order.created` (`NATS_SUBJECT`) of
//!   the stream `ORDER_EVENTS` (`NATS_STREAM`, created if missing, with a 2 min duplicate window), with
//!   `Nats-Msg-Id` and `Idempotency-Key` = the id.
//!
//! `cargo run --example orders -- relay` runs the relay alone, as its own process (several may run at once), and
//! serves no HTTP. The relay prints `relay: publishing N messages`, `relay: broker confirmed N of N` and
//! `relay: sent N` for each batch; `RELAY_BATCH_SIZE` (default 100) caps a batch, and `RELAY_HOLD_MS` (default 0)
//! holds each confirmed batch that long before it is marked sent (a window for the test suite's `kill -9`: the
//! batch is then sent again, and the consumer's inbox absorbs the copies). `examples/order_events_amqp.rs` and
//! `examples/order_events_nats.rs` consume the events.

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, Responder, get, post, web};
use common::openapi::{DemoAuth, DocumentedPaths, ExampleProblem, document_route, not_routed};
use common::{
    create_tables, delay_of, integer, json_config, listen_config, postgres_config, postgres_pool, problem,
    unauthenticated, user_of,
};
use deadpool_postgres::Pool;
use idempotent_runtime::openapi::IdempotencyDocs;
use idempotent_runtime::outbox::OutboxMessage;
use idempotent_runtime::{Idempotency, PostgresStore, Tx, idempotent};
use orders_relay::{ORDER_CREATED, relay_from_env};
use serde_json::{Value, json};
use tokio_postgres::types::Type;

mod common;
mod orders_relay;

const ORDERS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS orders (
    id         bigserial   PRIMARY KEY,
    user_id    text        NOT NULL,
    item       text        NOT NULL CHECK (item <> ''),
    qty        bigint      NOT NULL CHECK (qty >= 1),
    created_at timestamptz NOT NULL DEFAULT now()
)";

/// An order request that passed validation.
struct NewOrder {
    item: String,
    qty: i64,
    delay: std::time::Duration,
}

/// The largest quantity of one order.
const MAX_QTY: i64 = 1_000_000;

/// An order (documentation of the JSON the routes answer).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct Order {
    id: i64,
    item: String,
    qty: i64,
}

/// The body of `POST /orders` (documentation: the handler validates the JSON itself, to answer a problem).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct OrderRequest {
    /// What is ordered: any text but the NUL character, which PostgreSQL text cannot hold.
    #[schema(min_length = 1, pattern = "^[^\\u0000]+$")]
    item: String,
    #[schema(minimum = 1, maximum = 1_000_000)]
    qty: i64,
}

/// Validates the JSON body; every field problem is a 422 from the handler (stored and replayed like any 4xx).
fn validate(body: &Value) -> Result<NewOrder, &'static str> {
    let item = body
        .get("item")
        .and_then(Value::as_str)
        .filter(|item| !item.is_empty() && !item.contains('\0'))
        .ok_or("`item` must be a non-empty string without NUL characters")?;
    let qty = body
        .get("qty")
        .and_then(integer)
        .filter(|qty| (1..=MAX_QTY).contains(qty))
        .ok_or("`qty` must be an integer from 1 to 1000000")?;
    Ok(NewOrder { item: item.to_owned(), qty, delay: delay_of(body)? })
}

#[get("/")]
async fn index() -> impl Responder {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(
        "idempotent orders example (transactional route)\n\
         POST /orders  (Authorization: Bearer <user>, Idempotency-Key: <key>, JSON {item, qty, delay_ms?})\n\
         GET  /orders  (Authorization: Bearer <user>)\n",
    )
}

#[utoipa::path(
    post,
    path = "/orders",
    tag = "orders",
    params(DemoAuth),
    request_body = OrderRequest,
    responses(
        (status = 201, description = "The order, committed with its idempotency record.", body = Order,
            headers(("Location" = String, description = "The order's URL."))),
        (status = 400, description = "The body is not JSON.", content_type = "application/problem+json", body = ExampleProblem),
        (status = 401, description = "No `Authorization: Bearer <user id>`.", content_type = "application/problem+json", body = ExampleProblem),
        (status = 422, description = "`invalid-order`: a field is invalid.", content_type = "application/problem+json", body = ExampleProblem),
        (status = 503, description = "`storage-failed`: the order could not be recorded.", content_type = "application/problem+json", body = ExampleProblem),
    )
)]
#[post("/orders")]
#[idempotent(scope = "user")]
async fn create_order(tx: Tx, request: HttpRequest, body: web::Json<Value>) -> HttpResponse {
    let Some(user) = user_of(&request) else { return unauthenticated() };
    let new = match validate(&body) {
        Ok(new) => new,
        Err(detail) => return problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-order", detail),
    };
    // The write goes through the idempotency transaction: it commits with the stored response, or not at all.
    let inserted = tx
        .query_one(
            "INSERT INTO orders (user_id, item, qty) VALUES ($1, $2, $3) RETURNING id",
            &[&user, &new.item, &new.qty],
        )
        .await;
    let id: i64 = match inserted {
        Ok(row) => row.get(0),
        Err(error) => return problem(StatusCode::SERVICE_UNAVAILABLE, "storage-failed", error.to_string()),
    };
    // Work after the write (a slow downstream call): a crash here must leave no order behind. No delay asked, no
    // timer: even a zero-length sleep waits for the timer's next tick (about 1 ms).
    if !new.delay.is_zero() {
        actix_web::rt::time::sleep(new.delay).await;
    }
    // The event, in the same transaction: it leaves (through the relay) only if the order commits.
    let event = json!({"order_id": id, "user": user, "item": new.item, "qty": new.qty});
    if let Err(error) = tx.enqueue(OutboxMessage::new(ORDER_CREATED, event.to_string())).await {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "storage-failed", error.to_string());
    }
    HttpResponse::Created()
        .insert_header(("location", format!("/orders/{id}")))
        .json(json!({"id": id, "item": new.item, "qty": new.qty}))
}

#[utoipa::path(
    get,
    path = "/orders",
    tag = "orders",
    params(DemoAuth),
    responses(
        (status = 200, description = "The caller's orders, oldest first.", body = Vec<Order>),
        (status = 401, description = "No `Authorization: Bearer <user id>`.", content_type = "application/problem+json", body = ExampleProblem),
        (status = 503, description = "`storage-failed`: the orders could not be read.", content_type = "application/problem+json", body = ExampleProblem),
    )
)]
#[get("/orders")]
async fn list_orders(request: HttpRequest, pool: web::Data<Pool>) -> HttpResponse {
    let Some(user) = user_of(&request) else { return unauthenticated() };
    let rows = match pool.get().await {
        // Unnamed (`query_typed`): correct through a transaction-mode pooler. Inside the idempotency transaction
        // (`tx` above) any statement is fine: the whole transaction stays on one backend.
        Ok(client) => {
            client
                .query_typed("SELECT id, item, qty FROM orders WHERE user_id = $1 ORDER BY id", &[(&user, Type::TEXT)])
                .await
        }
        Err(error) => return problem(StatusCode::SERVICE_UNAVAILABLE, "storage-failed", error.to_string()),
    };
    match rows {
        Ok(rows) => HttpResponse::Ok().json(
            rows.iter()
                .map(|row| json!({"id": row.get::<_, i64>(0), "item": row.get::<_, String>(1), "qty": row.get::<_, i64>(2)}))
                .collect::<Vec<_>>(),
        ),
        Err(error) => problem(StatusCode::SERVICE_UNAVAILABLE, "storage-failed", error.to_string()),
    }
}

/// The API, as utoipa documents its routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "idempotent orders example",
        description = "Orders written exactly once, in the idempotency transaction."
    ),
    paths(create_order, list_orders)
)]
struct OrdersApi;

/// The document `GET /openapi.json` serves: the routes, and what the library adds to the protected one.
fn api_document(idempotency: &Idempotency) -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    let mut document = OrdersApi::openapi();
    IdempotencyDocs::of(idempotency).document(&mut document);
    document
}

/// What `orders` was asked to do.
enum Mode {
    /// Serve HTTP (and relay, when a broker is named).
    Serve,
    /// Relay the outbox only.
    Relay,
}

fn mode() -> Mode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match arguments.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => Mode::Serve,
        ["relay"] => Mode::Relay,
        _ => {
            eprintln!("usage: cargo run --example orders [-- relay]");
            std::process::exit(2);
        }
    }
}
#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let mode = mode();
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!(
            "the orders example needs PostgreSQL: its orders commit in the same transaction as the idempotency \
             record.\nSet DATABASE_URL, e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run \
             --example orders"
        );
        std::process::exit(2);
    };
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let config = postgres_config(&url)?;
    let pool = postgres_pool(config.clone())?;
    let store = PostgresStore::new(pool.clone()).with_listener(listen_config(config.clone())?);
    store.migrate().await.map_err(|error| format!("cannot prepare the idempotency table: {error}"))?;
    create_tables(&pool, ORDERS_SCHEMA).await?;
    // The relay's store has a pool of its own, whose connections this (the main) runtime opens and drives: a pooled
    // connection runs on the runtime that opened it, and one that an HTTP worker opened dies with that worker.
    let relay_store = PostgresStore::new(postgres_pool(config.clone())?).with_listener(listen_config(config)?);
    let relay = relay_from_env(&relay_store).await?;
    if let Mode::Relay = mode {
        let Some((relay, destination)) = relay else {
            eprintln!("orders relay needs a broker: set AMQP_URL (RabbitMQ) or NATS_URL (NATS JetStream)");
            std::process::exit(2);
        };
        println!("orders relay: relaying the outbox to {destination} (pid {})", std::process::id());
        match relay.run().await {}
    }
    let relaying = match relay {
        Some((relay, destination)) => {
            actix_web::rt::spawn(async move { match relay.run().await {} });
            format!("relaying order.created to {destination}")
        }
        None => "enqueuing order.created (set AMQP_URL or NATS_URL to relay it)".to_owned(),
    };
    let idempotency = Idempotency::builder(store).user_resolver(user_of).build();
    let pool = web::Data::new(pool);
    let document = api_document(&idempotency);
    let documented_paths = web::Data::new(DocumentedPaths::of(&document));

    let server = HttpServer::new(move || {
        App::new()
            .app_data(idempotency.clone())
            .app_data(pool.clone())
            .app_data(json_config())
            .service(index)
            .service(create_order)
            .service(list_orders)
            .service(document_route(&document))
            .app_data(documented_paths.clone())
            .default_service(web::to(not_routed))
    })
    .bind(&bind)?;
    println!(
        "orders example: PostgreSQL (DATABASE_URL) store, transactional POST /orders, {relaying}, listening on \
         http://{bind}"
    );
    server.run().await?;
    Ok(())
}
