#[idempotent(key = "form:idem")]
/// Creates a payment.
#[post("/payments")]
#[allow(clippy::unused_async)]
pub(crate) async fn create(form: web::Form<Payment>) -> impl Responder {
    form.into_inner()
}
