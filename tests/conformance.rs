//! The contract (docs/contract.md, sections 2 and 4) proved over real HTTP, once per store: every test below runs
//! against the in-memory store and against PostgreSQL (a fresh schema per test).

#[macro_use]
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_test::TestServer;
use actix_web::http::header::HeaderMap;
use actix_web::http::{Method, StatusCode};
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, post};
use futures_util::StreamExt as _;
use futures_util::stream::{self, FuturesUnordered};
use idempotent_runtime::{Idempotency, Store, idempotent};
use serde::Deserialize;
use support::probe::Probe;
use support::{StoreUnderTest, eventually};
use tokio::io::AsyncWriteExt as _;

// ---------------------------------------------------------------------------------------------------------------
// The application under test.

/// A response that differs on every run (`x-run`, body), so a replay is told apart from a second execution.
fn ran(run: usize, code: StatusCode, body: &[u8]) -> HttpResponse {
    let mut payload = format!("run {run}:").into_bytes();
    payload.extend_from_slice(body);
    HttpResponse::build(code)
        .content_type("application/octet-stream")
        .insert_header(("x-run", run.to_string()))
        .insert_header(("location", format!("/pay/{run}")))
        .insert_header(("set-cookie", format!("session=run{run}")))
        .body(payload)
}

#[post("/pay")]
#[idempotent(ttl = "1h", lease = "60s")]
async fn pay(probe: web::Data<Probe>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::CREATED, &body)
}

#[idempotent(ttl = "1h", lease = "60s")]
#[post("/pay-other")]
async fn pay_other(probe: web::Data<Probe>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::CREATED, &body)
}

#[post("/items/{id}")]
#[idempotent]
async fn item(probe: web::Data<Probe>, request: HttpRequest, id: web::Path<u32>) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::OK, id.to_string().as_bytes())
}

#[derive(Deserialize)]
struct Order {
    qty: u32,
}

#[post("/json")]
#[idempotent]
async fn json(probe: web::Data<Probe>, request: HttpRequest, order: web::Json<Order>) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::CREATED, order.qty.to_string().as_bytes())
}

#[post("/status/{code}")]
#[idempotent]
async fn status(probe: web::Data<Probe>, request: HttpRequest, code: web::Path<u16>) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::from_u16(*code).expect("test sends valid codes"), b"")
}

// The deprecated spelling of `store_responses = "all"` keeps working (with a deprecation warning).
#[post("/status-stored/{code}")]
#[idempotent(store_server_errors = true)]
#[allow(deprecated)]
async fn status_stored(probe: web::Data<Probe>, request: HttpRequest, code: web::Path<u16>) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::from_u16(*code).expect("test sends valid codes"), b"")
}

#[post("/panic")]
#[idempotent]
async fn panics(probe: web::Data<Probe>, request: HttpRequest) -> HttpResponse {
    probe.enter(&request).await;
    panic!("the handler failed");
}

#[post("/big")]
#[idempotent(max_response_body = "1KiB")]
async fn big(probe: web::Data<Probe>, request: HttpRequest) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::OK, &[b'x'; 4096])
}

#[post("/big-stream")]
#[idempotent(max_response_body = "1KiB")]
async fn big_stream(probe: web::Data<Probe>, request: HttpRequest) -> HttpResponse {
    let run = probe.enter(&request).await;
    let chunks =
        (0..8).map(move |chunk| Ok::<_, std::io::Error>(Bytes::from(format!("{run}:{chunk}:{}|", "y".repeat(300)))));
    HttpResponse::Ok().streaming(stream::iter(chunks))
}

#[post("/short-ttl")]
#[idempotent(ttl = "1s")]
async fn short_ttl(probe: web::Data<Probe>, request: HttpRequest) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::CREATED, b"")
}

#[post("/short-lease")]
#[idempotent(ttl = "1h", lease = "1s")]
async fn short_lease(probe: web::Data<Probe>, request: HttpRequest) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::CREATED, b"")
}

#[post("/wait")]
#[idempotent(on_conflict = "wait", wait = "10s", lease = "60s")]
async fn wait_for_original(probe: web::Data<Probe>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let run = probe.enter(&request).await;
    let code = if request.headers().contains_key("x-fail") { StatusCode::BAD_GATEWAY } else { StatusCode::CREATED };
    ran(run, code, &body)
}

#[post("/wait-briefly")]
#[idempotent(on_conflict = "wait", wait = "1s", lease = "60s")]
async fn wait_briefly(probe: web::Data<Probe>, request: HttpRequest) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::CREATED, b"")
}

#[post("/derived")]
#[idempotent(key = "derived", ttl = "1m")]
async fn derived(probe: web::Data<Probe>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::CREATED, &body)
}

