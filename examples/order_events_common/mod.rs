//! What `order_events_amqp` and `order_events_nats` share: the command line, the `order_events` table, and how one
//! `order.created` event is applied through the transactional receiver (the inbox). The settings, outcome words
//! and totals are the inbox examples' (`inbox_common`).
#![allow(dead_code)] // Each example uses part of it.

use std::time::Duration;

use idempotent_runtime::inbox::Disposition;
use idempotent_runtime::{ReceiveError, Received, TransactionalReceiver};
use serde::Deserialize;

use crate::inbox_common::{Application, receiver_from_env};

/// The receiver's namespace: the consumer's one job, applying order events to `order_events`.
pub(crate) const NAMESPACE: &str = "order_events";

/// One row per event applied, keyed by the message id the outbox gave it (created at start by every process:
/// under a lock, `IF NOT EXISTS`). The primary key is a second guard: the inbox never lets a copy get this far.
const ORDER_EVENTS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS order_events (
    message_id text        PRIMARY KEY,
    order_id   bigint      NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// The part of an `order.created` event (`{"order_id", "user", "item", "qty"}`) the consumer needs.
#[derive(Debug, Deserialize)]
pub(crate) struct OrderCreated {
    pub(crate) order_id: i64,
}

/// `consume` is the only command.
pub(crate) fn require_consume(example: &str) -> Result<(), String> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match arguments.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["consume"] => Ok(()),
        _ => Err(format!("usage: cargo run --example {example} -- consume")),
    }
}

/// The consumer's side of PostgreSQL: the idempotency table, `order_events`, and the transactional receiver.
pub(crate) async fn inbox_from_env(example: &str) -> Result<TransactionalReceiver, String> {
    receiver_from_env(example, ORDER_EVENTS_SCHEMA).await
}

/// Why applying an event failed; rolled back either way.
#[derive(Debug)]
pub(crate) enum ApplyError {
    /// The body is not an `order.created` event: it never will be.
    NotAnEvent(serde_json::Error),
    /// The write failed: may work later.
    Database(tokio_postgres::Error),
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotAnEvent(error) => write!(f, "the message is not an order.created event: {error}"),
            Self::Database(error) => write!(f, "the order_events write failed: {error}"),
        }
    }
}

impl std::error::Error for ApplyError {}

/// The consumers' work: an `order.created` event applied to `order_events`.
pub(crate) struct OrderEvents;

impl Application for OrderEvents {
    type Error = ApplyError;

    /// Applies one event: one `order_events` row, written in the receiver's transaction, then `delay` (still inside
    /// it: the window in which a crash must roll the row back). Prints `writing <key>` once the row is written.
    async fn apply(
        &self,
        inbox: &TransactionalReceiver,
        key: &str,
        body: &[u8],
        delay: Duration,
    ) -> Result<Received, ReceiveError<ApplyError>> {
        inbox
            .run(NAMESPACE, key, body, |tx| async move {
                let event: OrderCreated = serde_json::from_slice(body).map_err(ApplyError::NotAnEvent)?;
                tx.execute("INSERT INTO order_events (message_id, order_id) VALUES ($1, $2)", &[&key, &event.order_id])
                    .await
                    .map_err(ApplyError::Database)?;
                println!("writing {key}");
                tokio::time::sleep(delay).await;
                Ok::<_, ApplyError>(format!("applied order {}", event.order_id).into_bytes())
            })
            .await
    }

    /// This app's choice for its own errors: a body that is not an event is dead-lettered, a failed write is tried
    /// again a second later.
    fn on_failed(&self, error: &ApplyError) -> Disposition {
        match error {
            ApplyError::NotAnEvent(error) => Disposition::DeadLetter { reason: format!("not an order event: {error}") },
            ApplyError::Database(_) => Disposition::Redeliver { delay: Duration::from_secs(1) },
        }
    }
}
