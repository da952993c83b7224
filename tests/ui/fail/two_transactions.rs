use actix_web::HttpResponse;
use idempotent_runtime::{Tx, idempotent};

#[idempotent]
async fn create(first: Tx, second: Tx) -> HttpResponse {
    drop((first, second));
    HttpResponse::Ok().finish()
}

fn main() {}
