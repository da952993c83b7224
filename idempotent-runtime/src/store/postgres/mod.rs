//! The PostgreSQL [`Store`](crate::Store), on the application's own `deadpool_postgres::Pool`.
//!
//! Round trips per request: a fresh key costs two statements (claim, complete), a replay or a conflict one (the
//! claim statement returns the existing record when it inserts nothing). Every decision is made by one atomic
//! statement, so any number of processes may share the table. Statements are named and prepared once per
//! connection where that works (directly, or behind a pooler that tracks prepared statements), and go a
//! pooler-safe way behind a transaction-mode pooler that does not (`statement`).

/// The channel every waiter listens on and every completion, release and operator release notifies (the payload
/// names the record): one literal, so that the SQL strings can include it with `concat!`.
macro_rules! notify_channel {
    () => {
        "idempotency_records"
    };
}

pub mod admin;
mod claim_transaction;
mod connection;
mod listener;
mod purge_cursor;
mod record_store;
mod rows;
mod sql;
pub(crate) mod statement;
mod table;
mod transactional;
mod tx;

use std::convert::identity;
use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_postgres::Row;

pub(crate) use self::claim_transaction::rollback;
pub(crate) use self::connection::TransactionConnection;
use self::listener::Listener;
use self::purge_cursor::PurgeCursor;
pub(crate) use self::rows::complete_and_commit;
use self::rows::query_failed;
use self::sql::Statements;
use self::statement::{Param, StatementChoice, StatementMode, pool_failed};
pub(crate) use self::table::Table;
pub use self::tx::Tx;
use super::existing_share::ExistingShare;
use super::{StoreError, StoreErrorKind};

/// The schema the store needs, as shipped in `sql/schema.sql`; apply it with any migration tool, or call
/// [`PostgresStore::migrate`].
pub const SCHEMA_SQL: &str = include_str!("../../../sql/schema.sql");

/// The default bound on one store operation, including the wait for a pooled connection.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// A statement that found nothing to return may have lost a race with a concurrent insert its snapshot cannot see;
/// a few attempts settle it (each one observes a newer committed state).
const MAX_CLAIM_ATTEMPTS: usize = 8;

/// With a listening connection, a waiter still looks every this long, so that a notification lost anyway (the
/// listening configuration names a pooler, say) costs at most this much, not the whole wait.
const LISTENING_SAFETY_POLL: Duration = Duration::from_secs(1);

/// Stores records in the `idempotency_records` table through the application's pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    timeout: Duration,
    listener: Option<Arc<Listener>>,
    purge_cursor: Arc<Mutex<PurgeCursor>>,
    /// Which statement a claim sends first (see [`ExistingShare`]).
    existing_share: Arc<ExistingShare>,
    /// The statements, rendered for the store's table.
    statements: Arc<Statements>,
    /// How statements are sent: set, or found when the first one is sent.
    statement_choice: Arc<StatementChoice>,
    /// Set once a completion found the schema's completion function missing or not executable: completions then
    /// run as a plain statement.
    completion_function_unusable: Arc<AtomicBool>,
}

