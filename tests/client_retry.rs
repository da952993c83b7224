//! The client middleware against a scripted server: which answers it retries, how long it waits (an injected
//! clock records every wait, so timings are asserted exactly), and which key each attempt carries.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, web};
use idempotent_runtime::client::{
    BoxError, Clock, ErrorKind, Failure, GiveUpReason, IdempotencyMiddleware, IdempotentCall, KeyJournal, ManualClock,
    MemoryJournal, Operation, ProblemType, RetryPolicy,
};
use reqwest_middleware::ClientWithMiddleware;

/// One scripted answer: status, headers, content type and body.
struct Scripted {
    status: u16,
    headers: Vec<(&'static str, String)>,
    content_type: &'static str,
    body: String,
}

fn problem(status: u16, slug: &str) -> Scripted {
    Scripted {
        status,
        headers: Vec::new(),
        content_type: "application/problem+json",
        body: format!(
            r#"{{"type":"https://idempotent.rs/problems/{slug}","title":"t","status":{status},"detail":"d"}}"#
        ),
    }
}

fn plain(status: u16) -> Scripted {
    Scripted { status, headers: Vec::new(), content_type: "text/plain", body: "plain".to_owned() }
}

fn created() -> Scripted {
    Scripted { status: 201, headers: Vec::new(), content_type: "application/json", body: r#"{"id":1}"#.to_owned() }
}

impl Scripted {
    fn retry_after(mut self, value: impl Into<String>) -> Self {
        self.headers.push(("retry-after", value.into()));
        self
    }
}

/// What the server saw: the key of each request (`None` without one).
#[derive(Default)]
struct Server {
    script: Mutex<VecDeque<Scripted>>,
    seen: Mutex<Vec<Option<String>>>,
}

impl Server {
    fn script(&self, answers: impl IntoIterator<Item = Scripted>) {
        self.script.lock().unwrap().extend(answers);
    }

    fn seen(&self) -> Vec<Option<String>> {
        self.seen.lock().unwrap().clone()
    }
}

async fn answer(request: HttpRequest, server: web::Data<Server>) -> HttpResponse {
    let key = request.headers().get("idempotency-key").map(|key| key.to_str().unwrap().to_owned());
    server.seen.lock().unwrap().push(key);
    let Some(scripted) = server.script.lock().unwrap().pop_front() else {
        return HttpResponse::Ok().body("unscripted");
    };
    let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(scripted.status).unwrap());
    response.content_type(scripted.content_type);
    for (name, value) in scripted.headers {
        response.insert_header((name, value));
    }
    response.body(scripted.body)
}

struct Harness {
    server: web::Data<Server>,
    clock: ManualClock,
    url: String,
    _running: actix_test::TestServer,
}

impl Harness {
    fn start() -> Self {
        let server = web::Data::new(Server::default());
        let shared = server.clone();
        let running = actix_test::start(move || App::new().app_data(shared.clone()).default_service(web::to(answer)));
        Self { server, clock: ManualClock::new(), url: running.url("/payments"), _running: running }
    }

    fn middleware(&self, policy: RetryPolicy) -> IdempotencyMiddleware {
        IdempotencyMiddleware::new().with_policy(policy).with_clock(Arc::new(self.clock.clone())).with_jitter_seed(7)
    }

    fn client(&self, middleware: IdempotencyMiddleware) -> ClientWithMiddleware {
        reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).with(middleware).build()
    }
}

fn exact() -> RetryPolicy {
    RetryPolicy::default().jitter(false).initial_backoff(Duration::from_millis(100))
}

fn client_error(error: &reqwest_middleware::Error) -> &idempotent_runtime::client::ClientError {
    idempotent_runtime::client::ClientError::of(error).unwrap_or_else(|| panic!("a ClientError: {error}"))
}

#[actix_web::test]
async fn retry_after_is_followed_within_its_cap_in_both_forms() {
    let harness = Harness::start();
    // The clock advances only by the waits: 3 s, then 5 s (120 capped), so the date form asks for 4 s more.
    let date = httpdate::fmt_http_date(harness.clock.system_now() + Duration::from_secs(3 + 5 + 4));
    harness.server.script([
        problem(409, "in-flight").retry_after("3"),
        problem(503, "store-unavailable").retry_after("120"),
        plain(429).retry_after(date),
        created(),
    ]);
    let client = harness.client(harness.middleware(exact().max_retry_after(Duration::from_secs(5))));
    let response = client.post(&harness.url).body("{}").send().await.expect("created after three retries");
    assert_eq!(response.status(), 201);
    assert_eq!(harness.clock.sleeps(), [3, 5, 4].map(Duration::from_secs));
    let call = IdempotentCall::of(&response).expect("the call's record");
    assert_eq!(call.attempts(), 4);
    let seen = harness.server.seen();
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|key| key.as_deref() == Some(call.key())), "every attempt carries the same key: {seen:?}");
    assert_eq!(response.url().as_str(), harness.url, "the URL survives the middleware's buffering");
    assert_eq!(response.text().await.unwrap(), r#"{"id":1}"#, "so does the body");
}

