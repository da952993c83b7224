//! An `issued_only` route with an issued key whose time to be used has passed: refused if it started nothing,
//! replayed if it started a request (only a first use needs a key within its time).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix_web::body::MessageBody as _;
use actix_web::test::{TestRequest, call_service, init_service};
use actix_web::{App, HttpRequest, HttpResponse, post, web};

use crate::http::fingerprint::fingerprint;
use crate::record::StoredResponse;
use crate::record_id::{RecordId, ScopeValue, key_digest, scope_digest};
use crate::store::{Attempt, Claim, ClaimRequest, MemoryStore, Store};
use crate::{Idempotency, KeyIssuer};

const SECRET: &[u8] = b"a unit test secret of thirty-two bytes";

#[post("/transfers")]
#[crate::idempotent(issued_only = true, crate = "crate")]
async fn transfer(body: web::Bytes) -> HttpResponse {
    HttpResponse::Created().body(format!("ran: {}", String::from_utf8_lossy(&body)))
}

fn alice(request: &HttpRequest) -> Option<String> {
    request.headers().get("x-user").and_then(|user| user.to_str().ok()).map(str::to_owned)
}

fn post_transfer(key: &str) -> TestRequest {
    TestRequest::post()
        .uri("/transfers")
        .insert_header(("x-user", "alice"))
        .insert_header(("idempotency-key", key))
        .set_payload("10 EUR")
}

#[actix_web::test]
async fn an_expired_issued_key_only_retries_what_it_started() {
    let store = Arc::new(MemoryStore::new());
    let issuer = KeyIssuer::new(SECRET).unwrap();
    let scope_hash = scope_digest(ScopeValue::User("alice"));
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
    let expired = issuer.issue(&scope_hash, two_days_ago).key;
    let shared: Arc<dyn Store> = store.clone();
    let config = Idempotency::builder(shared).user_resolver(alice).key_issuer(issuer).build();
    let app = init_service(App::new().app_data(config).service(transfer)).await;

    let refused = call_service(&app, post_transfer(&expired).to_request()).await;
    assert_eq!(refused.status(), 400);
    let body = refused.into_body().try_into_bytes().unwrap();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("key-not-issued") && body.contains("expired"), "{body}");

    // The key started this request while it was valid: its record exists, as the route would have written it.
    let request = post_transfer(&expired).to_http_request();
    let claim = ClaimRequest {
        id: RecordId {
            scope_hash,
            key_hash: key_digest(&expired),
            method: "POST".to_owned(),
            route: "/transfers".to_owned(),
        },
        fingerprint: fingerprint(&request, &crate::http::route::RouteOptions::new(), "/transfers", b"10 EUR"),
        token: 7,
        lease: Duration::from_secs(30),
        ttl: Duration::from_secs(3600),
    };
    assert_eq!(store.claim(&claim).await.unwrap(), Claim::Acquired { took_over: false });
    let first = StoredResponse {
        status: actix_web::http::StatusCode::CREATED,
        headers: Vec::new(),
        body: Some(web::Bytes::from_static(b"ran: 10 EUR (the first time)")),
    };
    let lease = Attempt { id: claim.id.clone(), token: claim.token };
    store.complete(&lease, &first, claim.ttl).await.unwrap();

    let replayed = call_service(&app, post_transfer(&expired).to_request()).await;
    assert_eq!(replayed.status(), 201);
    assert_eq!(replayed.headers().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(replayed.into_body().try_into_bytes().unwrap(), "ran: 10 EUR (the first time)");
}
