use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

/// Takes the status as a number, but a store policy takes `StatusCode`.
fn stores(status: u16) -> bool {
    status < 500
}

#[idempotent(store_responses = stores)]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
