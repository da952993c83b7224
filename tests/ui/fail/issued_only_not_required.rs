use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(issued_only = true, required = false)]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
