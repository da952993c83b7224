//! Transactional routes on PostgreSQL: the claim is made inside a transaction the handler then writes through.
//!
//! A duplicate must not sit blocked on the uncommitted claim row (an `INSERT ... ON CONFLICT` would wait for the
//! other transaction), so each claim first takes a transaction-scoped advisory lock on the record: a duplicate
//! that cannot get it is in flight (409 at once), or, in wait mode, waits for it under `lock_timeout` and then
//! finds the committed record. `BEGIN` and the claim are pipelined, as are the response's `UPDATE` and `COMMIT`,
//! so a transactional route costs the same two round trips of latency as any other.

use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::postgres::{Claiming, PostgresStore, READ_SQL, TAKEOVER_SQL, record_from_row};
use super::transactional::{OpenTransaction, TransactionalClaim, TransactionalStore, rollback};
use super::{ClaimRequest, Lease, StoreError, StoreErrorKind, TransactionConnection};

/// The claim of a transactional route: lock, insert, or return the existing record, in one statement. The two
/// variants differ only in how the lock is taken. The lock is keyed by (table, record) so that tables in
/// different schemas of one database never block each other.
macro_rules! claim_in_transaction_sql {
    ($lock:literal) => {
        concat!(
            "WITH lock AS (", $lock, "),
inserted AS (
    INSERT INTO idempotency_records
        (key_hash, scope_hash, method, route, fingerprint, token, state, locked_until, expires_at)
    SELECT $1, $2, $3, $4, $5, $6, 'in_progress',
           now() + make_interval(secs => $7), now() + make_interval(secs => $8)
    FROM lock WHERE got
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT lock.got, EXISTS (SELECT 1 FROM inserted) AS acquired, r.fingerprint, r.token, r.state,
       greatest(0, (extract(epoch FROM r.locked_until - now()) * 1000)::bigint) AS lease_remaining_ms,
       (r.state = 'completed' AND r.expires_at <= now())
           OR (r.state = 'in_progress' AND r.locked_until <= now() AND (r.fingerprint = $5 OR r.expires_at <= now()))
           AS takeover,
       r.status, r.header_names, r.header_values, r.body
FROM lock
LEFT JOIN idempotency_records r
    ON lock.got AND NOT EXISTS (SELECT 1 FROM inserted)
   AND r.key_hash = $1 AND r.scope_hash = $2 AND r.method = $3 AND r.route = $4"
        )
    };
}

/// A duplicate of an uncommitted claim gets `got = false` at once (409).
const TRY_CLAIM_SQL: &str =
    claim_in_transaction_sql!("SELECT pg_try_advisory_xact_lock('idempotency_records'::regclass::oid::int, $9) AS got");

/// Wait mode: the lock is waited for, bounded by the transaction's `lock_timeout`.
const WAIT_CLAIM_SQL: &str = claim_in_transaction_sql!(
    "SELECT true AS got FROM (SELECT pg_advisory_xact_lock('idempotency_records'::regclass::oid::int, $9)) AS waited"
);

#[async_trait]
impl TransactionalStore for PostgresStore {
    async fn claim_in_transaction(
        &self,
        request: &ClaimRequest,
        wait: Option<Duration>,
    ) -> Result<TransactionalClaim, StoreError> {
        let deadline = tokio::time::Instant::now() + self.timeout() + wait.unwrap_or_default();
        // From `BEGIN` on, the connection is owned by a guard: if this future is dropped mid-claim (a cancelled
        // request), the connection is closed rather than pooled inside the open transaction.
        let connection = TransactionConnection::new(self.connection(deadline).await?);
        let step = match tokio::time::timeout_at(deadline, claim(&connection, request, wait)).await {
            Ok(Ok(step)) => step,
            Ok(Err(error)) => {
                rollback(connection).await;
                return Err(error);
            }
            // The transaction's state is unknown: `connection` is closed when dropped here.
            Err(_) => {
                return Err(StoreError::new(StoreErrorKind::Timeout, "the transactional claim did not finish in time"));
            }
        };
        match step {
            Step::Acquired => Ok(TransactionalClaim::Acquired(OpenTransaction::new(
                connection,
                Lease { id: request.id.clone(), token: request.token },
                self.timeout(),
            ))),
            Step::Existing(record) => {
                tokio::spawn(rollback(connection));
                Ok(TransactionalClaim::Existing(record))
            }
            Step::Busy => {
                tokio::spawn(rollback(connection));
                Ok(TransactionalClaim::Busy)
            }
        }
    }
}

enum Step {
    Acquired,
    Existing(crate::record::Record),
    Busy,
}

async fn claim(
    client: &deadpool_postgres::Client,
    request: &ClaimRequest,
    wait: Option<Duration>,
) -> Result<Step, StoreError> {
    let id = &request.id;
    // Advisory locks are per database: the table's oid (first key) keeps two schemas' records apart, and 32 bits
    // of the record's digest (second key) name the record. A rare collision only makes a duplicate wait or 409.
    let lock_key = i32::from_be_bytes(id.digest()[..4].try_into().unwrap_or_default());
    let claiming = Claiming::new(request);
    let [p1, p2, p3, p4, p5, p6, p7, p8] = claiming.params();
    let params: [&(dyn ToSql + Sync); 9] = [p1, p2, p3, p4, p5, p6, p7, p8, &lock_key];
    let begin = match wait {
        // SET LOCAL takes no parameters; the value is an integer we format ourselves.
        Some(wait) => format!("BEGIN; SET LOCAL lock_timeout = '{}ms'", wait.as_millis().max(1)),
        None => "BEGIN".to_owned(),
    };
    let sql = if wait.is_some() { WAIT_CLAIM_SQL } else { TRY_CLAIM_SQL };
    let statement = client.prepare_cached(sql).await.map_err(failed)?;
    let (begun, claimed) =
        futures_util::future::join(client.batch_execute(&begin), client.query(&statement, &params)).await;
    begun.map_err(failed)?;
    let rows = match claimed {
        Ok(rows) => rows,
        Err(error) if error.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => return Ok(Step::Busy),
        Err(error) => return Err(failed(error)),
    };
    let row = rows.first().ok_or_else(|| failed_message("the claim returned no row"))?;
    if !row.try_get::<_, bool>("got").map_err(decode)? {
        return Ok(Step::Busy);
    }
    if row.try_get::<_, bool>("acquired").map_err(decode)? {
        return Ok(Step::Acquired);
    }
    // The record exists. Its row may be invisible to the claim's snapshot (committed while this statement waited
    // for the lock): then read it with a new statement, which sees every committed row.
    let row = if row.try_get::<_, Option<Vec<u8>>>("fingerprint").map_err(decode)?.is_some() {
        row.clone()
    } else {
        let read = client.prepare_cached(READ_SQL).await.map_err(failed)?;
        let rows = client.query(&read, &params[..5]).await.map_err(failed)?;
        match rows.into_iter().next() {
            Some(row) => row,
            // Deleted meanwhile (released): the lock is ours, so inserting now cannot conflict.
            None => return claim_again(client, &params).await,
        }
    };
    if row.try_get::<_, bool>("takeover").map_err(decode)? {
        let current: i64 = row.try_get("token").map_err(decode)?;
        let takeover = client.prepare_cached(TAKEOVER_SQL).await.map_err(failed)?;
        let takeover_params: [&(dyn ToSql + Sync); 9] =
            [params[0], params[1], params[2], params[3], params[4], params[5], params[6], params[7], &current];
        let taken = client.execute(&takeover, &takeover_params).await.map_err(failed)?;
        return Ok(if taken == 1 { Step::Acquired } else { Step::Busy });
    }
    Ok(Step::Existing(record_from_row(&row)?))
}

/// Inserts the claim under the lock already held (the record was released between the claim and the read).
async fn claim_again(
    client: &deadpool_postgres::Client,
    params: &[&(dyn ToSql + Sync); 9],
) -> Result<Step, StoreError> {
    let statement = client.prepare_cached(TRY_CLAIM_SQL).await.map_err(failed)?;
    let rows = client.query(&statement, params).await.map_err(failed)?;
    let acquired = rows.first().map(|row| row.try_get::<_, bool>("acquired")).transpose().map_err(decode)?;
    Ok(if acquired == Some(true) { Step::Acquired } else { Step::Busy })
}

fn failed(error: tokio_postgres::Error) -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, error)
}

fn failed_message(message: &'static str) -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, message)
}

fn decode(error: tokio_postgres::Error) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, error)
}
