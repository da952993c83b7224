use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(on_conflict = "wait", wait = "0s")]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