#[post("/global")]
#[idempotent(scope = "global")]
async fn global(probe: web::Data<Probe>, request: HttpRequest) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::CREATED, b"")
}

#[post("/tenant")]
#[idempotent(scope = "header:X-Tenant-Id")]
async fn tenant(probe: web::Data<Probe>, request: HttpRequest) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::CREATED, b"")
}

fn account_of(request: &HttpRequest) -> Option<String> {
    request.headers().get("x-account")?.to_str().ok().map(str::to_owned)
}

#[post("/by-function")]
#[idempotent(scope = account_of)]
async fn by_function(probe: web::Data<Probe>, request: HttpRequest) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::CREATED, b"")
}

#[post("/query-key")]
#[idempotent(key = "query:idem")]
async fn query_key(probe: web::Data<Probe>, request: HttpRequest) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::CREATED, b"")
}

#[post("/form-key")]
#[idempotent(key = "form:idem")]
async fn form_key(
    probe: web::Data<Probe>,
    request: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::CREATED, form.get("amount").map_or("", String::as_str).as_bytes())
}

#[post("/header-key")]
#[idempotent(key = "header:X-Request-Key")]
async fn header_key(probe: web::Data<Probe>, request: HttpRequest) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::CREATED, b"")
}

#[post("/optional")]
#[idempotent(required = false)]
async fn optional(probe: web::Data<Probe>, request: HttpRequest, body: String) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::CREATED, body.as_bytes())
}

#[post("/small-body")]
#[idempotent(max_request_body = "16B")]
async fn small_body(probe: web::Data<Probe>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::CREATED, &body)
}

fn bearer_user(request: &HttpRequest) -> Option<String> {
    request.headers().get("authorization")?.to_str().ok()?.strip_prefix("Bearer ").map(str::to_owned)
}

/// How the app registers (or forgets) its configuration.
#[derive(Clone, Copy, PartialEq)]
enum Setup {
    Complete,
    NoUserResolver,
    NoConfiguration,
}

struct Harness {
    server: TestServer,
    probe: web::Data<Probe>,
}

fn start(store: &StoreUnderTest, setup: Setup) -> Harness {
    let probe = web::Data::new(Probe::default());
    let store: Arc<dyn Store> = Arc::clone(&store.store);
    let app_probe = probe.clone();
    let server = actix_test::start(move || {
        let idempotency = match setup {
            Setup::NoUserResolver => Some(Idempotency::builder_shared(store.clone()).build()),
            Setup::Complete => Some(Idempotency::builder_shared(store.clone()).user_resolver(bearer_user).build()),
            Setup::NoConfiguration => None,
        };
        let app = App::new().app_data(app_probe.clone()).wrap_fn(support::cancellation::cancel_marked_requests);
        let app = match idempotency {
            Some(idempotency) => app.app_data(idempotency),
            None => app,
        };
        app.service(pay)
            .service(pay_other)
            .service(item)
            .service(json)
            .service(status)
            .service(status_stored)
            .service(panics)
            .service(big)
            .service(big_stream)
            .service(short_ttl)
            .service(short_lease)
            .service(global)
            .service(tenant)
            .service(by_function)
            .service(query_key)
            .service(form_key)
            .service(header_key)
            .service(optional)
            .service(small_body)
            .service(wait_for_original)
            .service(wait_briefly)
            .service(derived)
            .service(idempotent_runtime::status_lookup("/idempotency/{key}"))
    });
    Harness { server, probe }
}

// ---------------------------------------------------------------------------------------------------------------
// Client side.

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    fn is_replay(&self) -> bool {
        self.header("idempotent-replayed") == Some("true")
    }

    /// Asserts a problem document of the given slug and returns it.
    fn problem(&self, slug: &str) -> serde_json::Value {
        assert_eq!(self.header("content-type"), Some("application/problem+json"), "{self:?}");
        assert_eq!(self.header("cache-control"), Some("no-store"), "{self:?}");
        let document: serde_json::Value = serde_json::from_slice(&self.body).expect("problem body is JSON");
        assert_eq!(document["type"], format!("https://idempotent.rs/problems/{slug}"), "{document}");
        assert_eq!(document["status"], self.status.as_u16(), "{document}");
        assert!(document["title"].as_str().is_some_and(|title| !title.is_empty()));
        assert!(document["detail"].as_str().is_some_and(|detail| !detail.is_empty()));
        document
    }

    fn retry_after(&self) -> u64 {
        self.header("retry-after").expect("Retry-After present").parse().expect("Retry-After in seconds")
    }
}

/// One request: `key` goes in `Idempotency-Key` (raw, as given), `user` in `Authorization: Bearer`.
struct Call<'a> {
    path: &'a str,
    key: Option<&'a str>,
    user: Option<&'a str>,
    headers: Vec<(&'a str, &'a str)>,
    body: Bytes,
}

