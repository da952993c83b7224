//! The claim / complete / replay core without HTTP: run a closure once per key from any async code, e.g. a message
//! consumer with at-least-once delivery, and hand its stored result to every redelivery.
//!
//! ```
//! use std::time::Duration;
//! use idempotent_runtime::{MemoryStore, Receiver};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let receiver = Receiver::new(MemoryStore::new()).on_conflict_wait(Duration::from_secs(10));
//! let (id, payload) = ("message-17", br#"{"amount": 1000}"#);
//! for _delivery in 0..2 {
//!     let outcome = receiver
//!         .run("orders-consumer", id, payload, || async {
//!             // apply the message: runs once per id
//!             Ok::<_, std::io::Error>(b"ledger entry 1".to_vec())
//!         })
//!         .await?;
//!     assert_eq!(&outcome.result[..], b"ledger entry 1"); // the second delivery has `outcome.replayed == true`
//! }
//! # Ok::<_, idempotent_runtime::ReceiveError<std::io::Error>>(())
//! # }).unwrap();
//! ```
//!
//! The semantics are those of an `#[idempotent]` route ([the contract, section 4][contract]), with a message's key
//! for the `Idempotency-Key` and its payload for the request:
//!
//! | situation | [`Receiver::run`] answers | the record |
//! |---|---|---|
//! | first delivery of a key | runs the closure; `Ok` with `replayed: false` | the `Ok` result is stored for the ttl |
//! | redelivery, same payload | `Ok` with the stored result, `replayed: true`; the closure does not run | - |
//! | same key, different payload | [`ReceiveError::KeyReused`]; the closure does not run | - |
//! | same key while the first runs | [`ReceiveError::InFlight`], or with [`Receiver::on_conflict_wait`] waits (no polling) for the first to finish, then replays it (or runs, if it failed) | - |
//! | the closure returns `Err` | [`ReceiveError::Failed`] with the error | released: a redelivery runs again |
//! | the closure panics | the panic resumes in the caller | released first |
//! | the future is dropped (cancelled) mid-closure | - | released at once, in a background task |
//! | the store fails or times out | [`ReceiveError::StoreUnavailable`]; the closure does **not** run | - |
//! | the store fails when the result is stored | `Ok` with the result (the work is done: acknowledge the message) | stays claimed until its lease lapses; a redelivery after that runs again |
//! | the process dies mid-closure | - | a redelivery takes the key over once the lease lapses |
//!
//! While the closure runs, a heartbeat renews the lease every third of its length (the same heartbeat as HTTP
//! handlers), so a slow closure is never taken over while its process is alive.
//!
//! # Record identity
//!
//! Receiver records live in the same store as HTTP records, in a namespace of their own: scope
//! `SHA-256("receiver", namespace)` (no HTTP scope hashes to it), key `SHA-256(key)`, method `RECEIVE`, route
//! `namespace` (stored in clear, as route patterns are: operator tools show it), fingerprint `SHA-256(payload)`.
//! The raw key and payload are never stored. The result is stored as a response with status 200, no headers and
//! the result bytes as body; there is no size cap (PostgreSQL's `bytea` holds up to 1 GB), so keep results small:
//! an id or a receipt rather than a document.
//!
//! [contract]: https://github.com/idempotent-rs/idempotent/blob/main/docs/contract.md#4-outcomes

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use futures_util::FutureExt as _;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::attempt::{self, BoundedStore, Claimed, DEFAULT_LEASE, DEFAULT_STORE_TIMEOUT, DEFAULT_TTL, Lease};
use crate::record_id::{RecordId, payload_fingerprint, receiver_record_id};
use crate::store::{ClaimRequest, Store, StoreError};

mod outcome;
#[cfg(feature = "postgres")]
pub mod transactional;

pub(crate) use self::outcome::{answer_existing, as_bytes, from_json, settle, store_failed, to_json};
#[cfg(feature = "postgres")]
use self::transactional::{NotTransactional, TransactionalReceiver};
pub use crate::record_id::RECEIVE_METHOD;

/// Runs closures once per (namespace, key) and replays their stored results; see the [module](self) docs.
///
/// Cheap to clone (the store is shared): clone it into each consumer task.
#[derive(Clone)]
pub struct Receiver {
    store: Arc<dyn Store>,
    /// `store` as the receiver calls it: every operation bounded by `store_timeout` (kept in step by the setter,
    /// so that a delivery allocates nothing for it).
    calls: Arc<dyn Store>,
    ttl: Duration,
    lease: Duration,
    wait: Option<Duration>,
    store_timeout: Duration,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("ttl", &self.ttl)
            .field("lease", &self.lease)
            .field("wait", &self.wait)
            .field("store_timeout", &self.store_timeout)
            .finish_non_exhaustive()
    }
}

