use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(max_response_body = "1mib")]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
