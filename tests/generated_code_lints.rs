//! Every documented option combination, compiled as a test target so that CI's `cargo clippy --all-targets
//! -- -D warnings` lints the code `#[idempotent]` generates (trybuild pass cases only run rustc).
//! Kept in step with `tests/ui/pass/all_options.rs`.
#![deny(warnings, clippy::all, missing_docs, unreachable_pub, rust_2018_idioms, unused_qualifications)]
#![forbid(unsafe_code)]

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, post, test, web};
use idempotent_runtime::{Idempotency, KeyIssuer, MemoryStore, idempotent};

/// The tenant of a request, for `scope = tenant_of`.
fn tenant_of(request: &HttpRequest) -> Option<String> {
    request.headers().get("x-tenant").and_then(|value| value.to_str().ok()).map(str::to_owned)
}

mod auth {
    use actix_web::HttpRequest;

    /// A resolver in another module, named by path.
    pub(crate) fn account_of(request: &HttpRequest) -> Option<String> {
        request.headers().get("x-account")?.to_str().ok().map(str::to_owned)
    }
}

#[post("/all")]
#[idempotent(
    ttl = "7d",
    lease = "1m",
    scope = tenant_of,
    key = "header:X-Request-Id",
    required = false,
    store_responses = "all",
    max_request_body = "512KiB",
    max_response_body = "4MiB",
    on_conflict = "wait",
    wait = "10s",
    crate = "idempotent_runtime",
)]
async fn all(body: web::Bytes) -> HttpResponse {
    HttpResponse::Created().body(body)
}

#[post("/derived")]
#[idempotent(key = "derived", ttl = "30s", lease = "5s")]
async fn derived(form: web::Form<std::collections::HashMap<String, String>>) -> HttpResponse {
    HttpResponse::Created().body(form.len().to_string())
}

#[post("/reject")]
#[idempotent(on_conflict = "reject", lease = "5s")]
async fn reject(body: String) -> HttpResponse {
    HttpResponse::Created().body(body)
}

#[post("/defaults")]
#[idempotent]
async fn defaults() -> HttpResponse {
    HttpResponse::Created().finish()
}

#[post("/empty")]
#[idempotent()]
async fn empty() -> HttpResponse {
    HttpResponse::Created().finish()
}

#[post("/user")]
#[idempotent(scope = "user", key = "header", required = true, store_responses = "final")]
async fn user() -> HttpResponse {
    HttpResponse::Created().finish()
}

#[post("/global")]
#[idempotent(scope = "global", key = "query:idem", ttl = "1h30m", lease = "90 s")]
async fn global() -> HttpResponse {
    HttpResponse::Created().finish()
}

#[post("/tenant")]
#[idempotent(scope = "header:X-Tenant-Id", key = "form:idem", max_request_body = 65536)]
async fn tenant(form: web::Form<Vec<(String, String)>>) -> HttpResponse {
    HttpResponse::Created().body(form.len().to_string())
}

#[post("/account")]
#[idempotent(scope = auth::account_of, max_response_body = "10 MB", ttl = "1d 12h")]
async fn account() -> HttpResponse {
    HttpResponse::Created().finish()
}

#[post("/raw")]
#[idempotent(r#ttl = "30s", lease = "29s")]
async fn raw() -> HttpResponse {
    HttpResponse::Created().finish()
}

#[idempotent(max_request_body = "1GiB", max_response_body = 1024usize)]
#[post("/below")]
async fn below() -> HttpResponse {
    HttpResponse::Created().finish()
}

/// The body as it is, for `fingerprint = ...`.
fn whole_body(_request: &HttpRequest, body: &[u8]) -> Vec<u8> {
    body.to_vec()
}

/// Stores successes only, for `store_responses = ...`.
fn successes(status: StatusCode) -> bool {
    status.is_success()
}

#[post("/contract")]
#[idempotent(
    fingerprint_headers = ["X-Account-Id"],
    namespace = "contract.create",
    fail_open = true,
    store_responses = successes
)]
async fn contract(body: web::Bytes) -> HttpResponse {
    HttpResponse::Created().body(body)
}

#[post("/fingerprint")]
#[idempotent(fingerprint = whole_body, store_responses = "success")]
async fn fingerprint(body: web::Bytes) -> HttpResponse {
    HttpResponse::Created().body(body)
}

#[post("/issued")]
#[idempotent(issued_only = true)]
async fn issued(body: web::Bytes) -> HttpResponse {
    HttpResponse::Created().body(body)
}

/// Every route is registered and reached: a request to each answers from the route (not 404, not a server
/// error), so an expansion that compiles but loses a route, or panics when it runs, fails here.
#[actix_web::test]
async fn every_option_combination_registers() {
    let app = test::init_service(
        App::new()
            .app_data(
                Idempotency::builder(MemoryStore::new())
                    .user_resolver(|_| Some("u".to_owned()))
                    .key_issuer(KeyIssuer::new([7; 32]).expect("a 32-byte secret"))
                    .build(),
            )
            .service(all)
            .service(derived)
            .service(reject)
            .service(defaults)
            .service(empty)
            .service(user)
            .service(global)
            .service(tenant)
            .service(account)
            .service(raw)
            .service(below)
            .service(contract)
            .service(fingerprint)
            .service(issued),
    )
    .await;
    let paths = [
        "/all",
        "/derived",
        "/reject",
        "/defaults",
        "/empty",
        "/user",
        "/global",
        "/tenant",
        "/account",
        "/raw",
        "/below",
        "/contract",
        "/fingerprint",
        "/issued",
    ];
    for path in paths {
        let request = test::TestRequest::post()
            .uri(path)
            .insert_header(("Idempotency-Key", "k-1"))
            .insert_header(("X-Request-Id", "k-1"))
            .insert_header(("X-Tenant-Id", "t"))
            .insert_header(("x-tenant", "t"))
            .insert_header(("x-account", "a"))
            .to_request();
        let status = test::call_service(&app, request).await.status();
        assert_ne!(status, StatusCode::NOT_FOUND, "{path} is not registered");
        assert!(!status.is_server_error(), "{path} answered {status}");
    }
    let unknown = test::call_service(&app, test::TestRequest::post().uri("/nowhere").to_request()).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND, "the check can tell a missing route");
}
