//! The `idempotent-admin` binary against a real PostgreSQL: records are made by the runtime (the store, or an app
//! with `#[idempotent]`), then the binary runs as a process, as an operator runs it, and its output and exit codes
//! are checked for every subcommand.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{App, HttpRequest, HttpResponse, post, test as actix_test};
use idempotent_runtime::admin::{self, SCOPE_FORMS, Scope};
use idempotent_runtime::outbox::OutboxMessage;
use idempotent_runtime::store::{Attempt, Claim, ClaimRequest, Completion, RecordId, StoredResponse};
use idempotent_runtime::{Idempotency, PostgresStore, Store, TransactionalReceiver, idempotent, to_hex};
use serde_json::Value;
use support::example_process::free_port;
use support::postgres::{TestSchema, database_url};

/// The binary, brought up to date first (`cargo test` does not build a feature-gated binary of another package).
fn admin_binary() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let profile_dir = test_binary.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps/<test>");
    BUILT.call_once(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "idempotent-runtime", "--features", "cli", "--bin", "idempotent-admin"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build --bin idempotent-admin");
        assert!(status.success(), "cargo build -p idempotent-runtime --features cli --bin idempotent-admin failed");
    });
    profile_dir.join(format!("idempotent-admin{}", std::env::consts::EXE_SUFFIX))
}

