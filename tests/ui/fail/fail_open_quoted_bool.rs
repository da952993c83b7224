use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(fail_open = "true")]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
