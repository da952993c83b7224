use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(fingerprint_headers = ["X-Account-Id", "Accept Language"])]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
