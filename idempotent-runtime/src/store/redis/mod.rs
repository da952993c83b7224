//! The Redis [`Store`]: one Redis (or Valkey) node or a Redis Cluster, behind the same API.
//!
//! Each record is one hash; every key of one (scope, key) carries the same hash tag ([`keys`]), so a record, the
//! (scope, key)'s lookup index and its waiters' channel live in one cluster slot. Each transition is one Lua script
//! (claim with take-over, heartbeat, complete, release) that compares the attempt's token, so any number of
//! processes may share the records. Redis expires the records itself: in progress, a record lives while its lease
//! or its ttl runs; completed, for its ttl (plus a short grace during which it already reads as absent). There is
//! nothing to purge.
//!
//! The store only provides these atomic primitives; what an outcome answers is the runtime's policy, the same on
//! every store.

mod codec;
mod connection;
mod keys;
mod waiters;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::{RedisError, Script, Value};
use tokio::sync::OnceCell;

use self::connection::{Connection, Target};
use self::keys::RecordKeys;
use self::waiters::{Subscription, Waiters};
use super::{Claim, ClaimRequest, Completion, Lease, LeaseState, PurgeBatch, Store, StoreError, StoreErrorKind};
use crate::digest::Digest;
use crate::record::{KeyStatus, Record, RecordId, StoredResponse};

/// The default bound on one Redis operation (a script and, in WAIT mode, its replica acknowledgement).
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// The default prefix of every key the store writes.
pub const DEFAULT_KEY_PREFIX: &str = "idempotency:";

/// How long Redis keeps a record after it expired. It already reads as absent; keeping it a little longer lets a
/// fresh claim report that it replaced an expired record (the take-over counter), as on the other stores.
const EXPIRY_GRACE: Duration = Duration::from_secs(5);

/// The longest lease or ttl the scripts are given (a century): millisecond timestamps stay exact in Lua numbers.
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
    scripts: Scripts,
    /// Opened at the first `wait` (most apps never wait).
    waiters: OnceCell<Arc<Waiters>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("target", &self.inner.target)
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .field("replica_acks", &self.inner.replica_acks)
            .finish_non_exhaustive()
    }
}

/// Settings of a [`RedisStore`]; [`RedisStoreBuilder::connect`] makes it.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `connect` is called"]
pub struct RedisStoreBuilder {
    target: Target,
    prefix: String,
    timeout: Duration,
    replica_acks: Option<ReplicaAcks>,
    allow_eviction: bool,
}

impl RedisStore {
    /// A store on one Redis node, e.g. `redis://127.0.0.1:6379` (`redis://user:password@host:port/db` forms too).
    pub fn node(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(Target::Node(url.into()))
    }

    /// A store on a Redis Cluster, given some of its nodes (`host:port` or `redis://host:port`); the others are
    /// discovered.
    pub fn cluster(nodes: impl IntoIterator<Item = impl Into<String>>) -> RedisStoreBuilder {
        let nodes = nodes
            .into_iter()
            .map(Into::into)
            .map(|node: String| if node.contains("://") { node } else { format!("redis://{node}") })
            .collect();
        RedisStoreBuilder::new(Target::Cluster(nodes))
    }
}

impl RedisStoreBuilder {
    fn new(target: Target) -> Self {
        Self {
            target,
            prefix: DEFAULT_KEY_PREFIX.to_owned(),
            timeout: DEFAULT_REDIS_TIMEOUT,
            replica_acks: None,
            allow_eviction: false,
        }
    }

    /// Bounds each store operation: past it the request is answered 503 `store-unavailable` and the handler does
    /// not run. Default [`DEFAULT_REDIS_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The prefix of every key (default [`DEFAULT_KEY_PREFIX`]), e.g. to share one Redis between apps. It must not
    /// contain `{` or `}` (the record's hash tag follows it).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Waits until `replicas` replicas acknowledged the claim before the handler runs, and the stored response
    /// before it is sent (Redis `WAIT`), each for at most `timeout`. A claim that is not acknowledged in time is
    /// released and answered 503 (the handler does not run); a response that is not is still sent, and logged.
    /// This narrows, but does not close, the window in which a failover loses a record: see the README.
    pub fn replica_acks(mut self, replicas: usize, timeout: Duration) -> Self {
        self.replica_acks = (replicas > 0).then_some(ReplicaAcks { replicas, timeout });
        self
    }

