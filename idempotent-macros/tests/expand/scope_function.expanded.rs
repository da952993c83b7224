fn refund(
    __idempotent_request: ::idempotent_runtime::__private::HttpRequest,
    __idempotent_payload: ::idempotent_runtime::__private::Payload,
) -> impl ::idempotent_runtime::__private::Responding {
    async fn refund(id: web::Path<u64>) -> Result<HttpResponse, Error> {
        Ok(HttpResponse::Ok().body(id.to_string()))
    }
    let __idempotent_route: &'static ::idempotent_runtime::__private::RouteOptions = &const {
        ::idempotent_runtime::__private::RouteOptions::new()
            .scope(
                ::idempotent_runtime::__private::ScopeSpec::Function(
                    crate::auth::tenant_of,
                ),
            )
            .key(::idempotent_runtime::__private::KeySpec::Query("idem"))
    };
    ::idempotent_runtime::__private::document_route!(
        refund, & const { ::idempotent_runtime::__private::RouteOptions::new()
        .scope(::idempotent_runtime::__private::ScopeSpec::Function(crate
        ::auth::tenant_of)).key(::idempotent_runtime::__private::KeySpec::Query("idem"))
        }
    );
    ::idempotent_runtime::__private::handle(
        __idempotent_route,
        __idempotent_request,
        __idempotent_payload,
        |__idempotent_arg0| refund(
            ::idempotent_runtime::__private::extracted::<
                web::Path<u64>,
            >()(__idempotent_arg0),
        ),
    )
}
