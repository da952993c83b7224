//! The Redis store's own settings and key layout; the shared suites check the rest of its behaviour
//! (`store_conformance.rs` and `conformance.rs` on one node and a cluster, `redis_reliability.rs`).
//!
//! - Status lookups are off unless the store is built with `status_lookups(true)`: no index is written, a lookup is
//!   `Unsupported`, and a mounted status lookup answers 500 `misconfigured` and names the setting in the log.
//! - Records of the old key layout (layout 2), written here by the old release's own scripts
//!   (`redis_store/layout2_*.lua`, as released) on keys made exactly as that release made them, are served until
//!   they expire: a retry replays, a different request is refused, a duplicate of one in flight is refused or
//!   waits for it, and a dead worker's claim is taken over by its retry.
//! - The record key's own life follows the record: a heartbeat moves its end with the lease, a completion brings
//!   it back to the completion's ttl (the deadlines are kept relative to it).
//! - Replica acknowledgements (`WAIT`) are awaited for their own timeout, also when it is longer than the store's.

mod support;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use actix_web::web::Bytes;
use actix_web::{App, HttpRequest, HttpResponse, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idempotent_runtime::store::{
    Attempt, Claim, ClaimRequest, Completion, LeaseState, Record, RecordId, RecordState, StoredResponse, testing,
};
use idempotent_runtime::{
    Idempotency, RedisStore, ScopeValue, Store, StoreErrorKind, idempotent, key_digest, scope_digest, status_lookup,
};
use redis::aio::ConnectionLike;
use redis::{Script, Value};
use support::logs::CapturedLogs;
use support::redis_cluster::RedisCluster;
use support::redis_node::{delete_prefix, redis_url, shared_connection, unique_prefix};

/// The claim and completion scripts of layout 2, byte for byte as the store ran them before layout 3 (commit 73328f9).
const LAYOUT2_CLAIM: &str = include_str!("redis_store/layout2_claim.lua");
const LAYOUT2_COMPLETE: &str = include_str!("redis_store/layout2_complete.lua");

/// The Redis store's grace after expiry, in milliseconds (its `EXPIRY_GRACE`), as layout 2's store sent it.
const GRACE_MS: u64 = 5_000;

const HOUR: Duration = Duration::from_secs(3600);

/// The test binary's one log capture.
fn logs() -> &'static CapturedLogs {
    static LOGS: OnceLock<CapturedLogs> = OnceLock::new();
    LOGS.get_or_init(CapturedLogs::install)
}

fn record_id(key: &str) -> RecordId {
    RecordId {
        scope_hash: scope_digest(ScopeValue::User("alice")),
        key_hash: key_digest(key),
        method: "POST".into(),
        route: "/payments".into(),
    }
}

fn request(key: &str, fingerprint: u8, token: i64, lease: Duration) -> ClaimRequest {
    ClaimRequest { id: record_id(key), fingerprint: [fingerprint; 32], token, lease, ttl: HOUR }
}

fn attempt_of(request: &ClaimRequest) -> Attempt {
    Attempt { id: request.id.clone(), token: request.token }
}

fn response(body: &'static str) -> StoredResponse {
    StoredResponse { status: StatusCode::CREATED, headers: vec![], body: Some(Bytes::from_static(body.as_bytes())) }
}

fn body_of(record: &Record) -> Option<&[u8]> {
    match &record.state {
        RecordState::Completed(response) => response.body.as_deref(),
        RecordState::InProgress { .. } => None,
    }
}

/// A process of the release before layout 3: it claims and completes with that release's scripts and keys.
struct OldRelease<C> {
    connection: C,
    prefix: String,
    /// `PUBLISH` on one node, `SPUBLISH` on a cluster, as that release sent.
    publish: &'static str,
}

impl<C: ConnectionLike + Send + Sync> OldRelease<C> {
    /// A key of layout 2, exactly as its `keys.rs` made them: `<prefix>v2{<scope b64><key b64>}` and the part,
    /// the digests in unpadded base64url.
    fn key(&self, id: &RecordId, part: &str) -> Vec<u8> {
        let base64 = |digest: &[u8]| URL_SAFE_NO_PAD.encode(digest);
        format!("{}v2{{{}{}}}{part}", self.prefix, base64(&id.scope_hash), base64(&id.key_hash)).into_bytes()
    }

