//! The contract's open ends (issue 14), over real HTTP on every store: the app's own error format, an honest
//! `Retry-After`, fingerprint options, the stored-answer policy, namespaces, the replay hook and fail-open routes.

use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::http::Uri;
use actix_web::http::header::{HeaderName, HeaderValue};
use idempotent_runtime::{IdempotencyBuilder, ProblemKind, StorePolicy};
use support::outage::Outage;

use super::*;

// ---------------------------------------------------------------------------------------------------------------
// Routes.

#[post("/usual/fast")]
#[idempotent(lease = "60s")]
async fn usual_fast(probe: web::Data<Probe>, request: HttpRequest) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::CREATED, b"")
}

/// Takes at least 2.2 s after the gate: a known lower bound on this route's usual duration.
#[post("/usual/slow")]
#[idempotent(lease = "60s")]
async fn usual_slow(probe: web::Data<Probe>, request: HttpRequest) -> HttpResponse {
    let run = probe.enter(&request).await;
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    ran(run, StatusCode::CREATED, b"")
}

#[post("/by-account")]
#[idempotent(fingerprint_headers = ["X-Account", "Accept-Language"])]
async fn by_account(probe: web::Data<Probe>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::CREATED, &body)
}

/// The body without its `sent_at` field: a client timestamp that changes on every retry.
fn without_sent_at(_: &HttpRequest, body: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut fields)) => {
            fields.remove("sent_at");
            serde_json::to_vec(&fields).unwrap_or_default()
        }
        _ => body.to_vec(),
    }
}

#[post("/volatile")]
#[idempotent(fingerprint = without_sent_at)]
async fn volatile(probe: web::Data<Probe>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::CREATED, &body)
}

#[post("/store-all/{code}")]
#[idempotent(store_responses = "all")]
async fn store_all(probe: web::Data<Probe>, request: HttpRequest, code: web::Path<u16>) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::from_u16(*code).expect("test sends valid codes"), b"")
}

#[post("/store-success/{code}")]
#[idempotent(store_responses = "success")]
async fn store_success(probe: web::Data<Probe>, request: HttpRequest, code: web::Path<u16>) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::from_u16(*code).expect("test sends valid codes"), b"")
}

/// Stores only 201: a policy of the app's own.
fn only_created(code: StatusCode) -> bool {
    code == StatusCode::CREATED
}

#[post("/store-created/{code}")]
#[idempotent(store_responses = only_created)]
async fn store_created(probe: web::Data<Probe>, request: HttpRequest, code: web::Path<u16>) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::from_u16(*code).expect("test sends valid codes"), b"")
}

/// One handler mounted under its old and its new name: a deploy that renamed the route.
#[idempotent(namespace = "charges.create")]
async fn charge(probe: web::Data<Probe>, request: HttpRequest, id: web::Path<u32>) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::CREATED, id.to_string().as_bytes())
}

#[post("/open")]
#[idempotent(fail_open = true, lease = "60s")]
async fn open(probe: web::Data<Probe>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::CREATED, &body)
}

#[post("/closed")]
#[idempotent(lease = "60s")]
async fn closed(probe: web::Data<Probe>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let run = probe.enter(&request).await;
    ran(run, StatusCode::CREATED, &body)
}

// ---------------------------------------------------------------------------------------------------------------
// The app: the suite's routes and these, on a store that can be taken down, configured by each test.

struct App2 {
    server: TestServer,
    probe: web::Data<Probe>,
    outage: Arc<Outage>,
}

