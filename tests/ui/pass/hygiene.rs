// The user's own names cannot break the expansion: the generated code names everything through absolute paths
// and uses only `__idempotent_`-prefixed names of its own.
#![deny(warnings, clippy::all)]
#![allow(dead_code, non_camel_case_types, non_upper_case_globals)]

use actix_web::{App, HttpResponse, post, web};
use idempotent_runtime::idempotent;

type Result<T> = core::result::Result<T, ()>;
type Option = ();
struct Box;
struct Vec;
struct String;
struct Duration;
struct HttpRequest;
struct Payload;
struct RouteOptions;
mod idempotent_runtime_private {}
trait FromRequest {}
trait Responder {}
trait Future {}
trait IntoIterator {}
fn handle() {}
fn extracted() {}
fn __idempotent_request() {}
fn __idempotent_payload() {}
static __IDEMPOTENT_ROUTE: () = ();
const __idempotent_arg: () = ();

#[post("/a")]
#[idempotent(ttl = "1h", scope = "global")]
async fn a(body: web::Bytes, path: web::Path<u32>) -> HttpResponse {
    let __idempotent_request = body.len();
    let __idempotent_arg0 = path.into_inner();
    HttpResponse::Ok().body(format!("{__idempotent_request} {__idempotent_arg0}"))
}

#[post("/b")]
#[idempotent]
async fn b(__idempotent_request: actix_web::HttpRequest, __idempotent_payload: web::Payload) -> HttpResponse {
    drop(__idempotent_payload);
    HttpResponse::Ok().body(__idempotent_request.path().to_owned())
}

fn main() {
    let _: Result<Option> = Ok(());
    let _ = (Box, Vec, String, Duration, HttpRequest, Payload, RouteOptions);
    let _app = App::new().service(a).service(b);
}
