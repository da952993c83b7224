//! Keeping an attempt's lease alive while its work runs, shared by every caller that runs work under a claim.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use futures_util::future::{self, Either};

use crate::store::{Lease, LeaseState, Store};

/// Runs `work` while a heartbeat renews `lease` for `duration` every third of it, so a slow attempt's claim is not
/// taken over while it is alive. The heartbeat stops when `work` completes (or this future is dropped). Without a
/// lease `work` simply runs.
pub(crate) async fn with_heartbeat<F: Future>(
    store: &dyn Store,
    lease: Option<&Lease>,
    duration: Duration,
    work: F,
) -> F::Output {
    match lease {
        Some(lease) => {
            let heartbeat = keep_lease(store, lease, duration);
            match future::select(pin!(work), pin!(heartbeat)).await {
                Either::Left((outcome, _)) => outcome,
                Either::Right((never, _)) => match never {},
            }
        }
        None => work.await,
    }
}

/// Renews the lease every third of its length for as long as it is polled. Never completes.
async fn keep_lease(store: &dyn Store, lease: &Lease, duration: Duration) -> Infallible {
    let period = (duration / 3).max(Duration::from_millis(100));
    let mut held = true;
    loop {
        tokio::time::sleep(period).await;
        if !held {
            continue;
        }
        match store.heartbeat(lease, duration).await {
            Ok(LeaseState::Held) => {}
            Ok(LeaseState::Lost) => {
                held = false;
                tracing::warn!(route = %lease.id.route, "idempotency lease lost to another attempt; this attempt's response will not be stored");
            }
            Err(error) => tracing::warn!(route = %lease.id.route, %error, "idempotency lease renewal failed; retrying"),
        }
    }
}
