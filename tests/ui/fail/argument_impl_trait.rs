use actix_web::{FromRequest, HttpResponse};
use idempotent_runtime::idempotent;

#[idempotent]
async fn create(_body: impl FromRequest) -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
