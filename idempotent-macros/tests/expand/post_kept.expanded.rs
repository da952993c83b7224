/// Creates a payment.
#[post("/payments")]
#[allow(clippy::unused_async)]
pub(crate) async fn create(
    __idempotent_request: ::idempotent_runtime::__private::HttpRequest,
    __idempotent_payload: ::idempotent_runtime::__private::Payload,
) -> ::idempotent_runtime::__private::HttpResponse {
    #[allow(clippy::unused_async)]
    async fn create(form: web::Form<Payment>) -> impl Responder {
        form.into_inner()
    }
    let __idempotent_route: &'static ::idempotent_runtime::__private::RouteOptions = &const {
        ::idempotent_runtime::__private::RouteOptions::new()
            .key(::idempotent_runtime::__private::KeySpec::Form("idem"))
    };
    ::idempotent_runtime::__private::document_route!(
        create, & const { ::idempotent_runtime::__private::RouteOptions::new()
        .key(::idempotent_runtime::__private::KeySpec::Form("idem")) }
    );
    ::idempotent_runtime::__private::handle(
            __idempotent_route,
            __idempotent_request,
            __idempotent_payload,
            |__idempotent_arg0| create(
                ::idempotent_runtime::__private::extracted::<
                    web::Form<Payment>,
                >()(__idempotent_arg0),
            ),
        )
        .await
}
