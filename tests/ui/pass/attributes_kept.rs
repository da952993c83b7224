// Doc comments and other attributes stay on the handler; lint levels reach the user's body.
#![deny(warnings, missing_docs, unreachable_pub, clippy::all)]
//! A crate with strict lints.

use actix_web::{App, HttpResponse, post};
use idempotent_runtime::idempotent;

mod api {
    use super::*;

    /// Creates a payment.
    ///
    /// Retried with the same key, it answers the first response again.
    #[post("/payments")]
    #[idempotent]
    #[allow(unused_variables)]
    #[cfg(not(any()))]
    #[must_use = "a handler future does nothing unless polled"]
    pub(crate) async fn create_payment(body: String) -> HttpResponse {
        let unused = 1;
        HttpResponse::Created().finish()
    }

    /// The body's inner attributes stay in the body.
    #[idempotent]
    pub(crate) async fn inner_attributes(_body: String) -> HttpResponse {
        #![allow(clippy::let_and_return)]
        let response = HttpResponse::Created().finish();
        response
    }

    /// Never compiled: `#[cfg]` removes the generated handler too.
    #[cfg(any())]
    #[idempotent]
    pub(crate) async fn removed(body: String) -> HttpResponse {
        does_not_exist(body)
    }

    #[deprecated = "use create_payment"]
    #[idempotent]
    pub(crate) async fn old(_body: String) -> HttpResponse {
        HttpResponse::Gone().finish()
    }
}

fn main() {
    #[allow(deprecated)]
    let _app = App::new()
        .service(api::create_payment)
        .route("/inner", actix_web::web::post().to(api::inner_attributes))
        .route("/old", actix_web::web::post().to(api::old));
}
