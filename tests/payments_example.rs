//! The `payments` example, driven over HTTP as its contract says other tools will drive it: once with the
//! in-memory store and once with `DATABASE_URL` (a fresh schema of a real PostgreSQL).

mod support;

use std::time::Duration;

use actix_web::http::StatusCode;
use serde_json::{Value, json};
use support::example_process::ExampleProcess;
use support::postgres::TestSchema;

/// The example under test.
struct Example(ExampleProcess);

impl std::ops::Deref for Example {
    type Target = ExampleProcess;
    fn deref(&self) -> &ExampleProcess {
        &self.0
    }
}

impl Example {
    fn start(database_url: Option<&str>) -> Self {
        Self(ExampleProcess::start("payments", database_url))
    }
}

struct Reply {
    status: StatusCode,
    headers: actix_web::http::header::HeaderMap,
    body: Value,
    raw: actix_web::web::Bytes,
}

async fn send(
    example: &Example,
    method: &str,
    path: &str,
    user: Option<&str>,
    key: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
    let method = actix_web::http::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = client.request(method, format!("{}{path}", example.base));
    if let Some(user) = user {
        request = request.insert_header(("Authorization", format!("Bearer {user}")));
    }
    if let Some(key) = key {
        request = request.insert_header(("Idempotency-Key", key));
    }
    let mut response = match body {
        Some(body) => request.send_json(&body).await,
        None => request.send().await,
    }
    .expect("the example answers");
    let raw = response.body().limit(1 << 20).await.expect("body");
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    Reply { status: response.status(), headers: response.headers().clone(), body, raw }
}

fn is_problem(reply: &Reply, status: StatusCode) -> bool {
    reply.status == status
        && reply.headers.get("content-type").is_some_and(|value| value == "application/problem+json")
        && reply.body["type"].is_string()
}

