fn create_order(
    __idempotent_request: ::idempotent_runtime::__private::HttpRequest,
    __idempotent_payload: ::idempotent_runtime::__private::Payload,
) -> impl ::idempotent_runtime::__private::Responding {
    async fn create_order(
        tx: Tx,
        body: web::Json<NewOrder>,
    ) -> Result<HttpResponse, Error> {
        let id = tx.insert_order(&body).await?;
        Ok(HttpResponse::Created().json(id))
    }
    let __idempotent_route: &'static ::idempotent_runtime::__private::RouteOptions = &const {
        ::idempotent_runtime::__private::RouteOptions::new()
            .ttl(::idempotent_runtime::__private::Duration::from_secs(86400))
    };
    ::idempotent_runtime::__private::document_route!(
        create_order, & const { ::idempotent_runtime::__private::RouteOptions::new()
        .ttl(::idempotent_runtime::__private::Duration::from_secs(86400)) }
    );
    ::idempotent_runtime::__private::handle_transactional(
        __idempotent_route,
        __idempotent_request,
        __idempotent_payload,
        |__idempotent_arg0, __idempotent_arg1| create_order(
            ::idempotent_runtime::__private::extracted::<Tx>()(__idempotent_arg0),
            ::idempotent_runtime::__private::extracted::<
                web::Json<NewOrder>,
            >()(__idempotent_arg1),
        ),
    )
}
