//! The server under test: one actix app with every scenario's route, on `127.0.0.1:0`.
//!
//! All routes share one handler body ([`respond`]: a ~100-byte JSON answer to a ~100-byte JSON order) and one
//! deadpool pool, so the scenarios differ only in what surrounds the body:
//!
//! - `POST /bare`: the body alone;
//! - `POST /lib` (`#[idempotent(scope = "global")]`): the library, for `new` (fresh keys) and `replay`;
//! - `POST /floor`: the floor, hand-written: the least any PostgreSQL idempotency layer must do. Without the
//!   replay header it is `floor_new` (one `INSERT ... ON CONFLICT DO NOTHING`, the body, one `UPDATE`), with it
//!   `floor_replay` (one `SELECT` by primary key). Both are on one route so that the route pattern, which is part
//!   of a record's identity, is the same for the records they write and read;
//! - `POST /lib_tx` (`#[idempotent(scope = "global")]` with a `Tx` parameter): the library's transactional route,
//!   for `new_tx` (claim, handler and stored response in one transaction, one commit);
//! - `POST /floor_tx`: the floor of a transactional route, `floor_new_tx`: `BEGIN` + the `INSERT`, the body, the
//!   `UPDATE` + `COMMIT`, on one connection (each pair pipelined, as the library does);
//! - `POST /lib_big` (`max_request_body = "2MiB"`): the library's route of the memory measurement;
//! - `POST /prepared/lib` and `POST /prepared/lib_tx`: `/lib` and `/lib_tx` on a store built with
//!   `PostgresStore::with_prepared_statements()` (named statements prepared once per connection, direct
//!   connections only), for `new_prepared`, `replay_prepared` and `new_tx_prepared`: what the pooler-safe
//!   default (unnamed statements) costs against them, in the same run.
//!
//! A second kind of server, [`start_memory`], serves the same `POST /lib` route on a [`MemoryStore`]: the
//! memory-store scenarios (`mem_new`, `mem_replay`, and the growth past 10^6 keys). A third, in `redis_app`, serves
//! it on a `RedisStore` next to a Redis floor (`redis_new`, `redis_replay`, `redis_floor_new`, `redis_floor_replay`).

use std::time::Duration;

use actix_web::body::MessageBody as _;
use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, guard, post, web};
use deadpool_postgres::{GenericClient as _, Pool};
use idempotent_runtime::{Idempotency, MemoryStore, PostgresStore, Tx, idempotent};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio_postgres::types::ToSql;

use crate::timed_store::TimedStore;

pub(crate) const BARE_PATH: &str = "/bare";
pub(crate) const LIB_PATH: &str = "/lib";
pub(crate) const LIB_BIG_PATH: &str = "/lib_big";
pub(crate) const LIB_TX_PATH: &str = "/lib_tx";
pub(crate) const LIB_PREPARED_PATH: &str = "/prepared/lib";
pub(crate) const LIB_TX_PREPARED_PATH: &str = "/prepared/lib_tx";
pub(crate) const FLOOR_PATH: &str = "/floor";
pub(crate) const FLOOR_TX_PATH: &str = "/floor_tx";
/// Routes a `POST /floor` to the floor's replay handler.
pub(crate) const FLOOR_REPLAY_HEADER: (&str, &str) = ("x-bench-floor", "replay");

/// The request body of every scenario (unknown fields such as `note` are skipped without being copied).
#[derive(Deserialize)]
pub(crate) struct Order {
    amount: u64,
    currency: String,
    reference: String,
}

#[derive(Serialize)]
struct Reply<'a> {
    ok: bool,
    n: u64,
    currency: &'a str,
    reference: &'a str,
    status: &'static str,
}

/// The handler body of every scenario: a JSON reply of about 100 bytes.
pub(crate) fn respond(order: &Order) -> HttpResponse {
    HttpResponse::Ok().json(Reply {
        ok: true,
        n: order.amount,
        currency: &order.currency,
        reference: &order.reference,
        status: "accepted-for-processing",
    })
}

#[post("/bare")]
async fn bare(order: web::Json<Order>) -> HttpResponse {
    respond(&order)
}

/// `scope = "global"`: the scope hash is a constant's digest, as in the floor. `scope = "user"` would add a
/// resolver call and a header parse that the floor would then have to copy; the floor's point is the store work.
#[post("/lib")]
#[idempotent(scope = "global")]
pub(crate) async fn lib(order: web::Json<Order>) -> HttpResponse {
    respond(&order)
}

