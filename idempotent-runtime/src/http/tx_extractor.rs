//! `Tx` as a handler parameter: the transaction the request flow lent for this request, taken once. A handler
//! that takes `Tx` without `#[idempotent]` gets the library's misconfiguration answer.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest};

use crate::http::problem::{Problem, style_of};
use crate::store::Tx;

impl FromRequest for Tx {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Lent by the transaction for this request (taken once).
        let taken = request.extensions_mut().remove::<Tx>();
        ready(taken.ok_or_else(|| {
            tracing::error!(
                route = %request.match_pattern().unwrap_or_default(),
                "a handler takes `Tx` but no transaction was opened: put #[idempotent] on it, with one `Tx` parameter"
            );
            Problem::misconfigured().into_error(style_of(request), request)
        }))
    }
}
