fn create_payment(
    __idempotent_request: ::idempotent_runtime::__private::HttpRequest,
    __idempotent_payload: ::idempotent_runtime::__private::Payload,
) -> impl ::idempotent_runtime::__private::Responding {
    async fn create_payment(
        body: web::Json<NewPayment>,
        db: web::Data<Pool>,
    ) -> impl Responder {
        let payment = db.insert_payment(&body).await;
        HttpResponse::Created().json(payment)
    }
    let __idempotent_route: &'static ::idempotent_runtime::__private::RouteOptions = &const {
        ::idempotent_runtime::__private::RouteOptions::new()
    };
    ::idempotent_runtime::__private::document_route!(
        create_payment, & const { ::idempotent_runtime::__private::RouteOptions::new() }
    );
    ::idempotent_runtime::__private::handle(
        __idempotent_route,
        __idempotent_request,
        __idempotent_payload,
        |__idempotent_arg0, __idempotent_arg1| create_payment(
            ::idempotent_runtime::__private::extracted::<
                web::Json<NewPayment>,
            >()(__idempotent_arg0),
            ::idempotent_runtime::__private::extracted::<
                web::Data<Pool>,
            >()(__idempotent_arg1),
        ),
    )
}
