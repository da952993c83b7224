use actix_web::web;
use idempotent_runtime::idempotent;

struct Payment {
    id: u64,
}

#[idempotent]
async fn create(id: web::Path<u64>) -> Payment {
    Payment { id: id.into_inner() }
}

fn main() {}
