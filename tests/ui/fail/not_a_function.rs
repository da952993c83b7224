use idempotent_runtime::idempotent;

#[idempotent]
struct CreatePayment;

fn main() {}
