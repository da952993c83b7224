use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(key = "header:X Request Key")]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
