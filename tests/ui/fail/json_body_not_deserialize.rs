// An extractor whose own bound fails (`Json<T>` needs `T: Deserialize`). The first error is on the argument's type;
// rustc then repeats the bound on the return type, where the whole handler is checked against actix-web's
// `Handler` trait.
use actix_web::{HttpResponse, web};
use idempotent_runtime::idempotent;

struct Payment {
    amount: u64,
}

#[idempotent]
async fn create(payment: web::Json<Payment>) -> HttpResponse {
    HttpResponse::Ok().body(payment.amount.to_string())
}

fn main() {}
