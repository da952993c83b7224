//! A real PostgreSQL for the suites: one fresh schema per test, so runs never see each other's keys.
//!
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) names the server. If it cannot be
//! reached the test fails, saying how to start it: nothing is skipped in silence.

use std::sync::atomic::{AtomicUsize, Ordering};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

/// The server the suites use unless `DATABASE_URL` says otherwise.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// `DATABASE_URL`, or the default local server.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

/// A schema that exists for one test; dropped by [`TestSchema::drop_schema`] when the test passed (a failed test
/// leaves it for inspection).
pub struct TestSchema {
    pub name: String,
    admin: Pool,
}

impl TestSchema {
    /// Creates a fresh, uniquely named schema, or panics with the fix when PostgreSQL is unreachable.
    pub async fn create() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "idempotent_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..)
        );
        let admin = pool_with_options(None, 2);
        let client = admin.get().await.unwrap_or_else(|error| unreachable_postgres(&error));
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap_or_else(|error| panic!("could not create test schema {name}: {error}"));
        Self { name, admin }
    }

    /// A pool whose connections use this schema (through `search_path`).
    pub fn pool(&self, max_size: usize) -> Pool {
        pool_with_options(Some(&self.name), max_size)
    }

    /// The connection settings of [`TestSchema::pool`], e.g. for a store's LISTEN connection.
    pub fn config(&self) -> tokio_postgres::Config {
        config_for(&database_url(), Some(&self.name))
    }

    /// A `DATABASE_URL` whose connections use this schema, for processes started by a test.
    pub fn database_url(&self) -> String {
        let url = database_url();
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}options=-csearch_path%3D{}", self.name)
    }

    pub async fn drop_schema(self) {
        let client = self.admin.get().await.unwrap_or_else(|error| unreachable_postgres(&error));
        client.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name)).await.expect("drop test schema");
    }
}

fn pool_with_options(search_path: Option<&str>, max_size: usize) -> Pool {
    pool_for(&database_url(), search_path, max_size)
}

/// A pool on any server (e.g. a private cluster, or an address where nothing answers).
pub fn pool_for(url: &str, search_path: Option<&str>, max_size: usize) -> Pool {
    let config = config_for(url, search_path);
    let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager).max_size(max_size).build().expect("a pool without runtime hooks always builds")
}

fn config_for(url: &str, search_path: Option<&str>) -> tokio_postgres::Config {
    let mut config: tokio_postgres::Config =
        url.parse().unwrap_or_else(|error| panic!("DATABASE_URL={url} is not a PostgreSQL URL: {error}"));
    if let Some(schema) = search_path {
        config.options(format!("-c search_path={schema}"));
    }
    config
}

fn unreachable_postgres(error: &dyn std::fmt::Display) -> ! {
    panic!(
        "\n\nPostgreSQL is not reachable at {url}: {error}\n\
         The integration suites need a real server. Start the local one with\n    \
         pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n\
         or point DATABASE_URL at a server that accepts connections (trust auth, a user that may CREATE SCHEMA).\n",
        url = database_url()
    )
}

/// Whether some session waits on a lock in a statement of the store on `schema` (its table named in the text, or a
/// pooler-safe `EXECUTE idempotent_...`): a transactional duplicate blocked on the original's uncommitted claim.
pub async fn store_statement_waits_on_a_lock(pool: &Pool, schema: &str) -> bool {
    let client = pool.get().await.expect("connect");
    let waiting: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid() \
             AND (strpos(query, $1) > 0 AND strpos(query, 'idempotency_records') > 0 \
                  OR query LIKE 'EXECUTE idempotent\\_%')",
            &[&schema],
        )
        .await
        .expect("read pg_stat_activity")
        .get(0);
    waiting > 0
}

/// The first row of one simple query's answer, as numbers: one round trip, so behind a pooler it is one backend's.
pub async fn first_row_numbers(client: &tokio_postgres::Client, sql: &str) -> Vec<u64> {
    let messages = client.simple_query(sql).await.unwrap_or_else(|error| panic!("{sql}: {error}"));
    let row = messages
        .iter()
        .find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql}: no row"));
    (0..row.len()).map(|index| row.get(index).and_then(|text| text.parse().ok()).expect("a number")).collect()
}