    /// Starts even when a master's `maxmemory-policy` may evict keys (anything but `noeviction`: every record
    /// has an expiry, so the `volatile-*` policies evict them too). An evicted record is a key whose handler runs
    /// again. Without this, [`RedisStoreBuilder::connect`] refuses such a server.
    pub fn allow_evicting_policy(mut self) -> Self {
        self.allow_eviction = true;
        self
    }

    /// Connects, and checks every master's `maxmemory-policy`.
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        if self.prefix.contains(['{', '}']) {
            return Err(StoreError::new(
                StoreErrorKind::Unsupported,
                format!("the key prefix {:?} contains a brace; the record's hash tag must be the first", self.prefix),
            ));
        }
        let connecting = Connection::open(&self.target, self.timeout);
        let connection = bounded(self.timeout, async { connecting.await.map_err(failed) }).await?;
        let store = RedisStore {
            inner: Arc::new(Inner {
                target: self.target,
                connection,
                prefix: self.prefix,
                timeout: self.timeout,
                replica_acks: self.replica_acks,
                scripts: Scripts::new(),
                waiters: OnceCell::new(),
            }),
        };
        store.check_eviction_policy(self.allow_eviction).await?;
        Ok(store)
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

fn failed(error: RedisError) -> StoreError {
    let kind = if error.is_timeout() { StoreErrorKind::Timeout } else { StoreErrorKind::Unavailable };
    StoreError::new(kind, error)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.min(LONGEST).as_millis()).unwrap_or(u64::MAX)
}

impl RedisStore {
    fn keys(&self, id: &RecordId) -> RecordKeys {
        RecordKeys::new(&self.inner.prefix, id)
    }

    async fn bounded<T>(&self, operation: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        bounded(self.inner.timeout, operation).await
    }

    /// Refuses (or, when allowed, warns about) a master whose `maxmemory-policy` may evict records. Reads
    /// `INFO memory`, which managed services that rename `CONFIG` still answer.
    async fn check_eviction_policy(&self, allow: bool) -> Result<(), StoreError> {
        let mut connection = self.inner.connection.clone();
        let mut command = redis::cmd("INFO");
        command.arg("memory");
        let answers = self.bounded(async { connection.on_every_master(command).await.map_err(failed) }).await?;
        for answer in answers {
            let info = match answer {
                Value::BulkString(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Value::VerbatimString { text, .. } => text,
                Value::SimpleString(text) => text,
                _ => continue,
            };
            let Some(policy) = info.lines().find_map(|line| line.strip_prefix("maxmemory_policy:")) else { continue };
            let policy = policy.trim();
            if policy == "noeviction" {
                continue;
            }
            let message = format!(
                "Redis maxmemory-policy is {policy}: under memory pressure Redis deletes idempotency records and \
                 their handlers run again. Fix: CONFIG SET maxmemory-policy noeviction (and in redis.conf) on every \
                 master, or size maxmemory for the records"
            );
            if !allow {
                return Err(StoreError::new(StoreErrorKind::Unsupported, message));
            }
            tracing::warn!("{message} (started anyway: allow_evicting_policy)");
        }
        Ok(())
    }

    /// `WAIT` for the configured replicas on the master of `key`, after this connection's last write.
    async fn acknowledged(&self, key: &[u8]) -> Result<(), StoreError> {
        let Some(acks) = self.inner.replica_acks else { return Ok(()) };
        let mut command = redis::cmd("WAIT");
        command.arg(acks.replicas).arg(millis(acks.timeout));
        let mut connection = self.inner.connection.clone();
        let waiting = async { connection.on_master_of(key, command).await.map_err(failed) };
        let answer = bounded(acks.timeout + self.inner.timeout, waiting).await?;
        let acknowledged = usize::try_from(codec::int(answer)?).unwrap_or(0);
        if acknowledged < acks.replicas {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                format!(
                    "{acknowledged} of {} replicas acknowledged the write within {} ms",
                    acks.replicas,
                    acks.timeout.as_millis()
                ),
            ));
        }
        Ok(())
    }

    /// Releases a claim this attempt will not use; a failure leaves it to its lease.
    async fn release_or_log(&self, lease: &Lease) {
        if let Err(error) = self.release(lease).await {
            tracing::warn!(%error, "could not release an unused idempotency claim; it is freed when its lease lapses");
        }
    }

    async fn waiters(&self) -> Result<Arc<Waiters>, StoreError> {
        let inner = &self.inner;
        let waiters = inner
            .waiters
            .get_or_try_init(|| async {
                let connecting = Waiters::connect(&inner.target, inner.timeout);
                bounded(inner.timeout, async { connecting.await.map_err(failed) }).await.map(Arc::new)
            })
            .await?;
        Ok(Arc::clone(waiters))
    }

    async fn read_record(&self, keys: &RecordKeys) -> Result<Option<Record>, StoreError> {
        let mut connection = self.inner.connection.clone();
        let invocation = self.inner.scripts.read.key(&keys.record);
        let reply: Value =
            self.bounded(async { invocation.invoke_async(&mut connection).await.map_err(failed) }).await?;
        match reply {
            Value::Nil => Ok(None),
            reply => codec::record(codec::array(reply, 6)?).map(Some),
        }
    }
}