/// The scenario a new user walks through, identical for both stores.
async fn walk_through(example: &Example) {
    let index = send(example, "GET", "/", None, None, None).await;
    assert_eq!(index.status, StatusCode::OK);

    let payment = json!({"amount": 1000, "currency": "EUR"});
    let created = send(example, "POST", "/payments", Some("alice"), Some("key-1"), Some(payment.clone())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["id"].clone();
    assert_eq!(created.body["amount"], 1000);
    assert_eq!(created.body["currency"], "EUR");
    assert_eq!(created.headers.get("location").unwrap(), format!("/payments/{id}").as_str());

    let retry = send(example, "POST", "/payments", Some("alice"), Some("key-1"), Some(payment.clone())).await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(retry.raw, created.raw, "replayed byte for byte");
    assert_eq!(retry.headers.get("idempotent-replayed").unwrap(), "true");

    let reused =
        send(example, "POST", "/payments", Some("alice"), Some("key-1"), Some(json!({"amount": 5, "currency": "EUR"})))
            .await;
    assert!(is_problem(&reused, StatusCode::UNPROCESSABLE_ENTITY), "key reused for another payment");

    let bob = send(example, "POST", "/payments", Some("bob"), Some("key-1"), Some(payment.clone())).await;
    assert_eq!(bob.status, StatusCode::CREATED);
    assert_ne!(bob.body["id"], id, "bob's key-1 is not alice's");

    // "What happened to my key?": the status lookup mounted at /idempotency/{key}, scoped like the route.
    let status = send(example, "GET", "/idempotency/key-1", Some("alice"), None, None).await;
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!(status.body["state"], "completed", "{:?}", status.body);
    assert_eq!(status.body["status"], 201);
    let not_yours = send(example, "GET", "/idempotency/key-1", Some("mallory"), None, None).await;
    assert_eq!((not_yours.status, not_yours.body["state"].as_str()), (StatusCode::NOT_FOUND, Some("unknown")));

    let listed = send(example, "GET", "/payments", Some("alice"), None, None).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body, json!([{"id": id, "amount": 1000, "currency": "EUR"}]), "one payment, not two");

    for (user, key) in [(None, Some("k")), (Some("has space"), Some("k"))] {
        let reply = send(example, "POST", "/payments", user, key, Some(payment.clone())).await;
        assert!(is_problem(&reply, StatusCode::UNAUTHORIZED), "{:?}", reply.body);
    }
    assert!(is_problem(&send(example, "GET", "/payments", None, None, None).await, StatusCode::UNAUTHORIZED));
    assert!(is_problem(
        &send(example, "POST", "/payments", Some("alice"), None, Some(payment.clone())).await,
        StatusCode::BAD_REQUEST
    ));

    for (index, invalid) in [
        json!({"amount": 0, "currency": "EUR"}),
        json!({"amount": "5", "currency": "EUR"}),
        json!({"amount": 1.5, "currency": "EUR"}),
        json!({"amount": 5, "currency": "eur"}),
        json!({"amount": 5, "currency": "EURO"}),
        json!({"amount": 5, "currency": "EUR", "delay_ms": 60_001}),
        json!({"amount": 5, "currency": "EUR", "delay_ms": -1}),
        json!([]),
    ]
    .into_iter()
    .enumerate()
    {
        let key = format!("invalid-{index}");
        let reply = send(example, "POST", "/payments", Some("carol"), Some(&key), Some(invalid.clone())).await;
        assert!(is_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY), "{invalid}: {:?}", reply.body);
    }
    let too_large = json!({"amount": 5, "currency": "EUR", "pad": "x".repeat(1024 * 1024)});
    assert!(is_problem(
        &send(example, "POST", "/payments", Some("carol"), Some("big"), Some(too_large)).await,
        StatusCode::PAYLOAD_TOO_LARGE
    ));
    let carol = send(example, "GET", "/payments", Some("carol"), None, None).await;
    assert_eq!(carol.body, json!([]), "no invalid request recorded a payment");

    // A slow provider: concurrent duplicates while the first is in flight get 409 (with Retry-After <= the 5 s
    // lease) or, once it finished, the replay; never a second payment.
    let slow = json!({"amount": 7, "currency": "USD", "delay_ms": 2000});
    let replies = futures_util::future::join_all(
        (0..10).map(|_| send(example, "POST", "/payments", Some("dave"), Some("slow"), Some(slow.clone()))),
    )
    .await;
    for reply in &replies {
        match reply.status {
            StatusCode::CREATED => {}
            StatusCode::CONFLICT => {
                let after: u64 = reply.headers.get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
                assert!((1..=5).contains(&after));
            }
            other => panic!("unexpected {other}: {:?}", reply.body),
        }
    }
    assert!(
        replies.iter().any(|reply| reply.status == StatusCode::CONFLICT),
        "the duplicates overlapped the 2 s payment"
    );
    let dave = send(example, "GET", "/payments", Some("dave"), None, None).await;
    assert_eq!(dave.body.as_array().map(Vec::len), Some(1), "{:?}", dave.body);
}

#[actix_web::test]
async fn payments_example_in_memory() {
    let example = Example::start(None);
    assert!(example.banner.contains("in-memory store"), "{:?}", example.banner);
    walk_through(&example).await;
}

#[actix_web::test]
async fn payments_example_on_postgres() {
    let schema = TestSchema::create().await;
    let example = Example::start(Some(&schema.database_url()));
    assert!(example.banner.contains("PostgreSQL (DATABASE_URL) store"), "{:?}", example.banner);
    walk_through(&example).await;

    let client = schema.pool(1).get().await.expect("connect");
    let payments: i64 = client.query_one("SELECT count(*) FROM payments", &[]).await.expect("count").get(0);
    assert_eq!(payments, 3, "alice, bob and dave paid once each, in PostgreSQL");
    let records: i64 = client.query_one("SELECT count(*) FROM idempotency_records", &[]).await.expect("count").get(0);
    assert!(records >= 3, "the idempotency records live in the same database");
    drop(example);
    schema.drop_schema().await;
}
