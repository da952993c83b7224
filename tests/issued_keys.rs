//! Server-issued keys over HTTP, on every store: issue, use, replay, the status of an issued key nobody used, and
//! the refusal of forged keys and of keys issued to someone else.

#[macro_use]
mod support;

use std::sync::Arc;

use actix_web::body::MessageBody as _;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::test::{TestRequest, call_service, init_service};
use actix_web::{App, HttpRequest, HttpResponse, post, web};
use idempotent_runtime::{Idempotency, KeyIssuer, Store, idempotent, issue_keys, status_lookup};
use serde_json::Value;
use support::probe::Probe;

const SECRET: &[u8] = b"the test secret of issued keys, 32+ bytes";

fn bearer(request: &HttpRequest) -> Option<String> {
    request.headers().get("authorization")?.to_str().ok()?.strip_prefix("Bearer ").map(str::to_owned)
}

#[post("/transfers")]
#[idempotent(issued_only = true, ttl = "1h", lease = "30s")]
async fn transfer(probe: web::Data<Probe>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let run = probe.enter(&request).await;
    HttpResponse::Created().body(format!("transfer {run}: {}", String::from_utf8_lossy(&body)))
}

struct Reply {
    status: StatusCode,
    replayed: bool,
    cache_control: Option<String>,
    body: Value,
}

async fn reply_of(response: ServiceResponse) -> Reply {
    let status = response.status();
    let replayed = response.headers().contains_key("idempotent-replayed");
    let cache_control = response.headers().get("cache-control").map(|value| value.to_str().unwrap().to_owned());
    let bytes = response.into_body().try_into_bytes().unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Reply { status, replayed, cache_control, body }
}

/// Sends a `TestRequest` to the app (a macro: the app's request type is not nameable from here).
macro_rules! send {
    ($app:expr, $request:expr) => {
        reply_of(call_service($app, $request.to_request()).await).await
    };
}

fn as_user(request: TestRequest, user: &str) -> TestRequest {
    request.insert_header(("Authorization", format!("Bearer {user}")))
}

fn transfer_with(user: &str, key: &str) -> TestRequest {
    as_user(TestRequest::post().uri("/transfers"), user).insert_header(("Idempotency-Key", key)).set_payload("10 EUR")
}

fn is_not_issued(reply: &Reply) -> bool {
    reply.status == StatusCode::BAD_REQUEST && reply.body["type"] == "https://idempotent.rs/problems/key-not-issued"
}

macro_rules! app {
    ($store:expr, $probe:expr) => {
        init_service(
            App::new()
                .app_data(
                    Idempotency::builder($store)
                        .user_resolver(bearer)
                        .key_issuer(KeyIssuer::new(SECRET).unwrap())
                        .build(),
                )
                .app_data($probe.clone())
                .service(transfer)
                .service(issue_keys("/idempotency-keys"))
                .service(status_lookup("/idempotency/{key}")),
        )
        .await
    };
}

/// A key issued to `user`.
macro_rules! issue {
    ($app:expr, $user:expr) => {{
        let reply = send!($app, as_user(TestRequest::post().uri("/idempotency-keys"), $user));
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        reply.body["key"].as_str().expect("a key").to_owned()
    }};
}

