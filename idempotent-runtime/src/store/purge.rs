//! Deleting expired records in bounded batches: as a function to call from a scheduler, or as a background task.
//!
//! Expiry never depends on the purge (every read checks it); purging only keeps the table small. Each batch looks
//! at a bounded number of records and locks only the rows it deletes, so a purge never stalls claims. A purge that
//! runs beside live traffic also rests between batches ([`PurgePace`]), so that it takes a bounded share of the
//! database's time instead of a whole core.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::{Store, StoreError};

/// The default number of records one purge batch looks at. Each batch is one statement and one commit. On
/// PostgreSQL 2000 small records are about 75 heap pages, whose WAL (some 500 KB after a checkpoint, mostly the
/// pages' first images) the claims committing meanwhile flush with their own: batches of 5000 wrote about 1.5 MB
/// at once, and each claim that committed behind one waited for the disk to take it. Batches of 1000 spent more of
/// their time on what every batch costs (a statement, a commit, the rest's timer) than on deleting (BENCHMARKS.md,
/// the purge under a fixed claim rate).
pub const DEFAULT_PURGE_BATCH: usize = 2_000;

/// The default rest of a background purge after each batch, in multiples of the batch's own duration: at most
/// two thirds of the purge's time is spent in batches. The cap ([`DEFAULT_PURGE_MAX_DELETES_PER_SECOND`]) is what
/// paces it on a database that deletes fast; this bounds it on one that is busy.
pub const DEFAULT_PURGE_REST: f64 = 0.5;

/// The default cap of a background purge: expired records deleted a second, on average over each batch and its
/// rest. Each deleted record costs the database's disk about its share of a heap page and of that page's WAL, so an
/// uncapped purge on a fast database writes as fast as the disk takes it, and the claims' commits queue behind it.
/// 150,000 a second is far above the rate at which one PostgreSQL server can create records to expire.
pub const DEFAULT_PURGE_MAX_DELETES_PER_SECOND: u32 = 150_000;

/// How hard a purge works: the batch size, how long it rests after each batch, and the most it deletes a second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PurgePace {
    /// Records one batch looks at (one statement, its own short transaction).
    pub batch: usize,
    /// After each batch the purge sleeps at least this many times as long as the batch took: 0 runs flat out, 1
    /// keeps it busy at most half of the time, 3 a quarter. Measured against the batch's duration, the rest grows
    /// by itself when the database is busy and batches slow down.
    pub rest: f64,
    /// At most this many expired records deleted a second, on average over each batch and its rest: after a batch
    /// that deleted `n` records the next one starts no sooner than `n / max` seconds after it began. `None` (and
    /// `Some(0)`, which no purge could keep): only `rest` bounds the pace.
    pub max_deletes_per_second: Option<u32>,
}

impl Default for PurgePace {
    fn default() -> Self {
        Self {
            batch: DEFAULT_PURGE_BATCH,
            rest: DEFAULT_PURGE_REST,
            max_deletes_per_second: Some(DEFAULT_PURGE_MAX_DELETES_PER_SECOND),
        }
    }
}

impl PurgePace {
    /// No rest and no cap: batches of `batch` records back to back, as fast as the database answers (an operator's
    /// purge, [`purge_expired`]).
    #[must_use]
    pub fn flat_out(batch: usize) -> Self {
        Self { batch, rest: 0.0, max_deletes_per_second: None }
    }

    /// How long the purge rests after a batch that took `took` and deleted `deleted` records: the longer of the
    /// `rest` multiple of `took` and what is left of the cap's time for `deleted` records.
    #[must_use]
    pub fn rest_after(&self, took: Duration, deleted: usize) -> Duration {
        // Any pace is accepted, so no product may panic: one past `Duration`'s range rests as long as it can.
        let seconds = |value: f64| Duration::try_from_secs_f64(value).unwrap_or(Duration::MAX);
        let by_duration = if self.rest.is_finite() && self.rest > 0.0 {
            seconds(took.as_secs_f64() * self.rest)
        } else {
            Duration::ZERO
        };
        let by_cap = match self.max_deletes_per_second {
            Some(max) if max > 0 => seconds(deleted as f64 / f64::from(max)).saturating_sub(took),
            _ => Duration::ZERO,
        };
        by_duration.max(by_cap)
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
    purge_expired_paced(store, PurgePace::flat_out(batch)).await
}

/// Sweeps the whole store once, resting after each batch as `pace` says ([`PurgePace::rest_after`]).
pub async fn purge_expired_paced(store: &dyn Store, pace: PurgePace) -> Result<PurgeReport, StoreError> {
    let mut report = PurgeReport::default();
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
        let rest = pace.rest_after(took, done.deleted);
        if !rest.is_zero() {
            tokio::time::sleep(rest).await;
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

/// Starts a task on the current Tokio runtime that sweeps the store every `every`, `batch` records at a time, at
/// the default pace otherwise (resting [`DEFAULT_PURGE_REST`] times each batch's duration after it, deleting at
/// most [`DEFAULT_PURGE_MAX_DELETES_PER_SECOND`] records a second); failures are logged and retried at the next
/// tick. Keep the returned handle alive for as long as the purge should run.
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

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_batch_that_deleted_little_rests_its_duration_times_rest() {
        let pace = PurgePace { batch: 1_000, rest: 2.0, max_deletes_per_second: Some(100_000) };
        assert_eq!(pace.rest_after(3 * MS, 10), 6 * MS);
    }

    #[test]
    fn a_batch_that_deleted_many_fast_waits_out_the_caps_time() {
        let pace = PurgePace { batch: 1_000, rest: 1.0, max_deletes_per_second: Some(100_000) };
        // 1000 records at 100,000 a second take 10 ms: the batch took 2 of them.
        assert_eq!(pace.rest_after(2 * MS, 1_000), 8 * MS);
    }

    #[test]
    fn a_slow_batch_is_not_rushed_by_the_cap() {
        let pace = PurgePace { batch: 1_000, rest: 0.0, max_deletes_per_second: Some(100_000) };
        assert_eq!(pace.rest_after(15 * MS, 1_000), Duration::ZERO);
    }

    #[test]
    fn a_pace_past_durations_range_rests_as_long_as_it_can_without_panicking() {
        let pace = PurgePace { batch: 1_000, rest: 1e300, max_deletes_per_second: Some(1) };
        assert_eq!(pace.rest_after(Duration::from_secs(1), usize::MAX), Duration::MAX);
        let capped = PurgePace { rest: 0.0, ..pace };
        assert!(capped.rest_after(Duration::ZERO, usize::MAX) > Duration::from_secs(u64::from(u32::MAX)));
    }

    #[test]
    fn a_cap_of_zero_is_no_cap() {
        let pace = PurgePace { batch: 1_000, rest: 0.0, max_deletes_per_second: Some(0) };
        assert_eq!(pace.rest_after(MS, 1_000), Duration::ZERO);
    }

    #[test]
    fn flat_out_never_rests() {
        assert_eq!(PurgePace::flat_out(1_000).rest_after(5 * MS, 1_000_000), Duration::ZERO);
    }

    #[test]
    fn the_default_pace_caps_deletes() {
        let pace = PurgePace::default();
        let per_second = DEFAULT_PURGE_MAX_DELETES_PER_SECOND as usize;
        assert_eq!(pace.rest_after(Duration::ZERO, per_second / 10), Duration::from_millis(100));
    }
}