fn call(path: &str) -> Call<'_> {
    Call { path, key: None, user: Some("alice"), headers: Vec::new(), body: Bytes::new() }
}

impl<'a> Call<'a> {
    fn key(mut self, key: &'a str) -> Self {
        self.key = Some(key);
        self
    }

    fn user(mut self, user: Option<&'a str>) -> Self {
        self.user = user;
        self
    }

    fn header(mut self, name: &'a str, value: &'a str) -> Self {
        self.headers.push((name, value));
        self
    }

    fn hold(self) -> Self {
        self.header("x-test-hold", "1")
    }

    fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    async fn send(self, server: &TestServer) -> Reply {
        let mut request = server.request(Method::POST, server.url(self.path)).timeout(Duration::from_secs(30));
        if let Some(key) = self.key {
            request = request.insert_header(("Idempotency-Key", key));
        }
        if let Some(user) = self.user {
            request = request.insert_header(("Authorization", format!("Bearer {user}")));
        }
        for (name, value) in self.headers {
            request = request.append_header((name, value));
        }
        let mut response = request.send_body(self.body).await.expect("request reaches the test server");
        let body = response.body().limit(1 << 20).await.expect("response body");
        Reply { status: response.status(), headers: response.headers().clone(), body }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The suite, run on both stores.

on_every_store!(
    store => &store;
    retry_replays_the_stored_response_byte_for_byte,
    quoted_and_bare_keys_are_the_same_record,
    same_key_with_a_different_body_is_refused,
    same_key_with_a_different_path_or_query_is_refused,
    reused_key_is_refused_even_while_the_original_runs,
    same_key_from_another_user_is_another_record,
    same_key_on_two_routes_is_two_records,
    concurrent_duplicates_run_the_handler_once,
    concurrent_retries_of_a_completed_key_all_replay,
    missing_key_is_refused_on_required_routes,
    malformed_keys_are_refused,
    key_sent_twice_is_refused,
    optional_key_runs_unprotected_when_absent,
    request_without_user_is_unauthenticated,
    user_scope_without_resolver_is_misconfigured,
    route_without_configuration_is_misconfigured,
    global_scope_shares_keys_across_users,
    header_scope_separates_tenants,
    function_scope_separates_accounts,
    query_form_and_named_header_key_sources,
    request_body_over_the_cap_is_refused,
    extractor_rejection_is_answered_and_not_stored,
    server_errors_release_the_claim,
    server_errors_are_stored_when_the_route_opts_in,
    client_errors_are_stored,
    panic_releases_the_claim,
    client_disconnect_lets_the_handler_finish_and_store_its_response,
    cancelled_handler_releases_the_claim_at_once,
    response_over_the_cap_is_completed_without_its_body,
    expired_record_runs_again,
    slow_handler_keeps_its_claim_past_the_lease,
    waiting_duplicate_replays_the_original_when_it_completes,
    waiting_duplicate_runs_when_the_original_releases,
    waiting_duplicate_gets_409_at_its_timeout,
    status_lookup_tells_in_progress_completed_or_unknown,
    unreadable_body_is_a_problem,
    derived_key_dedupes_the_same_request_from_the_same_caller,
);

async fn retry_replays_the_stored_response_byte_for_byte(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let body = Bytes::from_static(b"\x00\x01binary \xff payload");
    let first = call("/pay").key("k-1").body(body.clone()).send(&app.server).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(!first.is_replay());
    assert_eq!(first.header("set-cookie"), Some("session=run1"));

    let retry = call("/pay").key("k-1").body(body).send(&app.server).await;
    assert_eq!(app.probe.runs(), 1, "the handler ran once");
    assert_eq!(retry.status, first.status);
    assert_eq!(retry.body, first.body, "the body is replayed byte for byte");
    assert!(retry.is_replay());
    for name in ["content-type", "x-run", "location"] {
        assert_eq!(retry.header(name), first.header(name), "header {name}");
    }
    assert_eq!(retry.header("set-cookie"), None, "a session cookie is never replayed to another request");
}

async fn quoted_and_bare_keys_are_the_same_record(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let first = call("/pay").key("\"same key\"").send(&app.server).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let bare = call("/pay").key("abc").send(&app.server).await;
    let quoted = call("/pay").key("\"abc\"").send(&app.server).await;
    assert!(!bare.is_replay());
    assert!(quoted.is_replay());
    assert_eq!(quoted.body, bare.body);
    assert_eq!(app.probe.runs(), 2);
}

async fn same_key_with_a_different_body_is_refused(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    call("/pay").key("k").body("amount=1").send(&app.server).await;
    let reused = call("/pay").key("k").body("amount=2").send(&app.server).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    reused.problem("key-reused");
    assert_eq!(app.probe.runs(), 1);
}

async fn same_key_with_a_different_path_or_query_is_refused(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    assert_eq!(call("/items/1?a=1&b=2").key("k").send(&app.server).await.status, StatusCode::OK);
    let reordered = call("/items/1?b=2&a=1").key("k").send(&app.server).await;
    assert!(reordered.is_replay(), "query order is not part of the request's identity");
    let other_path = call("/items/2?a=1&b=2").key("k").send(&app.server).await;
    assert_eq!(other_path.status, StatusCode::UNPROCESSABLE_ENTITY);
    other_path.problem("key-reused");
    let other_query = call("/items/1?a=1&b=3").key("k").send(&app.server).await;
    other_query.problem("key-reused");
    assert_eq!(app.probe.runs(), 1);
}

async fn reused_key_is_refused_even_while_the_original_runs(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let original = call("/pay").key("k").body("one").hold().send(&app.server);
    let checks = async {
        assert!(eventually(Duration::from_secs(10), || app.probe.runs() == 1).await, "the original started");
        let reused = call("/pay").key("k").body("two").send(&app.server).await;
        assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY, "fingerprint checked before in-flight");
        let duplicate = call("/pay").key("k").body("one").send(&app.server).await;
        assert_eq!(duplicate.status, StatusCode::CONFLICT);
        app.probe.open(1);
    };
    let (original, ()) = tokio::join!(original, checks);
    assert_eq!(original.status, StatusCode::CREATED);
    assert_eq!(app.probe.runs(), 1);
}

async fn same_key_from_another_user_is_another_record(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let alice = call("/pay").key("shared").user(Some("alice")).body("x").send(&app.server).await;
    let bob = call("/pay").key("shared").user(Some("bob")).body("x").send(&app.server).await;
    assert!(!bob.is_replay(), "bob never reads alice's response");
    assert_ne!(alice.body, bob.body);
    let bob_retry = call("/pay").key("shared").user(Some("bob")).body("x").send(&app.server).await;
    assert_eq!(bob_retry.body, bob.body);
    assert_eq!(app.probe.runs(), 2);
}

async fn same_key_on_two_routes_is_two_records(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let one = call("/pay").key("k").send(&app.server).await;
    let other = call("/pay-other").key("k").send(&app.server).await;
    assert_eq!(one.status, StatusCode::CREATED);
    assert_eq!(other.status, StatusCode::CREATED);
    assert!(!other.is_replay());
    assert_eq!(app.probe.runs(), 2);
}

async fn concurrent_duplicates_run_the_handler_once(store: &StoreUnderTest) {
    const DUPLICATES: usize = 20;
    let app = start(store, Setup::Complete);
    let mut pending: FuturesUnordered<_> =
        (0..DUPLICATES).map(|_| call("/pay").key("dup").body("same").hold().send(&app.server)).collect();
    let mut replies = Vec::new();
    while replies.len() < DUPLICATES {
        match tokio::time::timeout(Duration::from_secs(10), pending.next()).await {
            Ok(Some(reply)) => replies.push(reply),
            Ok(None) => break,
            // Everything that can answer without the handler has: let the held handler(s) finish.
            Err(_) => app.probe.open(DUPLICATES),
        }
        if replies.len() == DUPLICATES - 1 {
            app.probe.open(DUPLICATES);
        }
    }
    assert_eq!(app.probe.runs(), 1, "exactly one execution");
    let created = replies.iter().filter(|reply| reply.status == StatusCode::CREATED).count();
    let conflicts: Vec<&Reply> = replies.iter().filter(|reply| reply.status == StatusCode::CONFLICT).collect();
    assert_eq!(created, 1, "{replies:?}");
    assert_eq!(conflicts.len(), DUPLICATES - 1, "{replies:?}");
    for conflict in conflicts {
        conflict.problem("in-flight");
        assert!((1..=60).contains(&conflict.retry_after()), "Retry-After within the lease");
    }
}

async fn concurrent_retries_of_a_completed_key_all_replay(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let first = call("/pay").key("done").send(&app.server).await;
    let retries: Vec<Reply> =
        futures_util::future::join_all((0..20).map(|_| call("/pay").key("done").send(&app.server))).await;
    for retry in retries {
        assert!(retry.is_replay(), "{retry:?}");
        assert_eq!(retry.body, first.body);
    }
    assert_eq!(app.probe.runs(), 1);
}

async fn missing_key_is_refused_on_required_routes(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let reply = call("/pay").send(&app.server).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let problem = reply.problem("key-missing");
    assert!(problem["detail"].as_str().unwrap().contains("Idempotency-Key"), "{problem}");
    assert_eq!(app.probe.runs(), 0);
}

async fn malformed_keys_are_refused(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let too_long = "k".repeat(256);
    for key in ["a,b", "\"unterminated", "\"bad\\escape\"", "a\\b", too_long.as_str(), "\"\""] {
        let reply = call("/pay").key(key).send(&app.server).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "key {key:?}");
        reply.problem("key-invalid");
    }
    let longest = "k".repeat(255);
    assert_eq!(call("/pay").key(&longest).send(&app.server).await.status, StatusCode::CREATED);
    assert_eq!(app.probe.runs(), 1);
}

