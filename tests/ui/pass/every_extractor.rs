// Every extractor of the contract, a user-defined one, and argument patterns.
#![deny(warnings)]

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{App, FromRequest, HttpRequest, HttpResponse, post, web};
use idempotent_runtime::idempotent;
use serde::Deserialize;

#[derive(Deserialize)]
struct Order {
    sku: String,
}

#[derive(Deserialize)]
struct Page {
    page: u32,
}

struct Pool;

/// A user-defined extractor.
struct Tenant(String);

impl FromRequest for Tenant {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let tenant = request.headers().get("x-tenant").and_then(|value| value.to_str().ok()).unwrap_or("none");
        ready(Ok(Tenant(tenant.to_owned())))
    }
}

#[post("/json")]
#[idempotent]
async fn by_json(order: web::Json<Order>) -> HttpResponse {
    HttpResponse::Ok().body(order.sku.clone())
}

#[post("/form")]
#[idempotent(key = "form:idem")]
async fn by_form(web::Form(order): web::Form<Order>) -> HttpResponse {
    HttpResponse::Ok().body(order.sku)
}

#[post("/bytes")]
#[idempotent]
async fn by_bytes(body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok().body(body)
}

#[post("/string")]
#[idempotent]
async fn by_string(body: String) -> HttpResponse {
    HttpResponse::Ok().body(body)
}

#[post("/path/{id}/{name}")]
#[idempotent]
async fn by_path(path: web::Path<(u32, String)>) -> HttpResponse {
    let (id, name) = path.into_inner();
    HttpResponse::Ok().body(format!("{id} {name}"))
}

#[post("/query")]
#[idempotent(key = "query:idem")]
async fn by_query(web::Query(Page { page }): web::Query<Page>) -> HttpResponse {
    HttpResponse::Ok().body(page.to_string())
}

#[post("/data")]
#[idempotent]
async fn by_data(_pool: web::Data<Pool>) -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[post("/request")]
#[idempotent]
async fn by_request(request: HttpRequest) -> HttpResponse {
    HttpResponse::Ok().body(request.path().to_owned())
}

#[post("/tenant")]
#[idempotent]
async fn by_tenant(Tenant(tenant): Tenant) -> HttpResponse {
    HttpResponse::Ok().body(tenant)
}

#[post("/all/{id}")]
#[idempotent]
async fn by_all(
    mut order: web::Json<Order>,
    id: web::Path<u32>,
    _: web::Query<Page>,
    (request, Tenant(tenant)): (HttpRequest, Tenant),
    _pool: web::Data<Pool>,
    maybe: Option<web::Bytes>,
) -> HttpResponse {
    order.sku.push('!');
    let size = maybe.map_or(0, |bytes| bytes.len());
    HttpResponse::Ok().body(format!("{} {id} {} {tenant} {size}", order.sku, request.path()))
}

fn main() {
    let _app = App::new()
        .app_data(web::Data::new(Pool))
        .service(by_json)
        .service(by_form)
        .service(by_bytes)
        .service(by_string)
        .service(by_path)
        .service(by_query)
        .service(by_data)
        .service(by_request)
        .service(by_tenant)
        .service(by_all);
}
