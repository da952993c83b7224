#[idempotent(
    ttl = "7d",
    lease = "1m",
    scope = "header:X-Tenant-Id",
    key = "header:X-Request-Id",
    required = false,
    store_server_errors = true,
    max_request_body = "512KiB",
    max_response_body = 4096,
)]
pub async fn create_order(web::Json(order): web::Json<NewOrder>, request: HttpRequest) -> HttpResponse {
    HttpResponse::Created().json(order)
}
