//! Completion and release: the owner stores its response (again, if its first completion's answer was lost) or
//! frees the key; nobody else can do either.

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::web::Bytes;

use super::fixture::{LONG, Scope, attempt_of, response};
use crate::record::{RecordState, StoredResponse};
use crate::store::{Attempt, Claim, Completion, Store};

/// Rule: a completion whose answer was lost (a timeout after it landed) is tried again with the same lease: the
/// store recognises its own completion (`Stored`, not `Fenced`) and keeps the first response; another token's
/// completion is fenced.
pub async fn a_completion_retried_with_its_own_lease_is_stored_not_fenced(store: &dyn Store) {
    let scope = Scope::random();
    let original = scope.request(10, 1, 101, LONG, LONG);
    store.claim(&original).await.unwrap();
    assert_eq!(store.complete(&attempt_of(&original), &response("once"), LONG).await.unwrap(), Completion::Stored);
    assert_eq!(
        store.complete(&attempt_of(&original), &response("once"), LONG).await.unwrap(),
        Completion::Stored,
        "completing twice with the same token answers Stored"
    );
    let stale = Attempt { token: 999, ..attempt_of(&original) };
    assert_eq!(
        store.complete(&stale, &response("other"), LONG).await.unwrap(),
        Completion::Fenced,
        "another token's completion is fenced"
    );
    let record = store.read(&original.id).await.unwrap().expect("live record");
    assert_eq!(record.state, RecordState::Completed(response("once")), "the first response is kept");
}

/// Rule: the owner's release deletes its in-progress record, so a retry claims afresh; a release by another token
/// does nothing, and a completed record is never released.
pub async fn release_frees_the_key_and_a_stale_release_does_nothing(store: &dyn Store) {
    let scope = Scope::random();
    let first = scope.request(5, 1, 51, LONG, LONG);
    store.claim(&first).await.unwrap();
    store.release(&attempt_of(&first)).await.unwrap();
    assert_eq!(store.read(&first.id).await.unwrap(), None, "a released record is gone");
    let second = scope.request(5, 1, 52, LONG, LONG);
    assert_eq!(
        store.claim(&second).await.unwrap(),
        Claim::Acquired { took_over: false },
        "a released key is claimed afresh"
    );
    store.release(&attempt_of(&first)).await.unwrap();
    assert!(store.read(&second.id).await.unwrap().is_some(), "another attempt's release cannot free this claim");
    store.complete(&attempt_of(&second), &response("kept"), LONG).await.unwrap();
    store.release(&attempt_of(&second)).await.unwrap();
    assert!(store.read(&second.id).await.unwrap().is_some(), "a completed record is never released");
}

/// Rule: a stored response is read back exactly: its status, every header in order (a repeated name, a value that
/// is not UTF-8), its body bytes, and a missing body (over the cap) as missing, not empty.
pub async fn a_completion_keeps_status_headers_and_body_exactly(store: &dyn Store) {
    let scope = Scope::random();
    let header = |name: &'static str, value: &'static [u8]| {
        (HeaderName::from_static(name), HeaderValue::from_bytes(value).expect("a valid header value"))
    };
    let full = StoredResponse {
        status: StatusCode::ACCEPTED,
        headers: vec![
            header("set-thing", b"b"),
            header("content-type", b"application/json"),
            header("set-thing", b"a"),
            header("x-opaque", b"\xff\x80 raw"),
        ],
        body: Some(Bytes::from_static(b"{\"id\":7}\0\xff")),
    };
    let headless = StoredResponse { status: StatusCode::NOT_FOUND, headers: vec![], body: Some(Bytes::new()) };
    let bodiless = StoredResponse { status: StatusCode::OK, headers: vec![header("etag", b"\"v1\"")], body: None };
    for (key, stored) in [(1, full), (2, headless), (3, bodiless)] {
        let claim = scope.request(key, 1, i64::from(key), LONG, LONG);
        store.claim(&claim).await.unwrap();
        assert_eq!(store.complete(&attempt_of(&claim), &stored, LONG).await.unwrap(), Completion::Stored);
        let read = store.read(&claim.id).await.unwrap().expect("live record");
        assert_eq!(read.state, RecordState::Completed(stored.clone()), "a read returns the response as stored");
        match store.claim(&scope.request(key, 1, 100, LONG, LONG)).await.unwrap() {
            Claim::Existing(record) => {
                assert_eq!(record.state, RecordState::Completed(stored), "a claim returns the response as stored");
            }
            other => panic!("a completed record is read, not acquired: {other:?}"),
        }
    }
}

/// Rule: a completed record lives for the ttl its completion gives it, from the completion, whatever lease the
/// claim had: once that ttl ended, the record reads as absent and any request claims the key afresh.
pub async fn a_completion_keeps_the_record_for_its_own_ttl_not_the_lease(store: &dyn Store) {
    let scope = Scope::random();
    let worker = scope.request(8, 1, 81, LONG, LONG);
    store.claim(&worker).await.unwrap();
    let short_ttl = std::time::Duration::from_millis(100);
    assert_eq!(store.complete(&attempt_of(&worker), &response("brief"), short_ttl).await.unwrap(), Completion::Stored);
    tokio::time::sleep(short_ttl + std::time::Duration::from_millis(100)).await;
    assert_eq!(store.read(&worker.id).await.unwrap(), None, "a completed record is gone once its own ttl ended");
    assert_eq!(
        store.claim(&scope.request(8, 2, 82, LONG, LONG)).await.unwrap(),
        Claim::Acquired { took_over: true },
        "once the completion's ttl ended, any request claims the key afresh, whatever the first claim's lease"
    );
}