#[actix_web::test]
async fn backoff_doubles_with_jitter_until_the_attempts_run_out() {
    let harness = Harness::start();
    harness.server.script((0..5).map(|_| plain(503)));
    let policy = RetryPolicy::default().max_attempts(4).initial_backoff(Duration::from_millis(100));
    let client = harness.client(harness.middleware(policy));
    let error = client.post(&harness.url).send().await.expect_err("503 every time");
    let failed = client_error(&error);
    assert_eq!(failed.attempts(), 4);
    assert!(matches!(
        failed.kind(),
        ErrorKind::GaveUp { reason: GiveUpReason::Attempts, last: Failure::Status { status, problem: None, .. } }
            if *status == 503
    ));
    let sleeps = harness.clock.sleeps();
    assert_eq!(sleeps.len(), 3);
    for (sleep, full) in sleeps.iter().zip([100, 200, 400].map(Duration::from_millis)) {
        assert!(*sleep >= full / 2 && *sleep <= full, "equal jitter: {sleep:?} within [{:?}, {full:?}]", full / 2);
    }
    assert_eq!(harness.server.seen().len(), 4);
    assert!(failed.to_string().contains("same idempotency key"), "{failed}");
}

#[actix_web::test]
async fn the_total_time_bounds_the_retries() {
    let harness = Harness::start();
    harness.server.script((0..5).map(|_| problem(409, "in-flight").retry_after("8")));
    let client = harness.client(harness.middleware(exact().max_elapsed(Duration::from_secs(10))));
    let error = client.post(&harness.url).send().await.expect_err("still in flight at the deadline");
    let failed = client_error(&error);
    assert!(matches!(failed.kind(), ErrorKind::GaveUp { reason: GiveUpReason::Deadline, .. }), "{failed:?}");
    assert_eq!(failed.attempts(), 2, "8 s + 8 s would pass the 10 s budget: no pointless last wait");
    assert_eq!(harness.clock.sleeps(), [Duration::from_secs(8)]);
    assert_eq!(failed.problem().and_then(|problem| problem.kind), Some(ProblemType::InFlight));
}

#[actix_web::test]
async fn key_reused_and_other_client_errors_are_never_retried() {
    let harness = Harness::start();
    let client = harness.client(harness.middleware(exact()));

    harness.server.script([problem(422, "key-reused")]);
    let error = client.post(&harness.url).send().await.expect_err("422 key-reused");
    let failed = client_error(&error);
    assert!(failed.is_key_reused());
    assert_eq!(failed.attempts(), 1);
    assert!(matches!(failed.kind(), ErrorKind::Refused(problem) if problem.status == 422));

    harness.server.script([problem(400, "key-invalid")]);
    let error = client.post(&harness.url).send().await.expect_err("400 key-invalid");
    assert_eq!(client_error(&error).problem().and_then(|problem| problem.kind), Some(ProblemType::KeyInvalid));

    // The handler's own answers are the caller's to read, not errors: a 409 of the app, a 404, a 422 of its own.
    let app_conflict =
        Scripted { status: 409, headers: Vec::new(), content_type: "application/json", body: "{}".to_owned() };
    let app_invalid = Scripted {
        status: 422,
        headers: Vec::new(),
        content_type: "application/problem+json",
        body: r#"{"type":"https://example.com/problems/invalid-payment"}"#.to_owned(),
    };
    harness.server.script([app_conflict, plain(404), app_invalid]);
    for expected in [409, 404, 422] {
        let response = client.post(&harness.url).send().await.expect("the handler's answer");
        assert_eq!(response.status(), expected);
        assert_eq!(IdempotentCall::of(&response).map(IdempotentCall::attempts), Some(1));
    }
    assert_eq!(harness.server.seen().len(), 5, "one request per call");
    assert!(harness.clock.sleeps().is_empty(), "no waits at all");
}