async fn key_sent_twice_is_refused(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let reply = call("/pay").header("Idempotency-Key", "a").header("Idempotency-Key", "a").send(&app.server).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let problem = reply.problem("key-invalid");
    assert!(problem["detail"].as_str().unwrap().contains("more than once"), "{problem}");
    assert_eq!(app.probe.runs(), 0);
}

async fn optional_key_runs_unprotected_when_absent(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let first = call("/optional").body("a").send(&app.server).await;
    let second = call("/optional").body("a").send(&app.server).await;
    assert_eq!((first.status, second.status), (StatusCode::CREATED, StatusCode::CREATED));
    assert!(!second.is_replay());
    assert_eq!(app.probe.runs(), 2, "without a key nothing is deduplicated");
    let keyed = call("/optional").key("k").body("a").send(&app.server).await;
    let keyed_retry = call("/optional").key("k").body("a").send(&app.server).await;
    assert!(keyed_retry.is_replay());
    assert_eq!(keyed_retry.body, keyed.body);
    assert_eq!(app.probe.runs(), 3);
}

async fn request_without_user_is_unauthenticated(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let reply = call("/pay").key("k").user(None).send(&app.server).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    reply.problem("unauthenticated");
    assert_eq!(app.probe.runs(), 0);
}

async fn user_scope_without_resolver_is_misconfigured(store: &StoreUnderTest) {
    let app = start(store, Setup::NoUserResolver);
    let reply = call("/pay").key("k").send(&app.server).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    reply.problem("misconfigured");
    let global_reply = call("/global").key("k").send(&app.server).await;
    assert_eq!(global_reply.status, StatusCode::CREATED, "routes that do not need the resolver keep working");
    assert_eq!(app.probe.runs(), 1);
}

