//! The Redis floor as issue 12 words it: "the same Lua or commands, written plainly". `redis_lua_floor_new` runs
//! the library's own claim and completion scripts (the very files `RedisStore` loads), on the keys and with the
//! arguments a `RedisStore` with the default settings sends (no status lookups), from a hand-written handler: no
//! middleware, no store trait, no response capture. The stored headers use the floors' own `name: value` lines (the
//! library's encoding differs by a few bytes).
//!
//! It is the second Redis floor. The first (`redis_floor_new`, in `redis_app`) is the least any Redis layer must
//! do: no take-over rule, no server clock. Against this one the ratio measures what the
//! library's Rust layer costs above its scripts; against the first, what its scripts cost too. Both are reported.

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use idempotent_runtime::store::RecordId;
use idempotent_runtime::store::testing::{REDIS_EXPIRY_GRACE, redis_record_keys};
use idempotent_runtime::{DEFAULT_LEASE, DEFAULT_TTL};
use redis::{Script, Value};

use crate::app::floor_answer;
use crate::floor::Identity;
use crate::redis_app::{FloorConnection, encode_headers};

/// The library's scripts, byte for byte.
const CLAIM_LUA: &str = include_str!("../../idempotent-runtime/src/store/redis/claim.lua");
const COMPLETE_LUA: &str = include_str!("../../idempotent-runtime/src/store/redis/complete.lua");

/// The route this floor serves (`POST`, fresh keys only).
pub(crate) const LUA_FLOOR_PATH: &str = "/floor_lua";

/// The lease and ttl of the library's route (`#[idempotent(scope = "global")]` keeps the defaults).
const LEASE_MS: u64 = DEFAULT_LEASE.as_millis() as u64;
const TTL_MS: u64 = DEFAULT_TTL.as_millis() as u64;
/// The library's `EXPIRY_GRACE` (Redis forgets a record this long after it expires), the runtime's own constant.
const GRACE_MS: u64 = REDIS_EXPIRY_GRACE.as_millis() as u64;
/// What the library's claim sends (layout 3): the key's life, and the distances from the record's expiry and from
/// the lease's end to the key's end.
const CLAIM_LIFE_MS: u64 = (if LEASE_MS > TTL_MS { LEASE_MS } else { TTL_MS }) + GRACE_MS;
const EXPIRY_TO_END_MS: u64 = CLAIM_LIFE_MS - TTL_MS;
const LEASE_TO_END_MS: u64 = CLAIM_LIFE_MS - LEASE_MS;

/// The floor's state in each server worker: its key prefix, its connection and the library's two scripts.
pub(crate) struct LuaFloor {
    prefix: String,
    connection: FloorConnection,
    claim: Script,
    complete: Script,
}

/// The keys of one record, laid out as the library's (`store/redis/keys.rs`): one hash tag per (scope, key).
struct RecordKeys {
    record: Vec<u8>,
    channel: Vec<u8>,
}

impl LuaFloor {
    /// A floor on the Redis at `url`, writing under `prefix`; it connects at its first request.
    pub(crate) fn new(url: String, prefix: String) -> Self {
        Self {
            prefix,
            connection: FloorConnection::new(url),
            claim: Script::new(CLAIM_LUA),
            complete: Script::new(COMPLETE_LUA),
        }
    }

    /// The record's keys, as `store/redis/keys.rs` makes them.
    fn keys(&self, id: &Identity) -> RecordKeys {
        let id = RecordId {
            scope_hash: id.scope_hash,
            key_hash: id.key_hash,
            method: id.method.clone(),
            route: id.route.clone(),
        };
        let (record, channel) = redis_record_keys(&self.prefix, &id);
        RecordKeys { record, channel }
    }
}

/// `redis_lua_floor_new`: the library's claim script, the handler body, the library's completion script.
pub(crate) async fn lua_floor_new(request: HttpRequest, body: Bytes, floor: web::Data<LuaFloor>) -> HttpResponse {
    let (id, mut connection) = match floor.connection.start(&request, &body).await {
        Ok(started) => started,
        Err((status, error)) => return HttpResponse::build(status).body(error),
    };
    let keys = floor.keys(&id);
    let token = fastrand::i64(..);
    let claimed: Result<Value, _> = floor
        .claim
        .key(&keys.record)
        .arg(id.fingerprint.as_slice())
        .arg(token)
        .arg(CLAIM_LIFE_MS)
        .arg(EXPIRY_TO_END_MS)
        .arg(LEASE_TO_END_MS)
        .invoke_async(&mut connection)
        .await;
    match claimed {
        // `{1, took_over}` when acquired; the seven-field record otherwise; anything else is an error, as in the
        // library.
        Ok(Value::Array(items)) if items.len() == 2 => {}
        Ok(Value::Array(_)) => return HttpResponse::Conflict().finish(),
        Ok(other) => return HttpResponse::ServiceUnavailable().body(format!("unexpected claim reply {other:?}")),
        Err(error) => return HttpResponse::ServiceUnavailable().body(error.to_string()),
    }
    let (head, bytes) = match floor_answer(&body) {
        Ok(answer) => answer,
        Err(status) => return HttpResponse::build(status).finish(),
    };
    let stored: Result<i64, _> = floor
        .complete
        .key(&keys.record)
        .arg(token)
        .arg(TTL_MS + GRACE_MS)
        .arg(GRACE_MS)
        .arg(head.status().as_u16())
        .arg(encode_headers(&head))
        .arg("1")
        .arg(bytes.as_ref())
        .arg("PUBLISH")
        .arg(&keys.channel)
        .invoke_async(&mut connection)
        .await;
    // The completion must have stored the response (1); a fenced one (0) or an error answers an error.
    match stored {
        Ok(1) => {}
        Ok(other) => {
            return HttpResponse::InternalServerError().body(format!("redis lua floor: completion answered {other}"));
        }
        Err(error) => return HttpResponse::ServiceUnavailable().body(format!("redis lua floor: not stored: {error}")),
    }
    head.set_body(bytes).map_into_boxed_body()
}
