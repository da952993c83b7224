//! The store's SQL, as templates over its table (`{table}`, `{table_literal}`: see [`super::table`]), and the
//! statements rendered once per store.
//!
//! Every claim statement decides a take-over by the rule of [`crate::store::claim_verdict`]: a record is claimed afresh
//! when it is absent or expired, taken over when it is in progress with a lapsed lease and the same fingerprint,
//! and otherwise returned as it is.

use super::table::Table;

/// Inserts a claim; it changes no row when the record exists, which the claim then reads (`READ_SQL`). `ON CONFLICT DO
/// NOTHING` neither locks nor writes the existing row, so replays stay read-only. A fresh key needs this statement
/// alone, as plain as the floor's: returning the existing record from the same statement (a CTE and a `UNION ALL`
/// branch reading it) made claim and completion 15-25% slower than the floor's in pgbench (BENCHMARKS.md), and
/// retries are served read first once they dominate (`ExistingShare`), where an existing record costs one
/// statement either way.
pub(super) const CLAIM_SQL: &str = "
INSERT INTO {table}
    (key_hash, scope_hash, method, route, fingerprint, token, state, locked_until, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, 'in_progress',
        now() + make_interval(secs => $7), now() + make_interval(secs => $8))
ON CONFLICT DO NOTHING";

/// Reads one record: its columns as stored and the statement's `now()`, from which the claim rule
/// ([`crate::store::claim_verdict`]) and expiry are decided in Rust (`rows::ExistingRecord`). The same decisions
/// as SQL expressions cost PostgreSQL about 3.5 us per read, more than half of what the statement costs
/// otherwise; the rule stays atomic, since a take-over is a compare-and-swap on the token (`TAKEOVER_SQL`) that
/// checks it again.
pub(super) const READ_SQL: &str = "
SELECT fingerprint, token, state, locked_until, expires_at, now() AS now, status, header_names, header_values, body
FROM {table}
WHERE key_hash = $1 AND scope_hash = $2 AND method = $3 AND route = $4";

/// Reads a completed, live record's response: what a replay needs and nothing else, filtered in SQL like the floor's
/// read (`examples/bench/floor.rs`). Returning `READ_SQL`'s ten columns and deciding in Rust cost a replay about 7 %
/// against the floor (BENCHMARKS.md). No row means the record is still running, expired or absent, which the full
/// read (`READ_SQL`) then decides: a duplicate of a running request costs two statements on this path. A
/// completed, live record never acquires ([`crate::store::claim_verdict`]), so a row here is the claim's answer as
/// it stands.
pub(super) const REPLAY_SQL: &str = "
SELECT fingerprint, status, header_names, header_values, body
FROM {table}
WHERE key_hash = $1 AND scope_hash = $2 AND method = $3 AND route = $4
  AND state = 'completed' AND expires_at > now()";

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
pub(super) const COMPLETE_SQL: &str = "
UPDATE {table}
SET state = 'completed', locked_until = NULL, completed_at = now(), expires_at = now() + make_interval(secs => $6),
    status = $7, header_names = $8, header_values = $9, body = $10
WHERE key_hash = $1 AND scope_hash = $2 AND method = $3 AND route = $4 AND token = $5
  AND state IN ('in_progress', 'completed')
RETURNING has_waiters";

/// [`COMPLETE_SQL`] through the schema's function (`sql/schema.sql`), whose plan each connection caches.
pub(super) const COMPLETE_FUNCTION_SQL: &str = "
SELECT has_waiters
FROM {schema_prefix}idempotency_records_complete($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) AS completed(has_waiters)";

pub(super) const RELEASE_SQL: &str = "
DELETE FROM {table}
WHERE key_hash = $1 AND scope_hash = $2 AND method = $3 AND route = $4 AND token = $5 AND state = 'in_progress'
RETURNING has_waiters";

/// Wakes the waiters of a record (`on_conflict = "wait"`), after its completion or release.
pub(super) const NOTIFY_SQL: &str = concat!("SELECT pg_notify('", notify_channel!(), "', $1)");

/// The most recent live record of a key in a scope (the primary key's prefix serves it).
pub(super) const LOOKUP_SQL: &str = "
SELECT method, route, state, status, created_at, completed_at,
       greatest(0, (extract(epoch FROM locked_until - now()) * 1000)::bigint) AS lease_remaining_ms
FROM {table}
WHERE key_hash = $1 AND scope_hash = $2
  AND NOT ((state = 'completed' AND expires_at <= now())
           OR (state = 'in_progress' AND locked_until <= now() AND expires_at <= now()))
ORDER BY created_at DESC
LIMIT 1";

pub(super) const HEARTBEAT_SQL: &str = "
UPDATE {table} SET locked_until = now() + make_interval(secs => $6)
WHERE key_hash = $1 AND scope_hash = $2 AND method = $3 AND route = $4 AND token = $5 AND state = 'in_progress'";

/// Asks the record's completion or release to notify; no row means it is no longer in progress.
pub(super) const MARK_WAITED_SQL: &str = "
UPDATE {table} SET has_waiters = true
WHERE key_hash = $1 AND scope_hash = $2 AND method = $3 AND route = $4 AND state = 'in_progress'";

