#[idempotent]
async fn create_payment(body: web::Json<NewPayment>, db: web::Data<Pool>) -> impl Responder {
    let payment = db.insert_payment(&body).await;
    HttpResponse::Created().json(payment)
}
