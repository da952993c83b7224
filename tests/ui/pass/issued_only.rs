// `issued_only` with the options it combines with, under the strictest lints.
#![deny(warnings, clippy::all, missing_docs, unreachable_pub, rust_2018_idioms, unused_qualifications)]
#![forbid(unsafe_code)]
//! Routes that take only server-issued keys.

use actix_web::{App, HttpResponse, post, web};
use idempotent_runtime::{idempotent, issue_keys, status_lookup};

#[post("/transfers")]
#[idempotent(issued_only = true)]
async fn transfer(body: web::Bytes) -> HttpResponse {
    HttpResponse::Created().body(body)
}

#[idempotent(issued_only = true, scope = "header:X-Tenant-Id", key = "header:X-Request-Id", required = true)]
#[post("/tenant-transfers")]
async fn tenant_transfer() -> HttpResponse {
    HttpResponse::Created().finish()
}

#[post("/optional")]
#[idempotent(issued_only = false, required = false)]
async fn optional() -> HttpResponse {
    HttpResponse::Created().finish()
}

fn main() {
    let _app = App::new()
        .service(transfer)
        .service(tenant_transfer)
        .service(optional)
        .service(issue_keys("/idempotency-keys"))
        .service(status_lookup("/idempotency/{key}"));
}
