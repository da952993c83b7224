//! The PostgreSQL [`Store`], on the application's own `deadpool_postgres::Pool`.
//!
//! Round trips per request: a fresh key costs two statements (claim, complete), a replay or a conflict one (the
//! claim statement returns the existing record when it inserts nothing). Every decision is made by one atomic
//! statement, so any number of processes may share the table. Statements are sent unnamed and hold no session
//! state, so the store works through a transaction-mode pooler ([`super::postgres_statement`]).

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use tokio_postgres::Row;
use tokio_postgres::types::Type;

use super::listener::Listener;
use super::postgres_statement::{self, Param, StatementMode, failed, pool_failed};
use super::postgres_table::Table;
use super::transactional::TransactionalStore;
use super::{Claim, ClaimRequest, Completion, Lease, LeaseState, PurgeBatch, Store, StoreError, StoreErrorKind};
use crate::digest::Digest;
use crate::record::{KeyState, KeyStatus, Record, RecordId, RecordState, StoredResponse};

/// The schema the store needs, as shipped in `sql/schema.sql`; apply it with any migration tool, or call
/// [`PostgresStore::migrate`].
pub const SCHEMA_SQL: &str = include_str!("../../sql/schema.sql");

/// The default bound on one store operation, including the wait for a pooled connection.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// Inserts a claim, or (when the record exists) returns it along with whether it may be taken over, in one round
/// trip. `ON CONFLICT DO NOTHING` neither locks nor writes the existing row, so replays stay read-only.
const CLAIM_SQL: &str = "
WITH inserted AS (
    INSERT INTO {table}
        (key_hash, scope_hash, method, route, fingerprint, token, state, locked_until, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, 'in_progress',
            now() + make_interval(secs => $7), now() + make_interval(secs => $8))
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT true AS acquired, NULL::bytea AS fingerprint, NULL::bigint AS token, NULL::text AS state,
       NULL::bigint AS lease_remaining_ms, NULL::boolean AS takeover, NULL::smallint AS status,
       NULL::text[] AS header_names, NULL::bytea[] AS header_values, NULL::bytea AS body
FROM inserted
UNION ALL
SELECT false, fingerprint, token, state,
       greatest(0, (extract(epoch FROM locked_until - now()) * 1000)::bigint),
       (state = 'completed' AND expires_at <= now())
           OR (state = 'in_progress' AND locked_until <= now() AND (fingerprint = $5 OR expires_at <= now())),
       status, header_names, header_values, body
FROM {table}
WHERE key_hash = $1 AND scope_hash = $2 AND method = $3 AND route = $4
  AND NOT EXISTS (SELECT 1 FROM inserted)";

/// Reads one record, with the same columns as the claim's existing-record branch.
pub(super) const READ_SQL: &str = "
SELECT false AS acquired, fingerprint, token, state,
       greatest(0, (extract(epoch FROM locked_until - now()) * 1000)::bigint) AS lease_remaining_ms,
       (state = 'completed' AND expires_at <= now())
           OR (state = 'in_progress' AND locked_until <= now() AND (fingerprint = $5 OR expires_at <= now()))
           AS takeover,
       status, header_names, header_values, body,
       (state = 'completed' AND expires_at <= now())
           OR (state = 'in_progress' AND locked_until <= now() AND expires_at <= now()) AS expired
FROM {table}
WHERE key_hash = $1 AND scope_hash = $2 AND method = $3 AND route = $4";

/// Takes over an expired record or one whose worker died; the token comparison makes it a compare-and-swap.
pub(super) const TAKEOVER_SQL: &str = "
UPDATE {table}
SET fingerprint = $5, token = $6, state = 'in_progress',
    locked_until = now() + make_interval(secs => $7), expires_at = now() + make_interval(secs => $8),
    created_at = now(), completed_at = NULL, status = NULL, header_names = NULL, header_values = NULL, body = NULL
WHERE key_hash = $1 AND scope_hash = $2 AND method = $3 AND route = $4 AND token = $9
  AND ((state = 'completed' AND expires_at <= now())
       OR (state = 'in_progress' AND locked_until <= now() AND (fingerprint = $5 OR expires_at <= now())))";

/// Stores the response if the record still carries the token. A plain UPDATE: waiters (rare) are notified by a
/// separate statement only when the record says it has some. A record this token already completed matches too:
/// a completion retried after an error whose first try did land (the token names this attempt alone).
const COMPLETE_SQL: &str = "
UPDATE {table}
SET state = 'completed', locked_until = NULL, completed_at = now(), expires_at = now() + make_interval(secs => $6),
    status = $7, header_names = $8, header_values = $9, body = $10
WHERE key_hash = $1 AND scope_hash = $2 AND method = $3 AND route = $4 AND token = $5
  AND state IN ('in_progress', 'completed')
RETURNING has_waiters";

const RELEASE_SQL: &str = "
DELETE FROM {table}
WHERE key_hash = $1 AND scope_hash = $2 AND method = $3 AND route = $4 AND token = $5 AND state = 'in_progress'
RETURNING has_waiters";

/// Wakes the waiters of a record (`on_conflict = "wait"`), after its completion or release.
const NOTIFY_SQL: &str = "SELECT pg_notify('idempotency_records', $1)";

/// The most recent live record of a key in a scope (the primary key's prefix serves it).
const LOOKUP_SQL: &str = "
SELECT method, route, state, status, created_at, completed_at,
       greatest(0, (extract(epoch FROM locked_until - now()) * 1000)::bigint) AS lease_remaining_ms
FROM {table}
WHERE key_hash = $1 AND scope_hash = $2
  AND NOT ((state = 'completed' AND expires_at <= now())
           OR (state = 'in_progress' AND locked_until <= now() AND expires_at <= now()))
ORDER BY created_at DESC
LIMIT 1";

const HEARTBEAT_SQL: &str = "
UPDATE {table} SET locked_until = now() + make_interval(secs => $6)
WHERE key_hash = $1 AND scope_hash = $2 AND method = $3 AND route = $4 AND token = $5 AND state = 'in_progress'";

/// Asks the record's completion or release to notify; no row means it is no longer in progress.
const MARK_WAITED_SQL: &str = "
UPDATE {table} SET has_waiters = true
WHERE key_hash = $1 AND scope_hash = $2 AND method = $3 AND route = $4 AND state = 'in_progress'";

/// One purge batch: the expired records on heap pages `$1 .. $2` (a TID range scan: the pages are read in
/// physical order, where records of the same age sit together, and only the rows deleted are locked), how many
/// records those pages hold, and how many pages the table has now (the sweep's end). The condition is the one
/// every read applies, checked on the row itself, so a record claimed meanwhile stays. Each statement is sent as
/// an unnamed one with its parameter types (no prepared statement survives it) and is its own transaction, so it
/// runs unchanged behind a transaction-mode pooler.
const PURGE_SQL: &str = "
WITH deleted AS (
    DELETE FROM {table}
    WHERE ctid >= format('(%s,0)', $1::int8)::tid AND ctid < format('(%s,0)', $2::int8)::tid
      AND ((state = 'completed' AND expires_at <= now())
           OR (state = 'in_progress' AND locked_until <= now() AND expires_at <= now()))
    RETURNING 1
)
SELECT (SELECT count(*) FROM {table}
        WHERE ctid >= format('(%s,0)', $1::int8)::tid AND ctid < format('(%s,0)', $2::int8)::tid) AS examined,
       (SELECT count(*) FROM deleted) AS deleted,
       pg_relation_size('{table_literal}'::regclass) / current_setting('block_size')::int8 AS pages";

/// Records per heap page assumed before the first batch has measured it (a record with a small stored response
/// takes 300 to 500 bytes of an 8 KiB page).
const ASSUMED_RECORDS_PER_PAGE: u64 = 16;

/// A statement that found nothing to return may have lost a race with a concurrent insert its snapshot cannot see;
/// a few attempts settle it (each one observes a newer committed state).
const MAX_CLAIM_ATTEMPTS: usize = 8;

/// Polling for a waited record's change (no listening connection, or it failed): the first look after this long,
/// then each interval twice the last, up to [`MAX_WAIT_POLL_INTERVAL`].
const FIRST_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The longest a polling waiter sleeps between two looks: the bound on how late it learns of a completion.
pub const MAX_WAIT_POLL_INTERVAL: Duration = Duration::from_millis(200);

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
    /// The recent share of claims that found an existing record, in [`EXISTING_SHARE_SCALE`]ths, exponentially
    /// weighted: it picks the claim's first statement.
    existing_share: Arc<AtomicU32>,
    /// The statements, rendered for the store's table.
    statements: Arc<Statements>,
    mode: StatementMode,
}