/// What [`Receiver::run`] hands back: the result of the key's one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received<T = Bytes> {
    /// The closure's `Ok` result: from this call's run, or as stored by the first run.
    pub result: T,
    /// True when the closure did not run in this call and `result` is the stored one (a redelivery).
    pub replayed: bool,
}

/// Why [`Receiver::run`] has no result. `E` is the closure's error type.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReceiveError<E> {
    /// The closure ran and returned this error. The claim was released: a redelivery runs the closure again.
    Failed(E),
    /// The key was already used with a different payload (within the ttl). The closure did not run; a
    /// redelivery will get the same answer. Usually a producer bug: two messages share an id.
    KeyReused,
    /// Another delivery of the key is running the closure right now (in this process or another). The closure
    /// did not run here; redeliver later. `retry_after` is what remains of the running attempt's lease: if its
    /// process died, a redelivery after that takes over.
    InFlight {
        /// The running attempt's remaining lease.
        retry_after: Duration,
    },
    /// The store failed, timed out, holds a record that does not decode, or cannot wait
    /// ([`StoreError::kind`] says which). The closure did not run.
    StoreUnavailable(StoreError),
    /// [`Receiver::run_json`] only: the closure's result did not serialize (the closure ran, its result was not
    /// stored, the claim was released), or a stored result does not deserialize as the requested type.
    Json(serde_json::Error),
}

impl<E: std::fmt::Display> std::fmt::Display for ReceiveError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed(error) => write!(f, "the receiver's work failed: {error}"),
            Self::KeyReused => f.write_str("this key was already used with a different payload"),
            Self::InFlight { retry_after } => {
                write!(f, "this key is being processed by another delivery; retry after {retry_after:?}")
            }
            Self::StoreUnavailable(error) => write!(f, "{error}; the work did not run"),
            Self::Json(error) => write!(f, "the receiver's result is not valid JSON for its type: {error}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ReceiveError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Failed(error) => Some(error),
            Self::StoreUnavailable(error) => Some(error),
            Self::Json(error) => Some(error),
            Self::KeyReused | Self::InFlight { .. } => None,
        }
    }
}

impl Receiver {
    /// A receiver on the given store, with a ttl of [`DEFAULT_TTL`], a lease of [`DEFAULT_LEASE`], and
    /// [`ReceiveError::InFlight`] for concurrent deliveries. The store may be shared with other code (an
    /// `Arc<dyn Store>`, e.g. the `Idempotency` configuration's [`crate::Idempotency::store`]).
    pub fn new(store: impl Store) -> Self {
        let store = store.into_shared();
        let calls = BoundedStore::shared(Arc::clone(&store), DEFAULT_STORE_TIMEOUT);
        Self { store, calls, ttl: DEFAULT_TTL, lease: DEFAULT_LEASE, wait: None, store_timeout: DEFAULT_STORE_TIMEOUT }
    }

    /// How long a stored result is replayed (default 24 hours): longer than the broker may redeliver. After it, a
    /// redelivery runs the closure again.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long a running closure's claim is protected from take-over without a heartbeat (default 30 seconds).
    /// The heartbeat renews it while the process lives, so this is how soon a redelivery may take over from a
    /// process that died. Keep it non-zero and shorter than the ttl.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// A delivery that finds the key in flight waits up to `timeout` for the running one to finish instead of
    /// answering [`ReceiveError::InFlight`]: it then gets the stored result (`replayed: true`), or runs the closure
    /// itself if the first run failed or was cancelled. Waiting uses [`Store::wait`] (notifications, no polling):
    /// a `PostgresStore` needs `with_listener`, or the delivery answers [`ReceiveError::StoreUnavailable`].
    #[must_use]
    pub fn on_conflict_wait(mut self, timeout: Duration) -> Self {
        self.wait = Some(timeout);
        self
    }

