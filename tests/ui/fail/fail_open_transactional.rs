use actix_web::HttpResponse;
use idempotent_runtime::{Tx, idempotent};

#[idempotent(fail_open = true)]
async fn create(tx: Tx) -> HttpResponse {
    drop(tx);
    HttpResponse::Ok().finish()
}

fn main() {}
