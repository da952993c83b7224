use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(fingerprint_headers = ["X-Account-Id", "x-account-id"])]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
