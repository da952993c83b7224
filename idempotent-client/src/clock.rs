//! Time as the middleware sees it: injectable, so retry timing is tested exactly instead of slept through.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A future the middleware awaits between attempts.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The middleware's source of time: a monotonic clock for its budget, wall time for `Retry-After` dates, and a
/// sleep between attempts.
pub trait Clock: Send + Sync + 'static {
    /// Monotonic now, for the total-time budget.
    fn now(&self) -> Instant;
    /// Wall time, to turn a `Retry-After` HTTP date into a delay.
    fn system_now(&self) -> SystemTime;
    /// Waits `duration`.
    fn sleep(&self, duration: Duration) -> Sleep;
}

/// Real time: the system clocks and `tokio::time::sleep` (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn system_now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock for tests: sleeping returns at once, advances the clock by the requested time, and is recorded, so
/// a test asserts the exact delays the middleware chose.
///
/// ```
/// use std::time::Duration;
/// use idempotent_client::{Clock, ManualClock};
///
/// # tokio_test_block_on(async {
/// let clock = ManualClock::new();
/// let start = clock.now();
/// clock.sleep(Duration::from_secs(3)).await;
/// assert_eq!(clock.now() - start, Duration::from_secs(3));
/// assert_eq!(clock.sleeps(), [Duration::from_secs(3)]);
/// # });
/// # fn tokio_test_block_on(future: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    state: Arc<Mutex<ManualState>>,
}

#[derive(Debug)]
struct ManualState {
    start: Instant,
    /// A whole second, so that `Retry-After` dates (whole seconds) convert to exact delays.
    start_wall: SystemTime,
    elapsed: Duration,
    sleeps: Vec<Duration>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock at the current wall time, rounded down to a whole second.
    pub fn new() -> Self {
        let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
        let state = ManualState {
            start: Instant::now(),
            start_wall: UNIX_EPOCH + Duration::from_secs(seconds),
            elapsed: Duration::ZERO,
            sleeps: Vec::new(),
        };
        Self { state: Arc::new(Mutex::new(state)) }
    }

    /// Every sleep so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.state().sleeps.clone()
    }

    /// Moves time forward without a sleep (time spent elsewhere, e.g. in a slow request).
    pub fn advance(&self, duration: Duration) {
        self.state().elapsed += duration;
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ManualState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        let state = self.state();
        state.start + state.elapsed
    }

    fn system_now(&self) -> SystemTime {
        let state = self.state();
        state.start_wall + state.elapsed
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        let mut state = self.state();
        state.elapsed += duration;
        state.sleeps.push(duration);
        Box::pin(std::future::ready(()))
    }
}
