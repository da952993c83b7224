//! A payments API whose `POST /payments` runs once per `Idempotency-Key`, the example a newcomer runs first.
//!
//! ```text
//! cargo run --example payments                      # in-memory store and payments
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run --example payments
//!
//! curl -i -X POST localhost:8080/payments -H 'Authorization: Bearer alice' \
//!      -H 'Idempotency-Key: 8e03978e-40d5-43e8-bc93-6894a57f9324' \
//!      -H 'Content-Type: application/json' -d '{"amount": 1000, "currency": "EUR"}'
//! ```
//!
//! Run the `curl` twice: the second answer is the first one replayed (`Idempotent-Replayed: true`), and
//! `GET /payments` still lists one payment. Demo auth: the bearer token is the user id.

use std::sync::Mutex;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, Responder, get, post, web};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use idempotent_runtime::{Idempotency, MemoryStore, PostgresStore, idempotent};
use serde::Serialize;
use serde_json::{Value, json};

const PAYMENTS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS payments (
    id         bigserial   PRIMARY KEY,
    user_id    text        NOT NULL,
    amount     bigint      NOT NULL CHECK (amount >= 1),
    currency   text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)";

#[derive(Clone, Serialize)]
struct Payment {
    id: i64,
    amount: i64,
    currency: String,
}

/// Where payments are kept: PostgreSQL when `DATABASE_URL` is set, else this process's memory.
enum Payments {
    Postgres(Pool),
    Memory(Mutex<Vec<(String, Payment)>>),
}

impl Payments {
    async fn record(&self, user: &str, amount: i64, currency: &str) -> Result<Payment, String> {
        match self {
            Self::Postgres(pool) => {
                let client = pool.get().await.map_err(|error| error.to_string())?;
                let row = client
                    .query_one(
                        "INSERT INTO payments (user_id, amount, currency) VALUES ($1, $2, $3) RETURNING id",
                        &[&user, &amount, &currency],
                    )
                    .await
                    .map_err(|error| error.to_string())?;
                Ok(Payment { id: row.get(0), amount, currency: currency.to_owned() })
            }
            Self::Memory(payments) => {
                let mut payments = payments.lock().map_err(|error| error.to_string())?;
                let payment = Payment { id: payments.len() as i64 + 1, amount, currency: currency.to_owned() };
                payments.push((user.to_owned(), payment.clone()));
                Ok(payment)
            }
        }
    }

    async fn of_user(&self, user: &str) -> Result<Vec<Payment>, String> {
        match self {
            Self::Postgres(pool) => {
                let client = pool.get().await.map_err(|error| error.to_string())?;
                let rows = client
                    .query("SELECT id, amount, currency FROM payments WHERE user_id = $1 ORDER BY id", &[&user])
                    .await
                    .map_err(|error| error.to_string())?;
                Ok(rows
                    .iter()
                    .map(|row| Payment { id: row.get(0), amount: row.get(1), currency: row.get(2) })
                    .collect())
            }
            Self::Memory(payments) => {
                let payments = payments.lock().map_err(|error| error.to_string())?;
                Ok(payments.iter().filter(|(owner, _)| owner == user).map(|(_, payment)| payment.clone()).collect())
            }
        }
    }
}

/// Demo auth: `Authorization: Bearer <user-id>`, the token is the user id (1 to 64 visible ASCII characters).
fn user_of(request: &HttpRequest) -> Option<String> {
    let token = request.headers().get("authorization")?.to_str().ok()?.strip_prefix("Bearer ")?;
    let valid = (1..=64).contains(&token.len()) && token.bytes().all(|byte| byte.is_ascii_graphic());
    valid.then(|| token.to_owned())
}

/// An RFC 9457 problem answered by the example itself (the library answers its own, under its own `type` base).
fn problem(status: StatusCode, slug: &str, detail: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/problem+json")
        .insert_header(("cache-control", "no-store"))
        .json(json!({
            "type": format!("https://payments.example/problems/{slug}"),
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": detail.into(),
        }))
}

fn unauthenticated() -> HttpResponse {
    problem(StatusCode::UNAUTHORIZED, "unauthenticated", "send `Authorization: Bearer <user-id>`")
}

/// A payment request that passed validation.
struct NewPayment {
    amount: i64,
    currency: String,
    delay: Duration,
}

