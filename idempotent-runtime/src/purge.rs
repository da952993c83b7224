//! Deleting expired records in bounded batches: as a function to call from a scheduler, or as a background task.
//!
//! Expiry never depends on the purge (every read checks it); purging only keeps the table small. Each batch looks
//! at a bounded number of records and locks only the rows it deletes, so a purge never stalls claims.

use std::sync::Arc;
use std::time::Duration;

use crate::store::{Store, StoreError};

/// The default number of records one purge batch looks at.
pub const DEFAULT_PURGE_BATCH: usize = 1_000;

/// What a full purge pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Records looked at.
    pub examined: usize,
    /// Expired records deleted.
    pub deleted: usize,
    /// Batches (statements) it took.
    pub batches: usize,
}

/// Sweeps the whole store once, `batch` records at a time, deleting the expired ones.
///
/// # Errors
///
/// The first [`StoreError`] of a batch; the batches before it stay done.
pub async fn purge_expired(store: &dyn Store, batch: usize) -> Result<PurgeReport, StoreError> {
    let mut report = PurgeReport::default();
    loop {
        let done = store.purge_batch(batch).await?;
        report.examined += done.examined;
        if done.deleted > 0 {
            metrics::counter!(crate::observe::PURGED).increment(done.deleted as u64);
        }
        report.deleted += done.deleted;
        report.batches += 1;
        if done.pass_complete {
            return Ok(report);
        }
        // Let claims on this runtime go first between batches.
        tokio::task::yield_now().await;
    }
}

/// A background purge; dropping it (or calling [`PurgeTask::stop`]) stops it.
#[derive(Debug)]
pub struct PurgeTask {
    handle: tokio::task::JoinHandle<()>,
}

impl PurgeTask {
    /// Stops the purge.
    pub fn stop(self) {}
}

impl Drop for PurgeTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Starts a task on the current Tokio runtime that runs [`purge_expired`] every `every`; failures are logged and
/// retried at the next tick. Keep the returned handle alive for as long as the purge should run.
pub fn spawn_purger(store: Arc<dyn Store>, every: Duration, batch: usize) -> PurgeTask {
    let handle = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match purge_expired(&*store, batch).await {
                Ok(report) if report.deleted > 0 => {
                    tracing::info!(
                        deleted = report.deleted,
                        examined = report.examined,
                        "purged expired idempotency records"
                    );
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "idempotency purge failed; retrying at the next tick"),
            }
        }
    });
    PurgeTask { handle }
}
