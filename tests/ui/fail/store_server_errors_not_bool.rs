use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(store_server_errors = 1)]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
