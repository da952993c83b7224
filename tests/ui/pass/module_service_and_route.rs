// A handler in a module, used through `.service()` (with a route macro) and through `.route()` (without).
#![deny(warnings)]

use actix_web::{App, web};

mod payments {
    use actix_web::{HttpResponse, post, web};
    use idempotent_runtime::idempotent;

    #[post("/payments")]
    #[idempotent]
    pub async fn create(body: web::Bytes) -> HttpResponse {
        HttpResponse::Created().body(body)
    }

    #[idempotent(ttl = "1h")]
    pub async fn refund(id: web::Path<u64>) -> HttpResponse {
        HttpResponse::Ok().body(format!("refunded {id}"))
    }
}

fn main() {
    let _app = App::new()
        .service(payments::create)
        .route("/payments/{id}/refund", web::post().to(payments::refund))
        .service(web::resource("/refunds/{id}").route(web::post().to(payments::refund)))
        .service(web::scope("/v2").service(payments::create));
}
