//! Idempotency keys for actix-web: a handler runs once per key, and every retry gets its response replayed byte
//! for byte.
//!
//! ```ignore
//! use actix_web::{post, web, Responder};
//! use idempotent_runtime::idempotent;
//!
//! #[post("/payments")]
//! #[idempotent(ttl = "24h", scope = "user")]
//! async fn create_payment(body: web::Json<NewPayment>) -> impl Responder {
//!     // runs once per Idempotency-Key and user
//! }
//! ```
//!
//! The attribute extracts and validates the key, claims it atomically in the [`Store`], runs the handler, stores
//! its response (status, headers, body bytes) and replays it to retries with `Idempotent-Replayed: true`. A reused
//! key with a different request gets 422, a duplicate that arrives while the original runs gets 409 with
//! `Retry-After`, a crash mid-handler frees the key when its lease lapses, and keys are scoped (by default per user)
//! so nobody reads another's response. Every error the library answers is an RFC 9457 problem document
//! ([`ProblemKind`]).
//!
//! Register an [`Idempotency`] configuration as app data with a store: [`PostgresStore`] in production (on the
//! app's own `deadpool_postgres::Pool`; schema in [`SCHEMA_SQL`]), [`MemoryStore`] in tests.
//!
//! Off HTTP, a [`Receiver`] runs any async closure once per key (a message consumer with at-least-once delivery)
//! and hands its stored result to redeliveries: see [`receiver`]. The inbox, [`TransactionalReceiver`], runs it in
//! the store's transaction, so a consumer's PostgreSQL writes commit with the dedup record, exactly once; [`inbox`]
//! maps its answers to RabbitMQ and NATS JetStream acknowledgements (features `amqp`, `nats`).

pub mod admin;
mod claim_guard;
mod config;
mod digest;
mod fingerprint;
mod handle;
pub mod inbox;
mod key;
mod key_source;
mod lease;
pub mod observe;
mod problem;
pub mod purge;
pub mod receiver;
pub mod receiver_transactional;
mod record;
mod replay;
mod request_body;
mod response_body;
mod route;
mod scope;
mod status;
mod store;
mod transaction;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

/// The attribute `Store` implementations need (`#[async_trait] impl Store for MyStore`), re-exported so that
/// implementing a store takes no extra dependency.
pub use async_trait::async_trait;
pub use idempotent_macros::idempotent;

pub use crate::config::{
    DEFAULT_LEASE, DEFAULT_MAX_REQUEST_BODY, DEFAULT_MAX_RESPONSE_BODY, DEFAULT_STORE_RETRY_AFTER, DEFAULT_TTL,
    Idempotency, IdempotencyBuilder, REPLAYED_HEADER,
};
pub use crate::digest::{Digest, to_hex};
pub use crate::key::{IdempotencyKey, KeyError, MAX_KEY_LEN};
pub use crate::key_source::KeySpec;
pub use crate::problem::{PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE, ProblemKind};
pub use crate::receiver::{ReceiveError, Received, Receiver};
pub use crate::receiver_transactional::{NotTransactional, TransactionalReceiver};
pub use crate::record::{CorruptRecord, KeyState, KeyStatus, Record, RecordId, RecordState, StoredResponse};
pub use crate::route::RouteOptions;
pub use crate::scope::{ScopeSpec, UserResolver};
pub use crate::status::{status_lookup, status_lookup_scoped};
pub use crate::store::{
    Claim, ClaimRequest, Completion, DEFAULT_OPERATION_TIMEOUT, Lease, LeaseState, MemoryStore, OpenTransaction,
    PostgresStore, PurgeBatch, SCHEMA_SQL, Store, StoreError, StoreErrorKind, TransactionalClaim, TransactionalStore,
};
pub use crate::transaction::Tx;
