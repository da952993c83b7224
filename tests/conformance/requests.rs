//! Keys, fingerprints, scopes and concurrency: which requests share a record, and that a record runs its handler
//! once however its duplicates arrive.

use super::*;

pub(super) async fn retry_replays_the_stored_response_byte_for_byte(store: &StoreUnderTest) {
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

pub(super) async fn quoted_and_bare_keys_are_the_same_record(store: &StoreUnderTest) {
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

pub(super) async fn same_key_with_a_different_body_is_refused(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    call("/pay").key("k").body("amount=1").send(&app.server).await;
    let reused = call("/pay").key("k").body("amount=2").send(&app.server).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    reused.problem("key-reused");
    assert_eq!(app.probe.runs(), 1);
}

pub(super) async fn same_key_with_a_different_path_or_query_is_refused(store: &StoreUnderTest) {
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

pub(super) async fn reused_key_is_refused_even_while_the_original_runs(store: &StoreUnderTest) {
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

pub(super) async fn same_key_from_another_user_is_another_record(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let alice = call("/pay").key("shared").user(Some("alice")).body("x").send(&app.server).await;
    let bob = call("/pay").key("shared").user(Some("bob")).body("x").send(&app.server).await;
    assert!(!bob.is_replay(), "bob never reads alice's response");
    assert_ne!(alice.body, bob.body);
    let bob_retry = call("/pay").key("shared").user(Some("bob")).body("x").send(&app.server).await;
    assert_eq!(bob_retry.body, bob.body);
    assert_eq!(app.probe.runs(), 2);
}

pub(super) async fn same_key_on_two_routes_is_two_records(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let one = call("/pay").key("k").send(&app.server).await;
    let other = call("/pay-other").key("k").send(&app.server).await;
    assert_eq!(one.status, StatusCode::CREATED);
    assert_eq!(other.status, StatusCode::CREATED);
    assert!(!other.is_replay());
    assert_eq!(app.probe.runs(), 2);
}

pub(super) async fn concurrent_duplicates_run_the_handler_once(store: &StoreUnderTest) {
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

pub(super) async fn concurrent_retries_of_a_completed_key_all_replay(store: &StoreUnderTest) {
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

pub(super) async fn missing_key_is_refused_on_required_routes(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let reply = call("/pay").send(&app.server).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let problem = reply.problem("key-missing");
    assert!(problem["detail"].as_str().unwrap().contains("Idempotency-Key"), "{problem}");
    assert_eq!(app.probe.runs(), 0);
}

pub(super) async fn malformed_keys_are_refused(store: &StoreUnderTest) {
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

pub(super) async fn key_sent_twice_is_refused(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let reply = call("/pay").header("Idempotency-Key", "a").header("Idempotency-Key", "a").send(&app.server).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let problem = reply.problem("key-invalid");
    assert!(problem["detail"].as_str().unwrap().contains("more than once"), "{problem}");
    assert_eq!(app.probe.runs(), 0);
}

pub(super) async fn optional_key_runs_unprotected_when_absent(store: &StoreUnderTest) {
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

pub(super) async fn request_without_user_is_unauthenticated(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let reply = call("/pay").key("k").user(None).send(&app.server).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    reply.problem("unauthenticated");
    assert_eq!(app.probe.runs(), 0);
}

pub(super) async fn user_scope_without_resolver_is_misconfigured(store: &StoreUnderTest) {
    let app = start(store, Setup::NoUserResolver);
    let reply = call("/pay").key("k").send(&app.server).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    reply.problem("misconfigured");
    let global_reply = call("/global").key("k").send(&app.server).await;
    assert_eq!(global_reply.status, StatusCode::CREATED, "routes that do not need the resolver keep working");
    assert_eq!(app.probe.runs(), 1);
}

pub(super) async fn route_without_configuration_is_misconfigured(store: &StoreUnderTest) {
    let app = start(store, Setup::NoConfiguration);
    let reply = call("/global").key("k").send(&app.server).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    reply.problem("misconfigured");
    assert_eq!(app.probe.runs(), 0);
}

pub(super) async fn global_scope_shares_keys_across_users(store: &StoreUnderTest) {
    let app = start(store, Setup::Complete);
    let alice = call("/global").key("k").user(Some("alice")).send(&app.server).await;
    let anonymous = call("/global").key("k").user(None).send(&app.server).await;
    assert!(anonymous.is_replay());
    assert_eq!(anonymous.body, alice.body);
    assert_eq!(app.probe.runs(), 1);
}

pub(super) async fn header_scope_separates_tenants(store: &StoreUnderTest) {
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

pub(super) async fn function_scope_separates_accounts(store: &StoreUnderTest) {
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

pub(super) async fn query_form_and_named_header_key_sources(store: &StoreUnderTest) {
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