async fn route_without_configuration_is_misconfigured(store: &StoreUnderTest) {
    let app = start(store, Setup::NoConfiguration);
    let reply = call("/global").key("k").send(&app.server).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    reply.problem("misconfigured");
    assert_eq!(app.probe.runs(), 0);
}

async fn global_scope_shares_keys_across_users(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let alice = call("/global").key("k").user(Some("alice")).send(&app.server).await;
    let anonymous = call("/global").key("k").user(None).send(&app.server).await;
    assert!(anonymous.is_replay());
    assert_eq!(anonymous.body, alice.body);
    assert_eq!(app.probe.runs(), 1);
}

async fn header_scope_separates_tenants(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let acme = call("/tenant").key("k").header("X-Tenant-Id", "acme").send(&app.server).await;
    let globex = call("/tenant").key("k").header("X-Tenant-Id", "globex").send(&app.server).await;
    assert!(!globex.is_replay());
    let acme_again = call("/tenant").key("k").header("X-Tenant-Id", "acme").user(Some("bob")).send(&app.server).await;
    assert!(acme_again.is_replay(), "the tenant, not the user, is the scope");
    assert_eq!(acme_again.body, acme.body);
    let no_tenant = call("/tenant").key("k").send(&app.server).await;
    assert_eq!(no_tenant.status, StatusCode::BAD_REQUEST);
    no_tenant.problem("scope-missing");
    assert_eq!(app.probe.runs(), 2);
}

async fn function_scope_separates_accounts(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    call("/by-function").key("k").header("x-account", "a1").send(&app.server).await;
    let other = call("/by-function").key("k").header("x-account", "a2").send(&app.server).await;
    assert!(!other.is_replay());
    let again = call("/by-function").key("k").header("x-account", "a1").send(&app.server).await;
    assert!(again.is_replay());
    let none = call("/by-function").key("k").send(&app.server).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    none.problem("unauthenticated");
    assert_eq!(app.probe.runs(), 2);
}

async fn query_form_and_named_header_key_sources(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let query = call("/query-key?idem=q1").send(&app.server).await;
    assert_eq!(query.status, StatusCode::CREATED);
    assert!(call("/query-key?idem=q1").send(&app.server).await.is_replay());
    assert_eq!(call("/query-key").send(&app.server).await.status, StatusCode::BAD_REQUEST);

    let form = |body: &'static str| {
        call("/form-key").header("content-type", "application/x-www-form-urlencoded").body(body).send(&app.server)
    };
    let first = form("amount=5&idem=f1").await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(first.body.ends_with(b"5"), "the handler's own Form extractor got the body");
    assert!(form("amount=5&idem=f1").await.is_replay());
    form("amount=5").await.problem("key-missing");
    form("idem=a&idem=b").await.problem("key-invalid");

    let named = call("/header-key").header("X-Request-Key", "h1").send(&app.server).await;
    assert_eq!(named.status, StatusCode::CREATED);
    assert!(call("/header-key").header("X-Request-Key", "h1").send(&app.server).await.is_replay());
    let default_header = call("/header-key").key("h1").send(&app.server).await;
    default_header.problem("key-missing");
    assert_eq!(app.probe.runs(), 3);
}

