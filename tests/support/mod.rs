//! What the integration suites share: the stores under test, real PostgreSQL schemas, and HTTP helpers.

#![allow(dead_code, unreachable_pub, unused_macros)] // Each suite uses a different part of the support code.

pub mod brokers;
pub mod cancellation;
pub mod example_process;
pub mod fault_proxy;
pub mod logs;
pub mod outage;
pub mod payments_load;
pub mod pgbouncer;
pub mod postgres;
pub mod private_cluster;
pub mod probe;
pub mod redis_cluster;
pub mod redis_node;
pub mod replicated_cluster;

use std::sync::Arc;
use std::time::{Duration, Instant};

use idempotent_runtime::{MemoryStore, PostgresStore, RedisStore, Store};

use self::pgbouncer::PgBouncer;
use self::postgres::TestSchema;

/// The listening connection of a store through PgBouncer (for `on_conflict = "wait"`).
#[derive(Clone, Copy, Debug)]
pub enum Listening {
    /// A direct connection to PostgreSQL, as docs/guide/postgres-in-production.md asks.
    Direct,
    /// None: waiters poll.
    None,
    /// One that cannot connect (nothing listens on its port): waiters poll.
    Unreachable,
}

/// A store under test, with what it needs to be cleaned up.
pub struct StoreUnderTest {
    pub store: Arc<dyn Store>,
    schema: Option<TestSchema>,
    /// The pooler the store goes through, if any (stopped when dropped).
    bouncer: Option<PgBouncer>,
    /// The key prefix of a test on the shared Redis, deleted at cleanup.
    redis_prefix: Option<String>,
}

impl StoreUnderTest {
    pub async fn memory() -> Self {
        Self { store: Arc::new(MemoryStore::new()), schema: None, bouncer: None, redis_prefix: None }
    }

    /// A `PostgresStore` on a fresh, migrated schema.
    pub async fn postgres() -> Self {
        let schema = TestSchema::create().await;
        let store = PostgresStore::new(schema.pool(16)).with_listener(schema.config());
        store.migrate().await.expect("migrate the test schema");
        Self { store: Arc::new(store), schema: Some(schema), bouncer: None, redis_prefix: None }
    }

    /// A `PostgresStore` through a private PgBouncer in transaction mode, on a fresh schema named by the store
    /// (`with_schema`: no search_path, which a pooler cannot carry), listening on a direct connection.
    pub async fn pgbouncer() -> Self {
        Self::pgbouncer_listening(Listening::Direct).await
    }

    /// [`StoreUnderTest::pgbouncer`] with the given listening connection.
    pub async fn pgbouncer_listening(listening: Listening) -> Self {
        let schema = TestSchema::create().await;
        let bouncer = PgBouncer::in_front_of_database_url(None);
        let pool = postgres::pool_for(&bouncer.url(), None, 16);
        let store = PostgresStore::new(pool).with_schema(&schema.name);
        let store = match listening {
            Listening::Direct => store.with_listener(schema.config()),
            Listening::None => store,
            Listening::Unreachable => {
                let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
                store.with_listener(format!("postgres://postgres@127.0.0.1:{port}/postgres").parse().expect("url"))
            }
        };
        store.migrate().await.expect("migrate the test schema through PgBouncer");
        Self { store: Arc::new(store), schema: Some(schema), bouncer: Some(bouncer), redis_prefix: None }
    }

    /// A `RedisStore` on the shared Redis node, under a key prefix of its own, with status lookups (the suites
    /// look keys up).
    pub async fn redis() -> Self {
        let prefix = redis_node::unique_prefix();
        let store = RedisStore::node(redis_node::redis_url())
            .key_prefix(prefix.clone())
            .status_lookups(true)
            .connect()
            .await
            .unwrap_or_else(|error| redis_node::unreachable_redis(&error));
        Self { store: Arc::new(store), schema: None, bouncer: None, redis_prefix: Some(prefix) }
    }

    /// A `RedisStore` on the Redis Cluster the suites share (3 masters, 3 replicas; started on first use), with
    /// status lookups.
    pub async fn redis_cluster() -> Self {
        let cluster =
            tokio::task::spawn_blocking(redis_cluster::RedisCluster::shared).await.expect("start the cluster");
        let store = RedisStore::cluster(cluster.nodes())
            .key_prefix(redis_node::unique_prefix())
            .status_lookups(true)
            .connect()
            .await
            .expect("connect to the test's Redis Cluster");
        Self { store: Arc::new(store), schema: None, bouncer: None, redis_prefix: None }
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

/// How a suite reaches PostgreSQL: directly, or through a private PgBouncer in transaction mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    Direct,
    PgBouncer,
}

impl Connection {
    /// A pool for an app on `schema` and the pooler it goes through (kept alive by the caller). Through PgBouncer,
    /// the pooler sets the schema as the server connections' `search_path` (as `ALTER ROLE ... SET search_path`
    /// would), for the app's own unqualified SQL; the store is told the schema with `with_schema` either way.
    pub fn app_pool(self, schema: &TestSchema, max_size: usize) -> (deadpool_postgres::Pool, Option<PgBouncer>) {
        match self {
            Self::Direct => (schema.pool(max_size), None),
            Self::PgBouncer => {
                let bouncer = PgBouncer::in_front_of_database_url(Some(&schema.name));
                (postgres::pool_for(&bouncer.url(), None, max_size), Some(bouncer))
            }
        }
    }

    /// A `DATABASE_URL` for an example process on `schema`, and the pooler it goes through.
    pub fn database_url(self, schema: &TestSchema) -> (String, Option<PgBouncer>) {
        match self {
            Self::Direct => (schema.database_url(), None),
            Self::PgBouncer => {
                let bouncer = PgBouncer::in_front_of_database_url(Some(&schema.name));
                (bouncer.url(), Some(bouncer))
            }
        }
    }
}

/// Runs each listed `async fn(Connection)` once on a direct connection and once through a private PgBouncer in
/// transaction mode, as tests `direct::name` and `pgbouncer::name`. Use with `#[macro_use] mod support;`.
macro_rules! on_every_connection {
    ($($test:ident),* $(,)?) => {
        mod direct {
            $(
                #[actix_web::test]
                async fn $test() {
                    super::$test(crate::support::Connection::Direct).await;
                }
            )*
        }
        mod pgbouncer {
            $(
                #[actix_web::test]
                async fn $test() {
                    super::$test(crate::support::Connection::PgBouncer).await;
                }
            )*
        }
    };
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

/// Runs each listed `async fn` once on every store: the memory store, PostgreSQL (a fresh schema), PostgreSQL
/// through a private PgBouncer in transaction mode, Redis (one node) and a Redis Cluster, as tests `memory::name`,
/// `postgres::name`, `pgbouncer::name`, `redis::name` and `redis_cluster::name`. `store => expression` says what
/// each function receives, given the [`StoreUnderTest`] bound to `store`. Tests listed after `purge:` need a store
/// with a purge and run on the memory store and PostgreSQL (direct and pooled) only (Redis expires its records
/// itself). Use with `#[macro_use] mod support;`.
macro_rules! on_every_store {
    ($store:ident => $argument:expr; $($test:ident),* $(,)? $(; purge: $($purge_test:ident),* $(,)?)?) => {
        on_store!(memory, $store => $argument; $($test,)* $($($purge_test,)*)?);
        on_store!(postgres, $store => $argument; $($test,)* $($($purge_test,)*)?);
        on_store!(pgbouncer, $store => $argument; $($test,)* $($($purge_test,)*)?);
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
