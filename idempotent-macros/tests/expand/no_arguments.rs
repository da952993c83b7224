#[idempotent(scope = "global")]
async fn ping() -> &'static str {
    "pong"
}
