// An associated function of an `impl` block as the handler: the attribute emits nothing beside the function (an
// `impl` block takes only associated items), with or without the runtime's `openapi` feature.
use actix_web::{App, HttpResponse, web};
use idempotent_runtime::idempotent;

struct Payments;

impl Payments {
    #[idempotent(scope = "global")]
    async fn create(body: web::Bytes) -> HttpResponse {
        HttpResponse::Created().body(body)
    }
}

fn main() {
    let _app = App::new().route("/payments", web::post().to(Payments::create));
}
