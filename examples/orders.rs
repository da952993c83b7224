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

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, Responder, get, post, web};
use common::{
    create_tables, delay_of, json_config, listen_config, postgres_config, postgres_pool, problem, unauthenticated,
    user_of,
};
use deadpool_postgres::Pool;
use idempotent_runtime::{Idempotency, PostgresStore, Tx, idempotent};
use serde_json::{Value, json};
use tokio_postgres::types::Type;

mod common;

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

/// Validates the JSON body; every field problem is a 422 from the handler (stored and replayed like any 4xx).
fn validate(body: &Value) -> Result<NewOrder, &'static str> {
    let item = body
        .get("item")
        .and_then(Value::as_str)
        .filter(|item| !item.is_empty())
        .ok_or("`item` must be a non-empty string")?;
    let qty = body.get("qty").and_then(Value::as_i64).filter(|qty| *qty >= 1).ok_or("`qty` must be an integer >= 1")?;
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
    HttpResponse::Created()
        .insert_header(("location", format!("/orders/{id}")))
        .json(json!({"id": id, "item": new.item, "qty": new.qty}))
}

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

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
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
    let store = PostgresStore::new(pool.clone()).with_listener(listen_config(config)?);
    store.migrate().await.map_err(|error| format!("cannot prepare the idempotency table: {error}"))?;
    create_tables(&pool, ORDERS_SCHEMA).await?;
    let idempotency = Idempotency::builder(store).user_resolver(user_of).build();
    let pool = web::Data::new(pool);

    let server = HttpServer::new(move || {
        App::new()
            .app_data(idempotency.clone())
            .app_data(pool.clone())
            .app_data(json_config())
            .service(index)
            .service(create_order)
            .service(list_orders)
    })
    .bind(&bind)?;
    println!("orders example: PostgreSQL (DATABASE_URL) store, transactional POST /orders, listening on http://{bind}");
    server.run().await?;
    Ok(())
}