/// A transactional route: the `Tx` parameter puts the claim, the handler and the stored response in one
/// transaction. The body is the same as everywhere else (it writes nothing through `tx`).
#[post("/lib_tx")]
#[idempotent(scope = "global")]
async fn lib_tx(_tx: Tx, order: web::Json<Order>) -> HttpResponse {
    respond(&order)
}

#[post("/lib_big")]
#[idempotent(scope = "global", max_request_body = "2MiB")]
async fn lib_big(order: web::Json<Order>) -> HttpResponse {
    respond(&order)
}

/// The server under test.
pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) handle: ServerHandle,
}

impl Server {
    pub(crate) async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

/// Starts the app on a free loopback port. The pool's connections are opened lazily by the first requests, so on
/// the worker's runtime, which then drives them.
pub(crate) fn start(pool: Pool, workers: usize) -> std::io::Result<Server> {
    let idempotency = Idempotency::builder(PostgresStore::new(pool.clone())).build();
    let prepared = Idempotency::builder(PostgresStore::new(pool.clone()).with_prepared_statements()).build();
    let floor = web::Data::new(Floor { pool });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(idempotency.clone())
            .app_data(floor.clone())
            .service(bare)
            .service(lib)
            .service(lib_big)
            .service(lib_tx)
            .service(web::scope("/prepared").app_data(prepared.clone()).service(lib).service(lib_tx))
            .route(FLOOR_TX_PATH, web::post().to(floor_new_tx))
            .service(
                web::resource(FLOOR_PATH)
                    .route(
                        web::post().guard(guard::Header(FLOOR_REPLAY_HEADER.0, FLOOR_REPLAY_HEADER.1)).to(floor_replay),
                    )
                    .route(web::post().to(floor_new)),
            )
    })
    .workers(workers)
    .disable_signals()
    .keep_alive(Duration::from_secs(600))
    .shutdown_timeout(1)
    .backlog(1024)
    .bind(("127.0.0.1", 0))?;
    let address = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Ok(Server { base: format!("http://{address}"), handle })
}

/// Starts a server whose `POST /lib` route keeps its records in a new, empty [`MemoryStore`], each claim and
/// completion timed ([`TimedStore`]).
pub(crate) fn start_memory(workers: usize) -> std::io::Result<Server> {
    let idempotency = Idempotency::builder(TimedStore(MemoryStore::new())).build();
    let server = HttpServer::new(move || App::new().app_data(idempotency.clone()).service(lib))
        .workers(workers)
        .disable_signals()
        .keep_alive(Duration::from_secs(600))
        .shutdown_timeout(1)
        .backlog(1024)
        .bind(("127.0.0.1", 0))?;
    let address = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Ok(Server { base: format!("http://{address}"), handle })
}

// ---------------------------------------------------------------------------------------------------------------
// The floor.
// ---------------------------------------------------------------------------------------------------------------

/// The floor's table: the columns, constraints, primary key and storage options of `idempotency_records` (as
/// `sql/schema.sql` makes them), copied from the live table so that the two never drift apart.
pub(crate) async fn create_floor_table(client: &deadpool_postgres::Client) -> Result<(), tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT coalesce(array_to_string(reloptions, ', '), '') FROM pg_class \
             WHERE oid = 'idempotency_records'::regclass",
            &[],
        )
        .await?;
    let options: String = row.get(0);
    let with = if options.is_empty() { String::new() } else { format!(" WITH ({options})") };
    client
        .batch_execute(&format!("CREATE TABLE bench_floor_records (LIKE idempotency_records INCLUDING ALL){with}"))
        .await
}

/// A fresh key's claim: one autocommit statement, prepared. `ON CONFLICT DO NOTHING` and the row count say
/// whether the key was free; a real layer would then read the existing record (not on this path).
const FLOOR_CLAIM_SQL: &str = "
INSERT INTO bench_floor_records
    (key_hash, scope_hash, method, route, fingerprint, token, state, locked_until, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, 'in_progress',
        now() + make_interval(secs => $7), now() + make_interval(secs => $8))
ON CONFLICT DO NOTHING";

/// Storing the response: one autocommit statement, fenced by the claim's token.
const FLOOR_COMPLETE_SQL: &str = "
UPDATE bench_floor_records
SET state = 'completed', locked_until = NULL, completed_at = now(), expires_at = now() + make_interval(secs => $6),
    status = $7, header_names = $8, header_values = $9, body = $10
WHERE key_hash = $1 AND scope_hash = $2 AND method = $3 AND route = $4 AND token = $5 AND state = 'in_progress'";

/// A replay: one `SELECT` by primary key of what is needed to check the request and write the response out.
const FLOOR_READ_SQL: &str = "
SELECT fingerprint, status, header_names, header_values, body
FROM bench_floor_records
WHERE key_hash = $1 AND scope_hash = $2 AND method = $3 AND route = $4
  AND state = 'completed' AND expires_at > now()";

