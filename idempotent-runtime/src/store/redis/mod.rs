//! The Redis [`Store`]: one Redis (or Valkey) node or a Redis Cluster, behind the same API.
//!
//! Each record is one hash; every key of one (scope, key) carries the same hash tag ([`keys`], which also says how
//! the layout is versioned and how records of the old layout are still served), so a record, the (scope, key)'s
//! lookup index and its waiters' channel live in one cluster slot. The index exists only on a store built with
//! [`RedisStoreBuilder::status_lookups`]: most apps never look a key up, and it costs every claim and completion
//! writes. Each transition is one Lua script
//! (claim with take-over, heartbeat, complete, release) that compares the attempt's token, so any number of
//! processes may share the records. Redis expires the records itself: in progress, a record lives while its lease
//! or its ttl runs; completed, for its ttl (plus a short grace during which it already reads as absent). There is
//! nothing to purge.
//!
//! The store only provides these atomic primitives; what an outcome answers is the runtime's policy, the same on
//! every store.

mod builder;
mod codec;
mod connection;
mod keys;
mod old_layout;
mod record_store;
mod waiters;

use std::sync::Arc;
use std::time::Duration;

use redis::{RedisError, Script};
use tokio::sync::OnceCell;

pub use self::builder::RedisStoreBuilder;
use self::connection::{Connection, Target};
use self::old_layout::OldLayout;
use self::waiters::Waiters;
use super::existing_share::ExistingShare;
use super::{StoreError, StoreErrorKind};

/// The default bound on one Redis operation (a script and, in WAIT mode, its replica acknowledgement).
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// The default prefix of every key the store writes.
pub const DEFAULT_KEY_PREFIX: &str = "idempotency:";

/// How long Redis keeps a record after it expired. It already reads as absent; keeping it a little longer lets a
/// fresh claim report that it replaced an expired record (the take-over counter), as on the other stores.
pub(crate) const EXPIRY_GRACE: Duration = Duration::from_secs(5);

/// The longest lease or ttl the scripts are given (a century): milliseconds stay exact in Lua numbers.
const LONGEST: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// The Lua scripts, one per transition. `redis::Script` sends `EVALSHA` and, when a node answers `NOSCRIPT` (each
/// node has its own script cache, emptied by a restart or a failover), loads the script and runs it again.
struct Scripts {
    claim: Script,
    heartbeat: Script,
    complete: Script,
    release: Script,
    read: Script,
    lookup: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            claim: Script::new(include_str!("claim.lua")),
            heartbeat: Script::new(include_str!("heartbeat.lua")),
            complete: Script::new(include_str!("complete.lua")),
            release: Script::new(include_str!("release.lua")),
            read: Script::new(include_str!("read.lua")),
            lookup: Script::new(include_str!("lookup.lua")),
        }
    }
}

/// Acknowledgement of writes by replicas (`WAIT`) before the handler runs and before its response is sent.
#[derive(Debug, Clone, Copy)]
struct ReplicaAcks {
    replicas: usize,
    timeout: Duration,
}

/// Stores records in Redis: one node or a Redis Cluster (Redis >= 7 or a protocol-compatible server).
///
/// ```no_run
/// # async fn start() -> Result<(), idempotent_runtime::StoreError> {
/// use idempotent_runtime::RedisStore;
///
/// let one_node = RedisStore::node("redis://127.0.0.1:6379").connect().await?;
/// let cluster = RedisStore::cluster(["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"])
///     .replica_acks(1, std::time::Duration::from_millis(500))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
///
/// Durability: Redis replicates asynchronously. A failover can lose a claim or a stored response that the old
/// master had not yet sent to its replicas, and a retry then runs the handler again. [`RedisStoreBuilder::replica_acks`]
/// narrows that window (the claim and the response are acknowledged by N replicas first); PostgreSQL commits are
/// durable. Transactional routes need PostgreSQL: on Redis they answer `misconfigured`.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    target: Target,
    connection: Connection,
    prefix: String,
    timeout: Duration,
    replica_acks: Option<ReplicaAcks>,
    /// Whether claims and completions keep the (scope, key)'s index, which status lookups read.
    status_lookups: bool,
    /// Whether records of the old key layout may still live, to be served until they expire.
    old_layout: Arc<OldLayout>,
    scripts: Scripts,
    /// Opened at the first `wait` (most apps never wait).
    waiters: OnceCell<Arc<Waiters>>,
    /// Whether a claim reads plainly first (mostly retries lately) or runs the claim script at once.
    existing_share: ExistingShare,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("target", &self.inner.target)
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .field("replica_acks", &self.inner.replica_acks)
            .field("status_lookups", &self.inner.status_lookups)
            .finish_non_exhaustive()
    }
}

/// Runs an operation under a timeout, as a [`StoreErrorKind::Timeout`] past it.
async fn bounded<T>(
    timeout: Duration,
    operation: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, operation).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::new(
            StoreErrorKind::Timeout,
            format!("no answer from Redis within {} ms", timeout.as_millis()),
        )),
    }
}

/// The record and channel keys of `id` under `prefix`, as a store with the default settings writes them (for the
/// bench's floor that runs the store's own scripts, through `store::testing`).
#[cfg(feature = "testing")]
pub(crate) fn record_and_channel_keys(prefix: &str, id: &crate::record_id::RecordId) -> (Vec<u8>, Vec<u8>) {
    let keys = keys::RecordKeys::new(keys::Layout::V3, prefix, id);
    (keys.record().to_vec(), keys.channel())
}

fn failed(error: RedisError) -> StoreError {
    let kind = if error.is_timeout() { StoreErrorKind::Timeout } else { StoreErrorKind::Unavailable };
    StoreError::new(kind, error)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.min(LONGEST).as_millis()).unwrap_or(u64::MAX)
}
