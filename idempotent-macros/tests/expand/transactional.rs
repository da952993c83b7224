#[idempotent(ttl = "24h")]
async fn create_order(tx: Tx, body: web::Json<NewOrder>) -> Result<HttpResponse, Error> {
    let id = tx.insert_order(&body).await?;
    Ok(HttpResponse::Created().json(id))
}
