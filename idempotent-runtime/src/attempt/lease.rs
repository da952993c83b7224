//! Keeping a live worker's claim: a heartbeat renews the lease while the work runs, so a slow handler (or
//! closure) is never taken over while it is alive. Only a dead worker's lease lapses.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::{self, Either};

use crate::observe;
use crate::store::{Attempt, LeaseState, Store};

/// What the heartbeat knows of a lease, for the completion's retries: until when it surely holds, or that it is
/// lost (another attempt took the record over).
#[derive(Debug)]
pub(crate) struct LeaseWatch {
    /// `None` once the lease is known lost; else the end of the last renewal the store confirmed.
    held_until: Mutex<Option<Instant>>,
}

impl LeaseWatch {
    /// A lease just claimed for `duration`.
    pub(crate) fn claimed(duration: Duration) -> Self {
        Self { held_until: Mutex::new(Instant::now().checked_add(duration)) }
    }

    /// Whether the lease surely still holds at `instant`.
    pub(crate) fn holds_at(&self, instant: Instant) -> bool {
        lock(&self.held_until).is_some_and(|until| instant < until)
    }

    /// Whether the heartbeat found the lease lost.
    pub(crate) fn is_lost(&self) -> bool {
        lock(&self.held_until).is_none()
    }

    fn renewed(&self, since: Instant, duration: Duration) {
        let mut held_until = lock(&self.held_until);
        if held_until.is_some() {
            *held_until = since.checked_add(duration);
        }
    }

    fn lost(&self) {
        *lock(&self.held_until) = None;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs the work `start` begins while renewing `lease` every third of `duration`; the heartbeat stops with the
/// work, and tells `watch` what it learns.
///
/// It takes the work's constructor, not the work: an `async fn` keeps each argument for its whole life, so a
/// future passed in and then pinned would be stored twice (2.6 KB more in every request's future).
pub(crate) async fn while_renewing<T, Work: Future<Output = T>>(
    store: &dyn Store,
    attempt: &Attempt,
    duration: Duration,
    watch: &LeaseWatch,
    start: impl FnOnce() -> Work,
) -> T {
    match future::select(pin!(start()), pin!(keep_lease(store, attempt, duration, watch))).await {
        Either::Left((done, _)) => done,
        Either::Right((never, _)) => match never {},
    }
}

/// Renews the lease every third of its length for as long as it is polled. Never completes.
async fn keep_lease(store: &dyn Store, attempt: &Attempt, duration: Duration, watch: &LeaseWatch) -> Infallible {
    let period = (duration / 3).max(Duration::from_millis(100));
    let mut held = true;
    loop {
        tokio::time::sleep(period).await;
        if !held {
            continue;
        }
        let since = Instant::now();
        match observe::timed("heartbeat", store.heartbeat(attempt, duration)).await {
            Ok(LeaseState::Held) => watch.renewed(since, duration),
            Ok(LeaseState::Lost) => {
                held = false;
                watch.lost();
                tracing::warn!(
                    route = %attempt.id.route,
                    "idempotency lease lost to another attempt; this attempt's response will not be stored"
                );
            }
            Err(error) => {
                observe::increment(observe::STORE_ERRORS, &attempt.id.route);
                tracing::warn!(route = %attempt.id.route, %error, "idempotency lease renewal failed; retrying");
            }
        }
    }
}
