use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(max_request_body = 0)]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
