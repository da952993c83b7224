use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(expiry = "1h")]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