fn start_configured(store: &StoreUnderTest, configure: fn(IdempotencyBuilder) -> IdempotencyBuilder) -> App2 {
    let probe = web::Data::new(Probe::default());
    let outage = Outage::new(Arc::clone(&store.store));
    let shared: Arc<dyn Store> = outage.clone();
    let app_probe = probe.clone();
    let server = actix_test::start(move || {
        let idempotency = configure(Idempotency::builder(shared.clone()).user_resolver(bearer_user)).build();
        App::new()
            .app_data(app_probe.clone())
            .app_data(idempotency)
            .service(pay)
            .service(status)
            .service(small_body)
            .service(usual_fast)
            .service(usual_slow)
            .service(by_account)
            .service(volatile)
            .service(store_all)
            .service(store_success)
            .service(store_created)
            .route("/v1/charges/{id}", web::post().to(charge))
            .route("/v2/payments/{id}", web::post().to(charge))
            .service(open)
            .service(closed)
            .service(idempotent_runtime::status_lookup("/idempotency/{key}"))
    });
    App2 { server, probe, outage }
}

fn defaults(builder: IdempotencyBuilder) -> IdempotencyBuilder {
    builder
}

/// Stripe's error format, `{"error": {"type": ..., "message": ...}}`, for every answer of the library.
fn stripe_errors(builder: IdempotencyBuilder) -> IdempotencyBuilder {
    builder.docs_link(Uri::from_static("https://docs.example.com/idempotency")).render_problems(|problem| {
        let kind = match problem.kind() {
            ProblemKind::KeyReused | ProblemKind::InFlight => "idempotency_error",
            ProblemKind::StoreUnavailable | ProblemKind::Misconfigured => "api_error",
            _ => "invalid_request_error",
        };
        HttpResponse::build(problem.status()).json(serde_json::json!({
            "error": {"type": kind, "code": problem.kind().slug(), "message": problem.detail(), "doc_url": problem.type_uri()}
        }))
    })
}

