\set k random(1, 1000000000000)
INSERT INTO fl (key_hash, scope_hash, method, route, fingerprint, token, state, locked_until, expires_at)
VALUES (sha256(int8send(:k)), '\x0102', 'POST', '/bench/lib', '\x0304', :k, 'in_progress', now() + make_interval(secs => 30.0), now() + make_interval(secs => 86400.0)) ON CONFLICT DO NOTHING RETURNING true AS acquired;
UPDATE fl SET state = 'completed', locked_until = NULL, completed_at = now(), expires_at = now() + make_interval(secs => 86400.0),
    status = 201, header_names = '{content-type}', header_values = '{"\\x6170706c69636174696f6e2f6a736f6e"}', body = '\x7b226964223a317d'
WHERE key_hash = sha256(int8send(:k)) AND scope_hash = '\x0102' AND method = 'POST' AND route = '/bench/lib' AND token = :k AND state = 'in_progress';
