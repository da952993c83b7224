-- The idempotency records table of idempotent-runtime.
--
-- Apply it with your migration tool of choice, or call `PostgresStore::migrate()`, which runs this file.
-- The table is created in the connection's search_path. To keep it in another schema, give the store that
-- schema (`PostgresStore::with_schema("billing")`: every statement then names "billing".idempotency_records, and
-- `migrate()` creates the schema and runs this file there), and apply this file with that schema first in the
-- search_path (`SET LOCAL search_path TO billing` in your migration's transaction). A startup option such as
-- `options=-csearch_path=...` does not pass PgBouncer. The file is idempotent: applying it twice changes nothing.

CREATE TABLE IF NOT EXISTS idempotency_records (
    -- Identity (CONTRACT section 2). Scope and key are SHA-256 digests: the raw values are never stored.
    key_hash      bytea       NOT NULL,
    scope_hash    bytea       NOT NULL,
    method        text        NOT NULL,
    route         text        NOT NULL,
    -- SHA-256 of method, route, path, canonical query and body of the request that claimed the record.
    fingerprint   bytea       NOT NULL,
    -- Fencing token of the attempt that owns the record; completion and release must present it.
    token         bigint      NOT NULL,
    state         text        NOT NULL CHECK (state IN ('in_progress', 'completed')),
    -- Set by a request that waits for this record (on_conflict = "wait"): its completion or release then sends a
    -- NOTIFY on channel idempotency_records, so records nobody waits for cost no notification.
    has_waiters   boolean     NOT NULL DEFAULT false,
    -- End of the lease while in progress (a heartbeat may push it); NULL once completed.
    locked_until  timestamptz,
    -- The record is replayed until then; an expired record is treated as absent.
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    -- The stored response; body is NULL on a completed record whose body was over the response cap.
    status        smallint,
    header_names  text[],
    header_values bytea[],
    body          bytea,
    PRIMARY KEY (key_hash, scope_hash, method, route)
) WITH (
    -- Leave room on each page so that completing a record (an UPDATE of non-indexed columns) stays a HOT update.
    fillfactor = 80
);

-- Stores an attempt's response if the record still carries its token (PostgresStore::complete; the same UPDATE
-- runs as a plain statement where this function is missing or not executable). A function because its plan is
-- cached per connection while the response stays a bound parameter: a prepared statement would do the same, but
-- cannot be shared behind a transaction-mode pooler, and the response must not be written into a statement's text
-- (it would reach the server log). It is created beside the table and names the table with its schema, so it
-- updates that table whatever the caller's search_path. Only its owner may replace it: applied by another role,
-- this step leaves it as it is. Its parameters' names and types are part of its identity: changing them needs a
-- DROP FUNCTION first.
DO $migrate$
DECLARE
    -- The schema's own name (`regnamespace` would print it quoted where it needs quotes, and `%I` quote it again).
    table_schema name := (SELECT nspname FROM pg_namespace
                          WHERE oid = (SELECT relnamespace FROM pg_class WHERE oid = 'idempotency_records'::regclass));
    existing regprocedure := to_regprocedure(format(
        '%I.idempotency_records_complete(bytea, bytea, text, text, bigint, float8, smallint, text[], bytea[], bytea)',
        table_schema));
BEGIN
    IF existing IS NOT NULL
       AND NOT pg_has_role((SELECT proowner FROM pg_proc WHERE oid = existing), 'USAGE') THEN
        RAISE NOTICE '% belongs to another role: left as it is', existing;
        RETURN;
    END IF;
    EXECUTE format($create$
CREATE OR REPLACE FUNCTION %1$I.idempotency_records_complete(
    p_key_hash bytea, p_scope_hash bytea, p_method text, p_route text, p_token bigint, p_ttl_secs float8,
    p_status smallint, p_header_names text[], p_header_values bytea[], p_body bytea)
RETURNS SETOF boolean
LANGUAGE plpgsql
AS $function$
BEGIN
    RETURN QUERY
    UPDATE %1$I.idempotency_records
    SET state = 'completed', locked_until = NULL, completed_at = now(),
        expires_at = now() + make_interval(secs => p_ttl_secs),
        status = p_status, header_names = p_header_names, header_values = p_header_values, body = p_body
    WHERE key_hash = p_key_hash AND scope_hash = p_scope_hash AND method = p_method AND route = p_route
      AND token = p_token AND state IN ('in_progress', 'completed')
    RETURNING has_waiters;
END
$function$
$create$, table_schema);
END
$migrate$;

-- The outbox (issue 28): messages a transactional route or a TransactionalReceiver enqueued in its own transaction
-- (`Tx::enqueue`), which a relay (`outbox::OutboxRelay`) publishes after the commit and marks sent only once the
-- broker confirmed them. Beside the records table, in the same schema. New objects only: applying this on a live
-- database rewrites no existing table. An application role needs SELECT, INSERT, UPDATE and DELETE on it, as on
-- the records (the identity column's sequence needs no grant).
CREATE TABLE IF NOT EXISTS idempotency_outbox (
    -- The message id (`outbox::MessageId`): derived from the idempotency record and the enqueue's position in the
    -- handler, so a handler run again after a rollback enqueues the same ids. Consumers deduplicate on it.
    id              text        PRIMARY KEY,
    -- Enqueue order (not commit order): a destination's messages are published in this order.
    seq             bigint      GENERATED ALWAYS AS IDENTITY,
    -- Routing key (AMQP) or subject (NATS).
    destination     text        NOT NULL,
    payload         bytea       NOT NULL,
    header_names    text[]      NOT NULL DEFAULT '{}',
    header_values   text[]      NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- NULL until the broker confirmed the message; the relay purges sent rows after its retention.
    sent_at         timestamptz,
    -- Publish attempts, and the broker's answer to the last failed one (NULL once sent).
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    -- A failed message waits until then (capped exponential backoff) before the next attempt.
    next_attempt_at timestamptz NOT NULL DEFAULT now()
);

-- Its indexes: what the relay claims (the unsent rows, oldest first; partial, so it stays as small as the backlog),
-- and what it purges (sent rows past their retention). Created only where missing, looked up beside the table:
-- `CREATE INDEX IF NOT EXISTS` demands ownership of the table even when the index exists, and the role that
-- migrates may be an application role that does not own it.
DO $outbox$
DECLARE
    table_namespace oid := (SELECT relnamespace FROM pg_class WHERE oid = 'idempotency_outbox'::regclass);
BEGIN
    IF NOT EXISTS (SELECT FROM pg_class
                   WHERE relname = 'idempotency_outbox_unsent' AND relnamespace = table_namespace) THEN
        CREATE INDEX idempotency_outbox_unsent ON idempotency_outbox (seq) WHERE sent_at IS NULL;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_class
                   WHERE relname = 'idempotency_outbox_sent' AND relnamespace = table_namespace) THEN
        CREATE INDEX idempotency_outbox_sent ON idempotency_outbox (sent_at) WHERE sent_at IS NOT NULL;
    END IF;
END
$outbox$;
