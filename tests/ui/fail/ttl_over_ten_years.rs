use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(ttl = "4000d")]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
