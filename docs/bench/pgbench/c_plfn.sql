\set k random(1, 1000000000000)
INSERT INTO fl (key_hash, scope_hash, method, route, fingerprint, token, state, locked_until, expires_at)
VALUES (sha256(int8send(:k)), '\x0102', 'POST', '/bench/lib', '\x0304', :k, 'in_progress', now() + make_interval(secs => 30.0), now() + make_interval(secs => 86400.0)) ON CONFLICT DO NOTHING;
SELECT * FROM fl_complete_pl(sha256(int8send(:k)), '\x0102', 'POST', '/bench/lib', :k, 86400.0, 201::int2, '{content-type}', '{"\\x6170706c69636174696f6e2f6a736f6e"}', '\x7b226964223a317d');
