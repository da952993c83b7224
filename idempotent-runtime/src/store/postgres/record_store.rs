//! [`Store`] on PostgreSQL: each operation is one atomic statement on the table (see [`super::sql`]), and waiters
//! are woken by notification or poll.

use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::Row;
use tokio_postgres::types::Type;

use super::listener::Listener;
use super::rows::{ClaimParams, CompleteParams, ExistingRecord, completed_record, corrupt, decode_failed, id_params};
use super::sql::*;
use super::statement::{Param, StatementMode};
use super::{FirstStatement, LISTENING_SAFETY_POLL, MAX_CLAIM_ATTEMPTS, PostgresStore, lock};
use crate::digest::Digest;
use crate::record::{KeyState, KeyStatus, Record, StoredResponse};
use crate::record_id::RecordId;
use crate::store::{
    Attempt, Claim, ClaimRequest, Completion, LeaseState, PurgeBatch, Store, StoreError, StoreErrorKind,
    TransactionalStore,
};

/// SQLSTATEs that say the schema's completion function cannot be called: it does not exist (`42883`, a table
/// created by an older `sql/schema.sql`), or this role may not execute it (`42501`). The plain `UPDATE` then
/// stores the response; if the role lacks a privilege on the table too, that statement fails with the same answer.
const COMPLETION_FUNCTION_UNUSABLE: [&str; 2] = ["42883", "42501"];

impl PostgresStore {
    /// Claims by inserting or by reading first; each step that finds nothing conclusive moves to the other.
    async fn claim_from(&self, request: &ClaimRequest, first: FirstStatement) -> Result<Claim, StoreError> {
        let claiming = ClaimParams::new(request);
        let params = claiming.params();
        let mut step = first;
        for _ in 0..MAX_CLAIM_ATTEMPTS {
            if let FirstStatement::Insert = step {
                // The insert changes a row only when the key was free; otherwise the record exists: read it.
                if self.execute(&self.statements.claim, &params).await? == 1 {
                    return Ok(Claim::Acquired { took_over: false });
                }
                step = FirstStatement::Read;
                continue;
            }
            if let FirstStatement::Replay = step {
                let rows = self.query(&self.statements.replay, &params[..4]).await?;
                if let Some(row) = rows.first() {
                    return Ok(Claim::Existing(completed_record(row)?));
                }
                // Still running (a duplicate of a slow request), expired or absent: the full read decides, and an
                // insert follows only if there is no record at all.
                step = FirstStatement::Read;
                continue;
            }
            let rows = self.query(&self.statements.read, &params[..4]).await?;
            let Some(row) = rows.first() else {
                // No record (or it vanished since): insert.
                step = FirstStatement::Insert;
                continue;
            };
            let existing = ExistingRecord::from_row(row)?;
            if existing.verdict(&request.fingerprint).acquires() {
                if self.execute(&self.statements.takeover, &claiming.takeover_params(&existing.token)).await? == 1 {
                    return Ok(Claim::Acquired { took_over: true });
                }
                // Another request took it over first, or its owner finished: look again (a released record reads
                // as absent, and the next step inserts).
                continue;
            }
            return Ok(Claim::Existing(existing.into_record(row)?));
        }
        Err(StoreError::new(
            StoreErrorKind::Unavailable,
            format!("the claim did not settle after {MAX_CLAIM_ATTEMPTS} attempts under contention"),
        ))
    }

