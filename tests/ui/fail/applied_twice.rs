use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(ttl = "1h")]
#[idempotent(ttl = "2h")]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
