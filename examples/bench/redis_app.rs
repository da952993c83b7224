//! The Redis scenarios' server: the same `POST /lib` route on the library's [`RedisStore`], `POST /floor`, a
//! hand-written floor on the same Redis (the least any Redis idempotency layer must do), and `POST /floor_lua`,
//! the floor issue 12 names (the library's own scripts, sent by a plain handler).
//!
//! - `redis_floor_new`: one claim script (the record must not exist: `HSET` of fingerprint, token and state, and
//!   an expiry), the handler body, one completion script (fenced by the token: `HSET` of state, status, headers
//!   and body, and the ttl's expiry). Two round trips, `EVALSHA` each, as the library's.
//! - `redis_floor_replay`: one `HMGET` of the record, the fingerprint check, the stored response written out.
//! - `redis_lua_floor_new` (`POST /floor_lua`, see `redis_lua_floor`): the library's own two scripts, called plainly.
//!
//! Every side connects on the server worker's runtime (lazily, at the first request), as a real app's store does,
//! so that their connections' I/O is the server's CPU and never the client's. The library's store is not wrapped
//! in `TimedStore`: the timing cost the library's side 6 µs of server CPU per fresh key and about 8% of its
//! throughput, work that no floor does (BENCHMARKS.md, Redis).

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{App, HttpRequest, HttpResponse, guard, web};
use idempotent_runtime::store::{
    Attempt, Claim, ClaimRequest, Completion, KeyStatus, LeaseState, Record, RecordId, StoredResponse,
};
use idempotent_runtime::{Digest, Idempotency, RedisStore, Store, StoreError, async_trait, to_hex};
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use crate::app::{self, FLOOR_PATH, FLOOR_REPLAY_HEADER, floor_answer};
use crate::cpu;
use crate::floor::{Identity, storable};
use crate::redis_lua_floor::{LUA_FLOOR_PATH, LuaFloor, lua_floor_new};

/// The floor's claim: the record must not exist; it is created in progress with the lease as its expiry.
/// KEYS[1] the record; ARGV fingerprint, token, lease ms. Returns 1 when claimed, 0 when the key exists.
const FLOOR_CLAIM_LUA: &str = "
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'f', ARGV[1], 't', ARGV[2], 's', 'p')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1";

/// The floor's completion, fenced by the token. KEYS[1] the record; ARGV token, ttl ms, status, headers, body.
const FLOOR_COMPLETE_LUA: &str = "
if redis.call('HGET', KEYS[1], 't') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 's', 'c', 'st', ARGV[3], 'h', ARGV[4], 'b', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1";

const FLOOR_LEASE_MS: u64 = 30_000;
const FLOOR_TTL_MS: u64 = 24 * 3600 * 1000;

/// The server and the key prefixes its library and its two floors write under (deleted at the end).
pub(crate) struct RedisServer {
    pub(crate) server: app::Server,
    pub(crate) url: String,
    pub(crate) prefixes: [String; 3],
}

