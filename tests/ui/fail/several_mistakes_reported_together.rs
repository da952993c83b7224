// Independent mistakes are all reported in one compile, each on its own token.
use actix_web::HttpResponse;
use idempotent_runtime::idempotent;

#[idempotent(ttl = "24", scope = "users", required = "true")]
fn create() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
