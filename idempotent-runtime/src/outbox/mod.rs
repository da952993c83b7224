//! The outbox (PostgreSQL): a transactional route's messages leave exactly when its writes commit, and reach the
//! consumer once.
//!
//! A route that writes a row and publishes an event has the dual-write problem: publish then crash before the
//! commit, and consumers see an order that does not exist; commit then crash before the publish, and the event is
//! lost. Here the handler **enqueues** the event in its own transaction ([`crate::Tx::enqueue`], also in a
//! [`crate::TransactionalReceiver`]'s closure), as a row of the table `idempotency_outbox` (created by
//! [`crate::PostgresStore::migrate`] beside the records, in the same schema), and a **relay** ([`OutboxRelay`])
//! publishes committed rows afterwards, marking each sent only once the broker confirmed it.
//!
//! ```no_run
//! use actix_web::{HttpResponse, error, post};
//! use idempotent_runtime::outbox::{OutboxMessage, OutboxRelay, Publisher};
//! use idempotent_runtime::{PostgresStore, Tx, idempotent};
//!
//! #[post("/orders")]
//! #[idempotent(scope = "user")]
//! async fn create_order(tx: Tx) -> actix_web::Result<HttpResponse> {
//!     let row = tx.query_one("INSERT INTO orders DEFAULT VALUES RETURNING id", &[]).await;
//!     let order_id: i64 = row.map_err(error::ErrorInternalServerError)?.get(0);
//!     let event = OutboxMessage::new("order.created", format!(r#"{{"order_id":{order_id}}}"#));
//!     tx.enqueue(event).await.map_err(error::ErrorInternalServerError)?;
//!     Ok(HttpResponse::Created().finish())
//! }
//!
//! // In the same process or in its own: any number of relays may run. The publisher is
//! // `amqp::AmqpPublisher` (feature `amqp`), `nats::NatsPublisher` (feature `nats`), or your own.
//! fn start_relay(store: &PostgresStore, publisher: impl Publisher + 'static) {
//!     let relay = OutboxRelay::builder(store, publisher).build();
//!     tokio::spawn(async move { relay.run().await });
//! }
//! ```
//!
//! # What is guaranteed
//!
//! - **A message exists exactly when the handler's transaction committed.** A handler that rolls back (5xx, `Err`,
//!   panic, crash) enqueued nothing; a replayed request runs no handler, so it enqueues nothing.
//! - **Ids are deterministic** ([`MessageId`]): derived from the idempotency record and the enqueue's position in
//!   the handler, so a handler that runs again after a rollback enqueues the same ids. Publishers send the id as
//!   the broker's message id (AMQP `message_id`; NATS `Nats-Msg-Id` and `Idempotency-Key`), which the consumer's
//!   inbox ([`crate::inbox`]) deduplicates on.
//! - **A row is marked sent only after the broker confirmed it** (publisher confirms, JetStream acks). The relay
//!   claims its rows (`FOR UPDATE SKIP LOCKED`) in a transaction it holds while publishing and commits the marks
//!   afterwards, so a relay killed at any point (or whose commit fails) rolls its claim back: its rows are sent
//!   again, at most once more per crash, with the same ids, and the inbox absorbs the copies.
//! - **Several relays may run at once** (threads or processes): each row is claimed by one relay at a time, and
//!   each destination is held by one relay at a time (a transaction-scoped advisory lock), which publishes the
//!   destination's rows in enqueue order.
//! - **Failures** are retried: the row's `attempts` grows, `last_error` keeps the broker's answer, and the next
//!   attempt waits a backoff ([`FIRST_RETRY_BACKOFF`] doubling up to [`MAX_RETRY_BACKOFF`]).
//!
//! # Where order is not kept
//!
//! Per destination, messages are published in the order they were **enqueued**, which the broker keeps where it
//! keeps order (one RabbitMQ queue, one JetStream stream). Not beyond:
//!
//! - rows of concurrent transactions are ordered by enqueue, not by commit: a row enqueued first but committed
//!   after a later one that the relay already published is published after it;
//! - a message that failed is retried after its backoff, while later messages of its destination may go first;
//! - a re-send (after a relay crash or an unconfirmed publish) repeats messages the consumer may already have
//!   seen, behind later ones;
//! - messages of different destinations have no order between them.
//!
//! # Operating it
//!
//! - The relay wakes when a transaction that enqueued commits (`NOTIFY` on channel `idempotency_outbox`, received
//!   on one direct `LISTEN` connection made with the store's [`crate::PostgresStore::with_listener`]
//!   configuration; behind a transaction-mode pooler notifications need that direct connection, as waits do), and
//!   polls every `poll_interval` as the fallback.
//! - Sent rows are deleted after the relay's `retention`. [`backlog`] (and the admin CLI's `outbox` subcommand)
//!   tell how far behind the relays are.
//! - Metrics ([`crate::observe`]): gauges `idempotent_outbox_waiting` and
//!   `idempotent_outbox_oldest_unsent_seconds` (set by a running relay about once a second), counters
//!   `idempotent_outbox_sent_total` and `idempotent_outbox_failed_total` labelled by `destination`.
//! - Every statement is pooler-safe (unnamed or in the store's statement mode; only transaction-scoped locks).

#[cfg(feature = "amqp")]
pub mod amqp;
mod backlog;
mod enqueue;
mod message;
#[cfg(feature = "nats")]
pub mod nats;
mod publisher;
mod relay;
pub(crate) mod sql;
mod wake;

pub use self::backlog::{Backlog, DestinationBacklog, backlog, backlog_by_destination};
pub(crate) use self::enqueue::TxOutbox;
pub use self::message::{MessageId, OutboxMessage, OutgoingMessage};
pub use self::publisher::{PublishError, Publisher};
pub use self::relay::{
    DEFAULT_BATCH_SIZE, DEFAULT_POLL_INTERVAL, DEFAULT_RETENTION, FIRST_RETRY_BACKOFF, MAX_RETRY_BACKOFF, OutboxRelay,
    PUBLISH_TIMEOUT, RelayBuilder, RelayedBatch,
};
