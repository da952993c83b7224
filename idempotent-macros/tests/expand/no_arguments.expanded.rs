fn ping(
    __idempotent_request: ::idempotent_runtime::__private::HttpRequest,
    __idempotent_payload: ::idempotent_runtime::__private::Payload,
) -> impl ::idempotent_runtime::__private::Responding {
    async fn ping() -> &'static str {
        "pong"
    }
    let __idempotent_route: &'static ::idempotent_runtime::__private::RouteOptions = &const {
        ::idempotent_runtime::__private::RouteOptions::new()
            .scope(::idempotent_runtime::__private::ScopeSpec::Global)
    };
    ::idempotent_runtime::__private::document_route!(
        ping, & const { ::idempotent_runtime::__private::RouteOptions::new()
        .scope(::idempotent_runtime::__private::ScopeSpec::Global) }
    );
    ::idempotent_runtime::__private::handle(
        __idempotent_route,
        __idempotent_request,
        __idempotent_payload,
        ping,
    )
}