    fn member(id: &RecordId) -> String {
        format!("{} {}", id.method, id.route)
    }

    /// Layout 2's claim; true when acquired.
    async fn claim(&mut self, request: &ClaimRequest) -> bool {
        let member = Self::member(&request.id);
        let reply: Value = Script::new(LAYOUT2_CLAIM)
            .key(self.key(&request.id, &format!(":r:{member}")))
            .key(self.key(&request.id, ":i"))
            .arg(request.fingerprint.as_slice())
            .arg(request.token)
            .arg(request.lease.as_millis() as u64)
            .arg(request.ttl.as_millis() as u64)
            .arg(GRACE_MS)
            .arg(member)
            .invoke_async(&mut self.connection)
            .await
            .expect("layout 2's claim");
        matches!(reply, Value::Array(items) if items.len() == 2)
    }

    /// Layout 2's completion, with a 201 and `body` (no headers); true when stored.
    async fn complete(&mut self, request: &ClaimRequest, body: &str) -> bool {
        let member = Self::member(&request.id);
        let stored: i64 = Script::new(LAYOUT2_COMPLETE)
            .key(self.key(&request.id, &format!(":r:{member}")))
            .key(self.key(&request.id, ":i"))
            .arg(request.token)
            .arg(request.ttl.as_millis() as u64)
            .arg(GRACE_MS)
            .arg(201)
            .arg(b"".as_slice())
            .arg("1")
            .arg(body)
            .arg(self.publish)
            .arg(self.key(&request.id, &format!(":w:{member}")))
            .invoke_async(&mut self.connection)
            .await
            .expect("layout 2's completion");
        stored == 1
    }

    /// The Redis expiry (ms) of a record of layout 2.
    async fn expiry(&mut self, id: &RecordId) -> i64 {
        let key = self.key(id, &format!(":r:{}", Self::member(id)));
        redis::cmd("PEXPIRETIME").arg(key).query_async(&mut self.connection).await.expect("PEXPIRETIME")
    }
}

async fn old_release_on_the_node(prefix: &str) -> OldRelease<redis::aio::MultiplexedConnection> {
    OldRelease { connection: shared_connection().await, prefix: prefix.to_owned(), publish: "PUBLISH" }
}

async fn old_release_on_the_cluster(prefix: &str) -> OldRelease<redis::cluster_async::ClusterConnection> {
    let cluster = tokio::task::spawn_blocking(RedisCluster::shared).await.expect("start the cluster");
    let nodes = cluster.nodes().into_iter().map(|node| format!("redis://{node}"));
    let client = redis::cluster::ClusterClient::new(nodes.collect::<Vec<_>>()).expect("the cluster's nodes");
    let connection = client.get_async_connection().await.expect("connect to the test's Redis Cluster");
    OldRelease { connection, prefix: prefix.to_owned(), publish: "SPUBLISH" }
}

async fn node_store(prefix: &str) -> RedisStore {
    RedisStore::node(redis_url()).key_prefix(prefix).connect().await.expect("connect to Redis")
}

async fn cluster_store(prefix: &str) -> RedisStore {
    let cluster = tokio::task::spawn_blocking(RedisCluster::shared).await.expect("start the cluster");
    RedisStore::cluster(cluster.nodes()).key_prefix(prefix).connect().await.expect("connect to the cluster")
}

/// The value of the key that records when layout 2's records end (absent until a store's scan ended).
async fn window_end<C: ConnectionLike + Send + Sync>(connection: &mut C, prefix: &str) -> Option<i64> {
    let key = format!("{prefix}v3:old-layout-until");
    redis::cmd("GET").arg(key).query_async(connection).await.expect("GET")
}

// ---------------------------------------------------------------------------------------------------------------
// Status lookups: off unless asked for.
// ---------------------------------------------------------------------------------------------------------------

/// Every key under `prefix` on the shared node.
async fn keys_under(prefix: &str) -> Vec<String> {
    let mut connection = shared_connection().await;
    let keys: Vec<Vec<u8>> =
        redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut connection).await.expect("KEYS");
    keys.into_iter().map(|key| String::from_utf8_lossy(&key).into_owned()).collect()
}