/// One purge batch: deletes the expired records on heap pages `$1 .. $2` (a TID range scan: the pages are read in
/// physical order, where records of the same age sit together, and only the rows deleted are locked); its row
/// count is the batch's. The condition is the one every read applies, checked on the row itself, so a record
/// claimed meanwhile stays. It is its own transaction, so it runs unchanged behind a transaction-mode pooler, and
/// that transaction commits without waiting for its WAL to reach the disk (`synchronous_commit` off for it alone,
/// set by the one-time `set_config`): a purge lost in a crash is only done again, and the batch does not hold the
/// purge for a flush that the claims' commits do anyway. A plain `DELETE`, because counting its rows through a
/// `RETURNING` CTE made a batch cost PostgreSQL about a third more (6.2 against 4.6 ms for 5200 records,
/// docs/bench/purge-lab.txt).
pub(super) const PURGE_SQL: &str = "
DELETE FROM {table}
WHERE ctid >= format('(%s,0)', $1::int8)::tid AND ctid < format('(%s,0)', $2::int8)::tid
  AND ((state = 'completed' AND expires_at <= now())
       OR (state = 'in_progress' AND locked_until <= now() AND expires_at <= now()))
  AND (SELECT set_config('synchronous_commit', 'off', true)) = 'off'";

/// After a purge batch: how many records are left on its pages `$1 .. $2` (with the deleted ones, the records it
/// looked at: the density that sizes the next range), and how many pages the table has now (the sweep's end).
pub(super) const PURGE_RANGE_SQL: &str = "
SELECT (SELECT count(*) FROM {table}
        WHERE ctid >= format('(%s,0)', $1::int8)::tid AND ctid < format('(%s,0)', $2::int8)::tid) AS remaining,
       pg_relation_size('{table_literal}'::regclass) / current_setting('block_size')::int8 AS pages";

/// The claim of a transactional route: lock the record and insert it, in one statement whose row count says
/// whether it was acquired (as plain as a fresh key's insert can be: returning the existing record from the same
/// statement, through CTEs and a join, cost PostgreSQL about 10% more per transaction in pgbench, 5,600-5,800
/// against 6,300 transactions/s). The two variants differ only in how the lock is taken. The lock is keyed by
/// (table, record) so that tables in different schemas of one database never block each other; with it held, no
/// other transaction has an uncommitted row of the record, so `ON CONFLICT` never waits.
macro_rules! claim_in_transaction_sql {
    ($lock:literal) => {
        concat!(
            "INSERT INTO {table}
    (key_hash, scope_hash, method, route, fingerprint, token, state, locked_until, expires_at)
SELECT $1, $2, $3, $4, $5, $6, 'in_progress', now() + make_interval(secs => $7), now() + make_interval(secs => $8)
",
            $lock,
            "
ON CONFLICT DO NOTHING"
        )
    };
}

/// A duplicate of an uncommitted claim does not get the lock and inserts nothing at once (409).
const TRY_CLAIM_SQL: &str =
    claim_in_transaction_sql!("WHERE pg_try_advisory_xact_lock('{table_literal}'::regclass::oid::int, $9)");

/// Wait mode: the lock is waited for, bounded by the transaction's `lock_timeout`.
const WAIT_CLAIM_SQL: &str = claim_in_transaction_sql!(
    "FROM (SELECT pg_advisory_xact_lock('{table_literal}'::regclass::oid::int, $9)) AS waited"
);

/// After a claim that inserted nothing: whether this transaction holds the record's lock (it may take it now, if
/// the transaction that held it ended meanwhile; it holds it already if it waited for it), and the record, read by
/// a new statement that sees every committed row.
const READ_IN_TRANSACTION_SQL: &str = "
SELECT lock.got, r.fingerprint, r.token, r.state, r.locked_until, r.expires_at, now() AS now,
       r.status, r.header_names, r.header_values, r.body
FROM (SELECT pg_try_advisory_xact_lock('{table_literal}'::regclass::oid::int, $5) AS got) AS lock
LEFT JOIN {table} r
    ON lock.got AND r.key_hash = $1 AND r.scope_hash = $2 AND r.method = $3 AND r.route = $4";

/// Every statement of the store, rendered once for its table.
pub(super) struct Statements {
    pub(super) table: Table,
    pub(super) claim: String,
    pub(super) read: String,
    pub(super) replay: String,
    pub(super) takeover: String,
    pub(super) complete: String,
    pub(super) complete_function: String,
    pub(super) release: String,
    pub(super) lookup: String,
    pub(super) heartbeat: String,
    pub(super) mark_waited: String,
    pub(super) purge: String,
    pub(super) purge_range: String,
    pub(super) try_claim_in_transaction: String,
    pub(super) wait_claim_in_transaction: String,
    pub(super) read_in_transaction: String,
    /// The outbox's statements (`crate::outbox`), in the same schema.
    pub(super) outbox: std::sync::Arc<crate::outbox::sql::OutboxStatements>,
}

impl Statements {
    pub(super) fn new(table: Table) -> Self {
        Self {
            claim: table.render(CLAIM_SQL),
            read: table.render(READ_SQL),
            replay: table.render(REPLAY_SQL),
            takeover: table.render(TAKEOVER_SQL),
            complete: table.render(COMPLETE_SQL),
            complete_function: table.render(COMPLETE_FUNCTION_SQL),
            release: table.render(RELEASE_SQL),
            lookup: table.render(LOOKUP_SQL),
            heartbeat: table.render(HEARTBEAT_SQL),
            mark_waited: table.render(MARK_WAITED_SQL),
            purge: table.render(PURGE_SQL),
            purge_range: table.render(PURGE_RANGE_SQL),
            try_claim_in_transaction: table.render(TRY_CLAIM_SQL),
            wait_claim_in_transaction: table.render(WAIT_CLAIM_SQL),
            read_in_transaction: table.render(READ_IN_TRANSACTION_SQL),
            outbox: std::sync::Arc::new(crate::outbox::sql::OutboxStatements::new(&table)),
            table,
        }
    }
}
