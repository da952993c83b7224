use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(store_responses = "all", store_server_errors = true)]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
