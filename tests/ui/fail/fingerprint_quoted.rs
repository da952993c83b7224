use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(fingerprint = "fingerprint_of")]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
