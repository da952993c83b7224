//! A store that stops answering: it cannot time itself out, so the runtime bounds every call it makes. The case
//! wraps the store under test in one that hangs until told otherwise, as a frozen node or a lost network does.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use async_trait::async_trait;

use crate::digest::Digest;
use crate::record::{KeyStatus, Record, StoredResponse};
use crate::record_id::RecordId;
use crate::store::{
    Attempt, Claim, ClaimRequest, Completion, LeaseState, PurgeBatch, Store, StoreError, StoreErrorKind,
};
use crate::{ReceiveError, Receiver};

/// The runtime's bound in this case: short, so the case is quick.
const TIMEOUT: Duration = Duration::from_millis(200);

/// Rule: a store that stops answering is answered by the runtime's timeout (here a receiver's
/// [`ReceiveError::StoreUnavailable`] of kind `Timeout`; over HTTP a 503 with `Retry-After`), within that timeout,
/// and the work does not run. Once the store answers again, the same key runs, once.
pub async fn a_store_that_stops_answering_is_bounded_by_the_runtimes_timeout(store: Arc<dyn Store>) {
    let stalled = Arc::new(Stalled { inner: store, hanging: AtomicBool::new(true) });
    let receiver = Receiver::new(Arc::clone(&stalled) as Arc<dyn Store>).store_timeout(TIMEOUT);
    let namespace = format!("kit-stalled-{}", fastrand::u64(..));
    let runs = std::sync::atomic::AtomicUsize::new(0);
    let work = || async {
        runs.fetch_add(1, Ordering::SeqCst);
        Ok::<_, Infallible>(Bytes::from_static(b"done"))
    };

    let started = Instant::now();
    match receiver.run(&namespace, "key", b"payload", work).await {
        Err(ReceiveError::StoreUnavailable(error)) if error.kind() == StoreErrorKind::Timeout => {}
        other => panic!("a store that does not answer must be answered by the runtime's timeout, got {other:?}"),
    }
    let elapsed = started.elapsed();
    assert!(elapsed < TIMEOUT * 5, "the runtime's {TIMEOUT:?} bound took {elapsed:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 0, "the work ran although its claim never answered");

    stalled.hanging.store(false, Ordering::SeqCst);
    let received = receiver.run(&namespace, "key", b"payload", work).await.expect("the store answers again");
    assert!(!received.replayed, "nothing was stored while the store hung");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the key runs once the store answers");
}

/// The store under test, hanging on every call while `hanging` is set.
struct Stalled {
    inner: Arc<dyn Store>,
    hanging: AtomicBool,
}

impl Stalled {
    async fn hang_while_set(&self) {
        if self.hanging.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }
}

#[async_trait]
impl Store for Stalled {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        self.hang_while_set().await;
        self.inner.claim(request).await
    }

    async fn heartbeat(&self, attempt: &Attempt, duration: Duration) -> Result<LeaseState, StoreError> {
        self.hang_while_set().await;
        self.inner.heartbeat(attempt, duration).await
    }

    async fn complete(
        &self,
        attempt: &Attempt,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<Completion, StoreError> {
        self.hang_while_set().await;
        self.inner.complete(attempt, response, ttl).await
    }

    async fn release(&self, attempt: &Attempt) -> Result<(), StoreError> {
        self.hang_while_set().await;
        self.inner.release(attempt).await
    }

    async fn read(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        self.hang_while_set().await;
        self.inner.read(id).await
    }

    async fn lookup(&self, scope_hash: &Digest, key_hash: &Digest) -> Result<Option<KeyStatus>, StoreError> {
        self.hang_while_set().await;
        self.inner.lookup(scope_hash, key_hash).await
    }

    async fn wait(&self, id: &RecordId, timeout: Duration) -> Result<(), StoreError> {
        self.hang_while_set().await;
        self.inner.wait(id, timeout).await
    }

    async fn purge_batch(&self, limit: usize) -> Result<PurgeBatch, StoreError> {
        self.hang_while_set().await;
        self.inner.purge_batch(limit).await
    }
}
