//! Throwaway: callgrind driver (not committed).
use actix_web::{App, HttpResponse, post, test, web};
use idempotent_runtime::{Idempotency, MemoryStore, idempotent};
use serde::Deserialize;

#[derive(Deserialize)]
struct Order {
    amount: u64,
    currency: String,
    reference: String,
}

#[post("/bare")]
async fn bare(order: web::Json<Order>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"ok": true, "n": order.amount, "currency": order.currency, "reference": order.reference, "status": "accepted"}))
}

#[post("/lib")]
#[idempotent(scope = "global")]
async fn lib(order: web::Json<Order>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"ok": true, "n": order.amount, "currency": order.currency, "reference": order.reference, "status": "accepted"}))
}

#[actix_web::main]
async fn main() {
    let n: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let path = std::env::args().nth(2).unwrap();
    let idempotency = Idempotency::builder(MemoryStore::new()).build();
    let app = test::init_service(App::new().app_data(idempotency).service(bare).service(lib)).await;
    let body = r#"{"amount":1234,"currency":"EUR","reference":"order-000123","note":"a note that is skipped"}"#;
    for i in 0..n {
        let request = test::TestRequest::post()
            .uri(&path)
            .insert_header(("content-type", "application/json"))
            .insert_header(("idempotency-key", format!("key-{i:012}")))
            .set_payload(body)
            .to_request();
        let response = test::call_service(&app, request).await;
        assert!(response.status().is_success());
        let _ = test::read_body(response).await;
    }
}
