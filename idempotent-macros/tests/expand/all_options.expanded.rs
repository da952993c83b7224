pub fn create_order(
    __idempotent_request: ::idempotent_runtime::__private::HttpRequest,
    __idempotent_payload: ::idempotent_runtime::__private::Payload,
) -> impl ::idempotent_runtime::__private::Responding {
    async fn create_order(
        web::Json(order): web::Json<NewOrder>,
        request: HttpRequest,
    ) -> HttpResponse {
        HttpResponse::Created().json(order)
    }
    let __idempotent_route: &'static ::idempotent_runtime::__private::RouteOptions = &const {
        ::idempotent_runtime::__private::RouteOptions::new()
            .ttl(::idempotent_runtime::__private::Duration::from_secs(604800))
            .lease(::idempotent_runtime::__private::Duration::from_secs(60))
            .scope(::idempotent_runtime::__private::ScopeSpec::Header("x-tenant-id"))
            .key(::idempotent_runtime::__private::KeySpec::HeaderNamed("x-request-id"))
            .required(false)
            .store_server_errors(true)
            .max_request_body(524288usize)
            .max_response_body(4096usize)
    };
    ::idempotent_runtime::__private::document_route!(
        create_order, & const { ::idempotent_runtime::__private::RouteOptions::new()
        .ttl(::idempotent_runtime::__private::Duration::from_secs(604800))
        .lease(::idempotent_runtime::__private::Duration::from_secs(60))
        .scope(::idempotent_runtime::__private::ScopeSpec::Header("x-tenant-id"))
        .key(::idempotent_runtime::__private::KeySpec::HeaderNamed("x-request-id"))
        .required(false).store_server_errors(true).max_request_body(524288usize)
        .max_response_body(4096usize) }
    );
    ::idempotent_runtime::__private::handle(
        __idempotent_route,
        __idempotent_request,
        __idempotent_payload,
        |__idempotent_arg0, __idempotent_arg1| create_order(
            ::idempotent_runtime::__private::extracted::<
                web::Json<NewOrder>,
            >()(__idempotent_arg0),
            ::idempotent_runtime::__private::extracted::<
                HttpRequest,
            >()(__idempotent_arg1),
        ),
    )
}