/// Claims and completes one record, claims and releases another, and renews a third's lease.
async fn every_transition(store: &RedisStore) {
    let completed = request("k-completed", 1, 1, HOUR);
    assert_eq!(store.claim(&completed).await.unwrap(), Claim::Acquired { took_over: false });
    assert_eq!(store.complete(&attempt_of(&completed), &response("done"), HOUR).await.unwrap(), Completion::Stored);
    let released = request("k-released", 1, 2, HOUR);
    store.claim(&released).await.unwrap();
    store.release(&attempt_of(&released)).await.unwrap();
    let running = request("k-running", 1, 3, HOUR);
    store.claim(&running).await.unwrap();
    store.heartbeat(&attempt_of(&running), HOUR).await.unwrap();
}

#[actix_web::test]
async fn a_store_with_the_default_settings_writes_no_index_and_answers_lookups_unsupported() {
    let prefix = unique_prefix();
    let store = node_store(&prefix).await;
    every_transition(&store).await;

    let keys = keys_under(&prefix).await;
    assert!(keys.iter().any(|key| key.contains("v3{") && key.ends_with(":r:POST /payments")), "records: {keys:?}");
    assert!(!keys.iter().any(|key| key.ends_with(":i")), "no index key: {keys:?}");
    let id = record_id("k-completed");
    let error = store.lookup(&id.scope_hash, &id.key_hash).await.expect_err("lookups are off");
    assert_eq!(error.kind(), StoreErrorKind::Unsupported);
    assert!(error.to_string().contains("status_lookups(true)"), "the error names the setting: {error}");

    // The same transitions with lookups on keep the index, and the lookup reads it.
    let looked_up = unique_prefix();
    let store = RedisStore::node(redis_url()).key_prefix(&looked_up).status_lookups(true).connect().await.unwrap();
    every_transition(&store).await;
    assert!(keys_under(&looked_up).await.iter().any(|key| key.ends_with(":i")), "an index with lookups on");
    let status = store.lookup(&id.scope_hash, &id.key_hash).await.unwrap().expect("the completed record");
    assert_eq!((status.method.as_str(), status.route.as_str()), ("POST", "/payments"));

    delete_prefix(&prefix).await;
    delete_prefix(&looked_up).await;
}

#[actix_web::test]
async fn a_status_lookup_on_a_store_without_lookups_is_a_misconfiguration_naming_the_setting() {
    let logs = logs();
    let prefix = unique_prefix();
    let idempotency = Idempotency::builder(node_store(&prefix).await).user_resolver(|_| Some("alice".into())).build();
    let app = init_service(App::new().app_data(idempotency).service(status_lookup("/idempotency/{key}"))).await;

    let answer = call_service(&app, TestRequest::get().uri("/idempotency/k-1").to_request()).await;
    assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.headers().get("content-type").unwrap(), "application/problem+json");
    let body = String::from_utf8_lossy(&read_body(answer).await).into_owned();
    assert!(body.contains("/misconfigured\""), "{body}");
    let logged = logs.text();
    assert!(
        logged.lines().any(|line| line.contains("ERROR") && line.contains("status_lookups(true)")),
        "an error naming the setting: {logged}"
    );
    delete_prefix(&prefix).await;
}

// ---------------------------------------------------------------------------------------------------------------
// The key's own life: the record's deadlines are kept relative to it, so it must follow them.
// ---------------------------------------------------------------------------------------------------------------

/// The remaining life of the record key of `id` under `prefix` on the shared node, in milliseconds.
async fn key_life(prefix: &str, id: &RecordId) -> i64 {
    let (record_key, _channel) = testing::redis_record_keys(prefix, id);
    let mut connection = shared_connection().await;
    redis::cmd("PTTL").arg(record_key).query_async(&mut connection).await.expect("PTTL")
}

