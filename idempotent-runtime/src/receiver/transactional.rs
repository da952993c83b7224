//! The inbox: a [`Receiver`] whose closure writes through the store's own transaction ([`Tx`]), so that the dedup
//! record, the consumer's writes and the stored result commit in ONE PostgreSQL transaction (CONTRACT sections 5
//! and 7). The message consumer's PostgreSQL writes then happen exactly once, however often the broker delivers.
//!
//! ```no_run
//! use idempotent_runtime::{PostgresStore, TransactionalReceiver};
//!
//! # async fn demo(pool: deadpool_postgres::Pool) -> Result<(), Box<dyn std::error::Error>> {
//! let inbox = TransactionalReceiver::new(PostgresStore::new(pool));
//! let (key, payload) = ("transfer-17", br#"{"account": "acct-1", "amount": 1000}"#);
//! let applied = inbox
//!     .run("ledger-consumer", key, payload, |tx| async move {
//!         tx.execute("INSERT INTO ledger (message_id, amount) VALUES ($1, 1000)", &[&key]).await?;
//!         Ok::<_, tokio_postgres::Error>(b"entry written".to_vec())
//!     })
//!     .await?;
//! // Only now, after the commit: acknowledge the broker message.
//! # let _ = applied;
//! # Ok(())
//! # }
//! ```
//!
//! What changes against the plain [`Receiver`] (whose table of outcomes otherwise holds):
//!
//! | situation | plain [`Receiver::run`] | [`TransactionalReceiver::run`] |
//! |---|---|---|
//! | the process dies (or its connection drops) mid-closure | the key stays claimed until the lease lapses; the redelivery then runs again, and the closure's writes may exist twice | everything rolls back; the key is free at once; the redelivery runs once |
//! | the store fails when the result is stored | `Ok`: the work is done, its writes stay | [`ReceiveError::StoreUnavailable`]: nothing was committed, not even the closure's writes; redeliver |
//! | the closure returns `Err`, panics or is cancelled | claim released | its writes and the claim roll back together |
//! | the closure's own SQL failed but it returned `Ok` anyway | - | [`ReceiveError::StoreUnavailable`] with [`StoreErrorKind::TransactionAborted`]: nothing committed; redeliver |
//! | another delivery of the key is running | [`ReceiveError::InFlight`] with the remaining lease | [`ReceiveError::InFlight`] with one second (its transaction holds the key; it ends when its closure does) |
//!
//! `Ok` is answered only after the commit succeeded: acknowledge the message then, and only then. When the commit's
//! answer is lost (a timeout), the answer is [`ReceiveError::StoreUnavailable`]: the redelivery finds out (stored
//! result, or a fresh run), so nothing is applied twice or lost.
//!
//! Records are those of the plain receiver (same identity: [`Receiver::record_id`]), so operator tools see them
//! alike. Do not use a plain and a transactional receiver on one namespace: a plain claim of a key whose
//! transaction is open waits for that transaction instead of answering at once.
//!
//! The closure receives [`Tx`] by value, as a transactional route's handler does: it is `!Send`, so the future of
//! [`TransactionalReceiver::run`] is too. Run deliveries one after another or several at once in one task
//! (`StreamExt::for_each_concurrent`, a `LocalSet`), as actix-web runs handlers.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use futures_util::FutureExt as _;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::attempt::{self, TransactionHold, TxClaimed};
#[cfg(doc)]
use crate::attempt::{DEFAULT_STORE_TIMEOUT, DEFAULT_TTL};
use crate::receiver::{
    ReceiveError, Received, Receiver, answer_existing, as_bytes, from_json, settle, store_failed, to_json,
};
use crate::store::{ClaimRequest, Store, StoreError, StoreErrorKind, TransactionalStore, Tx};

/// How long a delivery that found its key held by an open transaction is told to wait before a redelivery.
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Runs closures once per (namespace, key) inside the store's transaction, and replays their stored results; see
/// the [module](self) docs.
///
/// Cheap to clone (the store is shared).
#[derive(Clone)]
pub struct TransactionalReceiver {
    /// The settings (store, ttl, wait, store timeout) and the claim, as the plain receiver's.
    receiver: Receiver,
}

impl std::fmt::Debug for TransactionalReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionalReceiver").field("receiver", &self.receiver).finish()
    }
}

/// The store of a [`Receiver`] cannot share a transaction with the consumer's writes (the memory store, or a
/// third-party store without [`TransactionalStore`] support).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotTransactional;

impl std::fmt::Display for NotTransactional {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "this receiver's store cannot share a transaction with the consumer's writes: build the receiver on a \
             PostgresStore (TransactionalReceiver::new), or use Receiver::run, whose closure takes no `Tx`",
        )
    }
}

impl std::error::Error for NotTransactional {}

impl TransactionalReceiver {
    /// A transactional receiver on `store`, with a ttl of [`DEFAULT_TTL`] and [`ReceiveError::InFlight`] for
    /// concurrent deliveries. Only a store with transactions is accepted: a `MemoryStore` is a compile error
    /// ("`MemoryStore` cannot share a transaction with the consumer's writes"):
    ///
    /// ```compile_fail,E0277
    /// let inbox = idempotent_runtime::TransactionalReceiver::new(idempotent_runtime::MemoryStore::new());
    /// ```
    pub fn new<S: Store + TransactionalStore>(store: S) -> Self {
        Self { receiver: Receiver::new(store) }
    }

