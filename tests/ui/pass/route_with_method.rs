// actix-web's generic `#[route]`, above and below.
use actix_web::{App, HttpResponse, route, web};
use idempotent_runtime::idempotent;

#[route("/items/{id}", method = "PUT")]
#[idempotent]
async fn put_item(id: web::Path<u32>) -> HttpResponse {
    HttpResponse::Ok().body(id.to_string())
}

#[idempotent(key = "header:X-Request-Id")]
#[route("/items/{id}", method = "PATCH", method = "POST")]
async fn patch_item(id: web::Path<u32>, body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok().body(format!("{id}: {} bytes", body.len()))
}

fn main() {
    let _app = App::new().service(put_item).service(patch_item);
}
