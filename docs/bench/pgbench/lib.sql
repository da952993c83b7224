\set k random(1, 1000000000000)
WITH inserted AS (
    INSERT INTO lb (key_hash, scope_hash, method, route, fingerprint, token, state, locked_until, expires_at)
    VALUES (sha256(int8send(:k)), '\x0102', 'POST', '/bench/lib', '\x0304', :k, 'in_progress', now() + make_interval(secs => 30.0), now() + make_interval(secs => 86400.0))
    ON CONFLICT DO NOTHING RETURNING 1)
SELECT true AS acquired, NULL::bytea AS fingerprint, NULL::bigint AS token, NULL::text AS state, NULL::bigint AS lease_remaining_ms, NULL::boolean AS takeover, NULL::smallint AS status, NULL::text[] AS header_names, NULL::bytea[] AS header_values, NULL::bytea AS body FROM inserted
UNION ALL
SELECT false, fingerprint, token, state, greatest(0, (extract(epoch FROM locked_until - now()) * 1000)::bigint),
       (state = 'completed' AND expires_at <= now()) OR (state = 'in_progress' AND locked_until <= now() AND (fingerprint = '\x0304' OR expires_at <= now())),
       status, header_names, header_values, body
FROM lb WHERE key_hash = sha256(int8send(:k)) AND scope_hash = '\x0102' AND method = 'POST' AND route = '/bench/lib' AND NOT EXISTS (SELECT 1 FROM inserted);
UPDATE lb SET state = 'completed', locked_until = NULL, completed_at = now(), expires_at = now() + make_interval(secs => 86400.0),
    status = 201, header_names = '{content-type}', header_values = '{"\\x6170706c69636174696f6e2f6a736f6e"}', body = '\x7b226964223a317d'
WHERE key_hash = sha256(int8send(:k)) AND scope_hash = '\x0102' AND method = 'POST' AND route = '/bench/lib' AND token = :k AND state IN ('in_progress', 'completed')
RETURNING has_waiters;
