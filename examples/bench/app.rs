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
//! - `POST /pooler_safe_floor`: the floor's statements sent the cheapest way that works behind a
//!   transaction-mode pooler ([`crate::pooler_safe_floor`]), `pooler_safe_floor_new` and, with the replay header,
//!   `pooler_safe_floor_replay`: the most any pooler-safe layer can reach against the floor;
//! - `POST /lib_big` (`max_request_body = "2MiB"`): the library's route of the memory measurement;
//! - `POST /pooler_safe/lib` and `POST /pooler_safe/lib_tx`: `/lib` and `/lib_tx` on a store built with
//!   `PostgresStore::with_pooler_safe_statements()` (statements prepared once per backend, run with `EXECUTE`:
//!   for a pooler that does not track prepared statements), for `new_pooler_safe`, `replay_pooler_safe` and
//!   `new_tx_pooler_safe`: what that way costs against the default's named statements, in the same run;
//! - `POST /unnamed/lib`: `/lib` on a store built with `PostgresStore::with_unnamed_statements()` (parsed and
//!   planned by the server every time), for `new_unnamed` and `replay_unnamed`: what the default saves.
//!
//! A second kind of server, [`start_memory`], serves the same `POST /lib` route on a [`MemoryStore`]: the
//! memory-store scenarios (`mem_new`, `mem_replay`, and the growth past 10^6 keys). A third, in `redis_app`, serves
//! it on a `RedisStore` next to two Redis floors (`redis_new`, `redis_replay`, `redis_floor_new`,
//! `redis_lua_floor_new`, `redis_floor_replay`).

use actix_web::body::MessageBody as _;
use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{App, HttpResponse, guard, post, web};
use deadpool_postgres::Pool;
use idempotent_runtime::{Idempotency, MemoryStore, PostgresStore, Tx, idempotent};
use serde::{Deserialize, Serialize};

pub(crate) use crate::floor::create_floor_table;
use crate::floor::{Floor, floor_new, floor_new_tx, floor_replay};
use crate::pooler_safe_floor::{POOLER_SAFE_FLOOR_PATH, pooler_safe_floor_new, pooler_safe_floor_replay};
use crate::timed_store::TimedStore;

pub(crate) const BARE_PATH: &str = "/bare";
pub(crate) const LIB_PATH: &str = "/lib";
pub(crate) const LIB_BIG_PATH: &str = "/lib_big";
pub(crate) const LIB_TX_PATH: &str = "/lib_tx";
pub(crate) const LIB_POOLER_SAFE_PATH: &str = "/pooler_safe/lib";
pub(crate) const LIB_TX_POOLER_SAFE_PATH: &str = "/pooler_safe/lib_tx";
pub(crate) const LIB_UNNAMED_PATH: &str = "/unnamed/lib";
pub(crate) const FLOOR_PATH: &str = "/floor";
pub(crate) const FLOOR_TX_PATH: &str = "/floor_tx";
/// The library's table in the run's schema (the floors' is [`crate::floor::FLOOR_TABLE`]).
pub(crate) const LIBRARY_TABLE: &str = "idempotency_records";
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

/// The handler body as a floor runs it: the order parsed and answered, and the answer split into its head (to
/// store) and its bytes. `Err` is the status to answer instead: 400 for a body that is not an order.
pub(crate) fn floor_answer(body: &[u8]) -> Result<(HttpResponse<()>, Bytes), StatusCode> {
    let Ok(order) = serde_json::from_slice::<Order>(body) else { return Err(StatusCode::BAD_REQUEST) };
    let (head, answer) = respond(&order).into_parts();
    let Ok(bytes) = answer.try_into_bytes() else { return Err(StatusCode::INTERNAL_SERVER_ERROR) };
    Ok((head, bytes))
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

/// Serves the apps `$factory` makes on a free loopback port with `$workers` workers, as every scenario's server
/// does: long keep-alive (connections are reused for a whole run), a deep backlog, no signal handling. A macro,
/// because `HttpServer::new`'s bounds are long to restate.
macro_rules! serve {
    ($factory:expr, $workers:expr) => {{
        let server = actix_web::HttpServer::new($factory)
            .workers($workers)
            .disable_signals()
            .keep_alive(std::time::Duration::from_secs(600))
            .shutdown_timeout(1)
            .backlog(1024)
            .bind(("127.0.0.1", 0));
        server.map(|server| {
            let address = server.addrs()[0];
            let server = server.run();
            let handle = server.handle();
            actix_web::rt::spawn(server);
            $crate::app::Server { base: format!("http://{address}"), handle }
        })
    }};
}
pub(crate) use serve;

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
    let pooler_safe = Idempotency::builder(PostgresStore::new(pool.clone()).with_pooler_safe_statements()).build();
    let unnamed = Idempotency::builder(PostgresStore::new(pool.clone()).with_unnamed_statements()).build();
    let floor = web::Data::new(Floor { pool });
    let app = move || {
        App::new()
            .app_data(idempotency.clone())
            .app_data(floor.clone())
            .service(bare)
            .service(lib)
            .service(lib_big)
            .service(lib_tx)
            .service(web::scope("/pooler_safe").app_data(pooler_safe.clone()).service(lib).service(lib_tx))
            .service(web::scope("/unnamed").app_data(unnamed.clone()).service(lib))
            .route(FLOOR_TX_PATH, web::post().to(floor_new_tx))
            .service(
                web::resource(FLOOR_PATH)
                    .route(
                        web::post().guard(guard::Header(FLOOR_REPLAY_HEADER.0, FLOOR_REPLAY_HEADER.1)).to(floor_replay),
                    )
                    .route(web::post().to(floor_new)),
            )
            .service(
                web::resource(POOLER_SAFE_FLOOR_PATH)
                    .route(
                        web::post()
                            .guard(guard::Header(FLOOR_REPLAY_HEADER.0, FLOOR_REPLAY_HEADER.1))
                            .to(pooler_safe_floor_replay),
                    )
                    .route(web::post().to(pooler_safe_floor_new)),
            )
    };
    serve!(app, workers)
}

/// Starts a server whose `POST /lib` route keeps its records in a new, empty [`MemoryStore`], as an app has it:
/// the memory-store scenarios, compared with `bare`.
pub(crate) fn start_memory(workers: usize) -> std::io::Result<Server> {
    let idempotency = Idempotency::builder(MemoryStore::new()).build();
    serve!(move || App::new().app_data(idempotency.clone()).service(lib), workers)
}

/// [`start_memory`] with each claim and completion timed ([`TimedStore`]), for the growth measurement, whose target
/// is the store's own worst operation. Not for the scenarios: the timing (four clock reads and a locked histogram
/// per request) is bench work that `bare` does not do, and it was charged to the library's ratio.
pub(crate) fn start_memory_timed(workers: usize) -> std::io::Result<Server> {
    let idempotency = Idempotency::builder(TimedStore(MemoryStore::new())).build();
    serve!(move || App::new().app_data(idempotency.clone()).service(lib), workers)
}
