fn ping(
    __idempotent_request: ::idempotent_runtime::__private::HttpRequest,
    __idempotent_payload: ::idempotent_runtime::__private::Payload,
) -> impl ::idempotent_runtime::__private::Responding {
    async fn ping() -> &'static str {
        "pong"
    }
    static __IDEMPOTENT_ROUTE: ::idempotent_runtime::__private::RouteOptions = ::idempotent_runtime::__private::RouteOptions::new()
        .scope(::idempotent_runtime::__private::ScopeSpec::Global);
    ::idempotent_runtime::__private::handle(
        &__IDEMPOTENT_ROUTE,
        __idempotent_request,
        __idempotent_payload,
        ping,
    )
}
