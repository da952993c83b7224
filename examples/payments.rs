//! A payments API whose `POST /payments` runs once per `Idempotency-Key`, the example a newcomer runs first.
//!
//! ```text
//! cargo run --example payments                      # in-memory store and payments
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run --example payments
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example payments   # idempotency records in Redis
//! REDIS_CLUSTER_NODES=127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 cargo run --example payments
//!
//! curl -i -X POST localhost:8080/payments -H 'Authorization: Bearer alice' \
//!      -H 'Idempotency-Key: 8e03978e-40d5-43e8-bc93-6894a57f9324' \
//!      -H 'Content-Type: application/json' -d '{"amount": 1000, "currency": "EUR"}'
//! ```
//!
//! Run the `curl` twice: the second answer is the first one replayed (`Idempotent-Replayed: true`), and
//! `GET /payments` still lists one payment. Demo auth: the bearer token is the user id.
//!
//! Payments are kept where `DATABASE_URL` says (PostgreSQL, else memory). The idempotency records go with them,
//! unless `REDIS_URL` (one Redis or Valkey node) or `REDIS_CLUSTER_NODES` (some nodes of a Redis Cluster, comma
//! separated) puts them in Redis. With Redis, `REDIS_REPLICA_ACKS=N` waits until N replicas acknowledged each claim
//! and each stored response (`WAIT`, at most `REDIS_REPLICA_ACKS_TIMEOUT_MS`, default 500), and `REDIS_KEY_PREFIX`
//! sets the records' key prefix.
//!
//! People pay at `GET /checkout` in a browser: an HTML form that charges once however often it is submitted (see
//! `checkout/mod.rs`). `CORS_ALLOWED_ORIGINS` (comma separated, e.g. `https://shop.example`) lets pages of those
//! origins call the JSON API with `fetch` and their own `Idempotency-Key`.
//!
//! `GET /openapi.json` documents the JSON API: the routes are written with utoipa, and
//! `idempotent_runtime::openapi::IdempotencyDocs` adds the key, the library's answers and the services.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, RandomState};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use actix_cors::Cors;
use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, LOCATION, RETRY_AFTER};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, Responder, get, post, web};
use common::openapi::{DemoAuth, DocumentedPaths, ExampleProblem, document_route, not_routed};
use common::{
    create_tables, delay_of, integer, json_config, key_issuer, postgres_config, postgres_pool, problem,
    unauthenticated, user_of,
};
use deadpool_postgres::Pool;
use idempotent_runtime::openapi::IdempotencyDocs;
use idempotent_runtime::{
    Idempotency, MemoryStore, PostgresStore, RedisStore, RedisStoreBuilder, idempotent, issue_keys, status_lookup,
};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::types::Type;

mod checkout;
mod common;

const PAYMENTS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS payments (
    id         bigserial   PRIMARY KEY,
    user_id    text        NOT NULL,
    amount     bigint      NOT NULL CHECK (amount >= 1),
    currency   text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)";

/// A payment.
#[derive(Clone, Serialize, utoipa::ToSchema)]
struct Payment {
    id: i64,
    /// In the currency's smallest unit (cents).
    amount: i64,
    /// ISO 4217, three capital letters.
    currency: String,
}

/// The largest amount a payment may have, in cents.
const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// The body of `POST /payments` (documentation: the handler validates the JSON itself, to answer a problem).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct PaymentRequest {
    /// In the currency's smallest unit (cents).
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    amount: i64,
    /// ISO 4217, three capital letters.
    #[schema(pattern = "^[A-Z]{3}$")]
    currency: String,
}

/// Where payments are kept: PostgreSQL when `DATABASE_URL` is set, else this process's memory.
enum Payments {
    Postgres(Pool),
    Memory(MemoryPayments),
}

/// Users are spread over this many maps, each behind its own lock.
const PAYMENT_SHARDS: usize = 64;
/// Payments per chunk of a user's list.
const PAYMENT_CHUNK: usize = 1024;

/// Payments in this process's memory, kept so that growth never stops the world (as the library's memory store):
/// users are spread over [`PAYMENT_SHARDS`] maps, so a map's rehash moves a sliver of them and blocks only its own
/// users, and each user's payments are a list of fixed-size chunks, so a long list grows by one new chunk instead
/// of copying every payment it holds.
struct MemoryPayments {
    next_id: AtomicI64,
    hasher: RandomState,
    shards: Box<[Mutex<UserPayments>]>,
}

/// One shard: each of its users' payments, in chunks of [`PAYMENT_CHUNK`].
type UserPayments = HashMap<String, Vec<Vec<Payment>>>;

