use actix_web::{HttpRequest, HttpResponse};
use idempotent_runtime::idempotent;

#[idempotent]
async fn create(#[cfg(debug_assertions)] _request: HttpRequest) -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
