//! Waiting by looking: the default [`super::Store::wait`] for a store without notifications, and PostgreSQL's
//! fallback when it has no listening connection.

use std::time::Duration;

use tokio::time::Instant;

use super::{Store, StoreError};
use crate::record::{Record, RecordState};
use crate::record_id::RecordId;

/// The first look after this long, then each interval twice the last, up to [`MAX_WAIT_POLL_INTERVAL`].
const FIRST_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The longest a polling waiter sleeps between two looks: the bound on how late it learns of a completion.
pub const MAX_WAIT_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Sleeps, then reads the record, until it is no longer in progress under a live lease (completed, released,
/// expired, or its lease lapsed so that the waiter may take it over) or `deadline` passes. The caller has just
/// seen the record in progress, so the first look comes after the first interval.
pub(crate) async fn poll_until_settled<S: Store + ?Sized>(
    store: &S,
    id: &RecordId,
    deadline: Instant,
) -> Result<(), StoreError> {
    let mut interval = FIRST_POLL_INTERVAL;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(());
        }
        tokio::time::sleep_until(deadline.min(now + interval)).await;
        if settled(store, id).await? {
            return Ok(());
        }
        interval = (interval * 2).min(MAX_WAIT_POLL_INTERVAL);
    }
}

/// Whether the record is no longer in progress under a live lease (completed, released, expired, or its lease
/// lapsed so that the waiter may take it over).
pub(crate) async fn settled<S: Store + ?Sized>(store: &S, id: &RecordId) -> Result<bool, StoreError> {
    Ok(match store.read(id).await? {
        Some(Record { state: RecordState::InProgress { lease_remaining }, .. }) => lease_remaining.is_zero(),
        _ => true,
    })
}