impl MemoryPayments {
    fn new() -> Self {
        Self {
            next_id: AtomicI64::new(1),
            hasher: RandomState::new(),
            shards: (0..PAYMENT_SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard_of(&self, user: &str) -> &Mutex<UserPayments> {
        let shard = usize::try_from(self.hasher.hash_one(user) % PAYMENT_SHARDS as u64).unwrap_or(0);
        &self.shards[shard]
    }

    fn record(&self, user: &str, amount: i64, currency: &str) -> Result<Payment, String> {
        let mut users = self.shard_of(user).lock().map_err(|error| error.to_string())?;
        let chunks = users.entry(user.to_owned()).or_default();
        if chunks.last().is_none_or(|chunk| chunk.len() == PAYMENT_CHUNK) {
            chunks.push(Vec::with_capacity(PAYMENT_CHUNK));
        }
        // Numbered under the user's lock, so that a user's list is in id order.
        let payment =
            Payment { id: self.next_id.fetch_add(1, Ordering::Relaxed), amount, currency: currency.to_owned() };
        chunks.last_mut().expect("a chunk with room was just ensured").push(payment.clone());
        Ok(payment)
    }

    fn of_user(&self, user: &str) -> Result<Vec<Payment>, String> {
        let users = self.shard_of(user).lock().map_err(|error| error.to_string())?;
        Ok(users.get(user).map(|chunks| chunks.iter().flatten().cloned().collect()).unwrap_or_default())
    }

    fn one_of_user(&self, user: &str, id: i64) -> Result<Option<Payment>, String> {
        let users = self.shard_of(user).lock().map_err(|error| error.to_string())?;
        Ok(users.get(user).and_then(|chunks| chunks.iter().flatten().find(|payment| payment.id == id).cloned()))
    }
}

impl Payments {
    async fn record(&self, user: &str, amount: i64, currency: &str) -> Result<Payment, String> {
        match self {
            Self::Postgres(pool) => {
                let client = pool.get().await.map_err(|error| error.to_string())?;
                // `query_typed*` sends an unnamed statement in one round trip: it works through a transaction-mode
                // pooler (PgBouncer), where a statement prepared in one round trip may be gone in the next.
                let row = client
                    .query_typed_one(
                        "INSERT INTO payments (user_id, amount, currency) VALUES ($1, $2, $3) RETURNING id",
                        &[(&user, Type::TEXT), (&amount, Type::INT8), (&currency, Type::TEXT)],
                    )
                    .await
                    .map_err(|error| error.to_string())?;
                Ok(Payment { id: row.get(0), amount, currency: currency.to_owned() })
            }
            Self::Memory(payments) => payments.record(user, amount, currency),
        }
    }

    async fn of_user(&self, user: &str) -> Result<Vec<Payment>, String> {
        match self {
            Self::Postgres(pool) => {
                let client = pool.get().await.map_err(|error| error.to_string())?;
                let rows = client
                    .query_typed(
                        "SELECT id, amount, currency FROM payments WHERE user_id = $1 ORDER BY id",
                        &[(&user, Type::TEXT)],
                    )
                    .await
                    .map_err(|error| error.to_string())?;
                Ok(rows
                    .iter()
                    .map(|row| Payment { id: row.get(0), amount: row.get(1), currency: row.get(2) })
                    .collect())
            }
            Self::Memory(payments) => payments.of_user(user),
        }
    }

    /// The payment `id` if it is `user`'s (a receipt shows one payment, to the user who made it).
    async fn one_of_user(&self, user: &str, id: i64) -> Result<Option<Payment>, String> {
        match self {
            Self::Postgres(pool) => {
                let client = pool.get().await.map_err(|error| error.to_string())?;
                let row = client
                    .query_typed_opt(
                        "SELECT amount, currency FROM payments WHERE user_id = $1 AND id = $2",
                        &[(&user, Type::TEXT), (&id, Type::INT8)],
                    )
                    .await
                    .map_err(|error| error.to_string())?;
                Ok(row.map(|row| Payment { id, amount: row.get(0), currency: row.get(1) }))
            }
            Self::Memory(payments) => payments.one_of_user(user, id),
        }
    }
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
        .and_then(integer)
        .filter(|amount| (1..=MAX_AMOUNT).contains(amount))
        .ok_or("`amount` must be an integer from 1 to 1000000000000")?;
    let currency = body
        .get("currency")
        .and_then(Value::as_str)
        .filter(|currency| currency.len() == 3 && currency.bytes().all(|byte| byte.is_ascii_uppercase()))
        .ok_or("`currency` must be three capital letters, e.g. \"EUR\"")?;
    Ok(NewPayment { amount, currency: currency.to_owned(), delay: delay_of(body)? })
}

#[get("/")]
async fn index() -> impl Responder {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(
        "idempotent payments example\n\
         POST /payments  (Authorization: Bearer <user>, Idempotency-Key: <key>, JSON {amount, currency, delay_ms?})\n\
         GET  /payments  (Authorization: Bearer <user>)\n\
         GET  /idempotency/{key}  (Authorization: Bearer <user>): what happened to that key\n\
         POST /idempotency-keys  (Authorization: Bearer <user>): a key issued by the server\n\
         GET  /checkout  in a browser: a payment form that charges once however often it is sent\n",
    )
}

#[utoipa::path(
    post,
    path = "/payments",
    tag = "payments",
    params(DemoAuth),
    request_body = PaymentRequest,
    responses(
        (status = 201, description = "The payment was made.", body = Payment,
            headers(("Location" = String, description = "The payment's URL."))),
        (status = 400, description = "The body is not JSON.", content_type = "application/problem+json", body = ExampleProblem),
        (status = 401, description = "No `Authorization: Bearer <user id>`.", content_type = "application/problem+json", body = ExampleProblem),
        (status = 422, description = "`invalid-payment`: a field is invalid.", content_type = "application/problem+json", body = ExampleProblem),
        (status = 503, description = "`storage-failed`: the payment could not be recorded.", content_type = "application/problem+json", body = ExampleProblem),
    )
)]
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
    // No delay asked, no timer: even a zero-length sleep waits for the timer's next tick (about 1 ms).
    if !new.delay.is_zero() {
        actix_web::rt::time::sleep(new.delay).await;
    }
    match payments.record(&user, new.amount, &new.currency).await {
        Ok(payment) => {
            HttpResponse::Created().insert_header(("location", format!("/payments/{}", payment.id))).json(payment)
        }
        Err(error) => problem(StatusCode::SERVICE_UNAVAILABLE, "storage-failed", error),
    }
}