    /// Stores a response. Its arguments are bound: the response must not travel in a statement's text
    /// (`StatementMode::binding_arguments`). A bound statement is planned on every call unless it is prepared per
    /// connection, which only [`StatementMode::Prepared`] may do; the other modes call the schema's completion
    /// function, whose plan each connection caches, or, where it cannot be called
    /// ([`COMPLETION_FUNCTION_UNUSABLE`]), run the plain `UPDATE` and say so once.
    async fn completion_rows(&self, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        if self.settled_mode() != StatementMode::Prepared && !self.completion_function_unusable.load(Ordering::Relaxed)
        {
            match self.query_binding_arguments(&self.statements.complete_function, params).await {
                Err(error) if error.sqlstate().is_some_and(|code| COMPLETION_FUNCTION_UNUSABLE.contains(&code)) => {
                    if !self.completion_function_unusable.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            %error,
                            "the idempotency table's completion function cannot be called: completions run as a \
                             plain UPDATE, planned each time; apply sql/schema.sql again (or call \
                             PostgresStore::migrate()), grant EXECUTE on it, and restart to use it"
                        );
                    }
                }
                rows => return rows,
            }
        }
        self.query_binding_arguments(&self.statements.complete, params).await
    }

    /// Wakes the waiters of a record; a failure only makes them wait until their next look.
    async fn notify(&self, id: &RecordId) {
        let digest = crate::store::postgres::notify_payload(id);
        if let Err(error) = self.execute(NOTIFY_SQL, &[(&digest, Type::TEXT)]).await {
            tracing::warn!(%error, "could not wake the waiters of a record; they find out at their next look");
        }
    }

    pub(super) fn timed_out(&self, doing: &str) -> StoreError {
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
            match crate::store::settled(self, id).await {
                Ok(false) => {}
                settled => return Some(settled.map(|_| ())),
            }
        }
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        // Mostly retries lately (a redelivery storm, a client retrying a slow route): read a completed record's
        // response first, a replay's one statement. Mostly fresh keys (the usual case): insert first, the only
        // statement a fresh key needs. Either way every decision is atomic; the order only decides what runs first.
        let first = if self.existing_share.mostly_existing() { FirstStatement::Replay } else { FirstStatement::Insert };
        let claim = self.claim_from(request, first).await?;
        self.existing_share.record(matches!(claim, Claim::Existing(_)));
        Ok(claim)
    }

    async fn complete(
        &self,
        attempt: &Attempt,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<Completion, StoreError> {
        let completing = CompleteParams::new(attempt, response, ttl);
        let rows = self.completion_rows(&completing.params()).await?;
        let Some(row) = rows.first() else { return Ok(Completion::Fenced) };
        if row.try_get::<_, bool>("has_waiters").map_err(decode_failed)? {
            self.notify(&attempt.id).await;
        }
        Ok(Completion::Stored)
    }

    async fn heartbeat(&self, attempt: &Attempt, duration: Duration) -> Result<LeaseState, StoreError> {
        let [p1, p2, p3, p4] = id_params(&attempt.id);
        let secs = duration.as_secs_f64();
        let params = [p1, p2, p3, p4, (&attempt.token, Type::INT8), (&secs, Type::FLOAT8)];
        let renewed = self.execute(&self.statements.heartbeat, &params).await?;
        Ok(if renewed == 1 { LeaseState::Held } else { LeaseState::Lost })
    }

    async fn release(&self, attempt: &Attempt) -> Result<(), StoreError> {
        let [p1, p2, p3, p4] = id_params(&attempt.id);
        let rows = self.query(&self.statements.release, &[p1, p2, p3, p4, (&attempt.token, Type::INT8)]).await?;
        if rows.iter().any(|row| row.try_get::<_, bool>("has_waiters").unwrap_or(false)) {
            self.notify(&attempt.id).await;
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
        crate::store::poll_until_settled(self, id, deadline).await
    }

    fn transactional(&self) -> Option<&dyn TransactionalStore> {
        Some(self)
    }

    /// Sweeps the heap in page ranges sized to hold about `limit` records: deletes a range's expired records
    /// (`PURGE_SQL`), then counts what is left on its pages (`PURGE_RANGE_SQL`). The pass is complete when a range
    /// reaches the table's last page.
    async fn purge_batch(&self, limit: usize) -> Result<PurgeBatch, StoreError> {
        let range = lock(&self.purge_cursor).next_range(u64::try_from(limit).unwrap_or(u64::MAX));
        let as_param = |page: u64| i64::try_from(page).unwrap_or(i64::MAX);
        let (first, end) = (as_param(range.first), as_param(range.end));
        let params: [Param<'_>; 2] = [(&first, Type::INT8), (&end, Type::INT8)];
        let deleted = self.execute(&self.statements.purge, &params).await?;
        let rows = self.query(&self.statements.purge_range, &params).await?;
        let row = rows.first().ok_or_else(|| corrupt("the purge's range statement returned no row"))?;
        let count = |column: &str| -> Result<u64, StoreError> {
            let value: i64 = row.try_get(column).map_err(decode_failed)?;
            Ok(u64::try_from(value).unwrap_or(0))
        };
        let (remaining, table_pages) = (count("remaining")?, count("pages")?);
        let examined = remaining.saturating_add(deleted);
        let pass_complete = lock(&self.purge_cursor).advance(range, examined, table_pages);
        let size = |value: u64| usize::try_from(value).unwrap_or(usize::MAX);
        Ok(PurgeBatch { examined: size(examined), deleted: size(deleted), pass_complete })
    }

    async fn read(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        let rows = self.query(&self.statements.read, &id_params(id)).await?;
        let Some(row) = rows.first() else { return Ok(None) };
        let existing = ExistingRecord::from_row(row)?;
        if existing.is_expired() { Ok(None) } else { Ok(Some(existing.into_record(row)?)) }
    }
}
