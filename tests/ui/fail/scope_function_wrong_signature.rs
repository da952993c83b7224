use actix_web::{HttpRequest, HttpResponse};
use idempotent_runtime::idempotent;

/// Returns the tenant as a number, but a scope function returns `Option<String>`.
fn tenant_of(request: &HttpRequest) -> Option<u64> {
    request.headers().get("x-tenant")?.to_str().ok()?.parse().ok()
}

#[idempotent(scope = tenant_of)]
async fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
