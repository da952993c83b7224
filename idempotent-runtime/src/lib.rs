//! Idempotency keys for actix-web: a handler runs once per key, and every retry gets its response replayed byte
//! for byte.
//!
//! ```no_run
//! use actix_web::{App, HttpRequest, HttpResponse, HttpServer, post, web};
//! use idempotent_runtime::{Idempotency, MemoryStore, idempotent};
//!
//! #[derive(serde::Deserialize)]
//! struct NewPayment {
//!     amount: u64,
//! }
//!
//! #[post("/payments")]
//! #[idempotent(ttl = "24h", scope = "user")]
//! async fn create_payment(body: web::Json<NewPayment>) -> HttpResponse {
//!     // runs once per Idempotency-Key and user; retries get this response replayed
//!     HttpResponse::Created().body(format!("charged {}", body.amount))
//! }
//!
//! fn user_of(request: &HttpRequest) -> Option<String> {
//!     request.headers().get("authorization")?.to_str().ok()?.strip_prefix("Bearer ").map(str::to_owned)
//! }
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     // PostgresStore::new(pool) in production; the memory store keeps the same rules within one process.
//!     let idempotency = Idempotency::builder(MemoryStore::new()).user_resolver(user_of).build();
//!     HttpServer::new(move || App::new().app_data(idempotency.clone()).service(create_payment))
//!         .bind(("127.0.0.1", 8080))?
//!         .run()
//!         .await
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
//!
//! What a client and an application can rely on, status by status, is the contract: [`docs/contract.md`] in the
//! repository. The choices it leaves open are in [`docs/decisions.md`].
//!
//! [`docs/contract.md`]: https://github.com/idempotent-rs/idempotent/blob/main/docs/contract.md
//! [`docs/decisions.md`]: https://github.com/idempotent-rs/idempotent/blob/main/docs/decisions.md

// On docs.rs (`--cfg docsrs`, a nightly rustdoc) every feature-gated item is labelled with its feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod attempt;
mod digest;
mod http;
pub mod inbox;
pub mod observe;
#[cfg(feature = "openapi")]
pub mod openapi;
#[cfg(feature = "postgres")]
pub mod outbox;

pub mod receiver;
#[cfg(feature = "postgres")]
pub use crate::receiver::transactional as receiver_transactional;
mod record;
mod record_id;
pub mod store;

/// The client half (feature `client`): a reqwest middleware that keeps one key across retries. See the
/// `idempotent-client` crate.
#[cfg(feature = "client")]
pub use idempotent_client as client;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

/// The PostgreSQL store's SQL literal writer, for its fuzz target and property test. Not public API.
#[cfg(all(feature = "postgres", feature = "testing"))]
#[doc(hidden)]
#[path = "sql_literal.rs"]
pub mod __sql_literal;

/// The attribute `Store` implementations need (`#[async_trait] impl Store for MyStore`), re-exported so that
/// implementing a store takes no extra dependency.
pub use async_trait::async_trait;
pub use idempotent_macros::idempotent;

pub use crate::attempt::DEFAULT_STORE_TIMEOUT;
pub use crate::digest::{Digest, to_hex};
pub use crate::http::config::{
    DEFAULT_LEASE, DEFAULT_MAX_REQUEST_BODY, DEFAULT_MAX_RESPONSE_BODY, DEFAULT_STORE_RETRY_AFTER, DEFAULT_TTL,
    Idempotency, IdempotencyBuilder, REPLAYED_HEADER,
};
pub use crate::http::issue_service::{issue_keys, issue_keys_scoped};
pub use crate::http::issued_key::{DEFAULT_ISSUED_KEY_TTL, KeyIssuer, MIN_ISSUER_SECRET_LEN, WeakSecret};
pub use crate::http::key::{IdempotencyKey, KeyError, MAX_KEY_LEN};
pub use crate::http::problem::{PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE, ProblemDetails, ProblemKind};
pub use crate::http::replay_hook::ReplayedResponse;
pub use crate::http::route::FingerprintFn;
pub use crate::http::scope::UserResolver;
pub use crate::http::status::{status_lookup, status_lookup_scoped};
pub use crate::http::store_policy::StorePolicy;
#[cfg(feature = "postgres")]
pub use crate::receiver::transactional::{NotTransactional, TransactionalReceiver};
pub use crate::receiver::{ReceiveError, Received, Receiver};
pub use crate::record_id::{
    MIN_SCOPE_SECRET_LEN, ScopeSecret, ScopeValue, derived_key_digest, key_digest, scope_digest,
};
/// Operator queries (PostgreSQL): [`store::postgres::admin`].
#[cfg(feature = "postgres")]
pub use crate::store::postgres::admin;
/// Purging expired records: [`store::purge`].
pub use crate::store::purge;
#[cfg(feature = "redis")]
pub use crate::store::{DEFAULT_KEY_PREFIX, DEFAULT_REDIS_TIMEOUT, RedisStore, RedisStoreBuilder};
pub use crate::store::{MemoryStore, Store, StoreError, StoreErrorKind};
#[cfg(feature = "postgres")]
pub use crate::store::{PostgresStore, SCHEMA_SQL, Tx};
