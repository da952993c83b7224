// `#[post]` below `#[idempotent]`: the attribute keeps it on the generated handler.
use actix_web::{App, HttpResponse, post, web};
use idempotent_runtime::idempotent;

#[idempotent(ttl = "24h")]
#[post("/payments")]
async fn create_payment(body: web::Json<serde_json::Value>) -> HttpResponse {
    HttpResponse::Created().json(body.into_inner())
}

fn main() {
    let _app = App::new().service(create_payment);
}
