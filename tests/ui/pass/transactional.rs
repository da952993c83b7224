// A transactional route: the handler takes `Tx` (by name or by path), in any position, with wait mode too.
#![deny(warnings)]

use actix_web::{App, HttpResponse, post, web};
use idempotent_runtime::{Tx, idempotent};

#[post("/orders")]
#[idempotent(scope = "global")]
async fn create(body: web::Json<serde_json::Value>, tx: Tx) -> HttpResponse {
    match tx.execute("INSERT INTO orders (body) VALUES ($1)", &[&body.to_string()]).await {
        Ok(_) => HttpResponse::Created().finish(),
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}

#[post("/orders-wait")]
#[idempotent(scope = "global", on_conflict = "wait", wait = "5s")]
async fn create_waiting(tx: idempotent_runtime::Tx) -> HttpResponse {
    let rows = tx.query("SELECT 1", &[]).await.map(|rows| rows.len()).unwrap_or(0);
    HttpResponse::Created().body(rows.to_string())
}

fn main() {
    let _ = App::new().service(create).service(create_waiting);
}
