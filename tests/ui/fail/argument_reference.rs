use actix_web::{HttpRequest, HttpResponse};
use idempotent_runtime::idempotent;

#[idempotent]
async fn create(request: &HttpRequest) -> HttpResponse {
    HttpResponse::Ok().body(request.path().to_owned())
}

fn main() {}
