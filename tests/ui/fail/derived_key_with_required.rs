use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(key = "derived", required = false)]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
