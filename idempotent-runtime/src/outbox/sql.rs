//! The outbox's SQL, as templates over the store's schema (`{schema_prefix}`: see the store's `table` module), and
//! the statements rendered once per store.
//!
//! Every statement is sent unnamed or in the store's statement mode, and everything the relay holds (row locks,
//! advisory locks) is transaction-scoped: a transaction-mode pooler may hand each transaction to any backend.

use crate::store::postgres::Table;

/// The channel's name, as a literal that `concat!` can write into the enqueue statement.
macro_rules! outbox_channel {
    () => {
        "idempotency_outbox"
    };
}

/// The channel `Tx::enqueue` notifies when its transaction commits; relays listen on it.
pub(crate) const CHANNEL: &str = outbox_channel!();

/// Inserts one message and, when it did insert, notifies the relays (delivered at commit, so a rolled-back
/// transaction wakes nobody; PostgreSQL folds the transaction's identical notifications into one). An existing id
/// (a key reused after its record expired) inserts nothing and returns no row: see `Tx::enqueue`.
const ENQUEUE_SQL: &str = concat!(
    "
WITH inserted AS (
    INSERT INTO {schema_prefix}idempotency_outbox (id, destination, payload, header_names, header_values)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (id) DO NOTHING
    RETURNING 1
)
SELECT pg_notify('",
    outbox_channel!(),
    "', '') FROM inserted"
);

/// The destinations of the oldest `$1` due rows, oldest first, each locked for this transaction if no other relay
/// holds it (the lock is a volatile function in the outer query: it is never pushed below the `LIMIT`, so only
/// these destinations are tried). A destination's lock keeps its messages to one relay at a time, in order. The
/// lock's first key is the table's oid (`tableoid`), so the outboxes of two schemas never hold each other's
/// destinations, however the store names its table.
const LOCK_DESTINATIONS_SQL: &str = "
SELECT destination FROM (
    SELECT destination, tableoid, min(seq) AS first
    FROM (
        SELECT destination, seq, tableoid FROM {schema_prefix}idempotency_outbox
        WHERE sent_at IS NULL AND next_attempt_at <= now()
        ORDER BY seq
        LIMIT $1
    ) AS oldest
    GROUP BY destination, tableoid
    ORDER BY first
) AS due
WHERE pg_try_advisory_xact_lock(tableoid::int4, hashtext(destination))";

/// The due rows of the locked destinations, in enqueue order, locked until the transaction ends (a new statement,
/// so a new snapshot: rows another relay marked sent before this one got the lock are not seen as unsent).
const CLAIM_SQL: &str = "
SELECT id, destination, payload, header_names, header_values
FROM {schema_prefix}idempotency_outbox
WHERE destination = ANY($1) AND sent_at IS NULL AND next_attempt_at <= now()
ORDER BY seq
LIMIT $2
FOR UPDATE SKIP LOCKED";

/// Marks the confirmed messages sent.
const MARK_SENT_SQL: &str = "
UPDATE {schema_prefix}idempotency_outbox
SET sent_at = now(), attempts = attempts + 1, last_error = NULL
WHERE id = ANY($1)";

/// Records failed attempts: the error, and the next attempt after a backoff that doubles per attempt from `$3`
/// seconds, capped at `$4` seconds.
const MARK_FAILED_SQL: &str = "
UPDATE {schema_prefix}idempotency_outbox AS o
SET attempts = o.attempts + 1, last_error = f.error,
    next_attempt_at = now() + make_interval(secs => least($4, $3 * power(2, least(o.attempts, 30))))
FROM unnest($1::text[], $2::text[]) AS f(id, error)
WHERE o.id = f.id";

/// Deletes up to `$2` rows sent more than `$1` seconds ago (every relay purges, about once a second).
const PURGE_SQL: &str = "
DELETE FROM {schema_prefix}idempotency_outbox
WHERE id IN (
    SELECT id FROM {schema_prefix}idempotency_outbox
    WHERE sent_at IS NOT NULL AND sent_at < now() - make_interval(secs => $1)
    LIMIT $2
    -- Rows another relay's purge is deleting are skipped, not waited for: relays never queue up behind each other,
    -- and two purges can never lock the same rows in opposite orders (a deadlock, and an ERROR in the server log).
    FOR UPDATE SKIP LOCKED
)";

/// The backlog: unsent rows, the age of the oldest, the failing ones.
const BACKLOG_SQL: &str = "
SELECT count(*) AS waiting,
       extract(epoch FROM now() - min(created_at))::float8 AS oldest_secs,
       count(*) FILTER (WHERE last_error IS NOT NULL) AS failing
FROM {schema_prefix}idempotency_outbox
WHERE sent_at IS NULL";

/// The backlog per destination, with the last error of its most recent failing row.
const BACKLOG_BY_DESTINATION_SQL: &str = "
SELECT destination,
       count(*) AS waiting,
       extract(epoch FROM now() - min(created_at))::float8 AS oldest_secs,
       count(*) FILTER (WHERE last_error IS NOT NULL) AS failing,
       (array_agg(last_error ORDER BY seq DESC) FILTER (WHERE last_error IS NOT NULL))[1] AS last_error
FROM {schema_prefix}idempotency_outbox
WHERE sent_at IS NULL
GROUP BY destination
ORDER BY destination";

/// The outbox statements of one store, rendered for its schema.
#[derive(Debug)]
pub(crate) struct OutboxStatements {
    pub(crate) enqueue: String,
    pub(crate) lock_destinations: String,
    pub(crate) claim: String,
    pub(crate) mark_sent: String,
    pub(crate) mark_failed: String,
    pub(crate) purge: String,
    pub(crate) backlog: String,
    pub(crate) backlog_by_destination: String,
}

impl OutboxStatements {
    pub(crate) fn new(table: &Table) -> Self {
        Self {
            enqueue: table.render(ENQUEUE_SQL),
            lock_destinations: table.render(LOCK_DESTINATIONS_SQL),
            claim: table.render(CLAIM_SQL),
            mark_sent: table.render(MARK_SENT_SQL),
            mark_failed: table.render(MARK_FAILED_SQL),
            purge: table.render(PURGE_SQL),
            backlog: table.render(BACKLOG_SQL),
            backlog_by_destination: table.render(BACKLOG_BY_DESTINATION_SQL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_name_the_stores_schema() {
        let plain = OutboxStatements::new(&Table::in_search_path());
        assert!(plain.enqueue.contains("INSERT INTO idempotency_outbox "));
        let billing = OutboxStatements::new(&Table::in_schema("billing"));
        assert!(billing.enqueue.contains("INSERT INTO \"billing\".idempotency_outbox "));
        assert!(billing.purge.matches("\"billing\".idempotency_outbox").count() == 2);
    }
}