async fn issue_use_replay_and_look_up(store: Arc<dyn Store>) {
    let probe = web::Data::new(Probe::default());
    let app = app!(store, probe);

    let issued = send!(&app, as_user(TestRequest::post().uri("/idempotency-keys"), "alice"));
    assert_eq!(issued.status, StatusCode::CREATED);
    assert_eq!(issued.cache_control.as_deref(), Some("no-store"));
    let key = issued.body["key"].as_str().expect("a key").to_owned();
    let expires_at = issued.body["expires_at"].as_str().expect("an expiry").to_owned();
    let expiry = humantime::parse_rfc3339(&expires_at).expect("RFC 3339");
    let in_a_day = std::time::SystemTime::now() + std::time::Duration::from_secs(24 * 3600);
    assert!(expiry > in_a_day - std::time::Duration::from_secs(60) && expiry <= in_a_day, "{expires_at}");

    // Issued, not used yet: the server knows of it, for this caller only.
    let lookup = send!(&app, as_user(TestRequest::get().uri(&format!("/idempotency/{key}")), "alice"));
    assert_eq!((lookup.status, &lookup.body["state"]), (StatusCode::OK, &Value::from("issued")), "{:?}", lookup.body);
    assert_eq!(lookup.body["expires_at"], expires_at);
    let foreign = send!(&app, as_user(TestRequest::get().uri(&format!("/idempotency/{key}")), "bob"));
    assert_eq!((foreign.status, &foreign.body["state"]), (StatusCode::NOT_FOUND, &Value::from("unknown")));

    let first = send!(&app, transfer_with("alice", &key));
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(first.body, "transfer 1: 10 EUR");
    let replay = send!(&app, transfer_with("alice", &key));
    assert_eq!((replay.status, replay.replayed), (StatusCode::CREATED, true));
    assert_eq!(replay.body, "transfer 1: 10 EUR", "replayed, not run again");
    assert_eq!(probe.runs(), 1);

    let used = send!(&app, as_user(TestRequest::get().uri(&format!("/idempotency/{key}")), "alice"));
    assert_eq!((&used.body["state"], &used.body["status"]), (&Value::from("completed"), &Value::from(201)));

    let anonymous = send!(&app, TestRequest::post().uri("/idempotency-keys"));
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "keys are issued to a caller");
    assert_ne!(issue!(&app, "alice"), key, "every key issued is new");
}

async fn forged_and_foreign_keys_are_refused(store: Arc<dyn Store>) {
    let probe = web::Data::new(Probe::default());
    let app = app!(store, probe);
    let alices = issue!(&app, "alice");
    let bobs = issue!(&app, "bob");

    let mut tampered = alices.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'a' { b'b' } else { b'a' };
    let tampered = String::from_utf8(tampered).unwrap();
    let (expires, rest) = alices["ik1_".len()..].split_once('_').unwrap();
    let extended = format!("ik1_{}_{rest}", expires.parse::<u64>().unwrap() + 3600);
    for forged in [
        "8e03978e-40d5-43e8-bc93-6894a57f9324".to_owned(),
        tampered,
        extended,
        format!("ik1_{expires}_00000000000000000000000000000000_00000000000000000000000000000000"),
    ] {
        let reply = send!(&app, transfer_with("alice", &forged));
        assert!(is_not_issued(&reply), "{forged}: {:?}", reply.body);
        let lookup = send!(&app, as_user(TestRequest::get().uri(&format!("/idempotency/{forged}")), "alice"));
        assert_eq!(lookup.body["state"], "unknown", "{forged}");
    }
    let stolen = send!(&app, transfer_with("alice", &bobs));
    assert!(is_not_issued(&stolen), "bob's key is not alice's: {:?}", stolen.body);
    assert_eq!(probe.runs(), 0, "no refused key ran the handler");

    let missing = send!(&app, as_user(TestRequest::post().uri("/transfers"), "alice").set_payload("x"));
    assert_eq!(missing.status, StatusCode::BAD_REQUEST, "a key is still required");
    assert_eq!(missing.body["type"], "https://idempotent.rs/problems/key-missing");

    assert_eq!(send!(&app, transfer_with("bob", &bobs)).status, StatusCode::CREATED, "bob's key is bob's");
    assert_eq!(probe.runs(), 1);
}

/// Without a key issuer, an `issued_only` route and the issuing service are a configuration error, not a pass.
async fn without_a_key_issuer_the_route_is_misconfigured(store: Arc<dyn Store>) {
    let probe = web::Data::new(Probe::default());
    let app = init_service(
        App::new()
            .app_data(Idempotency::builder(store).user_resolver(bearer).build())
            .app_data(probe.clone())
            .service(transfer)
            .service(issue_keys("/idempotency-keys")),
    )
    .await;
    let route = send!(&app, transfer_with("alice", "ik1_1_00_00"));
    assert_eq!(route.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(route.body["type"], "https://idempotent.rs/problems/misconfigured");
    let service = send!(&app, as_user(TestRequest::post().uri("/idempotency-keys"), "alice"));
    assert_eq!(service.body["type"], "https://idempotent.rs/problems/misconfigured");
    assert_eq!(probe.runs(), 0);
}

on_every_store!(store => std::sync::Arc::clone(&store.store);
    issue_use_replay_and_look_up,
    forged_and_foreign_keys_are_refused,
    without_a_key_issuer_the_route_is_misconfigured,
);
