use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(on_conflict = "wait")]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