    /// How long the receiver waits for any one store operation before answering
    /// [`ReceiveError::StoreUnavailable`] of kind [`crate::StoreErrorKind::Timeout`] (default [`DEFAULT_STORE_TIMEOUT`];
    /// a wait for another delivery gets its own time on top). It holds for every store, including third-party
    /// ones without timeouts of their own.
    #[must_use]
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self.calls = BoundedStore::shared(Arc::clone(&self.store), timeout);
        self
    }

    /// The store the receiver claims keys in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    #[cfg(feature = "postgres")]
    /// The same receiver (store, ttl, wait) whose closures write through the store's transaction (the inbox), or
    /// [`NotTransactional`] when the store has no transactions.
    pub fn transactional(&self) -> Result<TransactionalReceiver, NotTransactional> {
        TransactionalReceiver::of(self.clone())
    }

    /// The record a delivery of `key` in `namespace` claims, e.g. to [`Store::read`] it.
    pub fn record_id(namespace: &str, key: impl AsRef<[u8]>) -> RecordId {
        receiver_record_id(namespace, key)
    }

    /// Runs `work` once per (`namespace`, `key`) and stores its `Ok` result; a redelivery with the same `payload`
    /// gets the stored bytes without running it. See the [module](self) docs for every outcome.
    ///
    /// `namespace` separates consumers (e.g. `"orders-consumer"`); `key` is the message's id; `payload` is what
    /// must be the same on a redelivery (the message body), fingerprinted. A panic in `work` releases the claim,
    /// then resumes in the caller. Dropping the returned future while `work` runs releases the claim too.
    ///
    /// # Errors
    ///
    /// [`ReceiveError::KeyReused`] when the key was used with another payload, [`ReceiveError::InFlight`] while
    /// another delivery runs it, [`ReceiveError::Failed`] with `work`'s own error (the key is released), and
    /// [`ReceiveError::StoreUnavailable`] when the store fails before `work` could run.
    pub async fn run<F, Fut, T, E>(
        &self,
        namespace: &str,
        key: impl AsRef<[u8]>,
        payload: impl AsRef<[u8]>,
        work: F,
    ) -> Result<Received<Bytes>, ReceiveError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: Into<Bytes>,
    {
        let claim = self.claim_request(namespace, key.as_ref(), payload.as_ref());
        let work = || async move { work().await.map(Into::into) };
        self.receive(claim, work, as_bytes, Ok).await
    }

    /// [`Receiver::run`] for a result stored as JSON: the first run returns `work`'s value, a redelivery gets it
    /// deserialized from the store.
    ///
    /// # Errors
    ///
    /// As [`Receiver::run`], plus [`ReceiveError::Json`] when `work`'s result does not serialize (the claim is
    /// released) or a stored result does not deserialize as `T`.
    pub async fn run_json<F, Fut, T, E>(
        &self,
        namespace: &str,
        key: impl AsRef<[u8]>,
        payload: impl AsRef<[u8]>,
        work: F,
    ) -> Result<Received<T>, ReceiveError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: Serialize + DeserializeOwned,
    {
        let claim = self.claim_request(namespace, key.as_ref(), payload.as_ref());
        self.receive(claim, work, to_json, from_json).await
    }

    /// The claim of a delivery (the transactional receiver's too: there, the lease only bounds what a plain
    /// receiver on the namespace would see, as the row is invisible until it commits completed).
    fn claim_request(&self, namespace: &str, key: &[u8], payload: &[u8]) -> ClaimRequest {
        ClaimRequest {
            id: Self::record_id(namespace, key),
            fingerprint: payload_fingerprint(payload),
            token: fastrand::i64(..),
            lease: self.lease,
            ttl: self.ttl,
        }
    }

    /// The attempt of the core (`crate::attempt`), answering with values instead of responses.
    async fn receive<F, Fut, T, E>(
        &self,
        claim: ClaimRequest,
        work: F,
        encode: impl FnOnce(&T) -> Result<Bytes, serde_json::Error>,
        decode: impl FnOnce(Bytes) -> Result<T, serde_json::Error>,
    ) -> Result<Received<T>, ReceiveError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let store = &self.calls;
        match attempt::claim_or_wait(&**store, &claim, self.wait).await {
            Err(error) => Err(store_failed(&claim.id, error)),
            Ok(Claimed::Existing(existing)) => answer_existing(existing, &claim, decode),
            Ok(Claimed::Acquired { took_over }) => {
                if took_over {
                    tracing::info!(namespace = %claim.id.route, "took over an expired or abandoned receiver claim");
                }
                // Inside the async block, so that a panic in `work()` itself (before its future exists) is caught
                // too. Dropped with this future (cancellation), the claim is released in a background task.
                let work = AssertUnwindSafe(async move { work().await }).catch_unwind();
                let lease = Lease::acquired(claim);
                let namespace = &lease.attempt().id.route;
                attempt::under_lease(
                    store,
                    &lease,
                    |held| async move { settle(held, work.await, encode, namespace).await },
                )
                .await
            }
        }
    }
}
