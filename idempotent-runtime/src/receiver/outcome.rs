//! A receiver's answers from the core's outcomes: the decision on an existing record as a value or an error, and
//! the settling of its claim after the work (shared by the plain and the transactional receiver).

use actix_web::http::StatusCode;
use actix_web::web::Bytes;

use super::{ReceiveError, Received};
use crate::attempt::{self, Existing, Held, Kept};
use crate::record::StoredResponse;
use crate::record_id::RecordId;
use crate::store::{ClaimRequest, StoreError, StoreErrorKind};

/// How a `run` result is stored: as the bytes it is.
pub(crate) fn as_bytes(bytes: &Bytes) -> Result<Bytes, serde_json::Error> {
    Ok(bytes.clone())
}

/// How a `run_json` result is stored: as JSON.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<Bytes, serde_json::Error> {
    serde_json::to_vec(value).map(Bytes::from)
}

/// How a stored `run_json` result is read back.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(bytes: Bytes) -> Result<T, serde_json::Error> {
    serde_json::from_slice(&bytes)
}

/// Settles a receiver's claim after its work: a panic, an `Err` or a result that does not serialize abandons it
/// (the panic resumes in the caller), an `Ok` result is kept under the core's completion rules.
pub(crate) async fn settle<H: Held, T, E>(
    held: H,
    outcome: std::thread::Result<Result<T, E>>,
    encode: impl FnOnce(&T) -> Result<Bytes, serde_json::Error>,
    namespace: &str,
) -> Result<Received<T>, ReceiveError<E>> {
    let value = match outcome {
        Err(panic) => {
            tracing::error!(%namespace, "the receiver's work panicked; claim released, resuming the panic");
            held.abandon().await;
            std::panic::resume_unwind(panic);
        }
        Ok(Err(error)) => {
            held.abandon().await;
            return Err(ReceiveError::Failed(error));
        }
        Ok(Ok(value)) => value,
    };
    let bytes = match encode(&value) {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::error!(%namespace, %error, "the receiver's result does not serialize; claim released");
            held.abandon().await;
            return Err(ReceiveError::Json(error));
        }
    };
    let stored = StoredResponse { status: StatusCode::OK, headers: Vec::new(), body: Some(bytes) };
    match attempt::keep(held, &stored).await {
        Kept::Stored => {}
        Kept::Fenced => tracing::warn!(
            %namespace,
            "this attempt lost its receiver claim to a newer one; its result was not stored"
        ),
        // Nothing was committed (or, on a timeout, nobody knows): the message must not be acknowledged. A
        // redelivery finds out which: the stored result, or a fresh run on a free key.
        Kept::Aborted(error) => {
            tracing::warn!(%namespace, %error, "the receiver's work returned Ok but its own SQL failed; nothing was committed");
            return Err(ReceiveError::StoreUnavailable(error));
        }
        Kept::NotCommitted(error) => {
            tracing::error!(%namespace, %error, "idempotency store failed; the receiver's result was not committed");
            return Err(ReceiveError::StoreUnavailable(error));
        }
        // The work is done: its result goes to the caller, who acknowledges the message. The claim stays until
        // its lease lapses, then a redelivery runs again (at-least-once for this rare case).
        Kept::Unstored(error) => tracing::error!(
            %namespace,
            %error,
            "could not store the receiver's result; the key stays claimed until its lease lapses"
        ),
    }
    Ok(Received { result: value, replayed: false })
}

/// The answer to a delivery whose key has a live record it does not own: key reused (checked first, as over
/// HTTP), the stored result, or in flight.
pub(crate) fn answer_existing<T, E>(
    existing: Existing,
    claim: &ClaimRequest,
    decode: impl FnOnce(Bytes) -> Result<T, serde_json::Error>,
) -> Result<Received<T>, ReceiveError<E>> {
    match existing {
        Existing::KeyReused => Err(ReceiveError::KeyReused),
        Existing::InFlight { lease_remaining } => Err(ReceiveError::InFlight { retry_after: lease_remaining }),
        Existing::Completed(StoredResponse { body: Some(bytes), .. }) => {
            decode(bytes).map(|result| Received { result, replayed: true }).map_err(ReceiveError::Json)
        }
        // Receiver results have no cap, so only something else writing under the receiver's scope gets here.
        Existing::Completed(StoredResponse { body: None, .. }) => Err(store_failed(
            &claim.id,
            StoreError::new(StoreErrorKind::Corrupt, "a completed receiver record has no stored result"),
        )),
    }
}

pub(crate) fn store_failed<E>(id: &RecordId, error: StoreError) -> ReceiveError<E> {
    tracing::error!(namespace = %id.route, %error, "idempotency store failed; the receiver's work did not run");
    ReceiveError::StoreUnavailable(error)
}
