use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(fingerprint_headers = "X-Account-Id")]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
