"""PostgreSQL's own CPU per statement, for each way a client can send the same statement (issue 15).

PostgreSQL's work depends on the protocol messages, not on the client that sends them: this script sends them
with psycopg (libpq), the same messages tokio-postgres sends for each way named below.

Runs one connection, reads its backend's CPU time from /proc (so PostgreSQL must run on this machine), and sends
20,000 times each: a primary-key read like the library's replay, and a fresh claim's INSERT ... ON CONFLICT DO
NOTHING. The ways compared:

- protocol named: Parse once, then Bind/Execute by name (the bench floor's and tokio-postgres' prepare_cached);
- EXECUTE, extended unnamed: `EXECUTE name(<literals>)` as an unnamed statement (the store's default, through
  tokio-postgres' query_typed), the statement prepared once with SQL PREPARE;
- EXECUTE, simple query: the same text through the simple query protocol (results come back as text);
- unnamed: the statement itself, parsed and planned each time (`with_unnamed_statements`).

It also shows that EXECUTE cannot take bound parameters, which would have let the default send binary arguments.

    pip install "psycopg[binary]"
    python3 docs/bench/statement_cpu.py [postgresql://postgres@127.0.0.1:5432/postgres]
"""
import os
import sys
import time

import psycopg

N = 20_000
ROUNDS = 3
url = sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/postgres"
conn = psycopg.connect(url, autocommit=True)
pg = conn.pgconn
pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]


def backend_cpu():
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(label, send):
    for _ in range(1_000):
        send()
    cpu, wall = backend_cpu(), time.perf_counter()
    for _ in range(N):
        send()
    cpu, wall = backend_cpu() - cpu, time.perf_counter() - wall
    print(f"  {label:36s} {1e6 * cpu / N:6.1f} us PostgreSQL CPU, {1e6 * wall / N:6.1f} us wall", flush=True)


def literal(data):
    return "E'\\\\x" + data.hex() + "'::bytea"


conn.execute(
    "DROP TABLE IF EXISTS statement_cpu; CREATE TABLE statement_cpu (k bytea, s bytea, m text, r text, f bytea, "
    "t int8, st int2, b bytea, e timestamptz, PRIMARY KEY (k, s, m, r))"
)
scope, fingerprint = os.urandom(32), os.urandom(32)
key = os.urandom(32)
conn.execute(
    "INSERT INTO statement_cpu VALUES (%s, %s, 'POST', '/payments', %s, 1, 201, %s, now() + interval '1 day')",
    [key, scope, fingerprint, b"x" * 200],
)

try:
    conn.execute("PREPARE bound_probe(int) AS SELECT $1")
    conn.execute("EXECUTE bound_probe(%s)", [1])
    print("EXECUTE with a bound parameter: accepted")
except psycopg.Error as error:
    print(f"EXECUTE with a bound parameter: refused ({error.sqlstate}: {error.diag.message_primary})")

READ = "SELECT f, st, b FROM statement_cpu WHERE k = $1 AND s = $2 AND m = $3 AND r = $4 AND e > now()"
conn.execute(f"PREPARE shared_read(bytea, bytea, text, text) AS {READ}")
pg.prepare(b"named_read", READ.encode(), [17, 17, 25, 25])
read_args = [key, scope, b"POST", b"/payments"]
read_execute = f"EXECUTE shared_read({literal(key)}, {literal(scope)}, E'POST'::text, E'/payments'::text)".encode()

CLAIM = (
    "INSERT INTO statement_cpu (k, s, m, r, f, t) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING "
    "RETURNING true AS acquired"
)
conn.execute(f"PREPARE shared_claim(bytea, bytea, text, text, bytea, int8) AS {CLAIM}")
pg.prepare(b"named_claim", CLAIM.encode(), [17, 17, 25, 25, 17, 20])
token = (12345678).to_bytes(8, "big")


def claim_execute():
    return (
        f"EXECUTE shared_claim({literal(os.urandom(32))}, {literal(scope)}, E'POST'::text, E'/payments'::text, "
        f"{literal(fingerprint)}, '12345678'::int8)"
    ).encode()


def claim_args():
    return [os.urandom(32), scope, b"POST", b"/payments", fingerprint, token]


reads = [
    ("protocol named", lambda: pg.exec_prepared(b"named_read", read_args, [1, 1, 0, 0], 1)),
    ("EXECUTE, extended unnamed", lambda: pg.exec_params(read_execute, [], result_format=1)),
    ("EXECUTE, simple query", lambda: pg.exec_(read_execute)),
    ("unnamed", lambda: pg.exec_params(READ.encode(), read_args, [17, 17, 25, 25], [1, 1, 0, 0], 1)),
]
claims = [
    ("protocol named", lambda: pg.exec_prepared(b"named_claim", claim_args(), [1, 1, 0, 0, 1, 1], 1)),
    ("EXECUTE, extended unnamed", lambda: pg.exec_params(claim_execute(), [], result_format=1)),
    ("EXECUTE, simple query", lambda: pg.exec_(claim_execute())),
]
for round_number in range(ROUNDS):
    # Each round starts with another way, so that no way always runs first (on a cold cache) or last.
    print(f"round {round_number + 1}: a primary-key read (a replay)")
    for label, send in reads[round_number:] + reads[:round_number]:
        measure(label, send)
    print(f"round {round_number + 1}: a fresh key's claim (synchronous_commit off, to leave the WAL flush out)")
    conn.execute("SET synchronous_commit = off")
    for label, send in claims[round_number:] + claims[:round_number]:
        # Every way inserts into a table holding only the one record the reads use.
        conn.execute("DELETE FROM statement_cpu WHERE k <> %s", [key])
        conn.execute("VACUUM statement_cpu")
        measure(label, send)
    conn.execute("RESET synchronous_commit")

conn.execute("DROP TABLE statement_cpu")
