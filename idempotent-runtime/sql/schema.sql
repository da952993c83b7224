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