/// The Redis server the scenarios use: `REDIS_URL`, default the local one.
pub(crate) fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Checks that Redis answers (and that the library accepts it: eviction policy), then starts the server.
pub(crate) async fn start(workers: usize) -> Result<RedisServer, String> {
    let url = redis_url();
    let lib_prefix = format!("bench:{}:lib:", std::process::id());
    let floor_prefix = format!("bench:{}:floor:", std::process::id());
    let lua_floor_prefix = format!("bench:{}:lua_floor:", std::process::id());
    RedisStore::node(url.clone()).key_prefix(lib_prefix.clone()).connect().await.map_err(|error| {
        format!("Redis is not usable at REDIS_URL={url}: {error}\nstart it with: redis-server --daemonize yes")
    })?;
    if let Some(pid) = local_server_pid(&url).await {
        cpu::count_redis_server(pid);
    }
    let (lib_url, lib_prefix_for_app) = (url.clone(), lib_prefix.clone());
    let (floor_url, floor_prefix_for_app) = (url.clone(), floor_prefix.clone());
    let lua_floor_prefix_for_app = lua_floor_prefix.clone();
    let server = app::serve!(
        move || {
            // One store and one floor connection per worker, connected on that worker's runtime.
            let store = LazyRedis { url: lib_url.clone(), prefix: lib_prefix_for_app.clone(), store: OnceCell::new() };
            let idempotency = Idempotency::builder(store).build();
            let floor = web::Data::new(RedisFloor::new(floor_url.clone(), floor_prefix_for_app.clone()));
            let lua_floor = web::Data::new(LuaFloor::new(floor_url.clone(), lua_floor_prefix_for_app.clone()));
            App::new()
                .app_data(idempotency)
                .app_data(floor)
                .app_data(lua_floor)
                .service(app::lib)
                .service(
                    web::resource(FLOOR_PATH)
                        .route(
                            web::post()
                                .guard(guard::Header(FLOOR_REPLAY_HEADER.0, FLOOR_REPLAY_HEADER.1))
                                .to(floor_replay),
                        )
                        .route(web::post().to(floor_new)),
                )
                .route(LUA_FLOOR_PATH, web::post().to(lua_floor_new))
        },
        workers
    )
    .map_err(|error| format!("cannot start the Redis server: {error}"))?;
    Ok(RedisServer { server, url, prefixes: [lib_prefix, floor_prefix, lua_floor_prefix] })
}

impl RedisServer {
    pub(crate) async fn stop(&self) {
        self.server.stop().await;
        if let Err(error) = self.delete_keys().await {
            eprintln!("warning: could not delete the run's Redis keys ({:?}): {error}", self.prefixes);
        }
    }

    async fn delete_keys(&self) -> redis::RedisResult<()> {
        let mut connection = redis::Client::open(self.url.as_str())?.get_multiplexed_async_connection().await?;
        for prefix in &self.prefixes {
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(format!("{prefix}*"))
                    .arg("COUNT")
                    .arg(10_000)
                    .query_async(&mut connection)
                    .await?;
                if !keys.is_empty() {
                    let () = redis::cmd("UNLINK").arg(keys).query_async(&mut connection).await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }
}

/// The process id of the Redis server at `url`, if it runs on this machine (`INFO server`'s `process_id`, checked
/// against `/proc`).
async fn local_server_pid(url: &str) -> Option<u32> {
    let mut connection = redis::Client::open(url).ok()?.get_multiplexed_async_connection().await.ok()?;
    let info: String = redis::cmd("INFO").arg("server").query_async(&mut connection).await.ok()?;
    let pid = info.lines().find_map(|line| line.strip_prefix("process_id:")?.trim().parse().ok())?;
    cpu::is_local_redis_server(pid).then_some(pid)
}

/// Redis's own CPU seconds so far (`INFO cpu`: user + system, every thread of the server).
pub(crate) async fn redis_cpu_seconds(url: &str) -> Option<f64> {
    let mut connection = redis::Client::open(url).ok()?.get_multiplexed_async_connection().await.ok()?;
    let info: String = redis::cmd("INFO").arg("cpu").query_async(&mut connection).await.ok()?;
    let field = |name: &str| {
        info.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':')?.trim().parse::<f64>().ok())
    };
    Some(field("used_cpu_user")? + field("used_cpu_sys")?)
}

// ---------------------------------------------------------------------------------------------------------------
// The library's store, connected on the worker's runtime.
// ---------------------------------------------------------------------------------------------------------------

/// A [`RedisStore`] connected at its first operation, on the runtime of the worker that runs it.
struct LazyRedis {
    url: String,
    prefix: String,
    store: OnceCell<RedisStore>,
}

impl LazyRedis {
    async fn store(&self) -> Result<&RedisStore, StoreError> {
        self.store
            .get_or_try_init(|| RedisStore::node(self.url.clone()).key_prefix(self.prefix.clone()).connect())
            .await
    }
}

