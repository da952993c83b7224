"""PostgreSQL's own CPU per completion, for each way a client can store a response (issue 15).

The store sends a completion's arguments bound, never as literals: a response must not travel in a statement's
text, which PostgreSQL logs when the statement fails and shows in pg_stat_activity. Today's default calls the
schema's SETOF plpgsql function unnamed. This compares it, on one connection and one record completed again and
again (a HOT update each time), with: the floor's named UPDATE, a scalar plpgsql function, the SETOF function
called in the target list, a plpgsql procedure through CALL (INOUT result), `EXECUTE` with the response as
literals through the simple query protocol (what the bench's pooler-safe floor sends), and the UPDATE unnamed.
PostgreSQL's CPU is read from the backend's /proc/<pid>/stat over 20,000 statements; the order rotates per round.

    pip install "psycopg[binary]"
    python3 docs/bench/completion_cpu.py
"""
import os
import time
import psycopg
N = 20000
ROUNDS = 7
conn = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True)
pg = conn.pgconn
pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
def backend_cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
def measure(label, send):
    for _ in range(1000): send()
    cpu, wall = backend_cpu(), time.perf_counter()
    for _ in range(N): send()
    cpu, wall = backend_cpu() - cpu, time.perf_counter() - wall
    print(f"  {label:40s} {1e6*cpu/N:6.1f} us PG CPU, {1e6*wall/N:6.1f} us wall", flush=True)
conn.execute("""DROP SCHEMA IF EXISTS ccpu CASCADE; CREATE SCHEMA ccpu;
CREATE TABLE ccpu.r (key_hash bytea NOT NULL, scope_hash bytea NOT NULL, method text NOT NULL, route text NOT NULL,
 fingerprint bytea NOT NULL, token bigint NOT NULL, state text NOT NULL, has_waiters boolean NOT NULL DEFAULT false,
 locked_until timestamptz, expires_at timestamptz NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
 completed_at timestamptz, status smallint, header_names text[], header_values bytea[], body bytea,
 PRIMARY KEY (key_hash, scope_hash, method, route)) WITH (fillfactor = 80);""")
UPD = """UPDATE ccpu.r SET state = 'completed', locked_until = NULL, completed_at = now(),
 expires_at = now() + make_interval(secs => $6), status = $7, header_names = $8, header_values = $9, body = $10
 WHERE key_hash = $1 AND scope_hash = $2 AND method = $3 AND route = $4 AND token = $5 AND state IN ('in_progress','completed')
 RETURNING has_waiters"""
PL = UPD.replace("$10","p10").replace("$1","p1").replace("$2","p2").replace("$3","p3").replace("$4","p4").replace("$5","p5").replace("$6","p6").replace("$7","p7").replace("$8","p8").replace("$9","p9")
ARGS = "p1 bytea, p2 bytea, p3 text, p4 text, p5 bigint, p6 float8, p7 smallint, p8 text[], p9 bytea[], p10 bytea"
conn.execute(f"CREATE FUNCTION ccpu.f_setof({ARGS}) RETURNS SETOF boolean LANGUAGE plpgsql AS $f$ BEGIN RETURN QUERY {PL}; END $f$")
conn.execute(f"CREATE FUNCTION ccpu.f_scalar({ARGS}) RETURNS boolean LANGUAGE plpgsql AS $f$ DECLARE w boolean; BEGIN {PL} INTO w; RETURN w; END $f$")
conn.execute(f"CREATE PROCEDURE ccpu.p_call({ARGS}, INOUT waiters boolean) LANGUAGE plpgsql AS $f$ BEGIN {PL} INTO waiters; END $f$")
key, scope, fp = os.urandom(32), os.urandom(32), os.urandom(32)
conn.execute("INSERT INTO ccpu.r (key_hash, scope_hash, method, route, fingerprint, token, state, expires_at) VALUES (%s,%s,'POST','/payments',%s,7,'in_progress',now()+interval '1 day')", [key, scope, fp])
body = b'{"ok":true,"n":1234,"currency":"EUR","reference":"order-000000001","status":"accepted-for-processing"}'
def arr_text(xs): return "{" + ",".join(xs) + "}"
# binary params: use text format for simplicity for arrays
params = [key, scope, b"POST", b"/payments", b"7", b"86400", b"200", b"{content-type}", ("{\"\\\\x" + b"application/json".hex() + "\"}").encode(), body]
fmts = [1,1,0,0,0,0,0,0,0,1]
types = [17,17,25,25,20,701,21,1009,1001,17]
pg.prepare(b"named_upd", UPD.encode(), types)
conn.execute(f"SET synchronous_commit = off")
def lit(b): return "E'\\\\x" + b.hex() + "'::bytea"
execute_sql = (f"EXECUTE shared_upd({lit(key)}, {lit(scope)}, E'POST', E'/payments', '7'::int8, '86400.0'::float8, '200'::int2, "
  f"ARRAY[E'content-type']::text[], ARRAY[{lit(b'application/json')}]::bytea[], {lit(body)})").encode()
conn.execute("PREPARE shared_upd(bytea, bytea, text, text, int8, float8, int2, text[], bytea[], bytea) AS " + UPD)
ways = [
 ("named UPDATE (floor)", lambda: pg.exec_prepared(b"named_upd", params, fmts, 1)),
 ("unnamed SETOF function (today)", lambda: pg.exec_params(b"SELECT has_waiters FROM ccpu.f_setof($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) AS completed(has_waiters)", params, types, fmts, 1)),
 ("unnamed scalar function", lambda: pg.exec_params(b"SELECT ccpu.f_scalar($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)", params, types, fmts, 1)),
 ("unnamed SETOF function, target list", lambda: pg.exec_params(b"SELECT ccpu.f_setof($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)", params, types, fmts, 1)),
 ("unnamed CALL procedure", lambda: pg.exec_params(b"CALL ccpu.p_call($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,NULL)", params, types, fmts, 1)),
 ("EXECUTE literals, simple", lambda: pg.exec_(execute_sql)),
 ("unnamed UPDATE", lambda: pg.exec_params(UPD.encode(), params, types, fmts, 1)),
]
r = pg.exec_params(b"CALL ccpu.p_call($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,NULL)", params, types, fmts, 1); print("CALL:", r.status, r.ntuples, r.error_message)
r = pg.exec_params(b"SELECT ccpu.f_scalar($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)", params, types, fmts, 1); print("scalar:", r.status, r.ntuples, r.get_value(0,0), r.error_message)
for rn in range(ROUNDS):
    print(f"round {rn+1}")
    for label, send in ways[rn:] + ways[:rn]:
        measure(label, send)
conn.execute("DROP SCHEMA ccpu CASCADE")
