#[idempotent(scope = crate::auth::tenant_of, key = "query:idem")]
async fn refund(id: web::Path<u64>) -> Result<HttpResponse, Error> {
    Ok(HttpResponse::Ok().body(id.to_string()))
}