const FLOOR_LEASE_SECS: f64 = 30.0;
const FLOOR_TTL_SECS: f64 = 24.0 * 3600.0;

struct Floor {
    pool: Pool,
}

/// What any layer must compute per request: the record's identity and the request's fingerprint, with the same
/// SHA-256 over length-prefixed parts as the library.
pub(crate) struct Identity {
    pub(crate) key_hash: [u8; 32],
    pub(crate) scope_hash: [u8; 32],
    pub(crate) method: String,
    pub(crate) route: String,
    pub(crate) fingerprint: [u8; 32],
}

impl Identity {
    pub(crate) fn of(request: &HttpRequest, body: &[u8]) -> Option<Self> {
        let key = request.headers().get("idempotency-key")?.to_str().ok()?.trim();
        if key.is_empty() || key.len() > 255 {
            return None;
        }
        let route = request.match_pattern().unwrap_or_else(|| request.path().to_owned());
        let method = request.method().as_str().to_owned();
        // The library canonicalizes a non-empty query; these requests have none.
        let query = request.query_string();
        let fingerprint =
            hash_parts(&[method.as_bytes(), route.as_bytes(), request.path().as_bytes(), query.as_bytes(), body]);
        Some(Self {
            key_hash: hash_parts(&[key.as_bytes()]),
            scope_hash: hash_parts(&[b"global"]),
            method,
            route,
            fingerprint,
        })
    }
}

fn hash_parts(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

impl Floor {
    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, String> {
        let client = self.pool.get().await.map_err(|error| error.to_string())?;
        let statement = client.prepare_cached(sql).await.map_err(|error| error.to_string())?;
        client.execute(&statement, params).await.map_err(|error| error.to_string())
    }
}

/// Headers a layer must not store (hop-by-hop, transmission, cookies), as the library's contract says.
pub(crate) fn storable(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "date"
            | "set-cookie"
            | "content-length"
    )
}

/// `floor_new`: claim (1 statement), the handler body, store the response (1 statement).
async fn floor_new(request: HttpRequest, body: Bytes, floor: web::Data<Floor>) -> HttpResponse {
    let Some(id) = Identity::of(&request, &body) else { return HttpResponse::BadRequest().finish() };
    let token = fastrand::i64(..);
    let claimed = floor
        .execute(
            FLOOR_CLAIM_SQL,
            &[
                &id.key_hash.as_slice(),
                &id.scope_hash.as_slice(),
                &id.method,
                &id.route,
                &id.fingerprint.as_slice(),
                &token,
                &FLOOR_LEASE_SECS,
                &FLOOR_TTL_SECS,
            ],
        )
        .await;
    match claimed {
        Ok(1) => {}
        Ok(_) => return HttpResponse::Conflict().finish(),
        Err(error) => return HttpResponse::ServiceUnavailable().body(error),
    }
    let Ok(order) = serde_json::from_slice::<Order>(&body) else { return HttpResponse::BadRequest().finish() };
    let response = respond(&order);

    let (head, body) = response.into_parts();
    let Ok(bytes) = body.try_into_bytes() else { return HttpResponse::InternalServerError().finish() };
    let status = i16::try_from(head.status().as_u16()).unwrap_or(i16::MAX);
    let names: Vec<&str> = head.headers().iter().filter(|(name, _)| storable(name)).map(|(n, _)| n.as_str()).collect();
    let values: Vec<&[u8]> =
        head.headers().iter().filter(|(name, _)| storable(name)).map(|(_, value)| value.as_bytes()).collect();
    let stored = floor
        .execute(
            FLOOR_COMPLETE_SQL,
            &[
                &id.key_hash.as_slice(),
                &id.scope_hash.as_slice(),
                &id.method,
                &id.route,
                &token,
                &FLOOR_TTL_SECS,
                &status,
                &names,
                &values,
                &bytes.as_ref(),
            ],
        )
        .await;
    if let Err(error) = stored {
        eprintln!("floor: could not store a response: {error}");
    }
    head.set_body(bytes).map_into_boxed_body()
}

