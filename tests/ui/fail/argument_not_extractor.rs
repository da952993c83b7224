use actix_web::{HttpResponse, web};
use idempotent_runtime::idempotent;

#[idempotent]
async fn create(body: web::Json<String>, amount: u64) -> HttpResponse {
    HttpResponse::Ok().body(format!("{body:?} {amount}"))
}

fn main() {}
