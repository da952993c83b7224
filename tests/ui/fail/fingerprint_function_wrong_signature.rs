use actix_web::{HttpRequest, HttpResponse};
use idempotent_runtime::idempotent;

/// Returns a string, but a fingerprint function returns the bytes to hash, `Vec<u8>`.
fn fingerprint_of(_request: &HttpRequest, body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

#[idempotent(fingerprint = fingerprint_of)]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
