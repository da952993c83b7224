// The options of the HTTP contract's open ends (fingerprint, store policy, namespace, fail-open), in every
// accepted form, under the strictest lints: the generated code trips none.
#![deny(warnings, clippy::all, missing_docs, unreachable_pub, rust_2018_idioms, unused_qualifications)]
#![forbid(unsafe_code)]
//! The contract's options.

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, post, web};
use idempotent_runtime::idempotent;

/// The body without its first line, for `fingerprint = ...`.
fn body_after_first_line(_request: &HttpRequest, body: &[u8]) -> Vec<u8> {
    body.splitn(2, |&byte| byte == b'\n').nth(1).unwrap_or_default().to_vec()
}

mod policy {
    use actix_web::http::StatusCode;

    /// Stores successes and 404s.
    pub(crate) fn successes_and_not_found(status: StatusCode) -> bool {
        status.is_success() || status == StatusCode::NOT_FOUND
    }
}

#[post("/headers")]
#[idempotent(fingerprint_headers = ["X-Account-Id", "accept-language"], store_responses = "final")]
async fn headers(body: web::Bytes) -> HttpResponse {
    HttpResponse::Created().body(body)
}

#[post("/function")]
#[idempotent(fingerprint = body_after_first_line, store_responses = "all", namespace = "payments.create:v2")]
async fn function(body: String) -> HttpResponse {
    HttpResponse::Created().body(body)
}

#[idempotent(store_responses = policy::successes_and_not_found, fail_open = true, fingerprint_headers = ["X-A"])]
#[post("/policy")]
async fn policy_fn() -> HttpResponse {
    HttpResponse::build(StatusCode::NOT_FOUND).finish()
}

#[post("/closed")]
#[idempotent(store_responses = "success", fail_open = false, namespace = "orders/v1.create-order_2")]
async fn closed() -> HttpResponse {
    HttpResponse::Created().finish()
}

/// The deprecated spelling still compiles, with a deprecation warning its user may allow.
#[post("/deprecated")]
#[idempotent(store_server_errors = true)]
#[allow(deprecated)]
async fn deprecated() -> HttpResponse {
    HttpResponse::Created().finish()
}

fn main() {
    let _app =
        App::new().service(headers).service(function).service(policy_fn).service(closed).service(deprecated);
}