/// Every statement of the store, rendered once for its table.
pub(super) struct Statements {
    table: Table,
    claim: String,
    pub(super) read: String,
    pub(super) takeover: String,
    pub(super) complete: String,
    release: String,
    lookup: String,
    heartbeat: String,
    mark_waited: String,
    purge: String,
    pub(super) try_claim_in_transaction: String,
    pub(super) wait_claim_in_transaction: String,
}

impl Statements {
    fn new(table: Table) -> Self {
        Self {
            claim: table.render(CLAIM_SQL),
            read: table.render(READ_SQL),
            takeover: table.render(TAKEOVER_SQL),
            complete: table.render(COMPLETE_SQL),
            release: table.render(RELEASE_SQL),
            lookup: table.render(LOOKUP_SQL),
            heartbeat: table.render(HEARTBEAT_SQL),
            mark_waited: table.render(MARK_WAITED_SQL),
            purge: table.render(PURGE_SQL),
            try_claim_in_transaction: table.render(super::postgres_transaction::TRY_CLAIM_SQL),
            wait_claim_in_transaction: table.render(super::postgres_transaction::WAIT_CLAIM_SQL),
            table,
        }
    }
}

/// The first statement of a claim.
#[derive(Clone, Copy)]
enum ClaimStep {
    /// `INSERT ... ON CONFLICT DO NOTHING`, returning the existing record if there is one.
    Insert,
    /// A plain read by primary key (then an insert if there is no record).
    Read,
}