#[async_trait]
impl Store for LazyRedis {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        self.store().await?.claim(request).await
    }
    async fn heartbeat(&self, attempt: &Attempt, duration: Duration) -> Result<LeaseState, StoreError> {
        self.store().await?.heartbeat(attempt, duration).await
    }
    async fn complete(
        &self,
        attempt: &Attempt,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<Completion, StoreError> {
        self.store().await?.complete(attempt, response, ttl).await
    }
    async fn release(&self, attempt: &Attempt) -> Result<(), StoreError> {
        self.store().await?.release(attempt).await
    }
    async fn read(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        self.store().await?.read(id).await
    }
    async fn lookup(&self, scope_hash: &Digest, key_hash: &Digest) -> Result<Option<KeyStatus>, StoreError> {
        self.store().await?.lookup(scope_hash, key_hash).await
    }
    async fn wait(&self, id: &RecordId, timeout: Duration) -> Result<(), StoreError> {
        self.store().await?.wait(id, timeout).await
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The floor.
// ---------------------------------------------------------------------------------------------------------------

/// A floor's connection to Redis, made at its first request, on the runtime of the worker that serves it.
pub(crate) struct FloorConnection {
    url: String,
    connection: OnceCell<ConnectionManager>,
}

impl FloorConnection {
    /// A connection to `url`, not made yet.
    pub(crate) fn new(url: String) -> Self {
        Self { url, connection: OnceCell::new() }
    }

    /// What every floor handler starts with: the request's identity and the connection (made at the first call,
    /// on the caller's runtime). `Err` is the answer instead: 400 without a usable key, 503 without Redis.
    pub(crate) async fn start(
        &self,
        request: &HttpRequest,
        body: &[u8],
    ) -> Result<(Identity, ConnectionManager), (StatusCode, String)> {
        let Some(id) = Identity::of(request, body) else { return Err((StatusCode::BAD_REQUEST, String::new())) };
        let connection = self
            .connection
            .get_or_try_init(|| async {
                let client = redis::Client::open(self.url.as_str())?;
                client.get_connection_manager_with_config(ConnectionManagerConfig::new()).await
            })
            .await
            .map_err(|error| (StatusCode::SERVICE_UNAVAILABLE, error.to_string()))?;
        Ok((id, connection.clone()))
    }
}

/// The part of every key of a record's (scope, key) that the library writes as its hash tag:
/// `<prefix>{<scope hex><key hex>}` (`store/redis/keys.rs`).
pub(crate) fn key_stem(prefix: &str, id: &Identity) -> String {
    format!("{prefix}{{{}{}}}", to_hex(&id.scope_hash), to_hex(&id.key_hash))
}

struct RedisFloor {
    prefix: String,
    connection: FloorConnection,
    claim: Script,
    complete: Script,
}

impl RedisFloor {
    fn new(url: String, prefix: String) -> Self {
        Self {
            prefix,
            connection: FloorConnection::new(url),
            claim: Script::new(FLOOR_CLAIM_LUA),
            complete: Script::new(FLOOR_COMPLETE_LUA),
        }
    }

    /// The record's key: the prefix, the (scope, key) as a hash tag, the method and route (as the library's).
    fn key(&self, id: &Identity) -> Vec<u8> {
        format!("{}:r:{} {}", key_stem(&self.prefix, id), id.method, id.route).into_bytes()
    }
}

/// Headers as `name: value\n` lines (the floor's own encoding; values never hold a newline).
pub(crate) fn encode_headers(head: &HttpResponse<()>) -> Vec<u8> {
    let mut encoded = Vec::new();
    for (name, value) in head.headers().iter().filter(|(name, _)| storable(name)) {
        encoded.extend_from_slice(name.as_str().as_bytes());
        encoded.extend_from_slice(b": ");
        encoded.extend_from_slice(value.as_bytes());
        encoded.push(b'\n');
    }
    encoded
}

/// `redis_floor_new`: claim (1 script), the handler body, store the response (1 script).
async fn floor_new(request: HttpRequest, body: Bytes, floor: web::Data<RedisFloor>) -> HttpResponse {
    let (id, mut connection) = match floor.connection.start(&request, &body).await {
        Ok(started) => started,
        Err((status, error)) => return HttpResponse::build(status).body(error),
    };
    let key = floor.key(&id);
    let token = fastrand::u64(..);
    let claimed: Result<i64, _> = floor
        .claim
        .key(&key)
        .arg(id.fingerprint.as_slice())
        .arg(token)
        .arg(FLOOR_LEASE_MS)
        .invoke_async(&mut connection)
        .await;
    match claimed {
        Ok(1) => {}
        Ok(_) => return HttpResponse::Conflict().finish(),
        Err(error) => return HttpResponse::ServiceUnavailable().body(error.to_string()),
    }
    let (head, bytes) = match floor_answer(&body) {
        Ok(answer) => answer,
        Err(status) => return HttpResponse::build(status).finish(),
    };
    let stored: Result<i64, _> = floor
        .complete
        .key(&key)
        .arg(token)
        .arg(FLOOR_TTL_MS)
        .arg(head.status().as_u16())
        .arg(encode_headers(&head))
        .arg(bytes.as_ref())
        .invoke_async(&mut connection)
        .await;
    // The completion must have stored the response (1); a fenced one (0) or an error answers an error.
    match stored {
        Ok(1) => {}
        Ok(other) => {
            return HttpResponse::InternalServerError().body(format!("redis floor: completion answered {other}"));
        }
        Err(error) => return HttpResponse::ServiceUnavailable().body(format!("redis floor: not stored: {error}")),
    }
    head.set_body(bytes).map_into_boxed_body()
}

/// `redis_floor_replay`: one `HMGET`, the fingerprint check, and the stored response written out.
async fn floor_replay(request: HttpRequest, body: Bytes, floor: web::Data<RedisFloor>) -> HttpResponse {
    let (id, mut connection) = match floor.connection.start(&request, &body).await {
        Ok(started) => started,
        Err((status, error)) => return HttpResponse::build(status).body(error),
    };
    type Fields = (Option<Vec<u8>>, Option<Vec<u8>>, Option<u16>, Option<Vec<u8>>, Option<Vec<u8>>);
    let read: Result<Fields, _> =
        redis::cmd("HMGET").arg(floor.key(&id)).arg(&["s", "f", "st", "h", "b"]).query_async(&mut connection).await;
    let (state, fingerprint, status, headers, stored_body) = match read {
        Ok(fields) => fields,
        Err(error) => return HttpResponse::ServiceUnavailable().body(error.to_string()),
    };
    if state.as_deref() != Some(b"c") {
        return HttpResponse::NotFound().finish();
    }
    if fingerprint.as_deref() != Some(id.fingerprint.as_slice()) {
        return HttpResponse::UnprocessableEntity().finish();
    }
    let Some(status) = status.and_then(|status| StatusCode::from_u16(status).ok()) else {
        return HttpResponse::InternalServerError().finish();
    };
    let mut response = HttpResponse::build(status);
    for line in headers.unwrap_or_default().split(|&byte| byte == b'\n').filter(|line| !line.is_empty()) {
        let Some(colon) = line.iter().position(|&byte| byte == b':') else {
            return HttpResponse::InternalServerError().finish();
        };
        let value = line[colon + 1..].strip_prefix(b" ").unwrap_or(&line[colon + 1..]);
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(value)) else {
            return HttpResponse::InternalServerError().finish();
        };
        response.append_header((name, value));
    }
    response.insert_header(("idempotent-replayed", HeaderValue::from_static("true")));
    response.body(Bytes::from(stored_body.unwrap_or_default()))
}
