//! What each way a handler can end leaves behind (stored, released, capped, expired), waiting duplicates, status
//! lookups and unreadable bodies.

use super::*;

pub(super) async fn request_body_over_the_cap_is_refused(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let reply = call("/small-body").key("k").body("x".repeat(17)).send(&app.server).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    reply.problem("body-too-large");
    let at_cap = call("/small-body").key("k").body("x".repeat(16)).send(&app.server).await;
    assert_eq!(at_cap.status, StatusCode::CREATED, "a refused body left no claim behind");
    assert_eq!(app.probe.runs(), 1);
}

pub(super) async fn extractor_rejection_is_answered_and_not_stored(store: &StoreUnderTest) {
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

pub(super) async fn server_errors_release_the_claim(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let first = call("/status/503").key("k").send(&app.server).await;
    assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE);
    let retry = call("/status/503").key("k").send(&app.server).await;
    assert!(!retry.is_replay());
    assert_eq!(app.probe.runs(), 2, "a retry after a 5xx runs the handler again");
}

pub(super) async fn server_errors_are_stored_when_the_route_opts_in(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let first = call("/status-stored/500").key("k").send(&app.server).await;
    assert_eq!(first.status, StatusCode::INTERNAL_SERVER_ERROR);
    let retry = call("/status-stored/500").key("k").send(&app.server).await;
    assert!(retry.is_replay());
    assert_eq!(retry.body, first.body);
    assert_eq!(app.probe.runs(), 1);
}

pub(super) async fn client_errors_are_stored(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let first = call("/status/404").key("k").send(&app.server).await;
    assert_eq!(first.status, StatusCode::NOT_FOUND);
    let retry = call("/status/404").key("k").send(&app.server).await;
    assert_eq!(retry.status, StatusCode::NOT_FOUND);
    assert!(retry.is_replay());
    assert_eq!(app.probe.runs(), 1);
}

pub(super) async fn panic_releases_the_claim(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let first = call("/panic").key("k").send(&app.server).await;
    assert_eq!(first.status, StatusCode::INTERNAL_SERVER_ERROR);
    first.problem("handler-panicked");
    let retry = call("/panic").key("k").send(&app.server).await;
    assert_eq!(retry.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(app.probe.runs(), 2, "the claim was released, not left until the lease lapses");
}

pub(super) async fn client_disconnect_lets_the_handler_finish_and_store_its_response(store: &StoreUnderTest) {
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

pub(super) async fn cancelled_handler_releases_the_claim_at_once(store: &StoreUnderTest) {
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

pub(super) async fn response_over_the_cap_is_completed_without_its_body(store: &StoreUnderTest) {
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

pub(super) async fn expired_record_runs_again(store: &StoreUnderTest) {
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

pub(super) async fn slow_handler_keeps_its_claim_past_the_lease(store: &StoreUnderTest) {
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

pub(super) async fn waiting_duplicate_replays_the_original_when_it_completes(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let original = call("/wait").key("k").body("same").hold().send(&app.server);
    let duplicate = async {
        assert!(eventually(Duration::from_secs(10), || app.probe.runs() == 1).await, "the original started");
        let started = std::time::Instant::now();
        let waiting = call("/wait").key("k").body("same").send(&app.server);
        let opening = async {
            // The duplicate is waiting on the original's record before the original may finish.
            assert!(eventually(Duration::from_secs(10), || app.waits.waits() >= 1).await, "the duplicate never waited");
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

pub(super) async fn waiting_duplicate_runs_when_the_original_releases(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    // The original answers 502 (its claim is released): the waiting duplicate then runs the handler itself.
    let original = call("/wait").key("k").body("same").hold().header("x-fail", "1").send(&app.server);
    let duplicate = async {
        assert!(eventually(Duration::from_secs(10), || app.probe.runs() == 1).await);
        let started = std::time::Instant::now();
        let waiting = call("/wait").key("k").body("same").send(&app.server);
        let opening = async {
            // The duplicate is waiting on the original's record before the original may finish.
            assert!(eventually(Duration::from_secs(10), || app.waits.waits() >= 1).await, "the duplicate never waited");
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

pub(super) async fn waiting_duplicate_gets_409_at_its_timeout(store: &StoreUnderTest) {
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

pub(super) async fn lookup(app: &Harness, key: &str, user: Option<&str>) -> (StatusCode, serde_json::Value) {
    let mut request = app.server.get(format!("/idempotency/{key}"));
    if let Some(user) = user {
        request = request.insert_header(("Authorization", format!("Bearer {user}")));
    }
    let mut response = request.send().await.expect("status lookup answers");
    let body = response.body().await.expect("body");
    (response.status(), serde_json::from_slice(&body).expect("JSON"))
}

pub(super) async fn status_lookup_tells_in_progress_completed_or_unknown(store: &StoreUnderTest) {
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

pub(super) async fn derived_key_dedupes_the_same_request_from_the_same_caller(store: &StoreUnderTest) {
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

pub(super) async fn unreadable_body_is_a_problem(store: &StoreUnderTest) {
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