#[utoipa::path(
    get,
    path = "/payments",
    tag = "payments",
    params(DemoAuth),
    responses(
        (status = 200, description = "The caller's payments, oldest first.", body = Vec<Payment>),
        (status = 401, description = "No `Authorization: Bearer <user id>`.", content_type = "application/problem+json", body = ExampleProblem),
        (status = 503, description = "`storage-failed`: the payments could not be read.", content_type = "application/problem+json", body = ExampleProblem),
    )
)]
#[get("/payments")]
async fn list_payments(request: HttpRequest, payments: web::Data<Payments>) -> HttpResponse {
    let Some(user) = user_of(&request) else { return unauthenticated() };
    match payments.of_user(&user).await {
        Ok(list) => HttpResponse::Ok().json(list),
        Err(error) => problem(StatusCode::SERVICE_UNAVAILABLE, "storage-failed", error),
    }
}

/// The JSON API, as utoipa documents its routes; [`api_document`] adds the idempotency parts.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "idempotent payments example", description = "Payments that run once per `Idempotency-Key`."),
    paths(create_payment, list_payments)
)]
struct PaymentsApi;

/// The document `GET /openapi.json` serves: the routes, and what the library adds to the protected ones, with the
/// status lookup and the key-issuing service where this app mounts them.
fn api_document(idempotency: &Idempotency) -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    let mut document = PaymentsApi::openapi();
    IdempotencyDocs::of(idempotency)
        .status_lookup("/idempotency/{key}")
        .issue_keys("/idempotency-keys")
        .document(&mut document);
    document
}

/// The Redis store that `REDIS_URL` or `REDIS_CLUSTER_NODES` asks for (not both), and its name for the start-up
/// line; `None` when neither is set.
fn redis_store() -> Result<Option<(RedisStoreBuilder, String)>, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|value| !value.trim().is_empty());
    let (builder, mut name) = match (var("REDIS_URL"), var("REDIS_CLUSTER_NODES")) {
        (Some(_), Some(_)) => return Err("set REDIS_URL or REDIS_CLUSTER_NODES, not both".to_owned()),
        (None, None) => return Ok(None),
        (Some(url), None) => (RedisStore::node(url), "Redis (REDIS_URL)".to_owned()),
        (None, Some(nodes)) => {
            let nodes: Vec<String> =
                nodes.split(',').map(str::trim).filter(|node| !node.is_empty()).map(str::to_owned).collect();
            let name = format!("Redis Cluster (REDIS_CLUSTER_NODES, {} seed nodes)", nodes.len());
            (RedisStore::cluster(nodes), name)
        }
    };
    // This app mounts the status lookup (`GET /idempotency/{key}`), which reads the store's index of each key's
    // records: a RedisStore keeps it only when asked.
    let builder = builder.status_lookups(true);
    let builder = match var("REDIS_KEY_PREFIX") {
        Some(prefix) => builder.key_prefix(prefix),
        None => builder,
    };
    let builder = match var("REDIS_REPLICA_ACKS") {
        Some(replicas) => {
            let replicas: usize = replicas.parse().map_err(|_| "REDIS_REPLICA_ACKS must be a number of replicas")?;
            let timeout: u64 = var("REDIS_REPLICA_ACKS_TIMEOUT_MS")
                .map_or(Ok(500), |timeout| timeout.parse())
                .map_err(|_| "REDIS_REPLICA_ACKS_TIMEOUT_MS must be milliseconds")?;
            name.push_str(&format!(", WAIT for {replicas} replica(s), at most {timeout} ms"));
            builder.replica_acks(replicas, Duration::from_millis(timeout))
        }
        None => builder,
    };
    Ok(Some((builder, name)))
}

