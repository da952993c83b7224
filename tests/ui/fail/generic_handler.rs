use actix_web::{HttpResponse, web};
use idempotent_runtime::idempotent;

#[idempotent]
async fn create<T: serde::de::DeserializeOwned>(_body: web::Json<T>) -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
