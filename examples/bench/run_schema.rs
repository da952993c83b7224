//! The schema of one run and the pools on it.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use idempotent_runtime::PostgresStore;

use crate::{app, cpu};

/// The schema of one run: created fresh, holding the library's table and the floor's, dropped at the end.
pub(crate) struct RunSchema {
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) admin: Pool,
}

impl RunSchema {
    /// Creates `bench_<pid><suffix>`, replacing a leftover of an interrupted run with the same name.
    pub(crate) async fn create(url: &str, suffix: &str) -> Result<Self, String> {
        let name = format!("bench_{}{suffix}", std::process::id());
        let admin = pool(url, None, 2)?;
        let client = admin.get().await.map_err(|error| {
            format!(
                "PostgreSQL is not reachable at DATABASE_URL={url}: {error}\n\
                 start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
            )
        })?;
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"))
            .await
            .map_err(|error| format!("cannot create schema {name}: {error}"))?;
        drop(client);
        let admin = pool(url, Some(&name), 4)?;
        Ok(Self { name, url: url.to_owned(), admin })
    }

    /// A pool whose connections use this schema.
    pub(crate) fn pool(&self, max_size: usize) -> Result<Pool, String> {
        pool(&self.url, Some(&self.name), max_size)
    }

    /// The library's table (through its own `migrate`) and the floor's copy of it.
    pub(crate) async fn prepare(&self) -> Result<(), String> {
        // The admin pool, not the server's: a pooled connection is driven by the runtime that opened it, and the
        // server's connections must all be opened (and so driven) by its worker.
        PostgresStore::new(self.admin.clone())
            .migrate()
            .await
            .map_err(|error| format!("PostgresStore::migrate failed: {error}"))?;
        let client = self.admin.get().await.map_err(|error| error.to_string())?;
        app::create_floor_table(&client).await.map_err(|error| format!("cannot create the floor table: {error}"))
    }

    pub(crate) async fn drop_schema(&self) {
        let result = match pool(&self.url, None, 1) {
            Ok(pool) => match pool.get().await {
                Ok(client) => {
                    client.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name)).await.map_err(|e| e.to_string())
                }
                Err(error) => Err(error.to_string()),
            },
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            eprintln!("warning: could not drop schema {}: {error}", self.name);
        }
    }
}

pub(crate) fn pool(url: &str, search_path: Option<&str>, max_size: usize) -> Result<Pool, String> {
    let mut config: tokio_postgres::Config =
        url.parse().map_err(|error| format!("DATABASE_URL={url} is not a PostgreSQL URL: {error}"))?;
    if let Some(schema) = search_path {
        config.options(format!("-c search_path={schema}"));
    }
    config.application_name(cpu::APPLICATION_NAME);
    let manager =
        Manager::from_config(config, tokio_postgres::NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager).max_size(max_size).build().map_err(|error| error.to_string())
}