/// Leaves a channel when the wait ends, also when the waiting request is cancelled.
struct Leaving {
    waiters: Arc<Waiters>,
    subscription: Option<Subscription>,
}

impl Drop for Leaving {
    fn drop(&mut self) {
        let (Some(subscription), Ok(runtime)) = (self.subscription.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let waiters = Arc::clone(&self.waiters);
        runtime.spawn(async move { waiters.leave(subscription).await });
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        let keys = self.keys(&request.id);
        let mut connection = self.inner.connection.clone();
        let mut invocation = self.inner.scripts.claim.key(&keys.record);
        invocation
            .key(&keys.index)
            .arg(request.fingerprint.as_slice())
            .arg(request.token)
            .arg(millis(request.lease))
            .arg(millis(request.ttl))
            .arg(millis(EXPIRY_GRACE))
            .arg(&keys.member);
        let reply = self.bounded(async { invocation.invoke_async(&mut connection).await.map_err(failed) }).await;
        let lease = || Lease { id: request.id.clone(), token: request.token };
        let reply: Value = match reply {
            Ok(reply) => reply,
            Err(error) => {
                // The script may still run (a slow or frozen node answers later): the release follows it on the
                // same connection, so a claim answered with 503 never lands and blocks the retry.
                self.release_or_log(&lease()).await;
                return Err(error);
            }
        };
        let claim = match reply {
            Value::Array(items) if items.len() == 2 => {
                let [_, took_over]: [Value; 2] = items.try_into().map_err(|_| codec::corrupt("claim reply"))?;
                Claim::Acquired { took_over: codec::int(took_over)? == 1 }
            }
            Value::Array(mut items) if items.len() == 7 => Claim::Existing(codec::record(items.split_off(1))?),
            other => return Err(codec::corrupt(format!("unexpected claim reply {other:?}"))),
        };
        if matches!(claim, Claim::Acquired { .. })
            && let Err(error) = self.acknowledged(&keys.record).await
        {
            // Not durable enough to run the handler on: free the key for a retry, and answer 503.
            self.release_or_log(&lease()).await;
            return Err(error);
        }
        Ok(claim)
    }

    async fn heartbeat(&self, lease: &Lease, duration: Duration) -> Result<LeaseState, StoreError> {
        let keys = self.keys(&lease.id);
        let mut connection = self.inner.connection.clone();
        let mut invocation = self.inner.scripts.heartbeat.key(&keys.record);
        invocation.key(&keys.index).arg(lease.token).arg(millis(duration)).arg(millis(EXPIRY_GRACE));
        let renewed: i64 =
            self.bounded(async { invocation.invoke_async(&mut connection).await.map_err(failed) }).await?;
        Ok(if renewed == 1 { LeaseState::Held } else { LeaseState::Lost })
    }

    async fn complete(
        &self,
        lease: &Lease,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<Completion, StoreError> {
        let keys = self.keys(&lease.id);
        let mut connection = self.inner.connection.clone();
        let mut invocation = self.inner.scripts.complete.key(&keys.record);
        invocation
            .key(&keys.index)
            .arg(lease.token)
            .arg(millis(ttl))
            .arg(millis(EXPIRY_GRACE))
            .arg(response.status.as_u16())
            .arg(codec::encode_headers(response))
            .arg(if response.body.is_some() { "1" } else { "0" })
            .arg(response.body.as_deref().unwrap_or_default())
            .arg(connection.publish_command())
            .arg(&keys.channel);
        let stored: i64 =
            self.bounded(async { invocation.invoke_async(&mut connection).await.map_err(failed) }).await?;
        if stored != 1 {
            return Ok(Completion::Fenced);
        }
        self.acknowledged(&keys.record).await?;
        Ok(Completion::Stored)
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let keys = self.keys(&lease.id);
        let mut connection = self.inner.connection.clone();
        let mut invocation = self.inner.scripts.release.key(&keys.record);
        invocation
            .key(&keys.index)
            .arg(lease.token)
            .arg(&keys.member)
            .arg(connection.publish_command())
            .arg(&keys.channel);
        let _released: i64 =
            self.bounded(async { invocation.invoke_async(&mut connection).await.map_err(failed) }).await?;
        Ok(())
    }

    async fn read(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        self.read_record(&self.keys(id)).await
    }

    async fn lookup(&self, scope_hash: &Digest, key_hash: &Digest) -> Result<Option<KeyStatus>, StoreError> {
        let (index, record_prefix) = keys::index_and_record_prefix(&self.inner.prefix, scope_hash, key_hash);
        let mut connection = self.inner.connection.clone();
        let mut invocation = self.inner.scripts.lookup.key(&index);
        invocation.arg(&record_prefix);
        let reply: Value =
            self.bounded(async { invocation.invoke_async(&mut connection).await.map_err(failed) }).await?;
        if reply == Value::Nil {
            return Ok(None);
        }
        let (member, created_at, state) = codec::key_status(codec::array(reply, 6)?)?;
        let (method, route) =
            keys::split_member(&member).ok_or_else(|| codec::corrupt("an index member is not `METHOD route`"))?;
        Ok(Some(KeyStatus { method, route, created_at, state }))
    }

    async fn wait(&self, id: &RecordId, timeout: Duration) -> Result<(), StoreError> {
        let keys = self.keys(id);
        let waiters = self.waiters().await?;
        let subscription = self.bounded(async { waiters.join(&keys.channel).await.map_err(failed) }).await?;
        let notify = Arc::clone(&subscription.notify);
        let _leaving = Leaving { waiters, subscription: Some(subscription) };
        let woken = notify.notified();
        tokio::pin!(woken);
        // Subscribed (confirmed by the server) before the record is read: a completion from now on wakes this
        // waiter, and one before it shows in the read.
        woken.as_mut().enable();
        let in_progress = matches!(
            self.read_record(&keys).await?,
            Some(Record { state: crate::record::RecordState::InProgress { .. }, .. })
        );
        if in_progress {
            let _timed_out = tokio::time::timeout(timeout, woken).await;
        }
        Ok(())
    }

    /// Redis expires records itself: there is nothing to purge.
    async fn purge_batch(&self, _limit: usize) -> Result<PurgeBatch, StoreError> {
        Ok(PurgeBatch { examined: 0, deleted: 0, pass_complete: true })
    }
}