/// Fixed-point scale of [`PostgresStore::existing_share`].
const EXISTING_SHARE_SCALE: u32 = 1_000;

/// Each claim moves the estimate 1/16th of the way towards its outcome.
const EXISTING_SHARE_WEIGHT: u32 = 16;

/// Where the next purge batch starts, and how many pages hold `limit` records.
#[derive(Debug)]
struct PurgeCursor {
    /// The first heap page of the next batch.
    next_page: u64,
    /// Live records per page in the last batch that found any: sizes the next batch's page range.
    records_per_page: u64,
}

impl Default for PurgeCursor {
    fn default() -> Self {
        Self { next_page: 0, records_per_page: ASSUMED_RECORDS_PER_PAGE }
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("timeout", &self.timeout)
            .field("table", &self.statements.table)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// A store on the given pool, with [`DEFAULT_OPERATION_TIMEOUT`], on the `idempotency_records` table of the
    /// connections' `search_path`. The pool may go through a transaction-mode pooler (PgBouncer and the like).
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            timeout: DEFAULT_OPERATION_TIMEOUT,
            listener: None,
            purge_cursor: Arc::default(),
            existing_share: Arc::default(),
            statements: Arc::new(Statements::new(Table::in_search_path())),
            mode: StatementMode::default(),
        }
    }

    /// Keeps the table in `schema` (any name; it is quoted): every statement, [`PostgresStore::migrate`] and the
    /// [`crate::admin`] queries name it, so no `search_path` setting is needed (a startup option such as
    /// `options=-csearch_path=...` does not pass PgBouncer).
    pub fn with_schema(mut self, schema: &str) -> Self {
        self.statements = Arc::new(Statements::new(Table::in_schema(schema)));
        self
    }

    /// Makes `on_conflict = "wait"` wake waiting requests by notification (`LISTEN`) on one dedicated connection
    /// made with this configuration, within milliseconds of a completion. It must reach PostgreSQL directly (not
    /// through a transaction-mode pooler, which does not deliver notifications). Without it, or while it cannot
    /// connect, waiting requests poll the record instead, at most [`MAX_WAIT_POLL_INTERVAL`] apart.
    pub fn with_listener(mut self, config: tokio_postgres::Config) -> Self {
        self.listener = Some(Arc::new(Listener::new(config)));
        self
    }

    /// Prepares each statement once per connection (named prepared statements) instead of sending it unnamed with
    /// every request. Only for a pool whose connections reach PostgreSQL directly: behind a transaction-mode pooler
    /// the statements fail (`prepared statement "sN" does not exist`). BENCHMARKS.md measures what it saves.
    pub fn with_prepared_statements(mut self) -> Self {
        self.mode = StatementMode::Prepared;
        self
    }

    /// Bounds each store operation (waiting for a connection included): past it the request is answered 503
    /// `store-unavailable` and the handler does not run.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Creates the table (and the schema given to [`PostgresStore::with_schema`]) if it does not exist
    /// ([`SCHEMA_SQL`]); safe to call from many processes at once, and through a transaction-mode pooler.
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

    /// How statements are sent, for the [`crate::admin`] queries.
    pub(crate) fn mode(&self) -> StatementMode {
        self.mode
    }

    pub(super) fn statements(&self) -> &Statements {
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
    async fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        let mut client = None;
        let outcome = tokio::time::timeout(self.timeout, async {
            let client = client.insert(self.pool.get().await.map_err(pool_failed)?);
            postgres_statement::query(client, self.mode, sql, params).await.map_err(query_failed)
        })
        .await;
        self.finish(client, outcome)
    }

    async fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        let mut client = None;
        let outcome = tokio::time::timeout(self.timeout, async {
            let client = client.insert(self.pool.get().await.map_err(pool_failed)?);
            postgres_statement::execute(client, self.mode, sql, params).await.map_err(query_failed)
        })
        .await;
        self.finish(client, outcome)
    }

    pub(super) async fn connection(
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
    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Claims by inserting or by reading first; each step that finds nothing conclusive moves to the other.
    async fn claim_from(&self, request: &ClaimRequest, first: ClaimStep) -> Result<Claim, StoreError> {
        let claiming = Claiming::new(request);
        let params = claiming.params();
        let mut step = first;
        for _ in 0..MAX_CLAIM_ATTEMPTS {
            let rows = match step {
                ClaimStep::Insert => self.query(&self.statements.claim, &params).await?,
                ClaimStep::Read => self.query(&self.statements.read, &params[..5]).await?,
            };
            let Some(row) = rows.first() else {
                // Insert: a conflicting row its snapshot cannot show (inserted concurrently): read it. Read: no
                // record (or it vanished since): insert.
                step = match step {
                    ClaimStep::Insert => ClaimStep::Read,
                    ClaimStep::Read => ClaimStep::Insert,
                };
                continue;
            };
            if row.try_get::<_, bool>("acquired").map_err(decode_failed)? {
                return Ok(Claim::Acquired { took_over: false });
            }
            if row.try_get::<_, bool>("takeover").map_err(decode_failed)? {
                let current: i64 = row.try_get("token").map_err(decode_failed)?;
                if self.execute(&self.statements.takeover, &claiming.takeover_params(&current)).await? == 1 {
                    return Ok(Claim::Acquired { took_over: true });
                }
                // Another request took it over first, or its owner finished: look again.
                step = ClaimStep::Insert;
                continue;
            }
            return Ok(Claim::Existing(record_from_row(row)?));
        }
        Err(StoreError::new(
            StoreErrorKind::Unavailable,
            format!("the claim did not settle after {MAX_CLAIM_ATTEMPTS} attempts under contention"),
        ))
    }

    /// Wakes the waiters of a record; a failure only makes them wait until their next look.
    async fn notify(&self, id: &RecordId) {
        let digest = crate::digest::to_hex(&id.digest());
        if let Err(error) = self.execute(NOTIFY_SQL, &[(&digest, Type::TEXT)]).await {
            tracing::warn!(%error, "could not wake the waiters of a record; they find out at their next look");
        }
    }

    fn timed_out(&self, doing: &str) -> StoreError {
        StoreError::new(StoreErrorKind::Timeout, format!("no answer within {} ms {doing}", self.timeout.as_millis()))
    }

    /// Waits for a notification about the record, looking at the record now and then in case one is lost.
    /// `None` when notifications cannot be had (no listening connection, or it cannot connect): then the caller
    /// polls.
    async fn wait_notified(
        &self,
        listener: &Listener,
        id: &RecordId,
        deadline: tokio::time::Instant,
    ) -> Option<Result<(), StoreError>> {
        let subscribing = tokio::time::timeout_at(deadline.min(tokio::time::Instant::now() + self.timeout), async {
            listener.subscribe(&id.digest()).await
        });
        let subscription = match subscribing.await {
            Ok(Ok(subscription)) => subscription,
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot listen for idempotency completions; waiting requests poll instead");
                return None;
            }
            Err(_elapsed) => return None,
        };
        let woken = subscription.notify.notified();
        tokio::pin!(woken);
        // Subscribed before the record is marked: a completion from now on wakes this waiter.
        woken.as_mut().enable();
        let id_params = id_params(id);
        let marked = match self.execute(&self.statements.mark_waited, &id_params).await {
            Ok(marked) => marked,
            Err(error) => return Some(Err(error)),
        };
        if marked == 0 {
            return Some(Ok(()));
        }
        loop {
            let look_at = deadline.min(tokio::time::Instant::now() + LISTENING_SAFETY_POLL);
            if tokio::time::timeout_at(look_at, woken.as_mut()).await.is_ok() || look_at >= deadline {
                return Some(Ok(()));
            }
            match self.settled(id).await {
                Ok(false) => {}
                settled => return Some(settled.map(|_| ())),
            }
        }
    }

    /// Looks at the record with growing intervals until it is no longer held by a live lease, or `deadline`.
    async fn poll(&self, id: &RecordId, deadline: tokio::time::Instant) -> Result<(), StoreError> {
        let mut interval = FIRST_POLL_INTERVAL;
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(());
            }
            tokio::time::sleep_until(deadline.min(now + interval)).await;
            if self.settled(id).await? {
                return Ok(());
            }
            interval = (interval * 2).min(MAX_WAIT_POLL_INTERVAL);
        }
    }

    /// Whether the record is no longer in progress under a live lease (completed, released, expired, or its lease
    /// lapsed so that the waiter may take it over).
    async fn settled(&self, id: &RecordId) -> Result<bool, StoreError> {
        Ok(match self.read(id).await? {
            Some(Record { state: RecordState::InProgress { lease_remaining }, .. }) => lease_remaining.is_zero(),
            _ => true,
        })
    }
}