#[actix_web::test]
async fn the_key_lives_as_long_as_a_heartbeat_renews_the_lease_and_then_as_long_as_the_completions_ttl() {
    let prefix = unique_prefix();
    let store = node_store(&prefix).await;
    let grace = i64::try_from(GRACE_MS).unwrap();
    let worker =
        ClaimRequest { ttl: Duration::from_millis(200), ..request("k-life", 1, 1, Duration::from_millis(300)) };
    assert_eq!(store.claim(&worker).await.unwrap(), Claim::Acquired { took_over: false });
    assert!(key_life(&prefix, &worker.id).await <= 300 + grace, "a claim's key lives for its lease and the grace");

    // A heartbeat for 10 s moves the key's end with the lease: past the first lease and the ttl, the record is
    // still there and still the worker's.
    assert_eq!(store.heartbeat(&attempt_of(&worker), Duration::from_secs(10)).await.unwrap(), LeaseState::Held);
    let life = key_life(&prefix, &worker.id).await;
    assert!(
        (9_000..=10_000 + grace).contains(&life),
        "the heartbeat moves the key's end to the new lease's: {life} ms"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    match store.claim(&request("k-life", 2, 2, HOUR)).await.unwrap() {
        Claim::Existing(Record { state: RecordState::InProgress { lease_remaining }, .. }) => {
            assert!(lease_remaining > Duration::from_secs(8), "the renewed lease remains: {lease_remaining:?}");
        }
        other => panic!("a record kept by its heartbeat must stay the worker's, got {other:?}"),
    }

    // A completion with a ttl shorter than the lease brings the key's end back to that ttl and the grace.
    let brief = Duration::from_millis(200);
    assert_eq!(store.complete(&attempt_of(&worker), &response("brief"), brief).await.unwrap(), Completion::Stored);
    let life = key_life(&prefix, &worker.id).await;
    assert!(life <= 200 + grace, "a completion's key lives for its ttl and the grace, not the lease: {life} ms");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.read(&worker.id).await.unwrap(), None, "the completed record expires at its own ttl");
    delete_prefix(&prefix).await;
}

// ---------------------------------------------------------------------------------------------------------------
// Replica acknowledgements.
// ---------------------------------------------------------------------------------------------------------------

/// `replica_acks` waits for its own timeout even when it is longer than the store's operation timeout: the shared
/// node has no replica, so `WAIT 1` returns 0 when its timeout ends, and the claim fails saying so (not cut short
/// as a timeout of the store's), and is released.
#[actix_web::test]
async fn replica_acknowledgements_are_awaited_for_their_own_timeout_even_past_the_stores() {
    let prefix = unique_prefix();
    let (store_timeout, acks_timeout) = (Duration::from_millis(300), Duration::from_millis(1_200));
    let store = RedisStore::node(redis_url())
        .key_prefix(&prefix)
        .timeout(store_timeout)
        .replica_acks(1, acks_timeout)
        .connect()
        .await
        .expect("connect to Redis");
    let claim = request("k-acks", 1, 1, HOUR);

    let started = Instant::now();
    let error = store.claim(&claim).await.expect_err("no replica acknowledges");
    let waited = started.elapsed();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    assert!(error.to_string().contains("0 of 1 replicas acknowledged"), "{error}");
    assert!(waited >= acks_timeout, "WAIT ran for its own timeout, not the store's: {waited:?}");
    // The unacknowledged claim was released: a plain store finds the key free.
    let plain = node_store(&prefix).await;
    assert_eq!(plain.claim(&request("k-acks", 2, 2, HOUR)).await.unwrap(), Claim::Acquired { took_over: false });
    delete_prefix(&prefix).await;
}

// ---------------------------------------------------------------------------------------------------------------
// Records of layout 2.
// ---------------------------------------------------------------------------------------------------------------

