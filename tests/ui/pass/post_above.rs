// `#[post]` above `#[idempotent]`: the route macro receives the already-wrapped handler.
use actix_web::{App, HttpResponse, post, web};
use idempotent_runtime::idempotent;

#[post("/payments")]
#[idempotent(ttl = "24h")]
async fn create_payment(body: web::Json<serde_json::Value>) -> HttpResponse {
    HttpResponse::Created().json(body.into_inner())
}

fn main() {
    let _app = App::new().service(create_payment);
}