/// `$1` to `$4`: a record's primary key.
fn id_params(id: &RecordId) -> [Param<'_>; 4] {
    [(&id.key_hash, Type::BYTEA), (&id.scope_hash, Type::BYTEA), (&id.method, Type::TEXT), (&id.route, Type::TEXT)]
}

#[async_trait]
impl Store for PostgresStore {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        // Mostly retries lately (a redelivery storm, a client retrying a slow route): read first, the cheapest
        // statement for an existing record. Mostly fresh keys (the usual case): insert first, the only statement
        // a fresh key needs. Either way every decision is atomic; the order only decides what runs first.
        let first = if self.existing_share.load(Ordering::Relaxed) > EXISTING_SHARE_SCALE / 2 {
            ClaimStep::Read
        } else {
            ClaimStep::Insert
        };
        let claim = self.claim_from(request, first).await?;
        let sample = if matches!(claim, Claim::Existing(_)) { EXISTING_SHARE_SCALE } else { 0 };
        let _ = self.existing_share.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |share| {
            Some(share - share / EXISTING_SHARE_WEIGHT + sample / EXISTING_SHARE_WEIGHT)
        });
        Ok(claim)
    }

    async fn complete(
        &self,
        lease: &Lease,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<Completion, StoreError> {
        let completing = Completing::new(lease, response, ttl);
        let rows = self.query(&self.statements.complete, &completing.params()).await?;
        let Some(row) = rows.first() else { return Ok(Completion::Fenced) };
        if row.try_get::<_, bool>("has_waiters").map_err(decode_failed)? {
            self.notify(&lease.id).await;
        }
        Ok(Completion::Stored)
    }

    async fn heartbeat(&self, lease: &Lease, duration: Duration) -> Result<LeaseState, StoreError> {
        let [p1, p2, p3, p4] = id_params(&lease.id);
        let secs = duration.as_secs_f64();
        let params = [p1, p2, p3, p4, (&lease.token, Type::INT8), (&secs, Type::FLOAT8)];
        let renewed = self.execute(&self.statements.heartbeat, &params).await?;
        Ok(if renewed == 1 { LeaseState::Held } else { LeaseState::Lost })
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let [p1, p2, p3, p4] = id_params(&lease.id);
        let rows = self.query(&self.statements.release, &[p1, p2, p3, p4, (&lease.token, Type::INT8)]).await?;
        if rows.iter().any(|row| row.try_get::<_, bool>("has_waiters").unwrap_or(false)) {
            self.notify(&lease.id).await;
        }
        Ok(())
    }

    async fn lookup(&self, scope_hash: &Digest, key_hash: &Digest) -> Result<Option<KeyStatus>, StoreError> {
        let rows = self.query(&self.statements.lookup, &[(key_hash, Type::BYTEA), (scope_hash, Type::BYTEA)]).await?;
        let Some(row) = rows.first() else { return Ok(None) };
        let state: &str = row.try_get("state").map_err(decode_failed)?;
        let state = match state {
            "in_progress" => {
                let remaining_ms: i64 = row.try_get("lease_remaining_ms").map_err(decode_failed)?;
                KeyState::InProgress {
                    lease_remaining: Duration::from_millis(u64::try_from(remaining_ms).unwrap_or(0)),
                }
            }
            "completed" => {
                let status: i16 = row.try_get("status").map_err(decode_failed)?;
                let status = u16::try_from(status)
                    .ok()
                    .and_then(|status| actix_web::http::StatusCode::from_u16(status).ok())
                    .ok_or_else(|| corrupt(format!("status {status} is not an HTTP status")))?;
                KeyState::Completed { status, completed_at: row.try_get("completed_at").map_err(decode_failed)? }
            }
            other => return Err(corrupt(format!("unknown state {other:?}"))),
        };
        Ok(Some(KeyStatus {
            method: row.try_get("method").map_err(decode_failed)?,
            route: row.try_get("route").map_err(decode_failed)?,
            created_at: row.try_get("created_at").map_err(decode_failed)?,
            state,
        }))
    }

    async fn wait(&self, id: &RecordId, timeout: Duration) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        if let Some(listener) = &self.listener
            && let Some(waited) = self.wait_notified(listener, id, deadline).await
        {
            return waited;
        }
        self.poll(id, deadline).await
    }

    fn transactional(&self) -> Option<&dyn TransactionalStore> {
        Some(self)
    }

    /// Sweeps the heap in page ranges sized to hold about `limit` records ([`PURGE_SQL`]); the pass is complete
    /// when a range reaches the table's last page.
    async fn purge_batch(&self, limit: usize) -> Result<PurgeBatch, StoreError> {
        let limit = u64::try_from(limit.max(1)).unwrap_or(u64::MAX);
        let (first_page, records_per_page) = {
            let cursor = lock(&self.purge_cursor);
            (cursor.next_page, cursor.records_per_page)
        };
        let pages = limit.div_ceil(records_per_page.max(1)).clamp(1, limit);
        let end_page = first_page.saturating_add(pages);
        let as_param = |page: u64| i64::try_from(page).unwrap_or(i64::MAX);
        let (first, end) = (as_param(first_page), as_param(end_page));
        let rows = self.query(&self.statements.purge, &[(&first, Type::INT8), (&end, Type::INT8)]).await?;
        let row = rows.first().ok_or_else(|| corrupt("the purge statement returned no row"))?;
        let count = |column: &str| -> Result<u64, StoreError> {
            let value: i64 = row.try_get(column).map_err(decode_failed)?;
            Ok(u64::try_from(value).unwrap_or(0))
        };
        let (examined, deleted, table_pages) = (count("examined")?, count("deleted")?, count("pages")?);
        let pass_complete = end_page >= table_pages;
        {
            let mut cursor = lock(&self.purge_cursor);
            cursor.next_page = if pass_complete { 0 } else { end_page };
            if examined > 0 {
                cursor.records_per_page = examined.div_ceil(pages);
            }
        }
        let size = |value: u64| usize::try_from(value).unwrap_or(usize::MAX);
        Ok(PurgeBatch { examined: size(examined), deleted: size(deleted), pass_complete })
    }

    async fn read(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        // The fingerprint parameter only feeds the `takeover` column, which a plain read ignores.
        let no_fingerprint: &[u8] = &[];
        let [p1, p2, p3, p4] = id_params(id);
        let rows = self.query(&self.statements.read, &[p1, p2, p3, p4, (&no_fingerprint, Type::BYTEA)]).await?;
        match rows.first() {
            Some(row) if !row.try_get::<_, bool>("expired").map_err(decode_failed)? => Ok(Some(record_from_row(row)?)),
            _ => Ok(None),
        }
    }
}