#[actix_web::test]
async fn keys_are_fresh_per_call_kept_when_given_and_only_on_keyed_methods() {
    let harness = Harness::start();
    let client = harness.client(harness.middleware(exact()));
    client.post(&harness.url).send().await.unwrap();
    client.post(&harness.url).send().await.unwrap();
    client.patch(&harness.url).send().await.unwrap();
    client.post(&harness.url).header("Idempotency-Key", "caller-chosen").send().await.unwrap();
    client.get(&harness.url).send().await.unwrap();
    client.put(&harness.url).send().await.unwrap();
    let seen = harness.server.seen();
    let fresh: Vec<uuid::Uuid> = seen[..3].iter().map(|key| key.as_deref().unwrap().parse().unwrap()).collect();
    assert!(fresh.iter().all(|key| key.get_version_num() == 4), "UUID v4 keys: {fresh:?}");
    assert!(fresh[0] != fresh[1] && fresh[1] != fresh[2], "a new key per call");
    assert_eq!(seen[3].as_deref(), Some("caller-chosen"));
    assert_eq!(&seen[4..], [None, None], "GET and PUT are idempotent already: no key by default");

    let put_too =
        harness.client(harness.middleware(exact()).with_methods([reqwest::Method::POST, reqwest::Method::PUT]));
    put_too.put(&harness.url).send().await.unwrap();
    assert!(harness.server.seen()[6].is_some());
}

/// A journal that remembers how many requests the server had seen when each key was saved.
struct CheckingJournal {
    inner: MemoryJournal,
    server: web::Data<Server>,
    seen_when_saved: Mutex<Vec<usize>>,
}

#[async_trait::async_trait]
impl KeyJournal for CheckingJournal {
    async fn saved_key(&self, operation: &str) -> Result<Option<String>, BoxError> {
        self.inner.saved_key(operation).await
    }

    async fn started(&self, operation: &str, key: &str) -> Result<(), BoxError> {
        self.seen_when_saved.lock().unwrap().push(self.server.seen().len());
        self.inner.started(operation, key).await
    }

    async fn finished(&self, operation: &str, key: &str) -> Result<(), BoxError> {
        self.inner.finished(operation, key).await
    }
}

#[actix_web::test]
async fn a_journaled_operation_resumes_with_its_key_after_a_restart() {
    let harness = Harness::start();
    let journal = Arc::new(CheckingJournal {
        inner: MemoryJournal::new(),
        server: harness.server.clone(),
        seen_when_saved: Mutex::default(),
    });
    harness.server.script((0..2).map(|_| plain(503)));
    let before_crash = harness.client(harness.middleware(exact().max_attempts(2)).with_journal(journal.clone()));
    let operation = Operation::new("pay invoice 42");
    let error =
        before_crash.post(&harness.url).with_extension(operation.clone()).send().await.expect_err("gives up on 503");
    let key = client_error(&error).key().to_owned();
    assert_eq!(journal.inner.pending().get("pay invoice 42"), Some(&key), "an unfinished operation stays journaled");
    assert_eq!(*journal.seen_when_saved.lock().unwrap(), [0], "saved before the first send");

    // The caller restarts: a new middleware on the same journal runs the same operation, with the same key.
    harness.server.script([created()]);
    let after_restart = harness.client(harness.middleware(exact()).with_journal(journal.clone()));
    let response = after_restart.post(&harness.url).with_extension(operation).send().await.expect("created");
    assert_eq!(IdempotentCall::of(&response).map(IdempotentCall::key), Some(key.as_str()));
    assert_eq!(harness.server.seen().iter().flatten().collect::<std::collections::HashSet<_>>().len(), 1);
    assert!(journal.inner.pending().is_empty(), "a finished operation is forgotten");

    // Calls without an operation are not journaled.
    after_restart.post(&harness.url).send().await.unwrap();
    assert_eq!(journal.seen_when_saved.lock().unwrap().len(), 2);
}

#[actix_web::test]
async fn connection_errors_are_retried_with_the_same_key_then_reported() {
    let clock = ManualClock::new();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let middleware =
        IdempotencyMiddleware::new().with_policy(exact().max_attempts(3)).with_clock(Arc::new(clock.clone()));
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).with(middleware).build();
    let error = client.post(format!("http://{closed}/payments")).send().await.expect_err("nobody listens");
    let failed = client_error(&error);
    assert!(matches!(failed.kind(), ErrorKind::GaveUp { last: Failure::Transport(_), .. }), "{failed:?}");
    assert_eq!(failed.attempts(), 3);
    assert_eq!(clock.sleeps(), [100, 200].map(Duration::from_millis));
    assert!(failed.key().parse::<uuid::Uuid>().is_ok());
}
