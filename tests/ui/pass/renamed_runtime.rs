// The runtime under another name: `crate = "..."` points the generated code at it.
#![deny(warnings)]

pub extern crate idempotent_runtime as idem;

mod reexport {
    pub use idem as runtime;
}

use actix_web::{App, HttpResponse, post, web};

#[post("/a")]
#[idem::idempotent(crate = "idem", ttl = "1h")]
async fn a(body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok().body(body)
}

#[post("/b")]
#[idem::idempotent(crate = "::idem")]
async fn b() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[post("/c")]
#[reexport::runtime::idempotent(crate = "crate::reexport::runtime", scope = "global")]
async fn c() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {
    let _app = App::new().service(a).service(b).service(c);
}