/// `floor_replay`: one `SELECT` by primary key, the fingerprint check, and the stored response written out.
async fn floor_replay(request: HttpRequest, body: Bytes, floor: web::Data<Floor>) -> HttpResponse {
    let Some(id) = Identity::of(&request, &body) else { return HttpResponse::BadRequest().finish() };
    let row = async {
        let client = floor.pool.get().await.map_err(|error| error.to_string())?;
        let statement = client.prepare_cached(FLOOR_READ_SQL).await.map_err(|error| error.to_string())?;
        client
            .query_opt(&statement, &[&id.key_hash.as_slice(), &id.scope_hash.as_slice(), &id.method, &id.route])
            .await
            .map_err(|error| error.to_string())
    }
    .await;
    let row = match row {
        Ok(Some(row)) => row,
        Ok(None) => return HttpResponse::NotFound().finish(),
        Err(error) => return HttpResponse::ServiceUnavailable().body(error),
    };
    let fingerprint: &[u8] = row.get(0);
    if fingerprint != id.fingerprint {
        return HttpResponse::UnprocessableEntity().finish();
    }
    let status: i16 = row.get(1);
    let names: Vec<&str> = row.get(2);
    let values: Vec<&[u8]> = row.get(3);
    let stored_body: Option<Vec<u8>> = row.get(4);
    let Some(status) = u16::try_from(status).ok().and_then(|status| StatusCode::from_u16(status).ok()) else {
        return HttpResponse::InternalServerError().finish();
    };
    let mut response = HttpResponse::build(status);
    for (name, value) in names.iter().zip(&values) {
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value)) else {
            return HttpResponse::InternalServerError().finish();
        };
        response.append_header((name, value));
    }
    response.insert_header(("idempotent-replayed", HeaderValue::from_static("true")));
    response.body(Bytes::from(stored_body.unwrap_or_default()))
}

/// `floor_new_tx`: the same two statements in one transaction on one connection held through the handler body:
/// `BEGIN` pipelined with the `INSERT`, then the `UPDATE` pipelined with `COMMIT` (one commit, one WAL flush).
async fn floor_new_tx(request: HttpRequest, body: Bytes, floor: web::Data<Floor>) -> HttpResponse {
    let Some(id) = Identity::of(&request, &body) else { return HttpResponse::BadRequest().finish() };
    let token = fastrand::i64(..);
    let client = match floor.pool.get().await {
        Ok(client) => client,
        Err(error) => return HttpResponse::ServiceUnavailable().body(error.to_string()),
    };
    let prepared = futures_util::future::try_join(
        client.prepare_cached(FLOOR_CLAIM_SQL),
        client.prepare_cached(FLOOR_COMPLETE_SQL),
    )
    .await;
    let Ok((claim, complete)) = prepared else { return HttpResponse::ServiceUnavailable().finish() };
    let params: [&(dyn ToSql + Sync); 8] = [
        &id.key_hash.as_slice(),
        &id.scope_hash.as_slice(),
        &id.method,
        &id.route,
        &id.fingerprint.as_slice(),
        &token,
        &FLOOR_LEASE_SECS,
        &FLOOR_TTL_SECS,
    ];
    let (begun, claimed) =
        futures_util::future::join(client.batch_execute("BEGIN"), client.execute(&claim, &params)).await;
    match (begun, claimed) {
        (Ok(()), Ok(1)) => {}
        (Ok(()), Ok(_)) => {
            let _ = client.batch_execute("ROLLBACK").await;
            return HttpResponse::Conflict().finish();
        }
        (begun, claimed) => {
            let _ = client.batch_execute("ROLLBACK").await;
            return HttpResponse::ServiceUnavailable().body(format!("{begun:?} {claimed:?}"));
        }
    }
    let Ok(order) = serde_json::from_slice::<Order>(&body) else {
        let _ = client.batch_execute("ROLLBACK").await;
        return HttpResponse::BadRequest().finish();
    };
    let response = respond(&order);

    let (head, body) = response.into_parts();
    let Ok(bytes) = body.try_into_bytes() else { return HttpResponse::InternalServerError().finish() };
    let status = i16::try_from(head.status().as_u16()).unwrap_or(i16::MAX);
    let names: Vec<&str> = head.headers().iter().filter(|(name, _)| storable(name)).map(|(n, _)| n.as_str()).collect();
    let values: Vec<&[u8]> =
        head.headers().iter().filter(|(name, _)| storable(name)).map(|(_, value)| value.as_bytes()).collect();
    let params: [&(dyn ToSql + Sync); 10] = [
        &id.key_hash.as_slice(),
        &id.scope_hash.as_slice(),
        &id.method,
        &id.route,
        &token,
        &FLOOR_TTL_SECS,
        &status,
        &names,
        &values,
        &bytes.as_ref(),
    ];
    let (stored, committed) =
        futures_util::future::join(client.execute(&complete, &params), client.batch_execute("COMMIT")).await;
    if let Err(error) = stored.and(committed.map(|()| 1)) {
        eprintln!("floor: could not store a response: {error}");
        return HttpResponse::ServiceUnavailable().finish();
    }
    head.set_body(bytes).map_into_boxed_body()
}