    /// `receiver`'s settings on transactions ([`Receiver::transactional`]), or [`NotTransactional`] when its store
    /// has none.
    pub(crate) fn of(receiver: Receiver) -> Result<Self, NotTransactional> {
        if receiver.store().transactional().is_none() {
            return Err(NotTransactional);
        }
        Ok(Self { receiver })
    }

    /// How long a stored result is replayed (default 24 hours): longer than the broker may redeliver.
    #[must_use]
    pub fn ttl(self, ttl: Duration) -> Self {
        Self { receiver: self.receiver.ttl(ttl) }
    }

    /// A delivery that finds the key held by another delivery's open transaction waits up to `timeout` for that
    /// transaction to end instead of answering [`ReceiveError::InFlight`]: it then gets the stored result
    /// (`replayed: true`), or runs the closure itself if the other one rolled back. The wait holds a connection.
    #[must_use]
    pub fn on_conflict_wait(self, timeout: Duration) -> Self {
        Self { receiver: self.receiver.on_conflict_wait(timeout) }
    }

    /// How long the receiver waits for the transactional claim (and a wait for another delivery's transaction
    /// gets its own time on top) before answering [`ReceiveError::StoreUnavailable`] of kind
    /// [`StoreErrorKind::Timeout`] (default [`DEFAULT_STORE_TIMEOUT`]). The commit is bounded by the store's own
    /// timeout.
    #[must_use]
    pub fn store_timeout(self, timeout: Duration) -> Self {
        Self { receiver: self.receiver.store_timeout(timeout) }
    }

    /// The store the receiver claims keys in.
    pub fn store(&self) -> &Arc<dyn Store> {
        self.receiver.store()
    }

    /// Runs `work` once per (`namespace`, `key`) inside one transaction with the key's record, and commits its `Ok`
    /// result with it; a redelivery with the same `payload` gets the stored bytes without running it. Arguments
    /// as for [`Receiver::run`]. `work` writes through the [`Tx`] it is given.
    pub async fn run<F, Fut, T, E>(
        &self,
        namespace: &str,
        key: impl AsRef<[u8]>,
        payload: impl AsRef<[u8]>,
        work: F,
    ) -> Result<Received<Bytes>, ReceiveError<E>>
    where
        F: FnOnce(Tx) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: Into<Bytes>,
    {
        let claim = self.receiver.claim_request(namespace, key.as_ref(), payload.as_ref());
        let work = |tx| async move { work(tx).await.map(Into::into) };
        self.receive(claim, work, as_bytes, Ok).await
    }

    /// [`TransactionalReceiver::run`] for a result stored as JSON.
    pub async fn run_json<F, Fut, T, E>(
        &self,
        namespace: &str,
        key: impl AsRef<[u8]>,
        payload: impl AsRef<[u8]>,
        work: F,
    ) -> Result<Received<T>, ReceiveError<E>>
    where
        F: FnOnce(Tx) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: Serialize + DeserializeOwned,
    {
        let claim = self.receiver.claim_request(namespace, key.as_ref(), payload.as_ref());
        self.receive(claim, work, to_json, from_json).await
    }

    async fn receive<F, Fut, T, E>(
        &self,
        claim: ClaimRequest,
        work: F,
        encode: impl FnOnce(&T) -> Result<Bytes, serde_json::Error>,
        decode: impl FnOnce(Bytes) -> Result<T, serde_json::Error>,
    ) -> Result<Received<T>, ReceiveError<E>>
    where
        F: FnOnce(Tx) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let Some(store) = self.receiver.calls.transactional() else {
            // Unreachable through the constructors, which check it; answered rather than panicking.
            let error = StoreError::new(StoreErrorKind::Unsupported, NotTransactional.to_string());
            return Err(store_failed(&claim.id, error));
        };
        let open = match attempt::claim_in_transaction(store, &claim, self.receiver.wait).await {
            Err(error) => return Err(store_failed(&claim.id, error)),
            Ok(TxClaimed::Busy) => return Err(ReceiveError::InFlight { retry_after: BUSY_RETRY_AFTER }),
            Ok(TxClaimed::Existing(existing)) => return answer_existing(existing, &claim, decode),
            Ok(TxClaimed::Acquired(open)) => open,
        };
        // The transaction lends its `Tx` as it does to a route's handler, through extensions.
        let mut lent = actix_web::dev::Extensions::new();
        open.lend(&mut lent);
        let Some(tx) = lent.remove::<Tx>() else {
            let error = StoreError::new(
                StoreErrorKind::Unsupported,
                "the store's transaction lends no `Tx` (PostgreSQL's handle): the inbox runs on PostgresStore",
            );
            return Err(store_failed(&claim.id, error));
        };
        // Dropped with this future (cancellation), the open transaction rolls back in a background task; the `Tx`
        // inside the work's future goes with it.
        let held = TransactionHold::new(open, claim.ttl);
        let outcome = AssertUnwindSafe(async move { work(tx).await }).catch_unwind().await;
        settle(held, outcome, encode, &claim.id.route).await
    }
}
