use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(ttl = "1m", lease = "90s")]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
