//! Releasing a claim when its request ends without a storable response, including when actix drops the handler
//! future because the client disconnected.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::lease::LeaseWatch;
use crate::observe;
use crate::record::StoredResponse;
use crate::store::{Attempt, Completion, Store, StoreError, StoreErrorKind};

/// A completion that failed is tried again at most this many times in all...
const MAX_COMPLETION_ATTEMPTS: u32 = 6;

/// ... after this long, then each time twice as long (50 ms to 1.6 s, 3.1 s in all), and only while the lease
/// surely holds.
const FIRST_COMPLETION_RETRY: Duration = Duration::from_millis(50);

/// Owns an acquired claim until it is completed or released. Dropped while still armed (the request future was
/// cancelled), it releases the claim in a background task, so a disconnect frees the key at once instead of after
/// the lease. It borrows the claim (the common path copies nothing); only that background release copies it.
pub(crate) struct ClaimGuard<'a> {
    store: &'a Arc<dyn Store>,
    lease: &'a Attempt,
    /// The heartbeat's view of the lease (the heartbeat runs while the response is stored).
    watch: &'a LeaseWatch,
    /// Still to be completed or released.
    armed: bool,
}

impl<'a> ClaimGuard<'a> {
    pub(crate) fn new(store: &'a Arc<dyn Store>, lease: &'a Attempt, watch: &'a LeaseWatch) -> Self {
        Self { store, lease, watch, armed: true }
    }

    /// Stores the response under this claim and stops guarding: stored, fenced or failed, this attempt is done
    /// with the record.
    ///
    /// The handler has run: if storing its response failed for good, a retry after the lease would run it again.
    /// So a store failure (unreachable, timed out) is retried with the same token, with backoff, while the
    /// heartbeat still holds the lease: a completion that did land is recognised by its token, and one that
    /// lands after a take-over is fenced. Only a lost lease or the bound gives up (logged by the caller, and
    /// counted in [`observe::ABANDONED_COMPLETIONS`]).
    pub(crate) async fn complete(mut self, response: &StoredResponse, ttl: Duration) -> Result<Completion, StoreError> {
        let lease = self.lease;
        // Still guarded while the completion runs: cancelled mid-way, the claim is released (a no-op if the
        // completion had already landed).
        let mut delay = FIRST_COMPLETION_RETRY;
        let mut attempt = 1;
        let completion = loop {
            let error = match (**self.store).complete(lease, response, ttl).await {
                Ok(completion) => break Ok(completion),
                Err(error) => error,
            };
            let transient = matches!(error.kind(), StoreErrorKind::Unavailable | StoreErrorKind::Timeout);
            let retry_at = Instant::now() + delay;
            if !transient || attempt >= MAX_COMPLETION_ATTEMPTS || !self.watch.holds_at(retry_at) {
                observe::increment(observe::ABANDONED_COMPLETIONS, &lease.id.route);
                let why = if self.watch.is_lost() {
                    "the lease was lost"
                } else if !transient {
                    "the failure is not transient"
                } else if attempt >= MAX_COMPLETION_ATTEMPTS {
                    "the retries are spent"
                } else {
                    "the lease may lapse before the next try"
                };
                tracing::warn!(route = %lease.id.route, %error, attempts = attempt, "storing the response failed; giving up: {why}");
                break Err(error);
            }
            tracing::warn!(route = %lease.id.route, %error, attempt, "storing the response failed; retrying while the lease holds");
            tokio::time::sleep(delay).await;
            delay *= 2;
            attempt += 1;
        };
        self.armed = false;
        completion
    }

    /// Releases the claim now; a failure is logged and left to the lease.
    pub(crate) async fn release(mut self) {
        self.armed = false;
        release_or_log(&**self.store, self.lease).await;
    }
}

impl Drop for ClaimGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (store, lease) = (Arc::clone(self.store), self.lease.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { release_or_log(&*store, &lease).await });
            }
            Err(_) => tracing::warn!(
                route = %lease.id.route,
                "idempotency claim dropped outside a Tokio runtime; it will be freed when its lease lapses"
            ),
        }
    }
}

async fn release_or_log(store: &dyn Store, attempt: &Attempt) {
    if let Err(error) = store.release(attempt).await {
        tracing::warn!(
            route = %attempt.id.route,
            %error,
            "could not release an idempotency claim; it will be freed when its lease lapses"
        );
    }
}
