//! What the integration suites share: the stores under test, real PostgreSQL schemas, and HTTP helpers.

#![allow(dead_code, unreachable_pub, unused_macros)] // Each suite uses a different part of the support code.

pub mod brokers;
pub mod cancellation;
pub mod example_process;
pub mod postgres;
pub mod private_cluster;
pub mod probe;

use std::sync::Arc;
use std::time::{Duration, Instant};

use idempotent_runtime::{MemoryStore, PostgresStore, Store};

use self::postgres::TestSchema;

/// A store under test, with what it needs to be cleaned up.
pub struct StoreUnderTest {
    pub store: Arc<dyn Store>,
    schema: Option<TestSchema>,
}

impl StoreUnderTest {
    pub async fn memory() -> Self {
        Self { store: Arc::new(MemoryStore::new()), schema: None }
    }

    /// A `PostgresStore` on a fresh, migrated schema.
    pub async fn postgres() -> Self {
        let schema = TestSchema::create().await;
        let store = PostgresStore::new(schema.pool(16)).with_listener(schema.config());
        store.migrate().await.expect("migrate the test schema");
        Self { store: Arc::new(store), schema: Some(schema) }
    }

    /// Drops the test's schema; call at the end of a passing test.
    pub async fn cleanup(self) {
        if let Some(schema) = self.schema {
            schema.drop_schema().await;
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

/// Runs each listed `async fn` once on the memory store and once on PostgreSQL (a fresh schema), as tests
/// `memory::name` and `postgres::name`. `store => expression` says what each function receives, given the
/// [`StoreUnderTest`] bound to `store`. Use with `#[macro_use] mod support;`.
macro_rules! on_every_store {
    ($store:ident => $argument:expr; $($test:ident),* $(,)?) => {
        mod memory {
            $(
                #[actix_web::test]
                async fn $test() {
                    let $store = crate::support::StoreUnderTest::memory().await;
                    super::$test($argument).await;
                    $store.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[actix_web::test]
                async fn $test() {
                    let $store = crate::support::StoreUnderTest::postgres().await;
                    super::$test($argument).await;
                    $store.cleanup().await;
                }
            )*
        }
    };
}