/// A completed record of layout 2 is replayed and refuses a different request, before and after the store's scan
/// recorded how long layout 2 lives; a key layout 2 never had is claimed in layout 3.
async fn a_completed_record_of_layout_2_is_replayed_and_a_different_request_refused<C>(
    mut old: OldRelease<C>,
    store: impl AsyncFnOnce(&str) -> RedisStore,
) where
    C: ConnectionLike + Send + Sync,
{
    let first = request("k-old", 1, 11, HOUR);
    assert!(old.claim(&first).await, "layout 2 claims");
    assert!(old.complete(&first, "paid by layout 2").await, "layout 2 completes");
    let store = store(&old.prefix).await;

    for round in ["while the store scans", "once the scan recorded the window"] {
        let retry = request("k-old", 1, 12, HOUR);
        let Claim::Existing(record) = store.claim(&retry).await.unwrap() else { panic!("{round}: not replayed") };
        assert_eq!(body_of(&record), Some(b"paid by layout 2".as_slice()), "{round}");
        let other = request("k-old", 2, 13, HOUR);
        let Claim::Existing(record) = store.claim(&other).await.unwrap() else { panic!("{round}: ran again") };
        assert_eq!(record.fingerprint, [1; 32], "{round}: the runtime answers 422 key-reused");
        assert!(store.read(&first.id).await.unwrap().is_some(), "{round}: read");

        let deadline = Instant::now() + Duration::from_secs(20);
        while window_end(&mut old.connection, &old.prefix).await.is_none() {
            assert!(Instant::now() < deadline, "the scan never recorded the window");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let expiry = old.expiry(&first.id).await;
    assert_eq!(window_end(&mut old.connection, &old.prefix).await, Some(expiry), "the window ends with the record");

    let fresh = request("k-new", 1, 14, HOUR);
    assert_eq!(store.claim(&fresh).await.unwrap(), Claim::Acquired { took_over: false });
}

#[actix_web::test]
async fn on_one_node_a_completed_record_of_layout_2_is_replayed_and_a_different_request_refused() {
    let prefix = unique_prefix();
    let old = old_release_on_the_node(&prefix).await;
    a_completed_record_of_layout_2_is_replayed_and_a_different_request_refused(old, node_store).await;
    delete_prefix(&prefix).await;
}

#[actix_web::test]
async fn on_a_cluster_a_completed_record_of_layout_2_is_replayed_and_a_different_request_refused() {
    // Layout 2's record and layout 3's are in different slots: the store reads the old one on its own.
    let prefix = unique_prefix();
    let old = old_release_on_the_cluster(&prefix).await;
    a_completed_record_of_layout_2_is_replayed_and_a_different_request_refused(old, cluster_store).await;
}

#[actix_web::test]
async fn a_duplicate_of_a_record_of_layout_2_in_flight_is_refused_and_its_waiter_woken_by_its_completion() {
    let prefix = unique_prefix();
    let mut old = old_release_on_the_node(&prefix).await;
    let original = request("k-running", 1, 21, HOUR);
    assert!(old.claim(&original).await);
    let store = node_store(&prefix).await;

    let duplicate = request("k-running", 1, 22, HOUR);
    let Claim::Existing(record) = store.claim(&duplicate).await.unwrap() else { panic!("a second execution") };
    let under_lease = Duration::from_secs(3000);
    assert!(
        matches!(record.state, RecordState::InProgress { lease_remaining } if lease_remaining > under_lease),
        "in flight under the original's lease (the runtime answers 409): {:?}",
        record.state
    );

    // The wait mode: the waiter waits for the older release's completion and is woken by it, on layout 2's channel.
    let started = Instant::now();
    let waiting = async {
        store.wait(&original.id, Duration::from_secs(20)).await.unwrap();
        Instant::now()
    };
    let completing = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(old.complete(&original, "completed by layout 2").await);
        Instant::now()
    };
    let (woken, completed) = tokio::join!(waiting, completing);
    assert!(woken.duration_since(started) >= Duration::from_millis(250), "the waiter waited for the completion");
    assert!(woken.saturating_duration_since(completed) < Duration::from_secs(2), "woken by the completion");
    let Claim::Existing(record) = store.claim(&duplicate).await.unwrap() else { panic!("a second execution") };
    assert_eq!(body_of(&record), Some(b"completed by layout 2".as_slice()));
    delete_prefix(&prefix).await;
}

#[actix_web::test]
async fn a_dead_workers_claim_of_layout_2_is_taken_over_by_its_retry_only() {
    let prefix = unique_prefix();
    let mut old = old_release_on_the_node(&prefix).await;
    let original = request("k-dead", 1, 31, Duration::from_millis(300));
    assert!(old.claim(&original).await);
    let store = node_store(&prefix).await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    let other = request("k-dead", 2, 32, HOUR);
    let Claim::Existing(record) = store.claim(&other).await.unwrap() else { panic!("another request took it over") };
    assert_eq!(record.fingerprint, [1; 32]);
    let retry = request("k-dead", 1, 33, HOUR);
    assert_eq!(store.claim(&retry).await.unwrap(), Claim::Acquired { took_over: true });
    assert_eq!(store.complete(&attempt_of(&retry), &response("ran again"), HOUR).await.unwrap(), Completion::Stored);
    let Claim::Existing(record) = store.claim(&request("k-dead", 1, 34, HOUR)).await.unwrap() else {
        panic!("a third execution")
    };
    assert_eq!(body_of(&record), Some(b"ran again".as_slice()));
    delete_prefix(&prefix).await;
}

#[actix_web::test]
async fn a_record_of_layout_2_answers_a_status_lookup() {
    let prefix = unique_prefix();
    let mut old = old_release_on_the_node(&prefix).await;
    let first = request("k-old", 1, 41, HOUR);
    assert!(old.claim(&first).await && old.complete(&first, "paid").await);
    let store = RedisStore::node(redis_url()).key_prefix(&prefix).status_lookups(true).connect().await.unwrap();
    let status = store.lookup(&first.id.scope_hash, &first.id.key_hash).await.unwrap().expect("layout 2's record");
    assert_eq!((status.method.as_str(), status.route.as_str()), ("POST", "/payments"));
    delete_prefix(&prefix).await;
}

// ---------------------------------------------------------------------------------------------------------------
// Through HTTP: a request the old release completed is replayed by the new one, and the handler does not run.
// ---------------------------------------------------------------------------------------------------------------

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[post("/payments")]
#[idempotent]
async fn pay(body: Bytes) -> HttpResponse {
    RUNS.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Created().body(format!("paid {}", String::from_utf8_lossy(&body)))
}

fn alice(_: &HttpRequest) -> Option<String> {
    Some("alice".to_owned())
}

fn payment(body: &'static str) -> TestRequest {
    TestRequest::post().uri("/payments").insert_header(("idempotency-key", "k-http")).set_payload(body)
}

#[actix_web::test]
async fn a_request_completed_in_layout_2_is_replayed_over_http_and_a_different_one_gets_422() {
    // The request's fingerprint, as the runtime computes it: from a record of layout 3 of the same request.
    let probe = unique_prefix();
    let idempotency = Idempotency::builder(node_store(&probe).await).user_resolver(alice).build();
    let app = init_service(App::new().app_data(idempotency).service(pay)).await;
    assert_eq!(call_service(&app, payment("10 EUR").to_request()).await.status(), StatusCode::CREATED);
    let record = keys_under(&probe).await.into_iter().find(|key| key.contains(":r:")).expect("the probe's record");
    let fingerprint: Vec<u8> =
        redis::cmd("HGET").arg(record).arg("f").query_async(&mut shared_connection().await).await.unwrap();

    // The older release ran it and stored its response, in layout 2.
    let prefix = unique_prefix();
    let mut old = old_release_on_the_node(&prefix).await;
    let ran = ClaimRequest {
        id: record_id("k-http"),
        fingerprint: fingerprint.try_into().expect("32 bytes"),
        token: 51,
        lease: HOUR,
        ttl: HOUR,
    };
    assert!(old.claim(&ran).await && old.complete(&ran, "paid 10 EUR by layout 2").await);

    let idempotency = Idempotency::builder(node_store(&prefix).await).user_resolver(alice).build();
    let app = init_service(App::new().app_data(idempotency).service(pay)).await;
    let runs = RUNS.load(Ordering::SeqCst);
    let retry = call_service(&app, payment("10 EUR").to_request()).await;
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(retry.headers().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(read_body(retry).await, "paid 10 EUR by layout 2");
    let reused = call_service(&app, payment("20 EUR").to_request()).await;
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(RUNS.load(Ordering::SeqCst), runs, "the handler did not run");
    delete_prefix(&probe).await;
    delete_prefix(&prefix).await;
}
