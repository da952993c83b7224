//! Transactional routes on PostgreSQL: the claim is made inside a transaction the handler then writes through.
//!
//! A duplicate must not sit blocked on the uncommitted claim row (an `INSERT ... ON CONFLICT` would wait for the
//! other transaction), so each claim first takes a transaction-scoped advisory lock on the record: a duplicate
//! that cannot get it is in flight (409 at once), or, in wait mode, waits for it under `lock_timeout` and then
//! finds the committed record. `BEGIN` and the claim are pipelined, as are the response's `UPDATE` and `COMMIT`,
//! so a transactional route costs the same two round trips of latency as any other.
//!
//! Everything here is transaction-scoped (the advisory lock, `SET LOCAL lock_timeout`) and every statement is
//! unnamed, so a transaction-mode pooler may hand each transaction to any backend.

use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use super::PostgresStore;
use super::TransactionConnection;
use super::claim_transaction::{PostgresTransaction, rollback};
use super::rows::{ClaimParams, ExistingRecord};
use super::sql::Statements;
use super::statement::{self, Param, StatementMode};
use crate::store::{Attempt, ClaimRequest, StoreError, StoreErrorKind};
use crate::store::{OpenTransaction, TransactionalClaim, TransactionalStore};

#[async_trait]
impl TransactionalStore for PostgresStore {
    async fn claim_in_transaction(
        &self,
        request: &ClaimRequest,
        wait: Option<Duration>,
    ) -> Result<TransactionalClaim, StoreError> {
        let mode = self.statement_mode().binding_arguments();
        match self.claim_in_transaction_in(mode, request, wait).await {
            // A named statement that met a pooler without statement tracking aborted only this transaction, before
            // the handler ran: the claim starts again, the pooler-safe way the store has switched to.
            Err(error) if self.switched_by(mode, error.sqlstate()) => {
                self.claim_in_transaction_in(self.statement_mode().binding_arguments(), request, wait).await
            }
            // One whose plan a migration made stale (dropped from the connection's cache by then): this claim starts
            // again unnamed, which no stale plan can refuse (behind a tracking pooler the backend's stale statement
            // may outlive the cache), and the next ones prepare the statement afresh.
            Err(error) if mode == StatementMode::Prepared && error.sqlstate() == Some("0A000") => {
                self.claim_in_transaction_in(StatementMode::Unnamed, request, wait).await
            }
            outcome => outcome,
        }
    }
}

impl PostgresStore {
    /// One transactional claim, its statements sent in `mode`.
    async fn claim_in_transaction_in(
        &self,
        mode: StatementMode,
        request: &ClaimRequest,
        wait: Option<Duration>,
    ) -> Result<TransactionalClaim, StoreError> {
        let deadline = tokio::time::Instant::now() + self.timeout() + wait.unwrap_or_default();
        // From `BEGIN` on, the connection is owned by a guard: if this future is dropped mid-claim (a cancelled
        // request), the connection is closed rather than pooled inside the open transaction.
        let connection = TransactionConnection::new(self.connection(deadline).await?);
        let claiming = TransactionalClaimRun { statements: self.statements(), mode };
        let step = match tokio::time::timeout_at(deadline, claiming.claim(&connection, request, wait)).await {
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
            Step::Acquired => Ok(TransactionalClaim::Acquired(OpenTransaction::new(PostgresTransaction::new(
                connection,
                Attempt { id: request.id.clone(), token: request.token },
                self.clone(),
            )))),
            // This transaction holds the key's lock: it ends before the answer, or a request sent right after the
            // answer (a retry of a replay, a reused key) would find the lock still held and be told "in flight".
            Step::Existing(record) => {
                rollback(connection).await;
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

/// What a transactional claim runs its statements with.
struct TransactionalClaimRun<'a> {
    statements: &'a Statements,
    mode: StatementMode,
}

impl TransactionalClaimRun<'_> {
    async fn claim(
        &self,
        client: &deadpool_postgres::Client,
        request: &ClaimRequest,
        wait: Option<Duration>,
    ) -> Result<Step, StoreError> {
        let id = &request.id;
        // Advisory locks are per database: the table's oid (first key) keeps two schemas' records apart, and 32
        // bits of the record's digest (second key) name the record. A rare collision only makes a duplicate wait
        // or 409.
        let lock_key = i32::from_be_bytes(id.digest()[..4].try_into().unwrap_or_default());
        let claiming = ClaimParams::new(request);
        let [p1, p2, p3, p4, p5, p6, p7, p8] = claiming.params();
        let params: [Param<'_>; 9] = [p1, p2, p3, p4, p5, p6, p7, p8, (&lock_key, Type::INT4)];
        let begin = match wait {
            // SET LOCAL takes no parameters; the value is an integer we format ourselves. It ends with the
            // transaction, so it leaves nothing on a pooled backend.
            Some(wait) => format!("BEGIN; SET LOCAL lock_timeout = '{}ms'", wait.as_millis().max(1)),
            None => "BEGIN".to_owned(),
        };
        let statements = self.statements;
        let sql =
            if wait.is_some() { &statements.wait_claim_in_transaction } else { &statements.try_claim_in_transaction };
        let (begun, claimed) = futures_util::future::join(
            client.batch_execute(&begin),
            statement::execute_in(client, self.mode, sql, &params),
        )
        .await;
        begun.map_err(failed)?;
        match claimed {
            Ok(1) => return Ok(Step::Acquired),
            Ok(_) => {}
            Err(error) if error.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => return Ok(Step::Busy),
            Err(error) => return Err(failed(error)),
        }
        // Nothing inserted: the lock is another transaction's, or the record exists.
        let [p1, p2, p3, p4, ..] = params.clone();
        let read_params = [p1, p2, p3, p4, (&lock_key, Type::INT4)];
        let rows = statement::query_in(client, self.mode, &statements.read_in_transaction, &read_params)
            .await
            .map_err(failed)?;
        let row = rows.first().ok_or_else(|| failed_message("the read returned no row"))?;
        if !row.try_get::<_, bool>("got").map_err(decode)? {
            return Ok(Step::Busy);
        }
        if row.try_get::<_, Option<&[u8]>>("fingerprint").map_err(decode)?.is_none() {
            // Deleted meanwhile (released): the lock is ours, so inserting now cannot conflict.
            return self.claim_again(client, &params).await;
        }
        let existing = ExistingRecord::from_row(row)?;
        if existing.verdict(&request.fingerprint).acquires() {
            let taken = statement::execute_in(
                client,
                self.mode,
                &statements.takeover,
                &claiming.takeover_params(&existing.token),
            )
            .await
            .map_err(failed)?;
            return Ok(if taken == 1 { Step::Acquired } else { Step::Busy });
        }
        Ok(Step::Existing(existing.into_record(row)?))
    }

    /// Inserts the claim under the lock already held (the record was released between the claim and the read).
    async fn claim_again(
        &self,
        client: &deadpool_postgres::Client,
        params: &[Param<'_>; 9],
    ) -> Result<Step, StoreError> {
        let inserted = statement::execute_in(client, self.mode, &self.statements.try_claim_in_transaction, params)
            .await
            .map_err(failed)?;
        Ok(if inserted == 1 { Step::Acquired } else { Step::Busy })
    }
}

fn failed(error: tokio_postgres::Error) -> StoreError {
    statement::failed(StoreErrorKind::Unavailable, error)
}

fn failed_message(message: &'static str) -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, message)
}

fn decode(error: tokio_postgres::Error) -> StoreError {
    statement::failed(StoreErrorKind::Corrupt, error)
}