/// Validates the JSON body; every field problem is a 422 from the handler (and so stored and replayed).
fn validate(body: &Value) -> Result<NewPayment, String> {
    let amount = body
        .get("amount")
        .and_then(Value::as_i64)
        .filter(|amount| *amount >= 1)
        .ok_or("`amount` must be an integer >= 1")?;
    let currency = body
        .get("currency")
        .and_then(Value::as_str)
        .filter(|currency| currency.len() == 3 && currency.bytes().all(|byte| byte.is_ascii_uppercase()))
        .ok_or("`currency` must be three capital letters, e.g. \"EUR\"")?;
    let delay_ms = match body.get("delay_ms") {
        None | Some(Value::Null) => 0,
        Some(delay) => {
            delay.as_u64().filter(|delay| *delay <= 60_000).ok_or("`delay_ms` must be an integer in 0..=60000")?
        }
    };
    Ok(NewPayment { amount, currency: currency.to_owned(), delay: Duration::from_millis(delay_ms) })
}

#[get("/")]
async fn index() -> impl Responder {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(
        "idempotent payments example\n\
         POST /payments  (Authorization: Bearer <user>, Idempotency-Key: <key>, JSON {amount, currency, delay_ms?})\n\
         GET  /payments  (Authorization: Bearer <user>)\n",
    )
}

#[post("/payments")]
#[idempotent(ttl = "24h", scope = "user", lease = "5s", max_request_body = "1MiB")]
async fn create_payment(request: HttpRequest, body: web::Json<Value>, payments: web::Data<Payments>) -> HttpResponse {
    // The idempotency layer already refused requests without a user (scope = "user"); this is for the type system.
    let Some(user) = user_of(&request) else { return unauthenticated() };
    let new = match validate(&body) {
        Ok(new) => new,
        Err(detail) => return problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-payment", detail),
    };
    // A slow payment provider: the key stays claimed meanwhile, so a duplicate gets 409 instead of a second charge.
    actix_web::rt::time::sleep(new.delay).await;
    match payments.record(&user, new.amount, &new.currency).await {
        Ok(payment) => {
            HttpResponse::Created().insert_header(("location", format!("/payments/{}", payment.id))).json(payment)
        }
        Err(error) => problem(StatusCode::SERVICE_UNAVAILABLE, "storage-failed", error),
    }
}

#[get("/payments")]
async fn list_payments(request: HttpRequest, payments: web::Data<Payments>) -> HttpResponse {
    let Some(user) = user_of(&request) else { return unauthenticated() };
    match payments.of_user(&user).await {
        Ok(list) => HttpResponse::Ok().json(list),
        Err(error) => problem(StatusCode::SERVICE_UNAVAILABLE, "storage-failed", error),
    }
}

fn json_config() -> web::JsonConfig {
    web::JsonConfig::default().limit(1024 * 1024).error_handler(|error, _| {
        let response =
            problem(StatusCode::BAD_REQUEST, "invalid-json", format!("the body is not a JSON document: {error}"));
        actix_web::error::InternalError::from_response(error, response).into()
    })
}

fn postgres_pool(url: &str) -> Result<Pool, String> {
    let config: tokio_postgres::Config = url.parse().map_err(|error| format!("DATABASE_URL is invalid: {error}"))?;
    let manager =
        Manager::from_config(config, tokio_postgres::NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager).max_size(16).build().map_err(|error| error.to_string())
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());

    let (builder, payments, store_name) = match std::env::var("DATABASE_URL") {
        Ok(url) => {
            let pool = postgres_pool(&url)?;
            let store = PostgresStore::new(pool.clone());
            store.migrate().await.map_err(|error| format!("cannot prepare the idempotency table: {error}"))?;
            let client =
                pool.get().await.map_err(|error| format!("cannot reach PostgreSQL at DATABASE_URL: {error}"))?;
            client.batch_execute(PAYMENTS_SCHEMA).await?;
            (Idempotency::builder(store), Payments::Postgres(pool), "PostgreSQL (DATABASE_URL)")
        }
        Err(_) => (Idempotency::builder(MemoryStore::new()), Payments::Memory(Mutex::default()), "in-memory"),
    };
    let idempotency = builder.user_resolver(user_of).build();
    let payments = web::Data::new(payments);

    let server = HttpServer::new(move || {
        App::new()
            .app_data(idempotency.clone())
            .app_data(payments.clone())
            .app_data(json_config())
            .service(index)
            .service(create_payment)
            .service(list_payments)
    })
    .bind(&bind)?;
    println!("payments example: {store_name} store, listening on http://{bind}");
    server.run().await?;
    Ok(())
}
