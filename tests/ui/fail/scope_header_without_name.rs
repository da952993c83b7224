use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(scope = "header")]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
