fn create(
    __idempotent_request: my_app::idem::__private::HttpRequest,
    __idempotent_payload: my_app::idem::__private::Payload,
) -> impl my_app::idem::__private::Responding {
    async fn create(body: web::Bytes) -> HttpResponse {
        HttpResponse::Ok().body(body)
    }
    let __idempotent_route: &'static my_app::idem::__private::RouteOptions = &const {
        my_app::idem::__private::RouteOptions::new()
            .ttl(my_app::idem::__private::Duration::from_secs(5400))
    };
    my_app::idem::__private::document_route!(
        create, & const { my_app::idem::__private::RouteOptions::new()
        .ttl(my_app::idem::__private::Duration::from_secs(5400)) }
    );
    my_app::idem::__private::handle(
        __idempotent_route,
        __idempotent_request,
        __idempotent_payload,
        |__idempotent_arg0| create(
            my_app::idem::__private::extracted::<web::Bytes>()(__idempotent_arg0),
        ),
    )
}