/// The origins in `CORS_ALLOWED_ORIGINS` (comma separated), whose pages may call the API from a browser.
fn allowed_origins() -> Vec<String> {
    let origins = std::env::var("CORS_ALLOWED_ORIGINS").unwrap_or_default();
    origins.split(',').map(str::trim).filter(|origin| !origin.is_empty()).map(str::to_owned).collect()
}

/// CORS for browser clients of the JSON API: the preflight allows `Idempotency-Key` (with the auth and JSON
/// headers), and the answers expose what a retrying client reads: `Idempotent-Replayed`, `Retry-After` (409 and
/// 503) and `Location`. Requests of other origins are served without CORS headers, so the browser withholds the
/// answer; same-origin form posts, which carry `Origin` too, pass.
fn cors(allowed_origins: &[String]) -> Cors {
    let cors = allowed_origins.iter().fold(Cors::default(), |cors, origin| cors.allowed_origin(origin));
    cors.allowed_methods(["GET", "POST"])
        .allowed_headers([AUTHORIZATION, CONTENT_TYPE, HeaderName::from_static("idempotency-key")])
        .expose_headers([HeaderName::from_static("idempotent-replayed"), RETRY_AFTER, LOCATION])
        .max_age(3600)
}

async fn connect(redis: RedisStoreBuilder) -> Result<RedisStore, String> {
    redis.connect().await.map_err(|error| format!("cannot reach Redis: {error}"))
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());

    let redis = redis_store()?;
    let (builder, payments, store_name) = match (std::env::var("DATABASE_URL"), redis) {
        (Ok(url), redis) => {
            let pool = postgres_pool(postgres_config(&url)?)?;
            create_tables(&pool, PAYMENTS_SCHEMA).await?;
            let payments = Payments::Postgres(pool.clone());
            match redis {
                Some((redis, name)) => (Idempotency::builder(connect(redis).await?), payments, name),
                None => {
                    let store = PostgresStore::new(pool);
                    store.migrate().await.map_err(|error| format!("cannot prepare the idempotency table: {error}"))?;
                    (Idempotency::builder(store), payments, "PostgreSQL (DATABASE_URL)".to_owned())
                }
            }
        }
        (Err(_), Some((redis, name))) => {
            (Idempotency::builder(connect(redis).await?), Payments::Memory(MemoryPayments::new()), name)
        }
        (Err(_), None) => {
            (Idempotency::builder(MemoryStore::new()), Payments::Memory(MemoryPayments::new()), "in-memory".to_owned())
        }
    };
    let payments_name = match &payments {
        Payments::Postgres(_) => "PostgreSQL",
        Payments::Memory(_) => "in-memory",
    };
    let idempotency = builder
        // API clients send a bearer token, browsers the checkout's session cookie.
        .user_resolver(|request| user_of(request).or_else(|| checkout::session_user(request)))
        .render_problems(checkout::render_problem)
        .key_issuer(key_issuer()?)
        .build();
    let payments = web::Data::new(payments);
    let allowed_origins = allowed_origins();
    let document = api_document(&idempotency);
    let documented_paths = web::Data::new(DocumentedPaths::of(&document));

    let server = HttpServer::new(move || {
        App::new()
            .wrap(cors(&allowed_origins))
            .app_data(idempotency.clone())
            .app_data(payments.clone())
            .app_data(json_config())
            .service(index)
            .service(create_payment)
            .service(list_payments)
            .service(status_lookup("/idempotency/{key}"))
            .service(issue_keys("/idempotency-keys"))
            .configure(checkout::routes)
            .service(document_route(&document))
            .app_data(documented_paths.clone())
            .default_service(web::to(not_routed))
    })
    .bind(&bind)?;
    println!("payments example: {store_name} store, {payments_name} payments, listening on http://{bind}");
    server.run().await?;
    Ok(())
}
