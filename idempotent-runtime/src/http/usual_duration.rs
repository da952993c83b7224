//! How long a route's requests usually take, for an honest `Retry-After` on 409 `in-flight`.
//!
//! One exponentially weighted moving average per route (weight 1/8 for each new sample), in microseconds, in an
//! atomic. Concurrent updates may lose a sample to each other; an estimate does not need every sample.
//!
//! The averages live in the app's settings, one per route pattern ([`UsualDurations`]), not in a `static` beside
//! each route: the macro's route options are then a constant with nothing mutable in it, which costs the binary
//! no symbol and no writable data per route (BENCHMARKS.md, "Build cost per route"). The price is one map lookup
//! under a read lock per request that runs its handler or answers 409.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

/// At most this many routes get an average of their own; later ones share one. Patterns are few, but a route
/// without one is known by its path, which the client chooses: the map must not grow with them.
const MOST_ROUTES: usize = 4096;

/// Each route's [`UsualDuration`], by route pattern, for one app.
#[derive(Debug, Default)]
pub(crate) struct UsualDurations {
    by_route: RwLock<HashMap<Box<str>, UsualDuration>>,
    /// Shared by the routes past [`MOST_ROUTES`].
    overflow: UsualDuration,
}

impl UsualDurations {
    /// Adds the duration of one of `route`'s requests that ran the handler.
    pub(crate) fn record(&self, route: &str, took: Duration) {
        self.with(route, |usual| usual.record(took));
    }

    /// [`UsualDuration::retry_after`] for `route`.
    pub(crate) fn retry_after(&self, route: &str, lease_remaining: Duration) -> Duration {
        self.with(route, |usual| usual.retry_after(lease_remaining))
    }

    /// Runs `f` on `route`'s average, created on its first use; the common case is a read lock and a lookup.
    fn with<T>(&self, route: &str, f: impl FnOnce(&UsualDuration) -> T) -> T {
        if let Some(usual) = self.by_route.read().unwrap_or_else(PoisonError::into_inner).get(route) {
            return f(usual);
        }
        let mut by_route = self.by_route.write().unwrap_or_else(PoisonError::into_inner);
        if by_route.len() >= MOST_ROUTES && !by_route.contains_key(route) {
            return f(&self.overflow);
        }
        f(by_route.entry(route.into()).or_default())
    }
}

/// The moving average of one route's request durations.
#[derive(Debug, Default)]
pub(crate) struct UsualDuration {
    /// Microseconds; 0 until the first sample.
    micros: AtomicU64,
}

impl UsualDuration {
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
        let usual = UsualDuration::default();
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
    fn each_route_has_its_own_average_and_the_map_stops_growing() {
        let durations = UsualDurations::default();
        durations.record("/slow", Duration::from_secs(6));
        let lease = Duration::from_secs(30);
        assert_eq!(durations.retry_after("/slow", lease), Duration::from_secs(6));
        assert_eq!(durations.retry_after("/fast", lease), Duration::from_secs(1), "another route: no sample");
        for n in 0..MOST_ROUTES {
            durations.retry_after(&format!("/r{n}"), lease);
        }
        durations.record("/past-the-cap-1", Duration::from_secs(4));
        assert_eq!(durations.retry_after("/past-the-cap-2", lease), Duration::from_secs(4), "shared past the cap");
        assert_eq!(durations.retry_after("/slow", lease), Duration::from_secs(6), "earlier routes keep theirs");
    }

    #[test]
    fn one_outlier_moves_the_average_by_an_eighth() {
        let usual = UsualDuration::default();
        usual.record(Duration::from_secs(2));
        usual.record(Duration::from_secs(10));
        assert_eq!(usual.retry_after(Duration::from_secs(60)), Duration::from_secs(3));
    }
}