impl Reply {
    /// Asserts a Stripe-format error of the given type and code, with the library's headers, and returns it.
    fn stripe_error(&self, kind: &str, code: &str) -> serde_json::Value {
        assert_eq!(self.header("content-type"), Some("application/json"), "{self:?}");
        assert_eq!(self.header("cache-control"), Some("no-store"), "{self:?}");
        assert_eq!(self.header("link"), Some("<https://docs.example.com/idempotency>; rel=\"describedby\""));
        let document: serde_json::Value = serde_json::from_slice(&self.body).expect("JSON body");
        assert_eq!(document["error"]["type"], kind, "{document}");
        assert_eq!(document["error"]["code"], code, "{document}");
        assert!(document["error"]["message"].as_str().is_some_and(|message| !message.is_empty()), "{document}");
        document
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The suite, run on both stores.

on_every_store!(
    store => &store;
    every_answer_of_the_library_renders_in_the_apps_format,
    problem_types_point_at_the_apps_docs,
    retry_after_is_the_routes_usual_duration,
    chosen_headers_are_part_of_the_fingerprint,
    a_fingerprint_function_ignores_a_volatile_field,
    transient_answers_release_the_key,
    store_policy_per_route,
    store_everything_app_wide,
    a_namespace_survives_a_route_rename,
    the_replay_hook_adds_headers_without_touching_the_stored_response,
    fail_open_routes_run_unprotected_while_the_store_is_down,
);

async fn every_answer_of_the_library_renders_in_the_apps_format(store: &StoreUnderTest) {
    let app = start_configured(store, stripe_errors);
    let server = &app.server;
    let missing = call("/pay").send(server).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    missing.stripe_error("invalid_request_error", "key-missing");
    let invalid = call("/pay").key("a,b").send(server).await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    invalid.stripe_error("invalid_request_error", "key-invalid");
    let anonymous = call("/pay").key("k").user(None).send(server).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    anonymous.stripe_error("invalid_request_error", "unauthenticated");
    let too_large = call("/small-body").key("k").body("x".repeat(17)).send(server).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    too_large.stripe_error("invalid_request_error", "body-too-large");

    let original = call("/pay").key("k").body("one").hold().send(server);
    let checks = async {
        assert!(eventually(Duration::from_secs(10), || app.probe.runs() == 1).await, "the original started");
        let reused = call("/pay").key("k").body("two").send(server).await;
        assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
        let document = reused.stripe_error("idempotency_error", "key-reused");
        support::report_figure(&format!("Stripe-format 422 through the problem hook: {document}"));
        let duplicate = call("/pay").key("k").body("one").send(server).await;
        assert_eq!(duplicate.status, StatusCode::CONFLICT);
        let document = duplicate.stripe_error("idempotency_error", "in-flight");
        assert!((1..=60).contains(&duplicate.retry_after()), "Retry-After kept: {duplicate:?}");
        support::report_figure(&format!(
            "Stripe-format 409 through the problem hook (Retry-After {}): {document}",
            duplicate.retry_after()
        ));
        app.probe.open(1);
    };
    let (original, ()) = tokio::join!(original, checks);
    assert_eq!(original.status, StatusCode::CREATED, "the handler's own answers are untouched");
    assert_eq!(original.header("link"), None);

    app.outage.set_down(true);
    let unavailable = call("/pay").key("k2").send(server).await;
    assert_eq!(unavailable.status, StatusCode::SERVICE_UNAVAILABLE);
    unavailable.stripe_error("api_error", "store-unavailable");
    assert_eq!(unavailable.retry_after(), 1);
    assert_eq!(app.probe.runs(), 1);
}

async fn problem_types_point_at_the_apps_docs(store: &StoreUnderTest) {
    fn own_docs(builder: IdempotencyBuilder) -> IdempotencyBuilder {
        builder
            .problem_type_base("https://api.example.com/errors/")
            .docs_link(Uri::from_static("https://api.example.com/docs/idempotency"))
    }
    let app = start_configured(store, own_docs);
    let missing = call("/pay").send(&app.server).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.header("content-type"), Some("application/problem+json"), "problem+json stays the default");
    let document: serde_json::Value = serde_json::from_slice(&missing.body).expect("JSON");
    assert_eq!(document["type"], "https://api.example.com/errors/key-missing");
    assert_eq!(document["status"], 400);
    assert_eq!(missing.header("link"), Some("<https://api.example.com/docs/idempotency>; rel=\"describedby\""));
    call("/pay").key("k").body("one").send(&app.server).await;
    let reused = call("/pay").key("k").body("two").send(&app.server).await;
    let document: serde_json::Value = serde_json::from_slice(&reused.body).expect("JSON");
    assert_eq!(document["type"], "https://api.example.com/errors/key-reused");
    assert!(reused.header("link").is_some());
}

/// The 409 of a duplicate names the route's usual duration, not the 60 s lease.
async fn in_flight_retry_after(app: &App2, path: &str, key: &str) -> u64 {
    let runs_before = app.probe.runs();
    let original = call(path).key(key).hold().send(&app.server);
    let duplicate = async {
        let started = || app.probe.runs() == runs_before + 1;
        assert!(eventually(Duration::from_secs(10), started).await, "the original started");
        let duplicate = call(path).key(key).send(&app.server).await;
        app.probe.open(1);
        duplicate
    };
    let (original, duplicate) = tokio::join!(original, duplicate);
    assert_eq!(original.status, StatusCode::CREATED);
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    duplicate.problem("in-flight");
    duplicate.retry_after()
}

async fn retry_after_is_the_routes_usual_duration(store: &StoreUnderTest) {
    let app = start_configured(store, defaults);
    // A quick route: a client is told to come back in 1 s, not after the whole 60 s lease.
    call("/usual/fast").key("warm").send(&app.server).await;
    assert_eq!(in_flight_retry_after(&app, "/usual/fast", "fast").await, 1);
    // A route whose requests take 2.2 s and more: its 409s say so.
    assert_eq!(call("/usual/slow").key("warm").send(&app.server).await.status, StatusCode::CREATED);
    let retry_after = in_flight_retry_after(&app, "/usual/slow", "slow").await;
    assert!((3..=10).contains(&retry_after), "the route's usual duration, rounded up: {retry_after}");
}

async fn chosen_headers_are_part_of_the_fingerprint(store: &StoreUnderTest) {
    let app = start_configured(store, defaults);
    let server = &app.server;
    let first = call("/by-account").key("k").header("x-account", "acct_1").body("amount=1").send(server).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let same = call("/by-account").key("k").header("x-account", "acct_1").header("x-trace", "t2").body("amount=1");
    assert!(same.send(server).await.is_replay(), "headers not listed do not count");
    let other_account = call("/by-account").key("k").header("x-account", "acct_2").body("amount=1").send(server).await;
    assert_eq!(other_account.status, StatusCode::UNPROCESSABLE_ENTITY);
    other_account.problem("key-reused");
    let other_language = call("/by-account")
        .key("k")
        .header("x-account", "acct_1")
        .header("accept-language", "fr")
        .body("amount=1")
        .send(server)
        .await;
    assert_eq!(other_language.status, StatusCode::UNPROCESSABLE_ENTITY, "an absent header is not a present one");
    assert_eq!(app.probe.runs(), 1);
}

async fn a_fingerprint_function_ignores_a_volatile_field(store: &StoreUnderTest) {
    let app = start_configured(store, defaults);
    let server = &app.server;
    let first = call("/volatile").key("k").body(r#"{"amount": 100, "sent_at": "10:00:00"}"#).send(server).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let retry = call("/volatile").key("k").body(r#"{"sent_at": "10:00:05", "amount": 100}"#).send(server).await;
    assert!(retry.is_replay(), "a retry with a new timestamp is the same request: {retry:?}");
    assert_eq!(retry.body, first.body);
    let other = call("/volatile").key("k").body(r#"{"amount": 200, "sent_at": "10:00:06"}"#).send(server).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY, "a different amount is another request");
    assert_eq!(app.probe.runs(), 1);
}

async fn transient_answers_release_the_key(store: &StoreUnderTest) {
    let app = start_configured(store, defaults);
    for code in [408, 425, 429] {
        let path = format!("/status/{code}");
        let first = call(&path).key("k").send(&app.server).await;
        assert_eq!(first.status.as_u16(), code);
        let retry = call(&path).key("k").send(&app.server).await;
        assert_eq!(retry.status.as_u16(), code);
        assert!(!retry.is_replay(), "{code} is not replayed for a whole ttl");
    }
    assert_eq!(app.probe.runs(), 6, "every retry of a transient answer ran the handler again");
    call("/status/409").key("final").send(&app.server).await;
    assert!(call("/status/409").key("final").send(&app.server).await.is_replay(), "other 4xx are final answers");
}

async fn store_policy_per_route(store: &StoreUnderTest) {
    let app = start_configured(store, defaults);
    // Each path is its own key: the same key on another path of a route is a reused key.
    let server = &app.server;
    let replayed = |path: &'static str| async move {
        call(path).key(path).send(server).await;
        call(path).key(path).send(server).await.is_replay()
    };
    assert!(replayed("/store-all/429").await, "`all` stores a 429");
    assert!(replayed("/store-all/503").await, "`all` stores a 503");
    assert!(!replayed("/store-success/404").await, "`success` releases a 404");
    assert!(replayed("/store-success/201").await);
    assert!(!replayed("/store-created/200").await, "the app's own policy releases a 200");
    assert!(replayed("/store-created/201").await);
    assert_eq!(app.probe.runs(), 1 + 1 + 2 + 1 + 2 + 1);
}

async fn store_everything_app_wide(store: &StoreUnderTest) {
    fn stripe_policy(builder: IdempotencyBuilder) -> IdempotencyBuilder {
        builder.store_responses(StorePolicy::All)
    }
    let app = start_configured(store, stripe_policy);
    call("/status/500").key("k").send(&app.server).await;
    let retry = call("/status/500").key("k").send(&app.server).await;
    assert_eq!(retry.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(retry.is_replay(), "the app stores every answer");
    call("/store-success/404").key("k").send(&app.server).await;
    assert!(!call("/store-success/404").key("k").send(&app.server).await.is_replay(), "a route's policy wins");
    assert_eq!(app.probe.runs(), 3);
}

async fn a_namespace_survives_a_route_rename(store: &StoreUnderTest) {
    let app = start_configured(store, defaults);
    let server = &app.server;
    let before = call("/v1/charges/7").key("k").send(server).await;
    assert_eq!(before.status, StatusCode::CREATED);
    // After the deploy, the client's retry reaches the route under its new name and pattern.
    let after = call("/v2/payments/7").key("k").send(server).await;
    assert!(after.is_replay(), "the record is the namespace's, not the pattern's: {after:?}");
    assert_eq!(after.body, before.body);
    let other = call("/v2/payments/8").key("k").send(server).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY, "another resource is another request");
    assert_eq!(app.probe.runs(), 1);
    let (code, found) = lookup_as(&app.server, "k", "alice").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(found["route"], "charges.create", "{found}");
}

async fn lookup_as(server: &TestServer, key: &str, user: &str) -> (StatusCode, serde_json::Value) {
    let mut response = server
        .get(format!("/idempotency/{key}"))
        .insert_header(("Authorization", format!("Bearer {user}")))
        .send()
        .await
        .expect("status lookup answers");
    let body = response.body().await.expect("body");
    (response.status(), serde_json::from_slice(&body).expect("JSON"))
}

static REPLAYS_SEEN: AtomicUsize = AtomicUsize::new(0);

fn count_replays(builder: IdempotencyBuilder) -> IdempotencyBuilder {
    builder.on_replay(|replayed| {
        let seen = REPLAYS_SEEN.fetch_add(1, Ordering::SeqCst) + 1;
        assert!(replayed.stored().body.is_some());
        let route = HeaderValue::try_from(replayed.route()).expect("a route is a header value");
        replayed.headers_mut().insert(HeaderName::from_static("x-replay-route"), route);
        replayed.headers_mut().insert(HeaderName::from_static("x-replays-seen"), HeaderValue::from(seen));
    })
}

async fn the_replay_hook_adds_headers_without_touching_the_stored_response(store: &StoreUnderTest) {
    let app = start_configured(store, count_replays);
    let first = call("/pay").key("k").body("x").send(&app.server).await;
    assert_eq!(first.header("x-replays-seen"), None, "the hook sees replays only");
    let seen_before = REPLAYS_SEEN.load(Ordering::SeqCst);
    let replay = call("/pay").key("k").body("x").send(&app.server).await;
    let again = call("/pay").key("k").body("x").send(&app.server).await;
    assert!(replay.is_replay() && again.is_replay());
    assert_eq!(
        (replay.body.clone(), again.body.clone()),
        (first.body.clone(), first.body),
        "the bytes are the stored ones"
    );
    assert_eq!(replay.header("x-replay-route"), Some("/pay"));
    let seen = |reply: &Reply| reply.header("x-replays-seen").and_then(|seen| seen.parse::<usize>().ok()).unwrap();
    assert!(seen(&replay) > seen_before && seen(&again) > seen(&replay), "each replay has its own headers");
    assert_eq!(again.headers.get_all("x-replays-seen").count(), 1, "the first replay's header was not stored");
    assert_eq!(app.probe.runs(), 1);
}

async fn fail_open_routes_run_unprotected_while_the_store_is_down(store: &StoreUnderTest) {
    let app = start_configured(store, defaults);
    let server = &app.server;
    assert_eq!(call("/open").key("before").body("a").send(server).await.status, StatusCode::CREATED);
    app.outage.set_down(true);
    for _ in 0..2 {
        let reply = call("/open").key("during").body("a").send(server).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        assert!(!reply.is_replay());
    }
    assert_eq!(app.probe.runs(), 3, "unprotected: the same key ran twice while the store was down");
    let refused = call("/closed").key("during").send(server).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "fail closed stays the default");
    refused.problem("store-unavailable");
    assert_eq!(app.probe.runs(), 3);
    app.outage.set_down(false);
    assert!(call("/open").key("before").body("a").send(server).await.is_replay(), "protected again once it returns");
    assert_eq!(call("/open").key("after").body("a").send(server).await.status, StatusCode::CREATED);
    assert!(call("/open").key("after").body("a").send(server).await.is_replay());
    assert_eq!(app.probe.runs(), 4);
}
