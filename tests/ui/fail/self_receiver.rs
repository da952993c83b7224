use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

struct Payments;

impl Payments {
    #[idempotent]
    async fn create(&self) -> HttpResponse {
        HttpResponse::Ok().finish()
    }
}

fn main() {}
