//! Reads, status lookups and expiry: an expired record is absent to every read, and a lookup finds a key's most
//! recent live record in its scope, on any route and method.

use std::time::Duration;

use actix_web::http::StatusCode;

use super::fixture::{LONG, Scope, attempt_of, response};
use crate::record::KeyState;
use crate::store::{Claim, ClaimRequest, Store};

/// Rule: expiry is checked when a record is read: a completed record past its ttl reads as absent, and is claimed
/// afresh (`took_over: true`) by any request.
pub async fn expired_records_read_as_absent_and_are_claimed_afresh(store: &dyn Store) {
    let scope = Scope::random();
    let first = scope.request(6, 1, 61, Duration::from_millis(100), Duration::from_millis(200));
    store.claim(&first).await.unwrap();
    store.complete(&attempt_of(&first), &response("old"), Duration::from_millis(200)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.read(&first.id).await.unwrap(), None, "expiry is checked on read");
    let different = scope.request(6, 9, 62, LONG, LONG);
    assert_eq!(store.claim(&different).await.unwrap(), Claim::Acquired { took_over: true }, "a fresh request");
}

/// Rule: a lookup reports the most recent live record of a (scope, key), whatever its route and method: in
/// progress with its lease, or completed with its status; a key never sent is `None`.
pub async fn lookup_finds_the_most_recent_live_record_on_any_route(store: &dyn Store) {
    let scope = Scope::random();
    let older = ClaimRequest { id: scope.id_on(1, "PUT", "/older/{id}"), ..scope.request(1, 1, 11, LONG, LONG) };
    store.claim(&older).await.unwrap();
    store.complete(&attempt_of(&older), &response("older"), LONG).await.unwrap();
    let status = store.lookup(&scope.hash(), &[1; 32]).await.unwrap().expect("the completed record");
    assert_eq!((status.method.as_str(), status.route.as_str()), ("PUT", "/older/{id}"), "its method and route");
    assert!(
        matches!(status.state, KeyState::Completed { status: StatusCode::CREATED, .. }),
        "a completed record is reported with its stored status: {status:?}"
    );

    // Apart in time, so that the order of creation is clear on any store's clock.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let newer = ClaimRequest { id: scope.id_on(1, "POST", "/newer"), ..scope.request(1, 2, 12, LONG, LONG) };
    assert_eq!(store.claim(&newer).await.unwrap(), Claim::Acquired { took_over: false }, "another route's record");
    let status = store.lookup(&scope.hash(), &[1; 32]).await.unwrap().expect("the most recent record");
    assert_eq!(
        (status.method.as_str(), status.route.as_str()),
        ("POST", "/newer"),
        "a lookup reports the most recently created live record of the key: {status:?}"
    );
    assert!(
        matches!(status.state, KeyState::InProgress { lease_remaining } if lease_remaining > Duration::ZERO),
        "a claim in progress is reported with its lease remaining: {status:?}"
    );
    assert_eq!(store.lookup(&scope.hash(), &[2; 32]).await.unwrap(), None, "a key never sent is unknown");
    store.release(&attempt_of(&newer)).await.unwrap();
    let status = store.lookup(&scope.hash(), &[1; 32]).await.unwrap().expect("the older record");
    assert_eq!(status.route, "/older/{id}", "once the newer record is released, the older one is the most recent");
}

/// Rule: a lookup is scoped: the same key in another scope is unknown, as is a key of this scope only sent in
/// another one.
pub async fn lookup_never_reports_another_scopes_record(store: &dyn Store) {
    let mine = Scope::random();
    let theirs = Scope::random();
    let claim = mine.request(3, 1, 31, LONG, LONG);
    store.claim(&claim).await.unwrap();
    store.complete(&attempt_of(&claim), &response("mine"), LONG).await.unwrap();
    assert!(store.lookup(&mine.hash(), &[3; 32]).await.unwrap().is_some(), "the key in its own scope");
    assert_eq!(
        store.lookup(&theirs.hash(), &[3; 32]).await.unwrap(),
        None,
        "a lookup in another scope must not reveal the key"
    );
}

/// Rule: a lookup ignores expired records: a completed record past its ttl, and a claim past its lease and ttl,
/// are unknown.
pub async fn lookup_ignores_expired_records(store: &dyn Store) {
    let scope = Scope::random();
    let short = Duration::from_millis(200);
    let completed = scope.request(4, 1, 41, Duration::from_millis(100), short);
    store.claim(&completed).await.unwrap();
    store.complete(&attempt_of(&completed), &response("old"), short).await.unwrap();
    let abandoned = scope.request(5, 1, 51, Duration::from_millis(100), short);
    store.claim(&abandoned).await.unwrap();
    assert!(store.lookup(&scope.hash(), &[4; 32]).await.unwrap().is_some(), "live at first");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.lookup(&scope.hash(), &[4; 32]).await.unwrap(), None, "an expired completion is unknown");
    assert_eq!(store.lookup(&scope.hash(), &[5; 32]).await.unwrap(), None, "an expired claim is unknown");
}
