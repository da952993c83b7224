//! Deleting expired records in bounded batches: as a function to call from a scheduler, or as a background task.
//!
//! Expiry never depends on the purge (every read checks it); purging only keeps the table small. Each batch looks
//! at a bounded number of records and locks only the rows it deletes, so a purge never stalls claims. A purge that
//! runs beside live traffic also rests between batches ([`PurgePace`]), so that it takes a bounded share of the
//! database's time instead of a whole core.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::{Store, StoreError};

/// The default number of records one purge batch looks at. Each batch is one statement and one commit, whose
/// fixed cost (a round trip, a WAL flush queued behind the claims' own) dominated batches of 1000 on a busy
/// machine: 28 ms each, where a 5000-row batch took 65 ms (BENCHMARKS.md). On PostgreSQL 5000 small records are
/// about 300 heap pages.
pub const DEFAULT_PURGE_BATCH: usize = 5_000;

/// The default rest of a background purge after each batch, in multiples of the batch's own duration.
pub const DEFAULT_PURGE_REST: f64 = 1.0;

/// How hard a purge works: the batch size, and how long it rests after each batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PurgePace {
    /// Records one batch looks at (one statement, its own short transaction).
    pub batch: usize,
    /// After each batch the purge sleeps this many times as long as the batch took: 0 runs flat out, 1 keeps it
    /// busy at most half of the time, 3 a quarter. Measured against the batch's duration, the rest grows by
    /// itself when the database is busy and batches slow down.
    pub rest: f64,
}

impl Default for PurgePace {
    fn default() -> Self {
        Self { batch: DEFAULT_PURGE_BATCH, rest: DEFAULT_PURGE_REST }
    }
}

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

/// Sweeps the whole store once, `batch` records at a time, deleting the expired ones, flat out (an operator's
/// command; beside live traffic prefer [`purge_expired_paced`]).
///
/// # Errors
///
/// The first [`StoreError`] of a batch; the batches before it stay done.
pub async fn purge_expired(store: &dyn Store, batch: usize) -> Result<PurgeReport, StoreError> {
    purge_expired_paced(store, PurgePace { batch, rest: 0.0 }).await
}

/// Sweeps the whole store once, resting after each batch as `pace` says.
pub async fn purge_expired_paced(store: &dyn Store, pace: PurgePace) -> Result<PurgeReport, StoreError> {
    let mut report = PurgeReport::default();
    let rest = if pace.rest.is_finite() { pace.rest.max(0.0) } else { 0.0 };
    loop {
        let started = Instant::now();
        let done = store.purge_batch(pace.batch).await?;
        let took = started.elapsed();
        report.examined += done.examined;
        if done.deleted > 0 {
            metrics::counter!(crate::observe::PURGED).increment(done.deleted as u64);
        }
        report.deleted += done.deleted;
        report.batches += 1;
        if done.pass_complete {
            return Ok(report);
        }
        if rest > 0.0 {
            tokio::time::sleep(took.mul_f64(rest)).await;
        } else {
            // Let claims on this runtime go first between batches.
            tokio::task::yield_now().await;
        }
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

/// Starts a task on the current Tokio runtime that sweeps the store every `every`, `batch` records at a time,
/// resting [`DEFAULT_PURGE_REST`] times each batch's duration after it; failures are logged and retried at the
/// next tick. Keep the returned handle alive for as long as the purge should run.
pub fn spawn_purger(store: Arc<dyn Store>, every: Duration, batch: usize) -> PurgeTask {
    spawn_paced_purger(store, every, PurgePace { batch, ..PurgePace::default() })
}

/// [`spawn_purger`] with a pace of your choice.
pub fn spawn_paced_purger(store: Arc<dyn Store>, every: Duration, pace: PurgePace) -> PurgeTask {
    let handle = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match purge_expired_paced(&*store, pace).await {
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
