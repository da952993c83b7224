//! How a [`RedisStore`] is configured and connected: one node or a cluster, the key prefix, the timeout, replica
//! acknowledgements, status lookups, and the eviction-policy check.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OnceCell;

use super::connection::{Connection, Target};
use super::old_layout::OldLayout;
use super::{DEFAULT_KEY_PREFIX, DEFAULT_REDIS_TIMEOUT, Inner, RedisStore, ReplicaAcks, Scripts, bounded, failed};
use crate::store::existing_share::ExistingShare;
use crate::store::{StoreError, StoreErrorKind};

/// Settings of a [`RedisStore`]; [`RedisStoreBuilder::connect`] makes it.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `connect` is called"]
pub struct RedisStoreBuilder {
    target: Target,
    prefix: String,
    timeout: Duration,
    replica_acks: Option<ReplicaAcks>,
    status_lookups: bool,
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
            status_lookups: false,
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
    /// This narrows, but does not close, the window in which a failover loses a record: see docs/guide/redis.md.
    /// A claim then takes up to the store's [`timeout`](Self::timeout) plus `timeout`: keep the app's
    /// `IdempotencyBuilder::store_timeout` (5 s by default) above that sum, or the runtime answers 503 first.
    pub fn replica_acks(mut self, replicas: usize, timeout: Duration) -> Self {
        self.replica_acks = (replicas > 0).then_some(ReplicaAcks { replicas, timeout });
        self
    }

    /// Keeps, for each (scope, key), the index of its records that [`status_lookup`](crate::status_lookup) reads
    /// ("what happened to my key?"). Off by default: the index costs every claim and completion a write, and only
    /// an app that mounts the status lookup reads it. Turn it on in every process of an app that mounts it, from the
    /// first of them on: a record claimed by a store without it is not in the index, and a lookup answers
    /// `unknown` for it. Without it, [`Store::lookup`](crate::Store::lookup) fails with
    /// [`StoreErrorKind::Unsupported`], which the status lookup answers as 500 `misconfigured`.
    pub fn status_lookups(mut self, on: bool) -> Self {
        self.status_lookups = on;
        self
    }

    /// Starts even when a master's `maxmemory-policy` may evict keys (anything but `noeviction`: every record
    /// has an expiry, so the `volatile-*` policies evict them too). An evicted record is a key whose handler runs
    /// again. Without this, [`RedisStoreBuilder::connect`] refuses such a server.
    pub fn allow_evicting_policy(mut self) -> Self {
        self.allow_eviction = true;
        self
    }

    /// Connects, checks every master's `maxmemory-policy`, and learns whether records of the old key layout may
    /// still live under the prefix (the first store on a prefix scans for them in the background).
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        if self.prefix.contains(['{', '}']) {
            return Err(StoreError::new(
                StoreErrorKind::Unsupported,
                format!("the key prefix {:?} contains a brace; the record's hash tag must be the first", self.prefix),
            ));
        }
        // Each request's answer is awaited for the store's timeout (every operation is bounded by it anyway), or,
        // with replica acknowledgements, for as long as a `WAIT` may block on top of it: the connection's own
        // response timeout would otherwise cut a `WAIT` longer than the store's timeout short.
        let response_timeout = self.timeout + self.replica_acks.map_or(Duration::ZERO, |acks| acks.timeout);
        let connecting = Connection::open(&self.target, self.timeout, response_timeout);
        let connection = bounded(self.timeout, async { connecting.await.map_err(failed) }).await?;
        let old_layout = OldLayout::of(&connection, &self.prefix, self.timeout).await?;
        let store = RedisStore {
            inner: Arc::new(Inner {
                target: self.target,
                connection,
                prefix: self.prefix,
                timeout: self.timeout,
                replica_acks: self.replica_acks,
                status_lookups: self.status_lookups,
                old_layout,
                scripts: Scripts::new(),
                waiters: OnceCell::new(),
                existing_share: ExistingShare::default(),
            }),
        };
        store.check_eviction_policy(self.allow_eviction).await?;
        Ok(store)
    }
}
