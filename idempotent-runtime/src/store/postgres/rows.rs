//! Statement parameters and row decoding shared by the plain and the transactional claim, and the transactional
//! completion.

use std::time::{Duration, SystemTime};

use tokio_postgres::Row;
use tokio_postgres::types::Type;

use super::PostgresStore;
use super::sql::NOTIFY_SQL;
use super::statement::{self, Param, failed};
use crate::digest::Digest;
use crate::record::{Record, RecordState, StoredResponse};
use crate::record_id::RecordId;
use crate::store::{
    Attempt, ClaimRequest, ClaimVerdict, StoreError, StoreErrorKind, StoredClaim, StoredClaimState, claim_verdict,
};

/// Stores the response in the transaction that claimed the record and commits it, pipelined: the `COMMIT` is
/// sent without waiting for the `UPDATE`'s answer (if the `UPDATE` failed, the aborted transaction rolls back).
/// The `UPDATE` is unnamed: a statement prepared (and cached) inside one transaction would be missing in the next
/// transaction of a pooler, which may run on another backend.
pub(crate) async fn complete_and_commit(
    store: &PostgresStore,
    client: &deadpool_postgres::Client,
    attempt: &Attempt,
    response: &StoredResponse,
    ttl: Duration,
) -> Result<(), StoreError> {
    let completing = CompleteParams::new(attempt, response, ttl);
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
    let mode = store.settled_mode().binding_arguments();
    let complete = &store.statements().complete;
    // The completion and the COMMIT go out together, in that order: a named statement not yet prepared on this
    // connection is prepared first, or its `Parse` would go before the COMMIT and its `Bind` after it.
    statement::prepare_ahead(client, mode, complete, &params).await.map_err(in_aborted_transaction)?;
    let (stored, committed) = futures_util::future::join(
        statement::query_in(client, mode, complete, &params),
        client.batch_execute("COMMIT"),
    )
    .await;
    let stored = stored.map_err(|error| {
        // Inside the transaction it cannot be sent again; the store switches for the next ones.
        store.switched_by(mode, statement::sqlstate(&error));
        in_aborted_transaction(error)
    })?;
    committed.map_err(query_failed)?;
    let row = stored.first().ok_or_else(|| corrupt("the claimed record vanished inside its own transaction"))?;
    if row.try_get::<_, bool>("has_waiters").map_err(decode_failed)? {
        let digest = crate::store::postgres::notify_payload(&attempt.id);
        if let Err(error) =
            statement::execute_in(client, store.settled_mode(), NOTIFY_SQL, &[(&digest, Type::TEXT)]).await
        {
            tracing::warn!(error = %query_failed(error), "could not wake the waiters of a completed record; they find out at their next look");
        }
    }
    Ok(())
}

/// The parameters `$1` to `$8` of every claim statement, shared by the plain and the transactional claim.
pub(super) struct ClaimParams<'a> {
    request: &'a ClaimRequest,
    lease_secs: f64,
    ttl_secs: f64,
}

impl<'a> ClaimParams<'a> {
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
pub(super) struct CompleteParams<'a> {
    lease: &'a Attempt,
    status: i16,
    names: Vec<&'a str>,
    values: Vec<&'a [u8]>,
    body: Option<&'a [u8]>,
    ttl_secs: f64,
}

impl<'a> CompleteParams<'a> {
    pub(super) fn new(lease: &'a Attempt, response: &'a StoredResponse, ttl: Duration) -> Self {
        Self {
            lease,
            status: i16::try_from(response.status.as_u16()).unwrap_or(i16::MAX),
            names: response.headers.iter().map(|(name, _)| name.as_str()).collect(),
            values: response.headers.iter().map(|(_, value)| value.as_bytes()).collect(),
            body: response.body.as_deref(),
            ttl_secs: ttl.as_secs_f64(),
        }
    }

