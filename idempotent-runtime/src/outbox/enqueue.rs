//! [`Tx::enqueue`]: a message written as an outbox row in the handler's own transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::types::Type;

use super::sql::OutboxStatements;
use super::{MessageId, OutboxMessage};
use crate::digest::Digest;
use crate::record_id::RecordId;
use crate::store::postgres::statement::{self, Param, StatementMode};
use crate::store::{PostgresStore, Tx};

/// What the `Tx` of one claim's transaction needs to enqueue: the record's digest (the ids derive from it), the
/// position of the next enqueue, and the statement in the store's schema and statement mode.
pub(crate) struct TxOutbox {
    record: Digest,
    next_position: AtomicU32,
    statements: Arc<OutboxStatements>,
    mode: StatementMode,
}

impl TxOutbox {
    /// The context of a transaction that claimed `record` on `store`.
    pub(crate) fn new(record: &RecordId, store: &PostgresStore) -> Self {
        Self {
            record: record.digest(),
            next_position: AtomicU32::new(0),
            statements: Arc::clone(store.outbox_statements()),
            // Inside an explicit transaction: named statements where the store may use them, else unnamed ones.
            mode: store.settled_mode().binding_arguments(),
        }
    }
}

impl Tx {
    /// Writes `message` as one row of the outbox table (`idempotency_outbox`, beside the records) in this
    /// transaction, and returns its id. The row commits with the handler's writes and its stored response, and a
    /// relay ([`crate::outbox::OutboxRelay`]) publishes it after the commit; the commit also wakes the relays
    /// (`NOTIFY`). What follows from the transaction:
    ///
    /// - a handler that rolls back (5xx, `Err`, panic, crash) enqueued nothing;
    /// - a replayed request runs no handler, so it enqueues nothing;
    /// - the id is deterministic ([`MessageId`]): the record's digest and the position of this call among the
    ///   transaction's enqueues (0, 1, ...), so a handler that runs again after a rollback, enqueuing in the same
    ///   order, enqueues the same ids.
    ///
    /// **An id that already exists** (a key reused after its record expired: the record's identity, so its
    /// digest, is the same) inserts nothing: the message already in the table, sent or not, stands for it, and a
    /// warning is logged. Consumers deduplicate on the id anyway, so a second message with a first one's id would
    /// be absorbed by their inbox; keep record ttls longer than a key may be reused, or give each new request a
    /// new key.
    ///
    /// ```no_run
    /// use actix_web::{HttpResponse, error, post};
    /// use idempotent_runtime::outbox::OutboxMessage;
    /// use idempotent_runtime::{Tx, idempotent};
    ///
    /// #[post("/orders")]
    /// #[idempotent(scope = "user")]
    /// async fn create_order(tx: Tx) -> actix_web::Result<HttpResponse> {
    ///     let row = tx.query_one("INSERT INTO orders DEFAULT VALUES RETURNING id", &[]).await;
    ///     let order_id: i64 = row.map_err(error::ErrorInternalServerError)?.get(0);
    ///     let event = OutboxMessage::new("order.created", format!(r#"{{"order_id":{order_id}}}"#))
    ///         .header("content-type", "application/json");
    ///     tx.enqueue(event).await.map_err(error::ErrorInternalServerError)?;
    ///     Ok(HttpResponse::Created().finish())
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// The statement's error (the table is missing: run [`PostgresStore::migrate`]; the connection failed). The
    /// transaction is then aborted: return a 5xx (or `Err`) so that it rolls back.
    pub async fn enqueue(&self, message: OutboxMessage) -> Result<MessageId, tokio_postgres::Error> {
        let outbox = self.outbox_context();
        let position = outbox.next_position.fetch_add(1, Ordering::Relaxed);
        let id = MessageId::derive(&outbox.record, position);
        let (names, values) = message.header_columns();
        let payload = message.payload();
        let params: [Param<'_>; 5] = [
            (&id.as_str(), Type::TEXT),
            (&message.destination(), Type::TEXT),
            (&payload, Type::BYTEA),
            (&names, Type::TEXT_ARRAY),
            (&values, Type::TEXT_ARRAY),
        ];
        let inserted = statement::query_in(self, outbox.mode, &outbox.statements.enqueue, &params).await?;
        if inserted.is_empty() {
            tracing::warn!(
                message_id = %id,
                destination = message.destination(),
                "an outbox message with this id exists already (a key reused after its record expired?): the \
                 existing row stands for it, nothing new was enqueued"
            );
        }
        Ok(id)
    }
}
