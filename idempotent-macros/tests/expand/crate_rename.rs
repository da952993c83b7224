#[idempotent(crate = "my_app::idem", ttl = "1h30m")]
async fn create(body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok().body(body)
}