/// Stores the response in the transaction that claimed the record and commits it, pipelined: the `COMMIT` is
/// sent without waiting for the `UPDATE`'s answer (if the `UPDATE` failed, the aborted transaction rolls back).
/// The `UPDATE` is unnamed: a statement prepared (and cached) inside one transaction would be missing in the next
/// transaction of a pooler, which may run on another backend.
pub(super) async fn complete_and_commit(
    store: &PostgresStore,
    client: &deadpool_postgres::Client,
    lease: &Lease,
    response: &StoredResponse,
    ttl: Duration,
) -> Result<(), StoreError> {
    let completing = Completing::new(lease, response, ttl);
    let params = completing.params();
    // The handler's own SQL may have failed and left the transaction aborted: every statement then fails with
    // 25P02, and the COMMIT rolls back.
    let in_aborted_transaction = |error: tokio_postgres::Error| {
        if error.code() == Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION) {
            failed(StoreErrorKind::TransactionAborted, error)
        } else {
            query_failed(error)
        }
    };
    let (stored, committed) = futures_util::future::join(
        postgres_statement::query(client, store.mode(), &store.statements().complete, &params),
        client.batch_execute("COMMIT"),
    )
    .await;
    let stored = stored.map_err(in_aborted_transaction)?;
    committed.map_err(query_failed)?;
    let row = stored.first().ok_or_else(|| corrupt("the claimed record vanished inside its own transaction"))?;
    if row.try_get::<_, bool>("has_waiters").map_err(decode_failed)? {
        let digest = crate::digest::to_hex(&lease.id.digest());
        if let Err(error) =
            postgres_statement::execute(client, store.mode(), NOTIFY_SQL, &[(&digest, Type::TEXT)]).await
        {
            tracing::warn!(error = %query_failed(error), "could not wake the waiters of a completed record; they find out at their next look");
        }
    }
    Ok(())
}