async fn request_body_over_the_cap_is_refused(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let reply = call("/small-body").key("k").body("x".repeat(17)).send(&app.server).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    reply.problem("body-too-large");
    let at_cap = call("/small-body").key("k").body("x".repeat(16)).send(&app.server).await;
    assert_eq!(at_cap.status, StatusCode::CREATED, "a refused body left no claim behind");
    assert_eq!(app.probe.runs(), 1);
}

async fn extractor_rejection_is_answered_and_not_stored(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let json_call = |body: &'static str| call("/json").key("k").header("content-type", "application/json").body(body);
    let rejected = json_call("{not json").send(&app.server).await;
    assert_eq!(rejected.status, StatusCode::BAD_REQUEST);
    assert!(!rejected.is_replay());
    assert_eq!(app.probe.runs(), 0, "the handler never started");
    let again = json_call("{not json").send(&app.server).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(!again.is_replay(), "the rejection was not stored");
    let wrong_type =
        call("/json").key("k2").header("content-type", "text/plain").body("{\"qty\":1}").send(&app.server).await;
    assert_eq!(wrong_type.status, StatusCode::BAD_REQUEST);
    let fixed = json_call("{\"qty\":3}").send(&app.server).await;
    assert_eq!(fixed.status, StatusCode::CREATED, "the claim was released: the corrected request runs");
    assert_eq!(app.probe.runs(), 1);
}

async fn server_errors_release_the_claim(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let first = call("/status/503").key("k").send(&app.server).await;
    assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE);
    let retry = call("/status/503").key("k").send(&app.server).await;
    assert!(!retry.is_replay());
    assert_eq!(app.probe.runs(), 2, "a retry after a 5xx runs the handler again");
}

async fn server_errors_are_stored_when_the_route_opts_in(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let first = call("/status-stored/500").key("k").send(&app.server).await;
    assert_eq!(first.status, StatusCode::INTERNAL_SERVER_ERROR);
    let retry = call("/status-stored/500").key("k").send(&app.server).await;
    assert!(retry.is_replay());
    assert_eq!(retry.body, first.body);
    assert_eq!(app.probe.runs(), 1);
}

async fn client_errors_are_stored(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let first = call("/status/404").key("k").send(&app.server).await;
    assert_eq!(first.status, StatusCode::NOT_FOUND);
    let retry = call("/status/404").key("k").send(&app.server).await;
    assert_eq!(retry.status, StatusCode::NOT_FOUND);
    assert!(retry.is_replay());
    assert_eq!(app.probe.runs(), 1);
}

async fn panic_releases_the_claim(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let first = call("/panic").key("k").send(&app.server).await;
    assert_eq!(first.status, StatusCode::INTERNAL_SERVER_ERROR);
    first.problem("handler-panicked");
    let retry = call("/panic").key("k").send(&app.server).await;
    assert_eq!(retry.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(app.probe.runs(), 2, "the claim was released, not left until the lease lapses");
}

async fn client_disconnect_lets_the_handler_finish_and_store_its_response(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let mut socket = tokio::net::TcpStream::connect(app.server.addr()).await.expect("connect");
    socket
        .write_all(
            b"POST /pay HTTP/1.1\r\nHost: test\r\nIdempotency-Key: gone\r\nAuthorization: Bearer alice\r\n\
              x-test-hold: 1\r\nContent-Length: 2\r\n\r\nhi",
        )
        .await
        .expect("send");
    assert!(eventually(Duration::from_secs(10), || app.probe.runs() == 1).await, "the handler started");
    drop(socket);
    // actix-web keeps running a handler whose HTTP/1 client went away, so its work is not lost: the key stays
    // claimed while it runs, and its response is stored for the client's retry.
    let during = call("/pay").key("gone").body("hi").send(&app.server).await;
    assert_eq!(during.status, StatusCode::CONFLICT);
    app.probe.open(1);
    let mut retry = call("/pay").key("gone").body("hi").send(&app.server).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while retry.status == StatusCode::CONFLICT && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        retry = call("/pay").key("gone").body("hi").send(&app.server).await;
    }
    assert!(retry.is_replay(), "{retry:?}");
    assert_eq!(retry.header("x-run"), Some("1"), "the disconnected request's own response");
    assert_eq!(app.probe.runs(), 1, "never executed twice");
}