/// One run of the binary.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|error| panic!("JSON on stdout ({error}): {}", self.stdout))
    }

    #[track_caller]
    fn expect(self, code: i32) -> Self {
        assert_eq!(self.code, code, "exit code\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// Runs the binary with exactly these arguments, without `DATABASE_URL` from the environment.
fn run_admin(args: &[&str]) -> Run {
    let output =
        Command::new(admin_binary()).args(args).env_remove("DATABASE_URL").output().expect("run idempotent-admin");
    Run {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// A fresh, migrated schema, and the runtime's store on it.
struct Fixture {
    schema: TestSchema,
    store: PostgresStore,
}

const LIVE: Duration = Duration::from_secs(600);
const GONE: Duration = Duration::ZERO;

fn alice() -> Scope {
    Scope::User("alice".to_owned())
}

fn id(key: &str, scope: &Scope, route: &str) -> RecordId {
    RecordId {
        key_hash: admin::key_hash(key),
        scope_hash: scope.hash(),
        method: "POST".to_owned(),
        route: route.to_owned(),
    }
}

fn hex_key(key: &str) -> String {
    to_hex(&admin::key_hash(key))
}

impl Fixture {
    async fn new() -> Self {
        let schema = TestSchema::create().await;
        let store = PostgresStore::new(schema.pool(4));
        store.migrate().await.expect("migrate the test schema");
        Self { schema, store }
    }

    /// Runs the binary on this schema (through the URL's `search_path`, as an app's pool would).
    fn admin(&self, args: &[&str]) -> Run {
        let url = self.schema.database_url();
        let mut all = vec!["--database-url", url.as_str()];
        all.extend_from_slice(args);
        run_admin(&all)
    }

    async fn claim_with(&self, id: RecordId, fingerprint: u8, lease: Duration, ttl: Duration) -> Claim {
        let request = ClaimRequest { id, fingerprint: [fingerprint; 32], token: fastrand::i64(..), lease, ttl };
        self.store.claim(&request).await.expect("claim")
    }

    /// Claims a fresh record as a request does; a zero lease makes it stuck at once.
    async fn claim(&self, id: RecordId, lease: Duration, ttl: Duration) -> Attempt {
        let token = fastrand::i64(..);
        let request = ClaimRequest { id: id.clone(), fingerprint: [1; 32], token, lease, ttl };
        assert_eq!(self.store.claim(&request).await.expect("claim"), Claim::Acquired { took_over: false });
        Attempt { id, token }
    }

    /// A completed record with a 201, two headers and a 17-byte body, replayed for `ttl` (zero: expired at once).
    async fn completed(&self, id: RecordId, ttl: Duration) {
        let lease = self.claim(id, LIVE, LIVE).await;
        let response = StoredResponse {
            status: StatusCode::CREATED,
            headers: vec![
                (HeaderName::from_static("content-type"), HeaderValue::from_static("application/json")),
                (HeaderName::from_static("location"), HeaderValue::from_static("/payments/7")),
            ],
            body: Some(Bytes::from_static(b"{\"payment\": \"7\"}\n")),
        };
        assert_eq!(self.store.complete(&lease, &response, ttl).await.expect("complete"), Completion::Stored);
    }

    async fn finish(self) {
        self.schema.drop_schema().await;
    }
}

/// Lets leases and ttls of zero lapse on the database's clock (`now()` is per transaction).
async fn lapse() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[actix_web::test]
async fn list_shows_stuck_records_and_release_frees_them() {
    let db = Fixture::new().await;
    db.claim(id("live-key", &alice(), "/payments"), LIVE, LIVE).await;
    db.claim(id("stuck-key", &alice(), "/payments"), GONE, LIVE).await;
    lapse().await;

    let all = db.admin(&["list"]).expect(0);
    let line = |hash: &str| all.stdout.lines().find(|line| line.contains(hash)).unwrap_or_default().to_owned();
    assert!(line(&hex_key("live-key")).starts_with("in_progress"), "{}", all.stdout);
    assert!(line(&hex_key("stuck-key")).starts_with("stuck"), "{}", all.stdout);
    assert!(line(&hex_key("stuck-key")).contains(&to_hex(&alice().hash())), "{}", all.stdout);
    let fields: Vec<&str> = all.stdout.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    assert_eq!(fields[2..4], ["POST", "/payments"], "{}", all.stdout);
    assert!(all.stdout.ends_with("2 records in progress\n"), "{}", all.stdout);

    let stuck = db.admin(&["list", "--stuck"]).expect(0);
    assert!(stuck.stdout.contains(&hex_key("stuck-key")), "{}", stuck.stdout);
    assert!(!stuck.stdout.contains(&hex_key("live-key")), "{}", stuck.stdout);
    assert!(stuck.stdout.ends_with("1 stuck record\n"), "{}", stuck.stdout);

    let json = db.admin(&["list", "--stuck", "--json"]).expect(0).json();
    assert_eq!(json["total"], 1);
    assert_eq!(json["records"][0]["key_hash"], hex_key("stuck-key"));
    assert_eq!(json["records"][0]["state"], "stuck");
    assert_eq!(json["records"][0]["route"], "/payments");
    assert!(json["records"][0]["age_secs"].as_f64().unwrap() >= 0.0);

    let limited = db.admin(&["list", "--limit", "1"]).expect(0);
    assert!(limited.stdout.contains("1 of 2 records in progress"), "{}", limited.stdout);

    // A record whose lease holds may still be running: refused.
    let refused = db.admin(&["release", "--key", "live-key", "--scope", "user:alice"]).expect(1);
    assert!(refused.stdout.contains("lease holds"), "{}", refused.stdout);
    assert!(refused.stdout.contains("--force"), "{}", refused.stdout);

    let released = db.admin(&["release", "--key", "stuck-key", "--scope", "user:alice"]).expect(0);
    assert!(released.stdout.starts_with("released POST /payments"), "{}", released.stdout);
    assert!(released.stdout.contains("was stuck"), "{}", released.stdout);
    // Gone, not taken over: even a different request acquires the key now.
    let claim = db.claim_with(id("stuck-key", &alice(), "/payments"), 2, LIVE, LIVE).await;
    assert_eq!(claim, Claim::Acquired { took_over: false });

    let none = db.admin(&["list", "--stuck"]).expect(0);
    assert_eq!(none.stdout, "no stuck records\n");
    db.admin(&["release", "--key", "stuck-key", "--scope", "user:alice"]).expect(1);
    db.finish().await;
}

#[actix_web::test]
async fn a_stuck_record_can_be_released_by_the_hashes_list_prints() {
    let db = Fixture::new().await;
    let tenant = Scope::Header { name: "X-Tenant-Id".to_owned(), value: "acme".to_owned() };
    db.claim(id("crashed", &tenant, "/orders"), GONE, LIVE).await;
    lapse().await;
    let listed = db.admin(&["list", "--stuck", "--json"]).expect(0).json();
    let record = &listed["records"][0];
    let (key, scope) = (record["key_hash"].as_str().unwrap(), record["scope_hash"].as_str().unwrap());
    assert_eq!(scope, to_hex(&"header:x-tenant-id=acme".parse::<Scope>().unwrap().hash()));
    db.admin(&["release", "--key-hash", key, "--scope-hash", scope, "--json"]).expect(0);
    assert_eq!(db.admin(&["counts", "--json"]).expect(0).json()["total"], 0);
    db.finish().await;
}

#[actix_web::test]
async fn releasing_a_completed_record_needs_force() {
    let db = Fixture::new().await;
    db.completed(id("done-key", &alice(), "/payments"), LIVE).await;

    let refused = db.admin(&["release", "--key", "done-key", "--scope", "user:alice"]).expect(1);
    assert!(refused.stdout.starts_with("refused to release POST /payments"), "{}", refused.stdout);
    assert!(refused.stdout.contains("completed"), "{}", refused.stdout);
    assert!(refused.stdout.contains("pass --force"), "{}", refused.stdout);
    let still = db.admin(&["show", "--key", "done-key", "--scope", "user:alice", "--json"]).expect(0).json();
    assert_eq!(still["records"][0]["state"], "completed");

    let forced = db.admin(&["release", "--key", "done-key", "--scope", "user:alice", "--force", "--json"]).expect(0);
    let forced = forced.json();
    assert_eq!(forced["outcome"], "released");
    assert_eq!(forced["forced"], true);
    assert_eq!(forced["record"]["state"], "completed");
    let claim = db.claim_with(id("done-key", &alice(), "/payments"), 1, LIVE, LIVE).await;
    assert_eq!(claim, Claim::Acquired { took_over: false });
    db.finish().await;
}

#[actix_web::test]
async fn show_prints_one_record_and_an_unknown_key_exits_1() {
    let db = Fixture::new().await;
    db.completed(id("done-key", &alice(), "/payments"), LIVE).await;

    let shown = db.admin(&["show", "--key", "done-key", "--scope", "user:alice"]).expect(0);
    for expected in [
        "record        POST /payments\n",
        &format!("key hash      {}\n", hex_key("done-key")),
        &format!("scope hash    {}\n", to_hex(&alice().hash())),
        "state         completed\n",
        "status        201\n",
        "locked until  -\n",
        "headers       content-type, location\n",
        "body          17 bytes\n",
    ] {
        assert!(shown.stdout.contains(expected), "{expected:?} in\n{}", shown.stdout);
    }

    // The key as the header carried it, quoted, is the same key.
    let json = db.admin(&["show", "--key", "\"done-key\"", "--scope", "user:alice", "--json"]).expect(0).json();
    let record = &json["records"][0];
    assert_eq!(record["status"], 201);
    assert_eq!(record["body_len"], 17);
    assert_eq!(record["header_names"], serde_json::json!(["content-type", "location"]));
    assert_eq!(record["locked_until"], Value::Null);
    assert!(record["completed_at"].as_str().unwrap().ends_with('Z'));

    let unknown = db.admin(&["show", "--key", "nope", "--scope", "user:alice"]).expect(1);
    assert_eq!(unknown.stdout, "no record for key \"nope\" in scope user:alice\n");
    assert_eq!(
        db.admin(&["show", "--key", "nope", "--scope", "user:alice", "--json"]).expect(1).json()["records"],
        serde_json::json!([])
    );
    db.admin(&["show", "--key", "done-key", "--scope", "user:bob"]).expect(1);
    db.admin(&["show", "--key", "done-key", "--scope", "user:alice", "--method", "PUT"]).expect(1);
    db.finish().await;
}

#[actix_web::test]
async fn a_key_used_on_two_routes_needs_route_and_method_to_release() {
    let db = Fixture::new().await;
    db.claim(id("twice", &Scope::Global, "/payments"), GONE, LIVE).await;
    db.claim(id("twice", &Scope::Global, "/refunds"), GONE, LIVE).await;
    lapse().await;

    let both = db.admin(&["show", "--key", "twice", "--scope", "global", "--json"]).expect(0).json();
    assert_eq!(both["records"].as_array().unwrap().len(), 2);
    let ambiguous = db.admin(&["release", "--key", "twice", "--scope", "global"]).expect(1);
    assert!(ambiguous.stdout.contains("2 records match"), "{}", ambiguous.stdout);
    assert!(ambiguous.stdout.contains("--method POST --route /refunds"), "{}", ambiguous.stdout);

    db.admin(&["release", "--key", "twice", "--scope", "global", "--route", "/refunds", "--method", "post"]).expect(0);
    let left = db.admin(&["show", "--key", "twice", "--scope", "global", "--json"]).expect(0).json();
    assert_eq!(left["records"].as_array().unwrap().len(), 1);
    assert_eq!(left["records"][0]["route"], "/payments");
    db.finish().await;
}

#[actix_web::test]
async fn purge_deletes_only_expired_records() {
    let db = Fixture::new().await;
    db.completed(id("expired-1", &alice(), "/payments"), GONE).await;
    db.completed(id("expired-2", &alice(), "/payments"), GONE).await;
    db.claim(id("expired-3", &alice(), "/payments"), GONE, GONE).await; // stuck, then expired
    db.completed(id("live", &alice(), "/payments"), LIVE).await;
    db.claim(id("running", &alice(), "/payments"), LIVE, LIVE).await;
    db.claim(id("stuck", &alice(), "/payments"), GONE, LIVE).await;
    lapse().await;

    // The purge sweeps the heap a page range at a time: the six records share one page, so one batch (of at
    // least one page) looks at all of them.
    let purged = db.admin(&["purge", "--batch", "2"]).expect(0);
    assert_eq!(purged.stdout, "purged: examined 6, deleted 3, batches 1\n");
    let again = db.admin(&["purge", "--json"]).expect(0).json();
    assert_eq!(again, serde_json::json!({ "examined": 3, "deleted": 0, "batches": 1 }));
    let counts = db.admin(&["counts", "--json"]).expect(0).json();
    assert_eq!(counts, serde_json::json!({ "in_progress": 1, "stuck": 1, "completed": 1, "expired": 0, "total": 3 }));
    db.admin(&["show", "--key", "expired-1", "--scope", "user:alice"]).expect(1);
    db.admin(&["show", "--key", "live", "--scope", "user:alice"]).expect(0);
    db.finish().await;
}

#[actix_web::test]
async fn counts_match_the_records() {
    let db = Fixture::new().await;
    assert!(db.admin(&["counts"]).expect(0).stdout.contains("total        0\n"));
    db.claim(id("running-1", &alice(), "/payments"), LIVE, LIVE).await;
    db.claim(id("running-2", &Scope::Global, "/payments"), LIVE, LIVE).await;
    db.claim(id("stuck", &alice(), "/payments"), GONE, LIVE).await;
    db.completed(id("done", &alice(), "/payments"), LIVE).await;
    db.completed(id("expired", &alice(), "/payments"), GONE).await;
    db.claim(id("stuck-expired", &alice(), "/payments"), GONE, GONE).await;
    lapse().await;

    let text = db.admin(&["counts"]).expect(0).stdout;
    for expected in ["in_progress  2", "stuck        1", "completed    1", "expired      2", "total        6"] {
        assert!(text.contains(expected), "{expected:?} in\n{text}");
    }
    let json = db.admin(&["counts", "--json"]).expect(0).json();
    assert_eq!(json, serde_json::json!({ "in_progress": 2, "stuck": 1, "completed": 1, "expired": 2, "total": 6 }));
    db.finish().await;
}

#[actix_web::test]
async fn outbox_shows_the_backlog_per_destination() {
    let db = Fixture::new().await;
    assert_eq!(db.admin(&["outbox"]).expect(0).stdout, "the outbox has no unsent messages\n");
    // Three messages enqueued as a consumer's transaction enqueues them; one destination's messages then fail.
    let inbox = TransactionalReceiver::new(db.store.clone());
    inbox
        .run("orders", "message-1", b"payload", |tx| async move {
            for destination in ["order.created", "order.created", "order.shipped"] {
                tx.enqueue(OutboxMessage::new(destination, b"{}".to_vec())).await?;
            }
            Ok::<_, tokio_postgres::Error>(Vec::new())
        })
        .await
        .expect("applied");
    let client = db.schema.pool(1).get().await.unwrap();
    client
        .batch_execute(
            "UPDATE idempotency_outbox SET attempts = 2, last_error = 'returned by the broker: 312 NO_ROUTE', \
             created_at = now() - interval '5 minutes' WHERE destination = 'order.shipped'",
        )
        .await
        .unwrap();

    let text = db.admin(&["outbox"]).expect(0).stdout;
    let lines: Vec<Vec<&str>> = text.lines().map(|line| line.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["DESTINATION", "WAITING", "OLDEST", "FAILING", "LAST", "ERROR"], "{text}");
    assert_eq!(lines[1][..4], ["order.created", "2", lines[1][2], "0"], "{text}");
    assert_eq!(lines[2][..4], ["order.shipped", "1", "5m00s", "1"], "{text}");
    assert!(lines[2].join(" ").ends_with("returned by the broker: 312 NO_ROUTE"), "{text}");
    assert_eq!(lines[3].join(" "), "3 messages waiting in 2 destinations, 1 failing", "{text}");

    let json = db.admin(&["outbox", "--json"]).expect(0).json();
    assert_eq!((json["waiting"].clone(), json["failing"].clone()), (serde_json::json!(3), serde_json::json!(1)));
    assert!(json["oldest_unsent_secs"].as_f64().unwrap() >= 300.0);
    assert_eq!(json["destinations"][1]["destination"], "order.shipped");
    assert_eq!(json["destinations"][1]["last_error"], "returned by the broker: 312 NO_ROUTE");
    assert_eq!(json["destinations"][0]["last_error"], serde_json::Value::Null);
    db.finish().await;
}

#[actix_web::test]
async fn the_schema_option_names_the_table() {
    let db = Fixture::new().await;
    db.claim(id("k", &alice(), "/payments"), LIVE, LIVE).await;
    let json =
        run_admin(&["--database-url", &database_url(), "--schema", &db.schema.name, "counts", "--json"]).expect(0);
    assert_eq!(json.json()["in_progress"], 1);
    // DATABASE_URL is the default for --database-url.
    let output = Command::new(admin_binary())
        .args(["counts", "--json", "--schema", &db.schema.name])
        .env("DATABASE_URL", database_url())
        .output()
        .expect("run idempotent-admin");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    db.finish().await;
}

/// Through a transaction-mode pooler (which refuses a search_path startup option), `--schema` names the table in
/// every statement: list, show, release, counts and purge all work.
#[actix_web::test]
async fn every_subcommand_works_through_pgbouncer_with_the_schema_option() {
    let db = Fixture::new().await;
    let bouncer = support::pgbouncer::PgBouncer::in_front_of_database_url(None);
    db.claim(id("stuck-key", &alice(), "/payments"), Duration::ZERO, LIVE).await;
    db.completed(id("done-key", &alice(), "/payments"), LIVE).await;
    lapse().await;
    let url = bouncer.url();
    let admin = |args: &[&str]| {
        let mut all = vec!["--database-url", url.as_str(), "--schema", db.schema.name.as_str()];
        all.extend_from_slice(args);
        run_admin(&all)
    };
    assert_eq!(admin(&["list", "--stuck", "--json"]).expect(0).json()["total"], 1);
    assert_eq!(
        admin(&["show", "--key", "done-key", "--scope", "user:alice", "--json"]).expect(0).json()["records"][0]["state"],
        "completed"
    );
    admin(&["release", "--key", "stuck-key", "--scope", "user:alice"]).expect(0);
    let counts = admin(&["counts", "--json"]).expect(0).json();
    assert_eq!((counts["stuck"].clone(), counts["completed"].clone()), (serde_json::json!(0), serde_json::json!(1)));
    admin(&["purge"]).expect(0);
    assert_eq!(admin(&["outbox", "--json"]).expect(0).json()["waiting"], 0);
    // Without --schema, the table is looked for in the search path (where it is not), and the message says so.
    let lost = run_admin(&["--database-url", &url, "counts"]).expect(2);
    assert!(lost.stderr.contains("no idempotency_records table in search_path"), "{}", lost.stderr);
    drop(bouncer);
    db.finish().await;
}

#[actix_web::test]
async fn an_unreachable_database_exits_2_with_the_fix() {
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", free_port());
    let unreachable = run_admin(&["--database-url", &url, "counts"]).expect(2);
    assert_eq!(unreachable.stdout, "");
    assert!(unreachable.stderr.contains(&format!("cannot connect to PostgreSQL at {url}")), "{}", unreachable.stderr);
    assert!(unreachable.stderr.contains("pg_ctlcluster --skip-systemctl-redirect"), "{}", unreachable.stderr);
    assert!(unreachable.stderr.contains("--database-url"), "{}", unreachable.stderr);

    let secret = format!("postgres://app:hunter2@127.0.0.1:{}/postgres", free_port());
    let redacted = run_admin(&["--database-url", &secret, "list"]).expect(2);
    assert!(!redacted.stderr.contains("hunter2") && redacted.stderr.contains("app:***@"), "{}", redacted.stderr);

    let nothing = run_admin(&["counts"]).expect(2);
    assert!(nothing.stderr.contains("--database-url URL or set DATABASE_URL"), "{}", nothing.stderr);
    let garbage = run_admin(&["--database-url", "postgres://host:notaport/db", "counts"]).expect(2);
    assert!(garbage.stderr.contains("is not a PostgreSQL URL"), "{}", garbage.stderr);

    // A server without the table: the message says where it looked and what to do.
    let schema = TestSchema::create().await;
    let no_table = run_admin(&["--database-url", &schema.database_url(), "counts"]).expect(2);
    assert!(no_table.stderr.contains("no idempotency_records table in search_path"), "{}", no_table.stderr);
    assert!(no_table.stderr.contains("--schema"), "{}", no_table.stderr);
    schema.drop_schema().await;
}

#[actix_web::test]
async fn usage_errors_exit_2_and_name_the_accepted_forms() {
    let url = database_url();
    let bad_scope = run_admin(&["--database-url", &url, "show", "--key", "k", "--scope", "tenant:42"]).expect(2);
    assert!(bad_scope.stderr.contains(SCOPE_FORMS), "{}", bad_scope.stderr);
    assert!(bad_scope.stderr.contains("\"tenant:42\""), "{}", bad_scope.stderr);
    let bad_header = run_admin(&["--database-url", &url, "release", "--key", "k", "--scope", "header:X-Tenant"]);
    assert!(bad_header.expect(2).stderr.contains("Name=value"));
    let bad_key = run_admin(&["--database-url", &url, "show", "--key", "a,b", "--scope", "global"]).expect(2);
    assert!(bad_key.stderr.contains("not allowed"), "{}", bad_key.stderr);
    let no_scope = run_admin(&["--database-url", &url, "show", "--key", "k"]).expect(2);
    assert!(no_scope.stderr.contains("--scope"), "{}", no_scope.stderr);
    let bad_hash = run_admin(&["--database-url", &url, "show", "--key-hash", "abc", "--scope", "global"]).expect(2);
    assert!(bad_hash.stderr.contains("64 hex digits"), "{}", bad_hash.stderr);
    run_admin(&["--database-url", &url, "list", "--limit", "many"]).expect(2);
    run_admin(&["frobnicate"]).expect(2);
    assert!(run_admin(&["--help"]).expect(0).stdout.contains("release"));
}

/// Records a real app wrote, found by the raw key and scope an operator knows.
#[path = "admin_cli/real_app.rs"]
mod real_app;