/// The parameters `$1` to `$8` of every claim statement, shared by the plain and the transactional claim.
pub(super) struct Claiming<'a> {
    request: &'a ClaimRequest,
    lease_secs: f64,
    ttl_secs: f64,
}

impl<'a> Claiming<'a> {
    pub(super) fn new(request: &'a ClaimRequest) -> Self {
        Self { request, lease_secs: request.lease.as_secs_f64(), ttl_secs: request.ttl.as_secs_f64() }
    }

    pub(super) fn params(&self) -> [Param<'_>; 8] {
        let request = self.request;
        let [p1, p2, p3, p4] = id_params(&request.id);
        [
            p1,
            p2,
            p3,
            p4,
            (&request.fingerprint, Type::BYTEA),
            (&request.token, Type::INT8),
            (&self.lease_secs, Type::FLOAT8),
            (&self.ttl_secs, Type::FLOAT8),
        ]
    }

    /// The parameters of the take-over statement: the claim's, and the token the record carries now (`$9`).
    pub(super) fn takeover_params<'b>(&'b self, current: &'b i64) -> [Param<'b>; 9] {
        let [p1, p2, p3, p4, p5, p6, p7, p8] = self.params();
        [p1, p2, p3, p4, p5, p6, p7, p8, (current, Type::INT8)]
    }
}

