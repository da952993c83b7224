use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(key = "derived", scope = "global")]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
