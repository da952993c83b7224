use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(store_responses = "errors")]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
