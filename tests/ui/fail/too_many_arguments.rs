use actix_web::{HttpRequest as R, HttpResponse};
use idempotent_runtime::idempotent;

#[idempotent]
#[rustfmt::skip]
async fn create(
    _1: R, _2: R, _3: R, _4: R, _5: R, _6: R, _7: R, _8: R,
    _9: R, _10: R, _11: R, _12: R, _13: R, _14: R, _15: R, _16: R,
    _17: R,
) -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
