use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(ttl = "1h" lease = "30s")]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