async fn cancelled_handler_releases_the_claim_at_once(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    // `x-test-cancel` makes the app's timeout middleware drop the (held) handler future (support::cancellation).
    let cancelled = call("/pay").key("k").hold().header("x-test-cancel", "1").send(&app.server).await;
    assert_eq!(cancelled.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(app.probe.runs(), 1);
    // The lease is 60 s: a retry that runs within a few seconds proves the drop released the claim.
    let mut retry = call("/pay").key("k").send(&app.server).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while retry.status == StatusCode::CONFLICT && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        retry = call("/pay").key("k").send(&app.server).await;
    }
    assert_eq!(retry.status, StatusCode::CREATED, "{retry:?}");
    assert!(!retry.is_replay());
    assert_eq!(app.probe.runs(), 2);
}

async fn response_over_the_cap_is_completed_without_its_body(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    for path in ["/big", "/big-stream"] {
        let first = call(path).key("k").send(&app.server).await;
        assert_eq!(first.status, StatusCode::OK);
        assert!(first.body.len() > 1024, "the large body passes through intact");
        if path == "/big-stream" {
            let expected: String = (0..8).map(|chunk| format!("2:{chunk}:{}|", "y".repeat(300))).collect();
            assert_eq!(first.body, expected.as_bytes());
        }
        let retry = call(path).key("k").send(&app.server).await;
        assert_eq!(retry.status, StatusCode::OK, "the stored status");
        assert!(retry.is_replay());
        retry.problem("response-not-stored");
    }
    assert_eq!(app.probe.runs(), 2, "neither handler ran twice");
}

async fn expired_record_runs_again(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let first = call("/short-ttl").key("k").send(&app.server).await;
    assert!(call("/short-ttl").key("k").send(&app.server).await.is_replay(), "within the ttl");
    // The route's ttl is 1 s: past it, the record must read as absent.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let after = call("/short-ttl").key("k").send(&app.server).await;
    assert_eq!(after.status, StatusCode::CREATED);
    assert!(!after.is_replay());
    assert_ne!(after.body, first.body);
    assert_eq!(app.probe.runs(), 2);
}

async fn slow_handler_keeps_its_claim_past_the_lease(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let slow = call("/short-lease").key("k").hold().send(&app.server);
    let duplicates = async {
        assert!(eventually(Duration::from_secs(10), || app.probe.runs() == 1).await, "the first attempt started");
        let early = call("/short-lease").key("k").send(&app.server).await;
        assert_eq!(early.status, StatusCode::CONFLICT);
        assert_eq!(early.retry_after(), 1, "Retry-After never exceeds the 1 s lease");
        // The route's lease is 1 s; the handler is still running 2.5 s later, and its heartbeat keeps the claim.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let late = call("/short-lease").key("k").send(&app.server).await;
        assert_eq!(late.status, StatusCode::CONFLICT, "a live handler is never taken over: {late:?}");
        app.probe.open(1);
    };
    let (slow, ()) = tokio::join!(slow, duplicates);
    assert_eq!(slow.status, StatusCode::CREATED);
    let replay = call("/short-lease").key("k").send(&app.server).await;
    assert!(replay.is_replay());
    assert_eq!(replay.body, slow.body);
    assert_eq!(app.probe.runs(), 1);
}

async fn waiting_duplicate_replays_the_original_when_it_completes(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let original = call("/wait").key("k").body("same").hold().send(&app.server);
    let duplicate = async {
        assert!(eventually(Duration::from_secs(10), || app.probe.runs() == 1).await, "the original started");
        let started = std::time::Instant::now();
        let waiting = call("/wait").key("k").body("same").send(&app.server);
        let opening = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            app.probe.open(1);
        };
        let (reply, ()) = tokio::join!(waiting, opening);
        (reply, started.elapsed())
    };
    let (original, (duplicate, waited)) = tokio::join!(original, duplicate);
    assert_eq!(original.status, StatusCode::CREATED);
    assert!(duplicate.is_replay(), "{duplicate:?}");
    assert_eq!(duplicate.body, original.body);
    assert!(waited < Duration::from_secs(5), "woken by the completion, not its 10 s limit: {waited:?}");
    assert_eq!(app.probe.runs(), 1);
    let reused = call("/wait").key("k").body("other").send(&app.server).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY, "a different request is refused, never waits");
}

