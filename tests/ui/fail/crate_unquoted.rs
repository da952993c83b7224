use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(crate = idempotent_runtime)]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
