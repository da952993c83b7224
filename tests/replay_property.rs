//! Property: whatever status, headers and body bytes (up to the cap) a handler answers, a retry gets them back
//! byte for byte. Random responses go through a real server on both stores; proptest shrinks a failure to the
//! smallest response that is not replayed faithfully.

mod support;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{App, HttpResponse, post, web};
use idempotent_runtime::{Idempotency, Store, idempotent};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde::{Deserialize, Serialize};
use support::StoreUnderTest;

/// The body cap of the route under test: generated bodies go up to it.
const CAP: usize = 16 * 1024;

/// The response the handler is asked to give.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Wanted {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

#[post("/echo")]
#[idempotent(scope = "global", store_responses = "all", max_response_body = "16KiB", max_request_body = "1MiB")]
async fn echo(wanted: web::Json<Wanted>) -> HttpResponse {
    let wanted = wanted.into_inner();
    let mut response = HttpResponse::build(StatusCode::from_u16(wanted.status).expect("generated valid status"));
    for (name, value) in wanted.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("generated valid name");
        response.append_header((name, HeaderValue::from_bytes(&value).expect("generated valid value")));
    }
    response.body(wanted.body)
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![200u16..=299, 300u16..=399, 400u16..=499, 500u16..=599]
        .prop_filter("a registered or generic status actix can send", |code| StatusCode::from_u16(*code).is_ok())
}

/// Header values: visible ASCII and obs-text, with inner spaces, without the leading or trailing whitespace HTTP
/// strips in transit.
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![8 => 0x21u8..=0x7e, 1 => Just(b' '), 1 => 0x80u8..=0xff];
    proptest::collection::vec(byte, 0..40).prop_map(|mut value| {
        while value.last() == Some(&b' ') {
            value.pop();
        }
        while value.first() == Some(&b' ') {
            value.remove(0);
        }
        value
    })
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "x-[a-z0-9-]{1,12}",
        Just("content-type".to_owned()),
        Just("cache-control".to_owned()),
        Just("etag".to_owned()),
        Just("location".to_owned()),
        Just("content-language".to_owned()),
    ]
}

fn wanted() -> impl Strategy<Value = Wanted> {
    (
        status(),
        proptest::collection::vec((header_name(), header_value()), 0..8),
        proptest::collection::vec(any::<u8>(), 0..=CAP),
    )
        .prop_map(|(status, headers, body)| Wanted { status, headers, body })
}

struct Seen {
    status: StatusCode,
    headers: actix_web::http::header::HeaderMap,
    body: Bytes,
}

async fn send(server: &actix_test::TestServer, key: &str, wanted: &Wanted) -> Seen {
    // Generated 3xx responses carry arbitrary `Location` values: see them, do not follow them.
    let client = awc::Client::builder().disable_redirects().finish();
    let mut response = client
        .post(server.url("/echo"))
        .insert_header(("Idempotency-Key", key))
        .send_json(wanted)
        .await
        .expect("answer");
    let body = response.body().limit(2 * CAP).await.expect("body");
    Seen { status: response.status(), headers: response.headers().clone(), body }
}

fn check(first: &Seen, replay: &Seen, wanted: &Wanted) -> Result<(), TestCaseError> {
    prop_assert_eq!(replay.headers.get("idempotent-replayed").map(HeaderValue::as_bytes), Some(&b"true"[..]));
    prop_assert_eq!(first.headers.get("idempotent-replayed"), None);
    prop_assert_eq!(replay.status, first.status);
    prop_assert_eq!(replay.status.as_u16(), wanted.status);
    let first_difference =
        replay.body.iter().zip(first.body.iter()).position(|(replayed, original)| replayed != original);
    prop_assert!(
        replay.body == first.body,
        "body not replayed byte for byte: {} bytes replayed, {} sent first, first difference at {:?}",
        replay.body.len(),
        first.body.len(),
        first_difference
    );
    for (name, _) in &wanted.headers {
        let values = |seen: &Seen| {
            seen.headers.get_all(name.as_str()).map(|value| value.as_bytes().to_vec()).collect::<Vec<_>>()
        };
        prop_assert_eq!(values(replay), values(first), "header {} in order", name);
    }
    Ok(())
}

fn replay_is_byte_identical(on_postgres: bool) {
    let system = actix_rt::System::new();
    let store = system.block_on(async {
        if on_postgres { StoreUnderTest::postgres().await } else { StoreUnderTest::memory().await }
    });
    let shared: std::sync::Arc<dyn Store> = store.store.clone();
    let server = system.block_on(async move {
        actix_test::start(move || App::new().app_data(Idempotency::builder(shared.clone()).build()).service(echo))
    });
    let mut runner = TestRunner::new(Config { cases: 48, failure_persistence: None, ..Config::default() });
    let result = runner.run(&wanted(), |wanted| {
        // A fresh key per case (and per shrinking step).
        let key = format!("case-{}", fastrand::u64(..));
        let (first, replay) =
            system.block_on(async { (send(&server, &key, &wanted).await, send(&server, &key, &wanted).await) });
        check(&first, &replay, &wanted)
    });
    system.block_on(async move {
        drop(server);
        store.cleanup().await;
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

#[test]
fn replay_is_byte_identical_on_memory() {
    replay_is_byte_identical(false);
}

#[test]
fn replay_is_byte_identical_on_postgres() {
    replay_is_byte_identical(true);
}