    pub(super) fn params(&self) -> [Param<'_>; 10] {
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

/// A record as the read and the transactional claim return it: its columns as stored and the statement's
/// `now()`, which decide the claim rule and expiry here rather than in SQL.
pub(super) struct ExistingRecord {
    fingerprint: Digest,
    /// The token of the attempt that holds it, which a take-over must present.
    pub(super) token: i64,
    completed: bool,
    /// The lease's end while in progress.
    locked_until: Option<SystemTime>,
    expires_at: SystemTime,
    /// The server's clock when the statement ran.
    now: SystemTime,
}

impl ExistingRecord {
    pub(super) fn from_row(row: &Row) -> Result<Self, StoreError> {
        let fingerprint: &[u8] = row.try_get("fingerprint").map_err(decode_failed)?;
        let fingerprint: Digest = fingerprint.try_into().map_err(|_| corrupt("the fingerprint is not 32 bytes"))?;
        let completed = match row.try_get::<_, &str>("state").map_err(decode_failed)? {
            "in_progress" => false,
            "completed" => true,
            other => return Err(corrupt(format!("unknown state {other:?}"))),
        };
        Ok(Self {
            fingerprint,
            token: row.try_get("token").map_err(decode_failed)?,
            completed,
            locked_until: row.try_get("locked_until").map_err(decode_failed)?,
            expires_at: row.try_get("expires_at").map_err(decode_failed)?,
            now: row.try_get("now").map_err(decode_failed)?,
        })
    }

    fn stored(&self) -> StoredClaim<'_, SystemTime> {
        let state = match (self.completed, self.locked_until) {
            (false, Some(lease_until)) => StoredClaimState::InProgress { lease_until },
            // A running record without a lease end cannot be written by the store; it reads as lapsed.
            (false, None) => StoredClaimState::InProgress { lease_until: SystemTime::UNIX_EPOCH },
            (true, _) => StoredClaimState::Completed,
        };
        StoredClaim { fingerprint: &self.fingerprint, state, expires_at: self.expires_at }
    }

    /// What a claim with `fingerprint` makes of this record ([`claim_verdict`]).
    pub(super) fn verdict(&self, fingerprint: &Digest) -> ClaimVerdict<SystemTime> {
        claim_verdict(Some(&self.stored()), fingerprint, self.now)
    }

    /// Whether the record is gone for every purpose.
    pub(super) fn is_expired(&self) -> bool {
        self.stored().is_expired(self.now)
    }

    /// The record, with its response read from `row` when it is completed.
    pub(super) fn into_record(self, row: &Row) -> Result<Record, StoreError> {
        let state = if self.completed {
            RecordState::Completed(stored_response(row)?)
        } else {
            let lease_end = self.locked_until.unwrap_or(self.now);
            RecordState::InProgress { lease_remaining: lease_end.duration_since(self.now).unwrap_or(Duration::ZERO) }
        };
        Ok(Record { fingerprint: self.fingerprint, state })
    }
}

/// A completed record as the replay read returns it (`REPLAY_SQL`): its fingerprint and response.
pub(super) fn completed_record(row: &Row) -> Result<Record, StoreError> {
    let fingerprint: &[u8] = row.try_get("fingerprint").map_err(decode_failed)?;
    let fingerprint: Digest = fingerprint.try_into().map_err(|_| corrupt("the fingerprint is not 32 bytes"))?;
    Ok(Record { fingerprint, state: RecordState::Completed(stored_response(row)?) })
}

/// The stored response of a completed record's row.
fn stored_response(row: &Row) -> Result<StoredResponse, StoreError> {
    let status: i16 = row.try_get("status").map_err(decode_failed)?;
    let names: Vec<&str> = row.try_get("header_names").map_err(decode_failed)?;
    let values: Vec<&[u8]> = row.try_get("header_values").map_err(decode_failed)?;
    let body: Option<Vec<u8>> = row.try_get("body").map_err(decode_failed)?;
    StoredResponse::from_parts(i64::from(status), &names, &values, body.map(Into::into))
        .map_err(|error| corrupt(error.0))
}

pub(super) fn query_failed(error: tokio_postgres::Error) -> StoreError {
    failed(StoreErrorKind::Unavailable, error)
}

pub(super) fn decode_failed(error: tokio_postgres::Error) -> StoreError {
    failed(StoreErrorKind::Corrupt, error)
}

pub(super) fn corrupt(message: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, message.into())
}

/// `$1` to `$4`: a record's primary key.
pub(super) fn id_params(id: &RecordId) -> [Param<'_>; 4] {
    [(&id.key_hash, Type::BYTEA), (&id.scope_hash, Type::BYTEA), (&id.method, Type::TEXT), (&id.route, Type::TEXT)]
}