async fn waiting_duplicate_runs_when_the_original_releases(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    // The original answers 502 (its claim is released): the waiting duplicate then runs the handler itself.
    let original = call("/wait").key("k").body("same").hold().header("x-fail", "1").send(&app.server);
    let duplicate = async {
        assert!(eventually(Duration::from_secs(10), || app.probe.runs() == 1).await);
        let started = std::time::Instant::now();
        let waiting = call("/wait").key("k").body("same").send(&app.server);
        let opening = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            app.probe.open(1);
        };
        let (reply, ()) = tokio::join!(waiting, opening);
        (reply, started.elapsed())
    };
    let (original, (duplicate, waited)) = tokio::join!(original, duplicate);
    assert_eq!(original.status, StatusCode::BAD_GATEWAY);
    assert_eq!(duplicate.status, StatusCode::CREATED, "{duplicate:?}");
    assert!(!duplicate.is_replay(), "the failure was not stored: the duplicate ran");
    assert!(waited < Duration::from_secs(5), "woken by the release, not its 10 s limit: {waited:?}");
    assert_eq!(app.probe.runs(), 2);
}

async fn waiting_duplicate_gets_409_at_its_timeout(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let original = call("/wait-briefly").key("k").hold().send(&app.server);
    let duplicate = async {
        assert!(eventually(Duration::from_secs(10), || app.probe.runs() == 1).await);
        let started = std::time::Instant::now();
        let reply = call("/wait-briefly").key("k").send(&app.server).await;
        let waited = started.elapsed();
        app.probe.open(1);
        (reply, waited)
    };
    let (original, (duplicate, waited)) = tokio::join!(original, duplicate);
    assert_eq!(original.status, StatusCode::CREATED);
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    duplicate.problem("in-flight");
    assert!(waited >= Duration::from_secs(1) && waited < Duration::from_secs(5), "waited its 1 s: {waited:?}");
    assert_eq!(app.probe.runs(), 1);
}

async fn lookup(app: &Harness, key: &str, user: Option<&str>) -> (StatusCode, serde_json::Value) {
    let mut request = app.server.get(format!("/idempotency/{key}"));
    if let Some(user) = user {
        request = request.insert_header(("Authorization", format!("Bearer {user}")));
    }
    let mut response = request.send().await.expect("status lookup answers");
    let body = response.body().await.expect("body");
    (response.status(), serde_json::from_slice(&body).expect("JSON"))
}

async fn status_lookup_tells_in_progress_completed_or_unknown(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let original = call("/pay").key("k-42").hold().send(&app.server);
    let checks = async {
        assert!(eventually(Duration::from_secs(10), || app.probe.runs() == 1).await);
        let (code, running) = lookup(&app, "k-42", Some("alice")).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(running["state"], "in_progress", "{running}");
        assert_eq!(running["route"], "/pay");
        assert!(running["retry_after"].as_u64().is_some_and(|after| (1..=60).contains(&after)));
        app.probe.open(1);
    };
    let (original, ()) = tokio::join!(original, checks);
    assert_eq!(original.status, StatusCode::CREATED);
    let (code, done) = lookup(&app, "k-42", Some("alice")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["status"], 201);
    assert_eq!(done["method"], "POST");
    assert!(done["completed_at"].as_str().is_some_and(|at| at.ends_with('Z')), "{done}");
    for (key, user) in [("k-42", Some("bob")), ("never-sent", Some("alice"))] {
        let (code, unknown) = lookup(&app, key, user).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "another user's key is unknown, never a hint");
        assert_eq!(unknown, serde_json::json!({"state": "unknown"}));
    }
    let (code, _) = lookup(&app, "k-42", None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
}

async fn derived_key_dedupes_the_same_request_from_the_same_caller(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let first = call("/derived").body("order=1").send(&app.server).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let double_submit = call("/derived").body("order=1").send(&app.server).await;
    assert!(double_submit.is_replay(), "the same request from the same user is the same key");
    assert_eq!(double_submit.body, first.body);
    let other_request = call("/derived").body("order=2").send(&app.server).await;
    assert!(!other_request.is_replay());
    let other_user = call("/derived").body("order=1").user(Some("bob")).send(&app.server).await;
    assert!(!other_user.is_replay(), "keys stay scoped");
    assert_eq!(app.probe.runs(), 3);
}

async fn unreadable_body_is_a_problem(store: &StoreUnderTest) {
    use tokio::io::AsyncReadExt as _;
    let app = start(store, Setup::Complete);
    let mut socket = tokio::net::TcpStream::connect(app.server.addr()).await.expect("connect");
    socket
        .write_all(
            b"POST /pay HTTP/1.1\r\nHost: test\r\nIdempotency-Key: k\r\nAuthorization: Bearer alice\r\n\
              Transfer-Encoding: chunked\r\n\r\nzz\r\nnot a chunk\r\n\r\n",
        )
        .await
        .expect("send");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("https://idempotent.rs/problems/body-unreadable"), "{answer}");
    assert_eq!(app.probe.runs(), 0);
}

/// The contract's open ends (issue 14): the app's error format, Retry-After, fingerprint options, store policy,
/// namespaces, the replay hook, fail-open routes.
#[path = "conformance/http_contract.rs"]
mod http_contract;
