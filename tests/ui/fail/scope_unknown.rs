use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(scope = "users")]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
