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
    /// The generation of the transaction's ids: 0 until an id is found taken (see [`Tx::enqueue`]).
    generation: AtomicU32,
    statements: Arc<OutboxStatements>,
    mode: StatementMode,
}

impl TxOutbox {
    /// The context of a transaction that claimed `record` on `store`.
    pub(crate) fn new(record: &RecordId, store: &PostgresStore) -> Self {
        Self {
            record: record.digest(),
            next_position: AtomicU32::new(0),
            generation: AtomicU32::new(0),
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
    /// **A key used again after its record expired** has the same record digest, so the same ids would follow;
    /// but the new request is a new operation, and its messages must not be taken for copies of the old ones. An
    /// id the table still holds (sent or not) moves this transaction to the next generation of ids
    /// ([`MessageId::derive_in_generation`]): new ids, deterministic still, as what the table holds decides them.
    /// Once the old rows are purged (the relay's retention, 24 h by default: the inbox's default ttl) the first
    /// generation's ids come back, and a consumer whose inbox remembers them longer than that would absorb the new
    /// messages: keep the retention at least as long as your consumers' inbox ttl, or give each request a new key.
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
        let (names, values) = message.header_columns();
        let payload = message.payload();
        let destination = message.destination();
        let mut generation = outbox.generation.load(Ordering::Relaxed);
        loop {
            let id = MessageId::derive_in_generation(&outbox.record, generation, position);
            let params: [Param<'_>; 5] = [
                (&id.as_str(), Type::TEXT),
                (&destination, Type::TEXT),
                (&payload, Type::BYTEA),
                (&names, Type::TEXT_ARRAY),
                (&values, Type::TEXT_ARRAY),
            ];
            let inserted = statement::query_in(self, outbox.mode, &outbox.statements.enqueue, &params).await?;
            if !inserted.is_empty() {
                return Ok(id);
            }
            // The id is taken by a committed row of an earlier life of this key: the next generation, for this
            // message and the transaction's later ones. What the table holds decides it, so a rerun after a
            // rollback (which took back its own rows) arrives at the same ids.
            generation += 1;
            outbox.generation.store(generation, Ordering::Relaxed);
            tracing::debug!(message_id = %id, generation, "an outbox id is taken by an earlier use of the key");
        }
    }
}
