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
use idempotent_runtime::store::testing::CountingWaits;
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
    /// The app's store, counting the waits the runtime asks of it (a duplicate that waits).
    waits: CountingWaits,
}

fn start(store: &StoreUnderTest, setup: Setup) -> Harness {
    let probe = web::Data::new(Probe::default());
    let waits = CountingWaits::new(Arc::clone(&store.store));
    let store: Arc<dyn Store> = Arc::new(waits.clone());
    let app_probe = probe.clone();
    let server = actix_test::start(move || {
        let idempotency = match setup {
            Setup::NoUserResolver => Some(Idempotency::builder(store.clone()).build()),
            Setup::Complete => Some(Idempotency::builder(store.clone()).user_resolver(bearer_user).build()),
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
    Harness { server, probe, waits }
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

#[path = "conformance/outcomes.rs"]
mod outcomes;
#[path = "conformance/requests.rs"]
mod requests;

use outcomes::*;
use requests::*;

/// The contract's open ends (issue 14): the app's error format, Retry-After, fingerprint options, store policy,
/// namespaces, the replay hook, fail-open routes.
#[path = "conformance/http_contract.rs"]
mod http_contract;
