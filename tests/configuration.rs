//! Application-wide settings a client can observe.

use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, post};
use idempotent_runtime::{Idempotency, MemoryStore, idempotent};

#[post("/pay")]
#[idempotent(scope = "global")]
async fn pay(body: String) -> HttpResponse {
    HttpResponse::Created().body(body)
}

#[actix_web::test]
async fn the_status_of_a_reused_key_is_configurable() {
    let server = actix_test::start(|| {
        App::new()
            .app_data(Idempotency::builder(MemoryStore::new()).key_reused_status(StatusCode::CONFLICT).build())
            .service(pay)
    });
    let send = |body: &'static str| server.post("/pay").insert_header(("Idempotency-Key", "k")).send_body(body);
    assert_eq!(send("one").await.expect("answer").status(), StatusCode::CREATED);
    let mut reused = send("two").await.expect("answer");
    assert_eq!(reused.status(), StatusCode::CONFLICT, "the configured status, not 422");
    let body: serde_json::Value = serde_json::from_slice(&reused.body().await.expect("body")).expect("problem JSON");
    assert_eq!(body["type"], "https://idempotent.rs/problems/key-reused");
    assert_eq!(body["status"], 409);
}
