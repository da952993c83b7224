//! How long a route's requests usually take, for an honest `Retry-After` on 409 `in-flight`.
//!
//! One exponentially weighted moving average per route (weight 1/8 for each new sample), in microseconds, in an
//! atomic inside the route's `static` options: no lock, no map, no allocation. Concurrent updates may lose a
//! sample to each other; an estimate does not need every sample.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The moving average of one route's request durations.
#[derive(Debug)]
pub(crate) struct UsualDuration {
    /// Microseconds; 0 until the first sample.
    micros: AtomicU64,
}

impl UsualDuration {
    pub(crate) const fn new() -> Self {
        Self { micros: AtomicU64::new(0) }
    }

    /// Adds the duration of one request that ran the handler.
    pub(crate) fn record(&self, took: Duration) {
        let sample = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let average = self.micros.load(Ordering::Relaxed);
        let next = if average == 0 { sample } else { average - average / 8 + sample / 8 };
        self.micros.store(next.max(1), Ordering::Relaxed);
    }

    /// When a duplicate should come back: the route's usual duration, at least 1 second (a 0 invites a hot retry
    /// loop) and never more than the original's remaining lease (it is taken over, or gone, by then). Before the
    /// first sample, 1 second.
    pub(crate) fn retry_after(&self, lease_remaining: Duration) -> Duration {
        let usual = Duration::from_micros(self.micros.load(Ordering::Relaxed));
        usual.min(lease_remaining).max(Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_route_bounded_by_one_second_and_the_lease() {
        let usual = UsualDuration::new();
        let lease = Duration::from_secs(30);
        assert_eq!(usual.retry_after(lease), Duration::from_secs(1), "no sample yet");
        usual.record(Duration::from_millis(800));
        assert_eq!(usual.retry_after(lease), Duration::from_secs(1), "at least 1 s");
        for _ in 0..64 {
            usual.record(Duration::from_secs(6));
        }
        let estimate = usual.retry_after(lease);
        assert!(estimate > Duration::from_millis(5_900) && estimate <= Duration::from_secs(6), "{estimate:?}");
        assert_eq!(usual.retry_after(Duration::from_secs(2)), Duration::from_secs(2), "capped by the lease");
        assert_eq!(usual.retry_after(Duration::ZERO), Duration::from_secs(1), "a lapsed lease: retry in 1 s");
    }

    #[test]
    fn one_outlier_moves_the_average_by_an_eighth() {
        let usual = UsualDuration::new();
        usual.record(Duration::from_secs(2));
        usual.record(Duration::from_secs(10));
        assert_eq!(usual.retry_after(Duration::from_secs(60)), Duration::from_secs(3));
    }
}
