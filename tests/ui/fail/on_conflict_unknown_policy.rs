use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(on_conflict = "queue", wait = "5s")]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
