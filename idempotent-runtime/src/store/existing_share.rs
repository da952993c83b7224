//! Which first step a claim should take: a store that can either write first (the cheapest for a fresh key) or
//! read first (the cheapest for a retry) picks by the recent share of claims that found an existing record.
//! Either way every decision stays atomic; the order only decides what runs first.

use std::sync::atomic::{AtomicU32, Ordering};

/// Fixed-point scale of the share.
const SCALE: u32 = 1_000;

/// Each claim moves the estimate 1/16th of the way towards its outcome.
const WEIGHT: u32 = 16;

/// The recent share of claims that found an existing record, exponentially weighted.
#[derive(Debug, Default)]
pub(crate) struct ExistingShare(AtomicU32);

impl ExistingShare {
    /// Mostly retries lately (a redelivery storm, a client retrying a slow route): read first.
    pub(crate) fn mostly_existing(&self) -> bool {
        self.0.load(Ordering::Relaxed) > SCALE / 2
    }

    /// Counts one claim's outcome.
    pub(crate) fn record(&self, found_existing: bool) {
        let sample = if found_existing { SCALE } else { 0 };
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |share| Some(share - share / WEIGHT + sample / WEIGHT));
    }
}
