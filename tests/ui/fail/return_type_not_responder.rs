use idempotent_runtime::idempotent;

#[idempotent]
async fn create() -> i32 {
    42
}

fn main() {}