/// The parameters of [`COMPLETE_SQL`], shared by the plain and the transactional completion.
struct Completing<'a> {
    lease: &'a Lease,
    status: i16,
    names: Vec<&'a str>,
    values: Vec<&'a [u8]>,
    body: Option<&'a [u8]>,
    ttl_secs: f64,
}

impl<'a> Completing<'a> {
    fn new(lease: &'a Lease, response: &'a StoredResponse, ttl: Duration) -> Self {
        Self {
            lease,
            status: i16::try_from(response.status.as_u16()).unwrap_or(i16::MAX),
            names: response.headers.iter().map(|(name, _)| name.as_str()).collect(),
            values: response.headers.iter().map(|(_, value)| value.as_bytes()).collect(),
            body: response.body.as_deref(),
            ttl_secs: ttl.as_secs_f64(),
        }
    }

    fn params(&self) -> [Param<'_>; 10] {
        let [p1, p2, p3, p4] = id_params(&self.lease.id);
        [
            p1,
            p2,
            p3,
            p4,
            (&self.lease.token, Type::INT8),
            (&self.ttl_secs, Type::FLOAT8),
            (&self.status, Type::INT2),
            (&self.names, Type::TEXT_ARRAY),
            (&self.values, Type::BYTEA_ARRAY),
            (&self.body, Type::BYTEA),
        ]
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(super) fn record_from_row(row: &Row) -> Result<Record, StoreError> {
    let fingerprint: Vec<u8> = row.try_get("fingerprint").map_err(decode_failed)?;
    let fingerprint: Digest = fingerprint.try_into().map_err(|_| corrupt("the fingerprint is not 32 bytes"))?;
    let state: &str = row.try_get("state").map_err(decode_failed)?;
    let state = match state {
        "in_progress" => {
            let remaining_ms: i64 = row.try_get("lease_remaining_ms").map_err(decode_failed)?;
            RecordState::InProgress { lease_remaining: Duration::from_millis(u64::try_from(remaining_ms).unwrap_or(0)) }
        }
        "completed" => {
            let status: i16 = row.try_get("status").map_err(decode_failed)?;
            let names: Vec<&str> = row.try_get("header_names").map_err(decode_failed)?;
            let values: Vec<&[u8]> = row.try_get("header_values").map_err(decode_failed)?;
            let body: Option<Vec<u8>> = row.try_get("body").map_err(decode_failed)?;
            let response = StoredResponse::from_parts(i64::from(status), &names, &values, body.map(Into::into))
                .map_err(|error| corrupt(error.0))?;
            RecordState::Completed(response)
        }
        other => return Err(corrupt(format!("unknown state {other:?}"))),
    };
    Ok(Record { fingerprint, state })
}

pub(super) fn query_failed(error: tokio_postgres::Error) -> StoreError {
    failed(StoreErrorKind::Unavailable, error)
}

pub(super) fn decode_failed(error: tokio_postgres::Error) -> StoreError {
    failed(StoreErrorKind::Corrupt, error)
}

fn corrupt(message: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, message.into())
}
