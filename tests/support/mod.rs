//! What the integration suites share: the stores under test, real PostgreSQL schemas, and HTTP helpers.

#![allow(dead_code, unreachable_pub, unused_macros)] // Each suite uses a different part of the support code.

pub mod cancellation;
pub mod example_process;
pub mod postgres;
pub mod private_cluster;
pub mod probe;
pub mod redis_cluster;
pub mod redis_node;

use std::sync::Arc;
use std::time::{Duration, Instant};

use idempotent_runtime::{MemoryStore, PostgresStore, RedisStore, Store};

use self::postgres::TestSchema;

/// A store under test, with what it needs to be cleaned up.
pub struct StoreUnderTest {
    pub store: Arc<dyn Store>,
    schema: Option<TestSchema>,
    /// The key prefix of a test on the shared Redis, deleted at cleanup.
    redis_prefix: Option<String>,
}

impl StoreUnderTest {
    pub async fn memory() -> Self {
        Self { store: Arc::new(MemoryStore::new()), schema: None, redis_prefix: None }
    }

    /// A `PostgresStore` on a fresh, migrated schema.
    pub async fn postgres() -> Self {
        let schema = TestSchema::create().await;
        let store = PostgresStore::new(schema.pool(16)).with_listener(schema.config());
        store.migrate().await.expect("migrate the test schema");
        Self { store: Arc::new(store), schema: Some(schema), redis_prefix: None }
    }

    /// A `RedisStore` on the shared Redis node, under a key prefix of its own.
    pub async fn redis() -> Self {
        let prefix = redis_node::unique_prefix();
        let store = RedisStore::node(redis_node::redis_url())
            .key_prefix(prefix.clone())
            .connect()
            .await
            .unwrap_or_else(|error| redis_node::unreachable_redis(&error));
        Self { store: Arc::new(store), schema: None, redis_prefix: Some(prefix) }
    }

    /// A `RedisStore` on the Redis Cluster the suites share (3 masters, 3 replicas; started on first use).
    pub async fn redis_cluster() -> Self {
        let cluster =
            tokio::task::spawn_blocking(redis_cluster::RedisCluster::shared).await.expect("start the cluster");
        let store = RedisStore::cluster(cluster.nodes())
            .key_prefix(redis_node::unique_prefix())
            .connect()
            .await
            .expect("connect to the test's Redis Cluster");
        Self { store: Arc::new(store), schema: None, redis_prefix: None }
    }

    /// Drops the test's schema (or Redis keys); call at the end of a passing test.
    pub async fn cleanup(self) {
        if let Some(schema) = self.schema {
            schema.drop_schema().await;
        }
        if let Some(prefix) = self.redis_prefix {
            redis_node::delete_prefix(&prefix).await;
        }
    }
}

/// Polls `condition` until it holds or `deadline` passes; returns whether it held. For waiting on an observable
/// state (a handler has started), never as a stand-in for one.
pub async fn eventually(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    condition()
}

/// Prints a measured figure and appends it to `<target>/tmp/figures.txt`, which CI prints after the suite (test
/// output is captured, and the figures are the point of the reliability suite).
pub fn report_figure(line: &str) {
    use std::io::Write as _;
    println!("{line}");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("figures.txt");
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(file, "{line}");
    }
}

/// Runs each listed `async fn` once on every store: the memory store, PostgreSQL (a fresh schema), Redis (one node)
/// and a Redis Cluster, as tests `memory::name`, `postgres::name`, `redis::name` and `redis_cluster::name`.
/// `store => expression` says what each function receives, given the [`StoreUnderTest`] bound to `store`. Tests
/// listed after `purge:` need a store with a purge and run on the memory store and PostgreSQL only (Redis expires
/// its records itself). Use with `#[macro_use] mod support;`.
macro_rules! on_every_store {
    ($store:ident => $argument:expr; $($test:ident),* $(,)? $(; purge: $($purge_test:ident),* $(,)?)?) => {
        on_store!(memory, $store => $argument; $($test,)* $($($purge_test,)*)?);
        on_store!(postgres, $store => $argument; $($test,)* $($($purge_test,)*)?);
        on_store!(redis, $store => $argument; $($test,)*);
        on_store!(redis_cluster, $store => $argument; $($test,)*);
    };
}

/// One module of [`on_every_store!`]: each test on the store that `StoreUnderTest::$kind()` makes.
macro_rules! on_store {
    ($kind:ident, $store:ident => $argument:expr; $($test:ident,)*) => {
        mod $kind {
            $(
                #[actix_web::test]
                async fn $test() {
                    let $store = crate::support::StoreUnderTest::$kind().await;
                    super::$test($argument).await;
                    $store.cleanup().await;
                }
            )*
        }
    };
}
