use actix_web::{HttpRequest, HttpResponse};
use idempotent_runtime::idempotent;

fn fingerprint_of(_request: &HttpRequest, body: &[u8]) -> Vec<u8> {
    body.to_vec()
}

#[idempotent(fingerprint = fingerprint_of, fingerprint_headers = ["X-Account-Id"])]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