/// The first statement of a claim.
#[derive(Clone, Copy)]
enum FirstStatement {
    /// `INSERT ... ON CONFLICT DO NOTHING` (then a read if the record exists).
    Insert,
    /// A plain read by primary key (then an insert if there is no record).
    Read,
    /// A read of a completed, live record's response alone (then the full read if there is none): a replay's one
    /// statement.
    Replay,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("timeout", &self.timeout)
            .field("table", &self.statements.table)
            .field("statements", &self.statement_choice)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// A store on the given pool, with [`DEFAULT_OPERATION_TIMEOUT`], on the `idempotency_records` table of the
    /// connections' `search_path`.
    ///
    /// Its statements are named and prepared once per connection, as tokio-postgres applications do. From its
    /// first statement on, the store probes two of the pool's connections in the background (statements go
    /// unnamed until the probe answers): if they go through a transaction-mode pooler that does not track prepared
    /// statements (PgBouncer 1.20 and older), it uses [`PostgresStore::with_pooler_safe_statements`] instead, and
    /// says so once in a warning. A named statement that fails the way such a pooler makes it fail switches the
    /// store the same way, and is sent again. A probe that cannot tell (a pool of one connection) leaves the
    /// statements unnamed.
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            timeout: DEFAULT_OPERATION_TIMEOUT,
            listener: None,
            purge_cursor: Arc::default(),
            existing_share: Arc::default(),
            statements: Arc::new(Statements::new(Table::in_search_path())),
            statement_choice: Arc::default(),
            completion_function_unusable: Arc::default(),
        }
    }

    /// Keeps the table in `schema` (any name; it is quoted): every statement, [`PostgresStore::migrate`] and the
    /// [`crate::admin`] queries name it, so no `search_path` setting is needed (a startup option such as
    /// `options=-csearch_path=...` does not pass PgBouncer).
    pub fn with_schema(mut self, schema: &str) -> Self {
        self.statements = Arc::new(Statements::new(Table::in_schema(schema)));
        self.completion_function_unusable = Arc::default();
        self
    }

    /// Makes `on_conflict = "wait"` wake waiting requests by notification (`LISTEN`) on one dedicated connection
    /// made with this configuration, within milliseconds of a completion. It must reach PostgreSQL directly (not
    /// through a transaction-mode pooler, which does not deliver notifications). Without it, or while it cannot
    /// connect, waiting requests poll the record instead, at most [`crate::store::MAX_WAIT_POLL_INTERVAL`] apart.
    pub fn with_listener(mut self, config: tokio_postgres::Config) -> Self {
        self.listener = Some(Arc::new(Listener::new(config)));
        self
    }

    /// For a pool behind a transaction-mode pooler that does not track prepared statements (PgBouncer 1.20 and
    /// older in `pool_mode = transaction`, as Debian 12 ships): each statement is prepared once per backend with
    /// SQL `PREPARE` under a name derived from its text and run with `EXECUTE`, correct whichever backend a round
    /// trip reaches. The default finds such a pooler by itself; this skips the probe. It costs PostgreSQL CPU per
    /// statement, and each backend's first use of each statement logs one `ERROR: prepared statement
    /// "idempotent_..." does not exist` (BENCHMARKS.md, the guide's "Deploying on PostgreSQL").
    pub fn with_pooler_safe_statements(mut self) -> Self {
        self.statement_choice = Arc::new(StatementChoice::fixed(StatementMode::Shared));
        self
    }

    /// Sends every statement unnamed, parsed and planned by the server each time. For a proxy that pins a client
    /// to one backend for SQL `PREPARE`, where [`PostgresStore::with_pooler_safe_statements`] would not help.
    /// BENCHMARKS.md measures what it costs.
    pub fn with_unnamed_statements(mut self) -> Self {
        self.statement_choice = Arc::new(StatementChoice::fixed(StatementMode::Unnamed));
        self
    }

    /// Named statements prepared once per connection, as by default, without the probe before the first one and
    /// without the switch: for a pool known to reach PostgreSQL directly, or through a pooler that tracks
    /// prepared statements (PgBouncer >= 1.21 with `max_prepared_statements`). Behind a pooler that does not,
    /// statements would fail, or run another client's statement of the same name.
    pub fn with_prepared_statements(mut self) -> Self {
        self.statement_choice = Arc::new(StatementChoice::fixed(StatementMode::Prepared));
        self
    }

    /// Bounds each store operation (waiting for a connection included): past it the request is answered 503
    /// `store-unavailable` and the handler does not run.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Creates the table (and the schema given to [`PostgresStore::with_schema`]) if it does not exist, and its
    /// completion function, which it replaces only when this role owns it ([`SCHEMA_SQL`]); safe to call from
    /// many processes at once, and through a transaction-mode pooler.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when the database cannot be reached within the store's timeout or a statement fails
    /// (for instance, the role may not create tables).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.bounded(async {
            let mut client = self.pool.get().await.map_err(pool_failed)?;
            let transaction = client.transaction().await.map_err(query_failed)?;
            // Concurrent `CREATE TABLE IF NOT EXISTS` can still collide in the catalog; serialize migrations.
            // Everything below is transaction-scoped: nothing stays on the connection.
            let mut script = String::from("SELECT pg_advisory_xact_lock(hashtext('idempotent-runtime migrate'));\n");
            if let Some(schema) = self.statements.table.quoted_schema() {
                script
                    .push_str(&format!("CREATE SCHEMA IF NOT EXISTS {schema};\nSET LOCAL search_path TO {schema};\n"));
            }
            script.push_str(SCHEMA_SQL);
            transaction.batch_execute(&script).await.map_err(query_failed)?;
            transaction.commit().await.map_err(query_failed)
        })
        .await
    }

    /// The pool, for the [`crate::admin`] queries.
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The table, for the [`crate::admin`] queries.
    pub(crate) fn table(&self) -> &Table {
        &self.statements.table
    }

    /// The outbox's statements, rendered for the store's schema.
    pub(crate) fn outbox_statements(&self) -> &Arc<crate::outbox::sql::OutboxStatements> {
        &self.statements.outbox
    }

    /// The configuration of the LISTEN connection given to [`PostgresStore::with_listener`], if any: the outbox
    /// relay opens its own listening connection with it.
    pub(crate) fn listener_config(&self) -> Option<&tokio_postgres::Config> {
        self.listener.as_deref().map(Listener::config)
    }

    /// How statements are sent now, for a caller that already holds a connection (see
    /// [`StatementChoice::settled`]).
    pub(crate) fn settled_mode(&self) -> StatementMode {
        self.statement_choice.settled()
    }

    /// How statements are sent now; the first call starts the probe of the pool's connections.
    pub(crate) fn statement_mode(&self) -> StatementMode {
        self.statement_choice.mode(&self.pool)
    }

    /// Whether a statement sent in `mode` failed in a way that switched the store to the pooler-safe way (it had
    /// no effect, and may be sent again).
    pub(crate) fn switched_by(&self, mode: StatementMode, sqlstate: Option<&str>) -> bool {
        self.statement_choice.switched_by(mode, sqlstate)
    }

    fn statements(&self) -> &Statements {
        &self.statements
    }

    /// Runs an operation under the store's timeout.
    pub(crate) async fn bounded<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, operation).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::new(
                StoreErrorKind::Timeout,
                format!("no answer within {} ms", self.timeout.as_millis()),
            )),
        }
    }

    /// Runs one statement on a pooled connection, the wait for the connection included, under one deadline (one
    /// timer per operation, on the hot path).
    pub(crate) async fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        self.on_pooled_connection(identity, async |client, mode| {
            statement::query(client, &self.statement_choice, mode, identity, sql, params).await
        })
        .await
    }

    /// [`PostgresStore::query`] for a statement whose arguments must be bound, not written into its text.
    async fn query_binding_arguments(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        let adapt = StatementMode::binding_arguments;
        self.on_pooled_connection(adapt, async |client, mode| {
            statement::query(client, &self.statement_choice, mode, adapt, sql, params).await
        })
        .await
    }

    pub(crate) async fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        self.on_pooled_connection(identity, async |client, mode| {
            statement::execute(client, &self.statement_choice, mode, sql, params).await
        })
        .await
    }

    /// Runs `statement` on a pooled connection in the store's statement mode (as `adapt` adapts it), the wait for
    /// the connection included, under the store's timeout.
    async fn on_pooled_connection<T>(
        &self,
        adapt: fn(StatementMode) -> StatementMode,
        statement: impl AsyncFnOnce(&deadpool_postgres::ClientWrapper, StatementMode) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, StoreError> {
        let mut client = None;
        let outcome = tokio::time::timeout(self.timeout, async {
            let mode = adapt(self.statement_mode());
            let client = client.insert(self.pool.get().await.map_err(pool_failed)?);
            statement(client, mode).await.map_err(query_failed)
        })
        .await;
        self.finish(client, outcome)
    }

    pub(crate) async fn connection(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<deadpool_postgres::Client, StoreError> {
        match tokio::time::timeout_at(deadline, self.pool.get()).await {
            Ok(client) => client.map_err(pool_failed),
            Err(_) => Err(self.timed_out("waiting for a pooled connection")),
        }
    }

    /// A statement still running at the timeout is cancelled on the server, so that a claim answered with 503
    /// does not land afterwards (a statement waiting on a lock would otherwise run once the lock is gone). Its
    /// connection is taken out of the pool first: a late cancel request must not hit another borrower's query.
    fn finish<T>(
        &self,
        client: Option<deadpool_postgres::Client>,
        outcome: Result<Result<T, StoreError>, tokio::time::error::Elapsed>,
    ) -> Result<T, StoreError> {
        let client = match (outcome, client) {
            (Ok(result), _) => return result,
            (Err(_elapsed), None) => return Err(self.timed_out("waiting for a pooled connection")),
            (Err(_elapsed), Some(client)) => client,
        };
        let client = deadpool_postgres::Object::take(client);
        let cancel = client.cancel_token();
        tokio::spawn(async move {
            // Kept until the cancel request is sent: it is for this connection's backend only.
            let _detached = client;
            if let Err(error) = cancel.cancel_query(tokio_postgres::NoTls).await {
                tracing::warn!(%error, "could not cancel a timed-out idempotency statement");
            }
        });
        Err(self.timed_out("running a statement"))
    }

    /// The bound on one store operation.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The payload of a record's notification on [`notify_channel!`]: its identity digest in hex, as waiters listen
/// for it.
fn notify_payload(id: &crate::record_id::RecordId) -> String {
    crate::digest::to_hex(&id.digest())
}
