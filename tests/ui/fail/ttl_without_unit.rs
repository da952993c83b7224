use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(ttl = 3600)]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
