// Whatever actix-web can respond with: `HttpResponse`, `impl Responder`, `Result<T, E>`, plain values.
#![deny(warnings)]

use actix_web::{App, HttpResponse, Responder, error, post, web};
use idempotent_runtime::idempotent;

#[post("/impl")]
#[idempotent]
async fn impl_responder(body: String) -> impl Responder {
    HttpResponse::Created().body(body)
}

#[post("/result")]
#[idempotent]
async fn result(body: web::Bytes) -> Result<HttpResponse, error::Error> {
    if body.is_empty() {
        return Err(error::ErrorBadRequest("empty"));
    }
    Ok(HttpResponse::Ok().body(body))
}

#[post("/result-impl")]
#[idempotent]
async fn result_impl(body: String) -> actix_web::Result<impl Responder> {
    Ok(web::Json(body.len()))
}

#[post("/string")]
#[idempotent]
async fn string() -> String {
    "created".to_owned()
}

#[post("/static")]
#[idempotent]
async fn static_str() -> &'static str {
    "created"
}

#[post("/custom")]
#[idempotent]
async fn customized() -> impl Responder {
    "created".customize().with_status(actix_web::http::StatusCode::CREATED)
}

#[post("/unit")]
#[idempotent]
async fn unit() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

fn main() {
    let _app = App::new()
        .service(impl_responder)
        .service(result)
        .service(result_impl)
        .service(string)
        .service(static_str)
        .service(customized)
        .service(unit);
}
