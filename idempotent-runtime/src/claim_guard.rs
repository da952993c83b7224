//! Releasing a claim when its request ends without a storable response, including when actix drops the handler
//! future because the client disconnected.

use std::sync::Arc;

use std::time::Duration;

use crate::record::StoredResponse;
use crate::store::{Completion, Lease, Store, StoreError};

/// Owns an acquired claim until it is completed or released. Dropped while still armed (the request future was
/// cancelled), it releases the claim in a background task, so a disconnect frees the key at once instead of after
/// the lease.
pub(crate) struct ClaimGuard {
    store: Arc<dyn Store>,
    lease: Option<Lease>,
}

impl ClaimGuard {
    pub(crate) fn new(store: Arc<dyn Store>, lease: Lease) -> Self {
        Self { store, lease: Some(lease) }
    }

    /// Stores the response under this claim and stops guarding: stored, fenced or failed, this attempt is done
    /// with the record (a failed completion leaves it to its lease).
    pub(crate) async fn complete(mut self, response: &StoredResponse, ttl: Duration) -> Result<Completion, StoreError> {
        let Some(lease) = self.lease.as_ref() else { return Ok(Completion::Fenced) };
        // Still guarded while the completion runs: cancelled mid-way, the claim is released (a no-op if the
        // completion had already landed).
        let completion = self.store.complete(lease, response, ttl).await;
        self.lease = None;
        completion
    }

    /// Releases the claim now; a failure is logged and left to the lease.
    pub(crate) async fn release(mut self) {
        if let Some(lease) = self.lease.take() {
            release_or_log(&*self.store, &lease).await;
        }
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else { return };
        let store = Arc::clone(&self.store);
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

async fn release_or_log(store: &dyn Store, lease: &Lease) {
    if let Err(error) = store.release(lease).await {
        tracing::warn!(
            route = %lease.id.route,
            %error,
            "could not release an idempotency claim; it will be freed when its lease lapses"
        );
    }
}
